"""The install extras: the README's test command installs what the default test run needs, no more."""

from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
# What only the slow tests (-m slow) import: Dask's distributed scheduler (the default tests use Dask's
# arrays alone) and psycopg.
SLOW_ONLY = ("dask[distributed]", "psycopg[binary]")


def extras() -> dict[str, list[str]]:
    with (REPO / "pyproject.toml").open("rb") as handle:
        return tomllib.load(handle)["project"]["optional-dependencies"]


def names(requirements: list[str]) -> set[str]:
    """Each requirement's name with its extras (``dask[distributed]``), without versions or markers."""
    return {requirement.split(">")[0].split("=")[0].split(";")[0].strip() for requirement in requirements}


def test_the_test_extra_leaves_the_slow_tests_libraries_to_an_extra_of_their_own():
    found = extras()
    assert names(found["test"]).isdisjoint(SLOW_ONLY)
    assert names(found["slow"]) == set(SLOW_ONLY)
