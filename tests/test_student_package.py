"""What students get, the way they get it: the wheel of `make student-package`, installed with its
kernel packages (`pip install '<wheel>[kernel]'`) in a fresh virtual environment outside the
repository, by a user who is not root (`nobody`), and `grader check` run there on the example
submissions, with bubblewrap on the PATH and without it. Each check must give the same statuses and
points as a real `grader grade` of the same zip with the tutors' grading.toml. Nothing a student
must not see (the 6.3 key) is in the wheel or in anything the check prints.

The installation (about 70 s and 5.6 GB with the CUDA build of torch from this machine's disk) is
made once per test session and removed afterwards.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest
from conftest import ROOT, needs_torch
from student_env import EXAMPLES, needs_nobody, pip_environment

pytestmark = [
    pytest.mark.kernel,
    needs_torch,
    # Two CPU-bound processes beside these tests (conftest, --busy-processes): the verdicts are
    # those of a quiet machine (time limits count CPU time, not wall-clock time).
    pytest.mark.usefixtures("busy_machine"),
]

CORRECT = "Erika_Mustermann_7012345_Jürgen_Müller_7054321.zip"
PYENV = Path("/root/.pyenv/versions")
# The values of the key of Exercise 6.3, in any of the forms the grader ever wrote them.
KEY_PATTERNS = [r"54\D{1,3}18", r"\(9,\s*0\)", r"2\.3\d*e-16", r"predicted class 1", r"0\.9999999999999998"]
MARKS = {"✓": "pass", "✗": "fail", "!": "error", "-": "skipped", "?": "needs_review"}


def _python_for(minor: str) -> Path | None:
    found = sorted(PYENV.glob(f"3.{minor}.*/bin/python3"))
    return found[-1] if found else None


@pytest.fixture(scope="session")
def tutors_reports(tmp_path_factory) -> dict[str, dict]:
    """A real `grader grade` of the examples with the tutors' grading.toml, as the tutors run it."""
    out = tmp_path_factory.mktemp("tutors")
    calibration = out / "calibration.json"  # a copy: grading must not write into the repository
    shutil.copy(ROOT / "reference" / "calibration.json", calibration)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "grader",
            "--config",
            str(ROOT / "grading.toml"),
            "grade",
            str(ROOT / "submissions"),
            "--out",
            str(out / "reports"),
            "--workers",
            "2",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "GRADER_CALIBRATION": str(calibration)},
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return {
        name: json.loads((out / "reports" / f"{Path(name).stem}.json").read_text(encoding="utf-8")) for name in EXAMPLES
    }


def _checks(report: dict) -> dict[str, tuple[str, float]]:
    return {c["id"]: (c["status"], c["points"]) for c in report["checks"]}


def _checks_from_terminal(text: str) -> dict[str, tuple[str, float]]:
    found = {}
    for mark, check_id, points in re.findall(r"^\s+(\S) (\S+) \(([\d.]+)/[\d.]+\)", text, re.MULTILINE):
        if mark in MARKS:
            found[check_id] = (MARKS[mark], float(points))
    return found


def _assert_no_key(text: str, where: str) -> None:
    for pattern in KEY_PATTERNS:
        assert not re.search(pattern, text), f"{where} shows the 6.3 key ({pattern}):\n{text[:3000]}"


# ----------------------------------------------------------------------------- the wheel itself


def test_wheel_holds_the_checker_but_no_solution_and_no_key(student_wheel):
    wheel = zipfile.ZipFile(student_wheel)
    names = wheel.namelist()
    assert "grader/cli.py" in names and "reference/numpy_ref.py" in names and "reference/template.ipynb" in names
    assert "reference/calibration.json" in names
    assert not [n for n in names if "solution" in n.lower() or "tutors_key" in n]
    assert not [n for n in names if n.startswith(("tests/", "submissions/", "tools/"))]
    for name in names:  # not in the code, the README (METADATA), anywhere
        _assert_no_key(wheel.read(name).decode("utf-8", "replace"), f"the wheel's {name}")


