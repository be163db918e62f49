"""The code blocks of the README and the docs pages, and a runner that runs one page's blocks in order.

A fenced ```python block runs in one namespace shared by the page's Python blocks, so a later block uses
what an earlier one made; a ```bash block runs in bash (``set -euo pipefail``) in the same folder, so a
file one block writes is there for the next, whichever language wrote it. A block is not run when the
line before it is ``<!-- test: skip (why) -->`` (a GPU, MPI, Docker or a download), or when it installs
packages (``pip install``: the test run has them already); either way the tests report it as skipped,
with its reason.

``python tests/docs_blocks.py PAGE`` runs PAGE's blocks in the current folder; an error names the page
and the line in it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUN = ("python", "bash")
SKIP_MARK = re.compile(r"^<!--\s*test:\s*skip\s*\((?P<why>.+)\)\s*-->$")
FENCE = re.compile(r"^```(?P<language>[\w-]*)")


@dataclass(frozen=True)
class Block:
    page: str  # relative to the repository
    line: int  # of the first line of code, counted from 1
    language: str
    code: str
    skip: str | None  # why it is not run, or None

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def pages() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def blocks(path: Path) -> list[Block]:
    """Every fenced block of the languages that run, in the order of the page."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found, number = [], 0
    while number < len(lines):
        fence = FENCE.match(lines[number])
        if not fence:
            number += 1
            continue
        end = next(i for i in range(number + 1, len(lines)) if lines[i].startswith("```"))
        language = fence["language"]
        if language in RUN:
            code = "\n".join(lines[number + 1 : end]) + "\n"
            before = lines[number - 1].strip() if number else ""
            marked = SKIP_MARK.match(before)
            skip = marked["why"] if marked else None
            if skip is None and language == "bash" and re.search(r"^\s*pip install", code, re.MULTILINE):
                skip = "installs packages; the test run has them installed"
            found.append(Block(str(path.relative_to(REPO)), number + 2, language, code, skip))
        number = end + 1
    return found


def run_page(path: Path) -> None:
    """Run the page's blocks in order in the current folder; the first that fails raises."""
    namespace: dict = {"__name__": "__main__"}
    for block in blocks(path):
        if block.skip:
            continue
        print(f"--- {block.where} ({block.language})", flush=True)
        if block.language == "python":
            # Padding puts each line of code at its line of the page, so a traceback names the page's line.
            exec(compile("\n" * (block.line - 1) + block.code, block.page, "exec"), namespace)
        else:
            result = subprocess.run(["bash", "-euo", "pipefail", "-c", block.code], check=False)
            if result.returncode != 0:
                raise SystemExit(f"{block.where}: the bash block exited with code {result.returncode}")


if __name__ == "__main__":
    run_page(REPO / sys.argv[1])
