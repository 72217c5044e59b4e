"""Training: the cyclic objective and its losses, the trainer loop, checkpoints and where a run starts,
the clip order and the max_skip curriculum (see README's architecture section)."""