# ----------------------------------------------------------------------------- as students run it


@needs_nobody
@pytest.mark.bwrap
def test_check_gives_what_grading_gives_with_and_without_bubblewrap(student_install, tutors_reports):
    """Every example, checked by `nobody` from the installed wheel: with bubblewrap (--json) and with
    a PATH that has no bwrap (the terminal's verdict), the statuses and points of `grader grade`."""
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap (bwrap) is not installed")
    subs = student_install.base / "subs"

    def check(job: tuple[str, bool]) -> subprocess.CompletedProcess:
        name, bwrap = job
        return student_install.run(
            [student_install.grader, "check", *(["--json"] if bwrap else []), str(subs / name)], bwrap=bwrap
        )

    # Two at a time (each is a separate student's run; the first stages the data alone).
    jobs = [(name, True) for name in EXAMPLES] + [(name, False) for name in EXAMPLES]
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = dict(zip(jobs, [check(jobs[0]), *pool.map(check, jobs[1:])]))
    for name in EXAMPLES:
        expected = _checks(tutors_reports[name])
        assert len(expected) == 6, tutors_reports[name]

        sandboxed = done[name, True]
        _assert_no_key(sandboxed.stdout + sandboxed.stderr, f"grader check --json {name}")
        report = json.loads(sandboxed.stdout)
        assert report["execution"]["isolated"] is True and report["execution"]["sandbox"] == "bubblewrap", report[
            "execution"
        ]
        assert _checks(report) == expected, name
        assert sandboxed.returncode == (0 if all(s == "pass" for s, _ in expected.values()) else 1), sandboxed.stderr
        assert not any("6.3" == e["id"] and e["evidence"] for e in report["exercises"])

        plain = done[name, False]
        _assert_no_key(plain.stdout + plain.stderr, f"grader check {name} (no bwrap)")
        assert _checks_from_terminal(plain.stdout) == expected, plain.stdout
        assert "ran on your own machine without a sandbox, which is fine for a self-check" in plain.stdout
        assert "could read and write" not in plain.stdout  # the tutors' wording is not for students
        assert "running cell In [1] of" in plain.stdout  # progress while the notebook runs
        assert ("ready to upload" in plain.stdout) == (plain.returncode == 0)


@needs_nobody
def test_check_of_a_misnamed_copy_names_the_file_to_upload(student_install, tutors_reports):
    """A name that says nothing of the team: the files do, so the check gives the exact name; the
    automatic checks still pass, and that is a matter for tutors (exit 3), not lost points."""
    misnamed = student_install.base / "work" / "sheet6 final.zip"
    shutil.copy(student_install.base / "subs" / CORRECT, misnamed)
    os.chown(misnamed, 65534, 65534)
    done = student_install.run([student_install.grader, "check", str(misnamed)], bwrap=True)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "name.pattern" in done.stdout and "tutors may deduct points" in done.stdout
    assert f"rename the file to {CORRECT}" in done.stdout
    assert _checks_from_terminal(done.stdout) == _checks(tutors_reports[CORRECT])


