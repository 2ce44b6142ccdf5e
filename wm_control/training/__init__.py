"""Online TD-MPC2 training (torch): the agent, replay buffer, trainer, checkpoints and run logging."""
