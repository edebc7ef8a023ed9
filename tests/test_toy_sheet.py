"""A second sheet, graded end to end by the same core: tests/sheets/toy/ (one network, two checks,
its own notebooks and generated data) through `grader grade` on the command line, in real kernels.
Nothing of Sheet 6 may show up in its reports, pages or CSV files."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, needs_torch

from grader.config import ConfigError, config_from_dict
from grader.models import Report

SHEETS = ROOT / "tests" / "sheets"
TOY = SHEETS / "toy"


def toy_toml(folder: Path) -> Path:
    toml = folder / "grading.toml"
    toml.write_text(
        f'[sheet]\nname = "toy"\npath = {json.dumps(str(SHEETS))}\n\n'
        '[data]\nsource = ""\ntrain_size = 150\ntest_size = 90\nseed = 1\n\n'
        "[limits]\ncell_timeout_s = 60\nnotebook_timeout_s = 300\nprobe_timeout_s = 60\n",
        encoding="utf-8",
    )
    return toml


def test_the_toy_sheet_configures_its_own_exercises_and_checks():
    config = config_from_dict({"sheet": {"name": "toy", "path": str(SHEETS)}, "checks": {"tiny.forward": 0.5}})
    assert config.sheet_def.title == "Toy sheet"
    assert config.exercises.points == {"1.1": 1.0, "1.2": 1.0}
    assert [config.checks.points(c) for c in config.sheet_def.check_ids] == [0.25, 0.5]


def test_a_check_of_another_sheet_is_an_error_naming_it():
    with pytest.raises(ConfigError) as err:
        config_from_dict(
            {"sheet": {"name": "toy", "path": str(SHEETS)}, "checks": {"baseline.forward": 0.25}}, source="grading.toml"
        )
    message = str(err.value)
    assert "checks.baseline.forward" in message and "tiny.architecture, tiny.forward" in message


def test_an_unknown_sheet_is_an_error_naming_it():
    with pytest.raises(ConfigError, match="unknown sheet 'sheet99'"):
        config_from_dict({"sheet": {"name": "sheet99"}}, source="grading.toml")


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("toy")
    out = folder / "reports"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "grader",
            "--config",
            str(toy_toml(folder)),
            "grade",
            str(TOY / "submissions"),
            "--out",
            str(out),
            "--workers",
            "1",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    reports = {
        Path(r.submission.file).name: r
        for r in (Report.model_validate_json(p.read_bytes()) for p in out.glob("*.json"))
    }
    return run.stdout, reports, out


@pytest.mark.kernel
@needs_torch
def test_the_toy_sheet_is_graded_end_to_end(toy_run):
    stdout, reports, out = toy_run
    right = reports["Ada Lovelace_7000001_Alan Turing_7000002.ipynb"]
    no_relu = reports["Grace Hopper_7000003_John Neumann_7000004.ipynb"]
    for report in (right, no_relu):
        assert report.execution.status == "ok", report.execution
        assert [c.id for c in report.checks] == ["tiny.architecture", "tiny.forward"]
        assert {c.exercise for c in report.checks} == {"1.2"}
        assert [e.id for e in report.exercises] == ["1.1", "1.2"]
        assert report.execution.data.description.startswith("generated stand-in for Toy digits")
        assert {v.code for v in report.violations} == {"content.no_pdf"}
        assert "expected a PDF with the written exercises (1.1)" in report.violations[0].message
    assert {c.id: c.status for c in right.checks} == {"tiny.architecture": "pass", "tiny.forward": "pass"}
    assert {c.id: c.status for c in no_relu.checks} == {"tiny.architecture": "fail", "tiny.forward": "pass"}
    assert "its forward runs Linear(16, 8) → Linear(8, 3)" in no_relu.checks[0].message
    assert right.total.points == 0.5 and no_relu.total.points == 0.25
    assert "Automatic points (1.2):" in stdout
    header = next(csv.reader((out / "summary.csv").read_text(encoding="utf-8-sig").splitlines()))
    assert "tiny.architecture" in header and "baseline.forward" not in header
    sheet = (out / "manual_points.csv").read_text(encoding="utf-8-sig")
    assert "1.2 part b (max 0.5)" in sheet and "override tiny.forward" in sheet
    cms = next(csv.reader((out / "cms.csv").read_text(encoding="utf-8-sig").splitlines()))
    assert cms[3:5] == ["1.1", "1.2"]
    pages = [p.read_text(encoding="utf-8") for p in [out / "summary.html", *(out / "feedback").glob("*.html")]]
    assert all("Toy sheet" in page for page in pages)
    for text in [*pages, stdout, *(p.read_text(encoding="utf-8") for p in out.glob("*.json"))]:
        assert "Fashion" not in text and "6.6" not in text and "Sheet 6" not in text


def test_a_sheet_loaded_by_path_is_part_of_what_makes_a_report_current(tmp_path):
    """grader_hash covers the graded sheet's own folder, also one kept outside the grader: a changed
    check there grades again."""
    import dataclasses
    import shutil

    from grader.pipeline import grader_hash
    from grader.sheet import load_sheet

    sheet = load_sheet("toy", str(SHEETS))
    assert sheet.folder == TOY
    copy = tmp_path / "toy"
    shutil.copytree(TOY, copy, ignore=shutil.ignore_patterns("__pycache__"))
    moved = dataclasses.replace(sheet, folder=copy, reference_dir=copy / "reference")
    before = grader_hash(moved)
    assert grader_hash(moved) == before and grader_hash(sheet) == before  # the same files, the same hash
    (copy / "__init__.py").write_text((copy / "__init__.py").read_text() + "# a check changed\n")
    assert grader_hash(moved) != before
