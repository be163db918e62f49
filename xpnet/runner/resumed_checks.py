"""What a resume checks before it trains on: that a run folder's records agree with each other.

``config.json`` (what the run was started with) and ``checkpoint.npz`` (the settings and weights it
trained with) are written by xpnet, but they are plain files a hand may edit: a resume that trusted one
of them would silently continue another run than the one recorded. Any disagreement is refused, naming
both values.
"""

from __future__ import annotations

from pathlib import Path

from xpnet.errors import XpnetError
from xpnet.io import runs
from xpnet.train.checkpoint import CHECKPOINT_FILE
from xpnet.train.config import TrainConfig
from xpnet.train.model import Model

# What to do when config.json cannot be used: a run continues with the options it started with.
PUT_BACK = (
    "--resume continues a run with the options {path} recorded when it started: put back that file as it was, "
    "or start a new run with another --out"
)


def check_agrees(run_dir: Path, recorded: TrainConfig, model: Model) -> None:
    """Refuse a checkpoint whose settings differ from those ``config.json`` records (``recorded``) (its
    settings and its layers were checked against each other as it loaded)."""
    config_file, checkpoint_file = run_dir / runs.CONFIG_FILE, run_dir / CHECKPOINT_FILE
    trained = model.config.to_dict()
    for name, value in recorded.to_dict().items():
        if value != trained[name]:
            raise XpnetError(
                f"{config_file} records {name} {value!r} but {checkpoint_file} trained with {trained[name]!r}; "
                + PUT_BACK.format(path=config_file)
            )
