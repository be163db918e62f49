"""Reading ``--config FILE.toml``: the command-line options as TOML keys, so a job is one file.

Keys are the option names without the leading dashes, in kebab-case (``batch-size``) or snake_case
(``batch_size``); both spell the same setting. This module only reads and normalises the file; the
command line checks the keys and their types against its option table.
"""

from __future__ import annotations

import sys
from pathlib import Path

from xpnet.errors import XpnetError

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, published as tomli (a dependency only there)
    import tomli as tomllib


def read_config(path) -> dict:
    """The settings in the TOML file at ``path``, keys in snake_case."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise XpnetError(f"config file {path} does not exist; check the path given to --config") from None
    except OSError as error:
        raise XpnetError(f"cannot read config file {path}: {error.strerror or error}") from None
    except tomllib.TOMLDecodeError as error:
        raise XpnetError(f"config file {path} is not valid TOML ({error}); fix that line") from None
    settings = {}
    for key, value in data.items():
        name = key.replace("-", "_")
        if name in settings:
            raise XpnetError(f"config file {path} sets {key!r} twice (kebab-case and snake_case); keep one")
        settings[name] = value
    return settings
