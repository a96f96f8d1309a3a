"""The README and docs describe the product: no history of how the work went, no dead links."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
SOURCES = [
    *DOCS,
    *sorted(REPO.glob("bench/*.py")),
    *sorted(REPO.glob("examples/*.*")),
    *sorted(REPO.glob("scripts/*.py")),
]
ORDINAL = r"(first|second|third|fourth|fifth|sixth|seventh|this|previous|earlier|later|next|\d+(st|nd|rd|th))"
HISTORY = re.compile(rf"\b({ORDINAL} (session|round)|(session|round) \d+|correction to the)\b", re.I)


def test_no_development_history_in_the_docs():
    for path in SOURCES:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            assert not HISTORY.search(line), f"{path.name}:{n}: {line.strip()}"


def test_links_to_files_exist():
    for path in [*DOCS, REPO / "CHANGELOG.md"]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", path.read_text()):
            assert (path.parent / target).exists(), f"{path.name} links to a missing {target}"


def test_readme_is_short():
    assert len((REPO / "README.md").read_text().splitlines()) <= 170


def test_the_site_builds_without_warnings(tmp_path):
    pytest.importorskip("mkdocs")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    cli = (tmp_path / "site" / "reference" / "cli" / "index.html").read_text()
    assert "--dedup-threshold" in cli and "--label-map" in cli  # generated from the commands


GUIDES = [REPO / "docs" / "getting-started.md", *sorted((REPO / "docs" / "guides").glob("*.md"))]
BLOCK = re.compile(r"^```(sh|python)\n(.*?)^```", re.M | re.S)


@pytest.mark.slow
@pytest.mark.parametrize("guide", GUIDES, ids=lambda p: p.stem)
def test_every_guide_s_commands_run(tmp_path, guide):
    """Each ```sh and ```python block of a guide runs, in order, in a folder holding the examples
    (```shell and ```py blocks are shown, not run: installs, cluster set-ups)."""
    blocks = BLOCK.findall(guide.read_text())
    assert blocks, f"{guide.name} has no runnable block"
    (tmp_path / "examples").symlink_to(REPO / "examples")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for kind, code in blocks:
        cmd = ["bash", "-euo", "pipefail", "-c", code] if kind == "sh" else [sys.executable, "-c", code]
        run = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600)
        assert run.returncode == 0, f"{guide.name}:\n{code}\n{run.stdout}\n{run.stderr}"
