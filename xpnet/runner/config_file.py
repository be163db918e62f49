"""Reading the TOML files that describe runs: ``--config FILE.toml`` (the command-line options as keys,
so a job is one file) and sweep files, whose ``[base]`` table takes the same keys.

Keys are the option names without the leading dashes, in kebab-case (``batch-size``) or snake_case
(``batch_size``); both spell the same setting. This module only reads and normalises the file; the
option table (``xpnet.runner.settings``) checks the keys and their types.
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
    """The settings in the ``--config`` TOML file at ``path``, keys in snake_case."""
    return snake_case_keys(read_toml(path, "config file", "--config"), f"config file {path}")


def read_toml(path, what: str, given_as: str) -> dict:
    """The TOML file at ``path`` as it is; ``what`` names it in errors ("config file"), and
    ``given_as`` says where its path came from ("--config")."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise XpnetError(f"{what} {path} does not exist; check the path given to {given_as}") from None
    except OSError as error:
        raise XpnetError(f"cannot read {what} {path}: {error.strerror or error}") from None
    except UnicodeDecodeError as error:  # TOML is UTF-8 text: tomllib decodes before it parses
        raise XpnetError(
            f"{what} {path} is not UTF-8 text (byte {error.start} cannot be decoded); save it as UTF-8"
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise XpnetError(f"{what} {path} is not valid TOML ({error}); fix that line") from None


def snake_case_keys(table: dict, where: str) -> dict:
    """``table`` with its keys in snake_case; a key given in both spellings is an error naming ``where``."""
    settings = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        if name in settings:
            raise XpnetError(f"{where} sets {key!r} twice (kebab-case and snake_case); keep one")
        settings[name] = value
    return settings
