"""The students' wheel as `make student-package` builds it (without installing it: that is
test_student_package.py, which needs root and PyPI): it knows the sheet it was built for, and holds
each sheet's template and calibration but, by rule, none of the tutors' material."""

from __future__ import annotations

import json
import zipfile

import pytest
from conftest import ROOT
from student_env import build_wheel

pytestmark = pytest.mark.slow  # a build, about 10-20 s


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    return zipfile.ZipFile(build_wheel(tmp_path_factory.mktemp("dist"), "sheet5"))


def test_the_wheel_knows_its_sheet(wheel):
    assert json.loads(wheel.read("grader/built_for.json")) == {"sheet": "sheet5"}
    assert not (ROOT / "grader" / "built_for.json").exists()  # the source tree knows no sheet


def test_every_sheet_ships_its_template_and_the_code_its_probe_sends(wheel):
    names = set(wheel.namelist())
    for needed in (
        "reference/template.ipynb",
        "reference/calibration.json",
        "grader/sheets/sheet5/reference/template.ipynb",
        "grader/sheets/sheet5/kernel_plan.py",
        "grader/sheets/sheet6/kernel_plan.py",
        "grader/child/probe_kernel.py",
        "grader/child/setup_kernel.py",
    ):
        assert needed in names, needed


def test_every_module_and_every_program_of_the_tree_is_in_the_wheel(wheel):
    """A folder of grader/ that packaging misses (no __init__.py, a pattern left out) would leave
    `grader check` without a module or without a program it runs in another process."""
    tree = {p.relative_to(ROOT).as_posix() for p in (ROOT / "grader").rglob("*.py") if "__pycache__" not in p.parts}
    assert {"grader/child/launcher.py", "grader/child/forkserver_proxy.py", "grader/util/fsclean.py"} <= tree
    assert sorted(tree - set(wheel.namelist())) == []


def test_no_solution_no_key_no_example_submissions_by_rule(wheel):
    names = wheel.namelist()
    assert [
        n for n in names if "solution" in n.lower() or "tutors_" in n or "submissions/" in n or n.endswith(".zip")
    ] == []


def test_the_wheels_description_is_the_students_page_and_nothing_for_tutors(wheel):
    """What pip and a student see of the package (METADATA's description) is docs/students.md: how to
    install and run `grader check` and what its verdict means; not the tutors', operators' or
    maintainers' pages."""
    (metadata,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    headers, _, description = wheel.read(metadata).decode("utf-8").partition("\n\n")
    assert "Description-Content-Type: text/markdown" in headers
    assert description.strip() == (ROOT / "docs" / "students.md").read_text(encoding="utf-8").strip()
    assert "grader check" in description and "ready to upload" in description
    for tutors_only in (
        "manual_points.csv",
        "cms_import.csv",
        "grader merge",
        "--allow-clearing",
        "sbatch",
        "seccomp",
        "make student-package",
        "tutors_key",
    ):
        assert tutors_only not in description, tutors_only


def test_the_pages_templates_are_in_the_wheel(wheel):
    """The pages are rendered from files beside the code (report/pages.py): a wheel without them
    grades, then fails writing the first page."""
    from grader.report.pages import TEMPLATES

    shipped = {f"{TEMPLATES.relative_to(ROOT).as_posix()}/{p.name}" for p in TEMPLATES.iterdir() if p.is_file()}
    assert len(shipped) >= 2 and shipped <= set(wheel.namelist())