def _spy_zip(folder: Path, site_packages: str) -> Path:
    """A torch-free notebook that looks for the grader from inside the kernel."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("import grader"),
        nbformat.v4.new_code_cell("import reference"),
        nbformat.v4.new_code_cell(f"open({site_packages + '/reference/numpy_ref.py'!r}).read()"),
        nbformat.v4.new_code_cell("import ipykernel, numpy\nprint('the kernel has its own packages')"),
    ]
    path = folder / "Spy_Team_7000001_Other_Person_7000002.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("spy.ipynb", nbformat.writes(nb))
    os.chown(path, 65534, 65534)
    return path


@needs_nobody
@pytest.mark.bwrap
def test_the_installed_grader_is_hidden_from_the_kernel_but_its_neighbours_are_not(student_install):
    """The grader's packages sit in site-packages beside ipykernel: they are hidden, ipykernel is not."""
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap (bwrap) is not installed")
    site = student_install.run(
        [student_install.python, "-c", "import grader, os; print(os.path.dirname(os.path.dirname(grader.__file__)))"]
    ).stdout.strip()
    spy = _spy_zip(student_install.base / "work", site)
    done = student_install.run([student_install.grader, "check", "--json", str(spy)], bwrap=True)
    report = json.loads(done.stdout)
    assert report["execution"]["isolated"] is True, report["execution"]
    errors = {e["execution_count"]: f"{e['ename']}: {e['evalue']}" for e in report["execution"]["errors"]}
    assert errors[1].startswith("ModuleNotFoundError: No module named 'grader'"), errors
    assert errors[2].startswith("ModuleNotFoundError: No module named 'reference'"), errors
    assert errors[3].startswith("FileNotFoundError"), errors
    assert 4 not in errors and report["execution"]["cells_run"] == 4


# ----------------------------------------------------------------------------- other Pythons


def _venv_with_wheel(python: Path, folder: Path, wheel: Path):
    subprocess.run([str(python), "-m", "venv", str(folder)], check=True, capture_output=True)
    return subprocess.run(
        [str(folder / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)],
        capture_output=True,
        text=True,
        env={**os.environ, **pip_environment()},
        timeout=600,
    )


@pytest.mark.skipif(_python_for("10") is None, reason="no Python 3.10 here")
def test_python_3_10_installs_the_wheel_and_checks(student_wheel, student_install, tmp_path):
    """Ubuntu 22.04's Python: the grader runs there (the kernel may be another Python, here the
    students' 3.11 environment with torch)."""
    install = _venv_with_wheel(_python_for("10"), tmp_path / "py310", student_wheel)
    assert install.returncode == 0, install.stderr[-3000:]
    config = tmp_path / "grading.toml"
    config.write_text(f'[run]\nkernel_python = "{student_install.python}"\nsandbox = "none"\n', encoding="utf-8")
    spy = _spy_zip(tmp_path, "/nonexistent")
    done = subprocess.run(
        [str(tmp_path / "py310" / "bin" / "grader"), "--config", str(config), "check", "--json", str(spy)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={
            "PATH": os.environ["PATH"],
            "HOME": str(tmp_path),
            "LANG": "C.UTF-8",
            "GRADER_CACHE": str(tmp_path / "cache"),
        },
        timeout=600,
    )
    report = json.loads(done.stdout)
    assert report["execution"]["cells_run"] == 4 and report["execution"]["cells_total"] == 4, report["execution"]
    assert report["execution"]["data"]["kind"] == "generated"
    assert done.returncode == 1  # cell In [3] raised: the notebook does not run through


@pytest.mark.skipif(_python_for("13") is None, reason="no Python 3.13 here")
def test_python_3_13_installs_the_wheel(student_wheel, tmp_path):
    install = _venv_with_wheel(_python_for("13"), tmp_path / "py313", student_wheel)
    assert install.returncode == 0, install.stderr[-3000:]
    done = subprocess.run(
        [str(tmp_path / "py313" / "bin" / "grader"), "check", "--help"], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 0 and "tutors may deduct" in done.stdout, done.stderr
    imported = subprocess.run(
        [
            str(tmp_path / "py313" / "bin" / "python"),
            "-c",
            "import grader.commands.check, grader.pipeline, grader.engine.batch, grader.config",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert imported.returncode == 0, imported.stderr


@pytest.mark.skipif(_python_for("9") is None, reason="no Python 3.9 here")
def test_python_3_9_is_refused_at_once(student_wheel, tmp_path):
    install = _venv_with_wheel(_python_for("9"), tmp_path / "py39", student_wheel)
    assert install.returncode != 0
    assert "requires a different Python" in install.stderr and ">=3.10" in install.stderr, install.stderr
    # refused before resolving anything: no dependency was looked at
    assert "Collecting" not in install.stdout + install.stderr
