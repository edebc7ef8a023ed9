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
