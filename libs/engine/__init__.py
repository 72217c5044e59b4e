"""Training: the cyclic objective and its losses, the trainer, checkpoints and fault handling."""
