"""The students' wheel as `make student-package` builds it (without installing it: that is
test_student_package.py, which needs root and PyPI): it knows the sheet it was built for, and holds
each sheet's template and calibration but, by rule, none of the tutors' material."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow   # a build, about 10-20 s


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    dist = tmp_path_factory.mktemp("dist")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                           "-w", str(dist), str(ROOT)], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "GRADER_SHEET": "sheet5"}, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (path,) = dist.glob("*.whl")
    return zipfile.ZipFile(path)


def test_the_wheel_knows_its_sheet(wheel):
    assert json.loads(wheel.read("grader/built_for.json")) == {"sheet": "sheet5"}
    assert not (ROOT / "grader" / "built_for.json").exists()   # the source tree knows no sheet


def test_every_sheet_ships_its_template_and_the_code_its_probe_sends(wheel):
    names = set(wheel.namelist())
    for needed in ("reference/template.ipynb", "reference/calibration.json", "grader/sheets/sheet5/reference/template.ipynb",
                   "grader/sheets/sheet5/kernel_plan.py", "grader/sheets/sheet6/kernel_plan.py",
                   "grader/child/probe_kernel.py", "grader/child/setup_kernel.py"):
        assert needed in names, needed


def test_every_module_and_every_program_of_the_tree_is_in_the_wheel(wheel):
    """A folder of grader/ that packaging misses (no __init__.py, a pattern left out) would leave
    `grader check` without a module or without a program it runs in another process."""
    tree = {p.relative_to(ROOT).as_posix() for p in (ROOT / "grader").rglob("*.py") if "__pycache__" not in p.parts}
    assert {"grader/child/launcher.py", "grader/child/forkserver_proxy.py", "grader/util/fsclean.py"} <= tree
    assert sorted(tree - set(wheel.namelist())) == []


def test_no_solution_no_key_no_example_submissions_by_rule(wheel):
    names = wheel.namelist()
    assert [n for n in names if "solution" in n.lower() or "tutors_" in n or "submissions/" in n or n.endswith(".zip")] == []
