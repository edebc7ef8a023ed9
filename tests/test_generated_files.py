"""The committed notebooks and example submissions are what their generators make: an edit to a
generator (or to a committed file by hand) that is not regenerated fails here."""
import subprocess
import sys

import pytest

from conftest import ROOT


@pytest.mark.parametrize("tool", ["make_notebooks.py", "make_examples.py", "make_corpus.py", "make_sheet5.py",
                                  "make_course_environment.py"])
def test_committed_files_are_up_to_date(tool):
    run = subprocess.run([sys.executable, str(ROOT / "tools" / tool), "--check"], capture_output=True, text=True)
    assert run.returncode == 0, f"run `python tools/{tool}`:\n{run.stdout}{run.stderr}"


def test_the_readmes_check_table_is_the_sheets_registry():
    """README's table of the automatic checks says what each check's declaration says (id, points,
    description): a check changed in grader/sheets/sheet6/checks.py and not in the README fails here."""
    import re

    from grader.sheets.sheet6 import SHEET

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = dict((m.group(1), (float(m.group(2)), m.group(3)))
                for m in re.finditer(r"^\| `([a-z_.]+)` \| ([0-9.]+) \| (.*) \|$", readme, re.M))
    assert {c.id: (c.points, c.description) for c in SHEET.checks} == {c.id: rows.get(c.id) for c in SHEET.checks}
