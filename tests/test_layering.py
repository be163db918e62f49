"""The layering written down in pyproject.toml (``[tool.importlinter]``) holds: import-linter checks its
contracts against this repository's ``xpnet`` source, and a broken contract fails the test run with
import-linter's report of the offending imports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = (
    "import sys; from importlinter.cli import lint_imports_command; "
    "sys.exit(lint_imports_command(prog_name='lint-imports'))"
)


def _python(*arguments: str) -> subprocess.CompletedProcess:
    """This interpreter run in the repository root with the root first on the import path, so that
    ``xpnet`` is the source here, not a copy installed in site-packages."""
    search_path = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    return subprocess.run(
        [sys.executable, *arguments],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(search_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_contracts_are_checked_against_this_repository():
    found = _python("-c", "import importlib.util; print(importlib.util.find_spec('xpnet').origin)")
    assert found.returncode == 0, found.stderr
    assert Path(found.stdout.strip()) == ROOT / "xpnet" / "__init__.py"


def test_import_contracts_are_kept():
    # lint-imports reads the contracts from pyproject.toml in its working directory, the repository root.
    result = _python("-c", LINT_IMPORTS, "--no-cache")
    report = f"{result.stdout}{result.stderr}".strip()
    assert result.returncode == 0, f"an import breaks the layering in pyproject.toml [tool.importlinter]:\n{report}"
