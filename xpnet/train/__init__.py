"""Training: the settings, the epoch loop, ``Model`` (a network with its training state), callbacks,
checkpoints, diagnostics and the memory guard."""
