"""The TD-MPC2 world model (torch): config and presets, layers, the ``LatentModel`` protocol, weights hash."""
