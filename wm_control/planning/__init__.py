"""MPPI planning in latent space: the budget and noise shapes (``config``, torch-free), one iteration's
math (``mppi``) and the solve driver shared by training, the torch runtime and the exported graphs
(``solve``).
"""
