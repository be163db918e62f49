"""A run as one rank of an MPI job (``mpiexec -n N python -m xpnet --distributed ...``).

Every rank runs the same command. Errors that every rank meets alike (a bad option, a missing
dataset, a diverged run, a stop on a signal) are reported once, by rank 0; an error only one rank
meets (a checkpoint rank 0 cannot write) is reported by that rank, which then ends the whole job,
since the others would wait for it forever. A lone process (no launcher) is a world of one.
"""

from __future__ import annotations

import contextlib
import shlex
import sys
from pathlib import Path

from xpnet.distributed import launcher
from xpnet.distributed.world import JobError, World
from xpnet.errors import TrainingDiverged, XpnetError, one_line
from xpnet.train.checkpoint import CHECKPOINT_FILE, RESUME_COMMAND, TrainingInterrupted

USAGE_ERROR = 2


class Lone:
    """A process on its own, as a ``World`` of one that needs no MPI: what it does, it does for all."""

    rank, size, is_root = 0, 1, True

    def together(self, action):
        return action()

    from_root = together


LONE = Lone()


def join(argv: list[str]):
    """The MPI world when a launcher started this process as one of several ranks, once every rank is
    found to run the same command line; ``LONE`` for a process started on its own."""
    if launcher.launched_size() < 2:
        return LONE
    world = World()
    world.require_same("command lines", shlex.join(argv))
    return world


def speaks() -> bool:
    """Whether this process reports errors: any lone process, and rank 0 of a launched job."""
    return launcher.launched_rank() in (None, 0)


def world_for(world, distributed: bool, resumed=None):
    """The world a run trains over: ``world`` for a distributed run (MPI's world of one when no
    launcher started it); a launched job of several ranks without ``--distributed`` is refused, and
    so is one resuming (``resumed``, its folder) a run that was started without it."""
    if distributed:
        return World() if world is LONE else world
    if world.size > 1 and resumed is not None:
        raise JobError(
            f"the run in {resumed} was started without --distributed, so it continues in one process: "
            f"python -m xpnet --resume {resumed} (without mpiexec)"
        )
    if world.size > 1:
        raise JobError(
            f"this process is one of {world.size} ranks of an MPI job, but --distributed was not given: add it to "
            "train one model over them, or start a single process"
        )
    return world


@contextlib.contextmanager
def entered_on_root(world, context):
    """Enter ``context`` on rank 0 alone (a run folder to claim) and give every rank what it yields;
    its failure is every rank's. A failure of the block on any rank leaves it through ``context``."""
    with contextlib.ExitStack() as stack:
        yield world.from_root(lambda: stack.enter_context(context))


def resume_command(world) -> str:
    """How a data-parallel run of ``world`` resumes: under a launcher, the same command on every rank."""
    return f"mpiexec -n {world.size} {RESUME_COMMAND}"


@contextlib.contextmanager
def rank_errors_end_the_job(world, run_dir: Path):
    """Errors of this rank alone (not a ``JobError``, a divergence or an agreed stop, which every rank
    raises at once) are reported with the rank's number, and end every rank of the job. A rank whose
    MPI calls fail has lost another (killed, say): it says how to go on from the run's last checkpoint
    in ``run_dir``, on one line, where mpi4py would print MPI's error stack in a traceback."""
    try:
        yield
    except (JobError, TrainingDiverged, TrainingInterrupted):
        raise
    except (XpnetError, MemoryError) as error:
        if world.size == 1:
            raise
        _end_job(world, one_line(error))
    except Exception as error:
        if world.size == 1 or not isinstance(error, world.mpi.Exception):
            raise
        reason = world.mpi.Get_error_string(error.Get_error_class())
        if (run_dir / CHECKPOINT_FILE).exists():
            next_step = f"its last checkpoint is whole: resume with: {resume_command(world).format(run_dir=run_dir)}"
        else:
            next_step = "no checkpoint was written yet: start the run again with the same command"
        _end_job(world, f"lost contact with the other ranks ({one_line(reason)}), one of which stopped; {next_step}")


def _end_job(world, message: str) -> None:
    print(f"xpnet: error: rank {world.rank}: {message}", file=sys.stderr, flush=True)
    world.abort(USAGE_ERROR)
