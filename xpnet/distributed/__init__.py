"""Data-parallel training over MPI processes: one model, each minibatch's gradient computed in shares
by every process (rank) and summed, so N ranks train exactly the model one would.

``launcher`` reads what an MPI launcher tells each process through its environment (it runs before
NumPy loads, so it imports nothing heavy: this file stays empty of imports for the same reason);
``world`` is the MPI communicator; ``exchange`` sums gradient buffers (MPI on the host, NCCL between
GPUs); ``parallel`` runs one epoch of data-parallel steps in place of ``train.loop.train_epoch``;
``checkpoint`` lets rank 0 alone write and makes every rank stop on a signal at the same step.
The public entry point is ``xpnet.DataParallel``.
"""
