"""The committed notebooks and example submissions are what their generators make: an edit to a
generator (or to a committed file by hand) that is not regenerated fails here."""

import subprocess
import sys

import pytest
from conftest import ROOT


@pytest.mark.parametrize(
    "tool", ["make_notebooks.py", "make_examples.py", "make_corpus.py", "make_sheet5.py", "make_course_environment.py"]
)
def test_committed_files_are_up_to_date(tool):
    run = subprocess.run([sys.executable, str(ROOT / "tools" / tool), "--check"], capture_output=True, text=True)
    assert run.returncode == 0, f"run `python tools/{tool}`:\n{run.stdout}{run.stderr}"


@pytest.mark.parametrize("sheet", ["sheet6", "sheet5"])
def test_the_documented_check_tables_are_the_sheets_registry(sheet):
    """docs/checks.md's table of a sheet's automatic checks says what each check's declaration says (id,
    points, description), and docs/spec.md lists the same ids with the same points: a check changed in
    grader/sheets/<sheet>/checks.py and not in the docs fails here."""
    import importlib
    import re

    checks = importlib.import_module(f"grader.sheets.{sheet}").SHEET.checks
    page = (ROOT / "docs" / "checks.md").read_text(encoding="utf-8")
    rows = dict(
        (m.group(1), (float(m.group(2)), m.group(3)))
        for m in re.finditer(r"^\| `([a-z_.]+)` \| ([0-9.]+) \| (.*) \|$", page, re.M)
    )
    assert {c.id: (c.points, c.description) for c in checks} == {c.id: rows.get(c.id) for c in checks}

    spec = (ROOT / "docs" / "spec.md").read_text(encoding="utf-8")
    number = sheet.removeprefix("sheet")
    listed = {
        m.group(1): float(m.group(2))
        for m in re.finditer(rf"^\| {number} \| `([a-z_.]+)` \| ([0-9.]+) \|$", spec, re.M)
    }
    assert listed == {c.id: c.points for c in checks}
