"""Training loop, evaluation, checkpoints and metric logging."""
