"""The sweep folder: ``sweep.json`` (the checked sweep file, which every worker reads), the journal, one
run folder per trial under ``trials/``, the workers' lock files and logs under ``workers/``, and the
summary. Running the same command again continues the sweep in it; another sweep is refused there."""

from __future__ import annotations

from pathlib import Path

from xpnet.errors import XpnetError
from xpnet.io import runs
from xpnet.sweep.spec import Sweep, parse

SPEC_FILE = "sweep.json"
DEFAULT_PARENT = Path("sweeps")


def prepare(spec: Sweep, out) -> Path:
    """The sweep folder (``out``, or ``sweeps/<name>``), created or checked to hold this sweep, with
    ``sweep.json`` written for its workers."""
    folder = Path(out) if out is not None else DEFAULT_PARENT / spec.settings["name"]
    if (folder / SPEC_FILE).exists():
        held = read_spec(folder)
        if held.search_record() != spec.search_record():
            raise XpnetError(
                f"sweep folder {folder} holds another sweep ({held.settings['name']!r}, with other settings); "
                "choose another --out, or put the sweep file back as it was to continue that one"
            )
    elif folder.is_dir() and any(folder.iterdir()):
        raise XpnetError(
            f"sweep folder {folder} already holds other files; choose another --out (a new or empty folder)"
        )
    runs.make_folder(folder, "sweep folder")
    runs.write_json(folder / SPEC_FILE, spec.record())
    return folder


def read_spec(folder) -> Sweep:
    """The sweep that the folder runs, from its ``sweep.json``."""
    path = Path(folder) / SPEC_FILE
    if not path.is_file():
        raise XpnetError(f"{folder} holds no {SPEC_FILE}: give a sweep folder that xpnet sweep wrote (its --out)")
    return parse(runs.read_json(path), str(path))
