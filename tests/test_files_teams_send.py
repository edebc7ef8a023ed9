"""Files as teams send them, through the commands people run: a zip whose entries have absolute
paths (a Windows tool's `C:\\Users\\…`), graded by `grader check` and read by the import pre-flight
the same way."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT, needs_torch
from grader.config import load_config
from grader.intake import identify
from grader.preflight import preflight

CORRECT = "Erika_Mustermann_7012345_Jürgen_Müller_7054321.zip"
WINDOWS_FOLDER = "C:\\Users\\Erika Mustermann\\Documents\\Abgabe\\"


def _with_windows_paths(source: Path, target: Path) -> Path:
    """The example solution's zip as a Windows tool writes it: every entry under its absolute path,
    with backslashes, made on MS-DOS/Windows (create_system 0). Written byte for byte by zipfile."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            new = zipfile.ZipInfo(WINDOWS_FOLDER + info.filename.replace("/", "\\"), date_time=info.date_time)
            new.create_system = 0
            new.compress_type = zipfile.ZIP_DEFLATED
            zout.writestr(new, zin.read(info))
    with zipfile.ZipFile(target) as z:
        assert all(name.startswith("C:\\Users\\") for name in z.namelist())
    return target


def test_the_import_preflight_reads_the_notebook_of_a_zip_with_absolute_paths(tmp_path):
    zipped = _with_windows_paths(ROOT / "submissions" / CORRECT, tmp_path / CORRECT)
    config = load_config(None)
    found = preflight([identify(zipped, tmp_path, config.naming)], config, tmp_path)
    assert (found.notebooks, found.unreadable) == (1, [])
    assert {row.module for row in found.rows} >= {"torch", "torchvision", "matplotlib"}


@pytest.mark.kernel
@needs_torch
def test_a_complete_solution_zipped_with_absolute_paths_gets_every_point_in_the_check(tmp_path):
    """Before: both files were refused as unsafe, content.no_notebook, 0 points. Now the check
    unpacks them inside (the root taken off, with a note), runs the notebook, and every check passes:
    `ready to upload` (exit 0), as the import pre-flight read the same notebook."""
    zipped = _with_windows_paths(ROOT / "submissions" / CORRECT, tmp_path / CORRECT)
    calibration = tmp_path / "calibration.json"
    shutil.copy(ROOT / "reference" / "calibration.json", calibration)
    env = {**os.environ, "GRADER_CACHE": str(tmp_path / "cache"), "GRADER_CALIBRATION": str(calibration)}
    done = subprocess.run([sys.executable, "-m", "grader", "check", "--json", zipped.name], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert [v["code"] for v in report["violations"]] == ["archive.absolute_path"]
    assert report["submission"]["notebook"] == "Users/Erika Mustermann/Documents/Abgabe/Exercise_6_6.ipynb"
    assert report["submission"]["pdf"] == "Users/Erika Mustermann/Documents/Abgabe/Sheet6.pdf"
    assert report["execution"]["status"] == "ok"
    assert {c["status"] for c in report["checks"]} == {"pass"}
    assert [m["student_id"] for m in report["submission"]["team"]] == ["7012345", "7054321"]
