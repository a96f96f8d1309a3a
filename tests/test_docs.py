"""The README and docs describe the product: no history of how the work went, no dead links."""

import re

from .conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
ORDINAL = r"(first|second|third|fourth|fifth|sixth|seventh|this|previous|earlier|later|next|\d+(st|nd|rd|th))"
HISTORY = re.compile(rf"\b({ORDINAL} (session|round)|(session|round) \d+|correction to the)\b", re.I)


def test_no_development_history_in_the_docs():
    for path in DOCS:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            assert not HISTORY.search(line), f"{path.name}:{n}: {line.strip()}"


def test_links_to_files_exist():
    for path in [*DOCS, REPO / "CHANGELOG.md"]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", path.read_text()):
            assert (path.parent / target).exists(), f"{path.name} links to a missing {target}"


def test_readme_is_short():
    assert len((REPO / "README.md").read_text().splitlines()) <= 170
