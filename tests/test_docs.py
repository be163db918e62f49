"""The README and the docs site: every Python and shell example runs, and the site builds with nothing broken."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from docs_blocks import REPO, blocks, pages

PAGES_WITH_CODE = [page for page in pages() if any(not block.skip for block in blocks(page))]
SKIPPED = [block for page in pages() for block in blocks(page) if block.skip]


def environment(tmp_path: Path) -> dict:
    env = dict(os.environ)
    # The interpreter running the tests is the one the examples' `python` and `xpnet` mean.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["XPNET_DATA"] = str(tmp_path / "cache")  # an empty cache: an example that would download fails
    env["MPLBACKEND"] = "Agg"
    env.pop("XPNET_EXAMPLE_QUICK", None)
    return env


@pytest.mark.parametrize("page", PAGES_WITH_CODE, ids=lambda page: str(page.relative_to(REPO)))
def test_the_examples_of_a_page_run(page, tmp_path):
    """The page's Python and bash blocks, in order, in a fresh folder where `examples/` is the repository's."""
    (tmp_path / "examples").symlink_to(REPO / "examples")
    result = subprocess.run(
        [sys.executable, str(REPO / "tests" / "docs_blocks.py"), str(page.relative_to(REPO))],
        cwd=tmp_path,
        env=environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"


@pytest.mark.parametrize("block", SKIPPED, ids=lambda block: block.where)
def test_the_blocks_not_run_say_why(block):
    """Each block left out is listed in the test report with its reason (a GPU, MPI, Docker, a download)."""
    pytest.skip(f"{block.where}: {block.skip}")


def test_every_example_block_names_a_language():
    """A fence without a language would be neither highlighted nor run."""
    unnamed = [
        f"{page.relative_to(REPO)}:{number}"
        for page in pages()
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1)
        if line == "```" and _opens_block(page, number)
    ]
    assert unnamed == []


def _opens_block(page: Path, number: int) -> bool:
    """Whether the bare fence on line ``number`` opens a block (an even count of fences before it)."""
    lines = page.read_text(encoding="utf-8").splitlines()[: number - 1]
    return sum(line.startswith("```") for line in lines) % 2 == 0


def test_the_readme_is_short_and_opens_with_the_two_commands():
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 150
    assert lines[2:6] == [
        "```bash",
        "pip install . && python -m xpnet                  # train on the embedded digits, CPU, no download",
        "pip install '.[test]' && python -m pytest         # run the tests",
        "```",
    ]


def test_the_readme_links_to_pages_that_exist():
    import re

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\((docs/[^)#]+)", readme)
    assert targets, "the README links to the docs pages"
    assert [target for target in targets if not (REPO / target).is_file()] == []


def test_the_site_builds_strictly(tmp_path):
    """`mkdocs build --strict`: a broken link or anchor, a page left out of the navigation, or an API
    reference that names nothing fails the build."""
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-5000:]
    reference = (tmp_path / "site" / "reference" / "xpnet.html").read_text(encoding="utf-8")
    assert "xpnet.Model" in reference
    assert "Parameters:" in reference or "Parameters" in reference
