"""What students get: a wheel without the solution, whose `grader check` works in a fresh virtual
environment and agrees with the tutors' grading."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT, needs_torch, tiny_config

pytestmark = [pytest.mark.kernel, needs_torch]

CORRECT = "Erika_Mustermann_7012345_Jürgen_Müller_7054321.zip"


@pytest.fixture(scope="module")
def student_wheel(tmp_path_factory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(dist), str(ROOT)], check=True, capture_output=True)
    (wheel,) = dist.glob("*.whl")
    return wheel


def test_wheel_holds_the_checker_but_no_solution(student_wheel):
    names = zipfile.ZipFile(student_wheel).namelist()
    assert "grader/cli.py" in names and "reference/numpy_ref.py" in names and "reference/template.ipynb" in names
    assert not [n for n in names if "solution" in n.lower()]
    assert not [n for n in names if n.startswith(("tests/", "submissions/", "tools/"))]


def _config_file(tmp_path: Path) -> Path:
    """Tiny data as in the other end-to-end tests; the kernel runs in this environment's Python (which
    has torch), as a course may keep its grading environment apart from the grader's."""
    config = tiny_config()
    path = tmp_path / "grading.toml"
    path.write_text(
        f'[data]\nsource = "{config.data.source}"\ntrain_size = {config.data.train_size}\n'
        f'test_size = {config.data.test_size}\nseed = {config.data.seed}\n'
        f'[run]\nkernel_python = "{sys.executable}"\n', encoding="utf-8")
    return path


def test_check_runs_from_the_wheel_in_a_fresh_environment(student_wheel, grading_context, tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", str(student_wheel)],
                             capture_output=True, text=True)
    assert install.returncode == 0, install.stderr[-2000:]
    # Nothing of the repository is importable from there: it runs from the wheel alone.
    where = subprocess.run([str(python), "-c", "import grader, reference; print(grader.__file__, reference.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, check=True).stdout
    assert str(ROOT) not in where and str(env_dir) in where

    config = _config_file(tmp_path)
    shutil.copy(ROOT / "submissions" / CORRECT, tmp_path / CORRECT)
    misnamed = tmp_path / "sheet6 final.zip"
    shutil.copy(ROOT / "submissions" / CORRECT, misnamed)
    grader = env_dir / "bin" / "grader"
    run_env = {**os.environ, "COLUMNS": "200"}

    good = subprocess.run([str(grader), "--config", str(config), "check", "--full", str(tmp_path / CORRECT)],
                          capture_output=True, text=True, cwd=tmp_path, env=run_env)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "ready to upload" in good.stdout and "✓ baseline.forward" in good.stdout

    as_json = subprocess.run([str(grader), "--config", str(config), "check", "--full", "--json", str(tmp_path / CORRECT)],
                             capture_output=True, text=True, cwd=tmp_path, env=run_env)
    report = json.loads(as_json.stdout)
    assert {c["id"]: c["status"] for c in report["checks"]} == {c: "pass" for c in
                                                              [c["id"] for c in report["checks"]]}

    bad = subprocess.run([str(grader), "--config", str(config), "check", "--full", str(misnamed)],
                         capture_output=True, text=True, cwd=tmp_path, env=run_env)
    assert bad.returncode == 1
    assert "name.pattern" in bad.stdout and "would lose points" in bad.stdout
    # The name says nothing of the team, so the files do: the exact name to use.
    assert f"rename the file to {CORRECT}" in bad.stdout
