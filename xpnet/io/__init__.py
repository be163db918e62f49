"""Files: atomic writes, bounded reading of ``.npy``/``.npz``/zip archives that may come from strangers,
and run folders."""
