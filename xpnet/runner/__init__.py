"""One training run, from its options to a finished run folder, for every caller that trains: ``xpnet
train``, ``--resume`` and each trial of a sweep. The option table (``settings``), the TOML files that
give options (``config_file``), the warnings a run records (``warning_log``), and the run itself
(``run``): claim and lock the folder, write ``config.json``, train with test-set metrics, progress and
checkpoints, write the results."""
