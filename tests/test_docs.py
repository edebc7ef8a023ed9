"""The two documents outside docs/ that `make docs` does not build: the README stays the front door
(under 200 lines), and every relative link in it and in CONTRIBUTING.md leads to a file and, where
it names one, a heading that exists. The pages in docs/ are checked by `mkdocs build --strict`."""

from __future__ import annotations

import re

import pytest
from conftest import ROOT

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _anchors(page: str) -> set[str]:
    """The ids MkDocs gives the headings of a Markdown page (its toc extension's slugs)."""
    slugs = set()
    for title in re.findall(r"^#+\s+(.*?)\s*$", page, re.M):
        text = re.sub(r"[^\w\s-]", "", title.replace("`", "")).strip().lower()
        slugs.add(re.sub(r"[-\s]+", "-", text))
    return slugs


def test_the_readme_is_the_front_door_not_the_manual():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) < 200, f"README.md has {len(lines)} lines: move what is for one reader into docs/"


@pytest.mark.parametrize("document", ["README.md", "CONTRIBUTING.md"])
def test_relative_links_lead_somewhere(document):
    text = (ROOT / document).read_text(encoding="utf-8")
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (ROOT / path) if path else ROOT / document
        if not file.is_file():
            broken.append(f"{target}: no file {path}")
        elif anchor and anchor not in _anchors(file.read_text(encoding="utf-8")):
            broken.append(f"{target}: no heading #{anchor} in {path or document}")
    assert not broken, f"{document}: " + "; ".join(broken)
