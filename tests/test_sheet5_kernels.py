"""Sheet 5 end to end, the way tutors and students run it: its example submissions graded by
`grader grade --sheet sheet5` in real kernels (reports, pages, the manual sheet and cms.csv with
sheet 5's exercises and points), the same by a two-shard `grader prepare`/`grade --shard`/`merge`
with `[sheet] name = "sheet5"` in grading.toml, and `grader check --sheet sheet5` on two of them.
Every example gets the verdicts its mistake deserves (grader/sheets/sheet5/submissions/expected.json)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, needs_torch

from grader.models import Report

pytestmark = [pytest.mark.kernel, needs_torch]

SUBMISSIONS = ROOT / "grader" / "sheets" / "sheet5" / "submissions"
EXPECTED = json.loads((SUBMISSIONS / "expected.json").read_text(encoding="utf-8"))["submissions"]
CHECKS = ["dataset.getitem", "dataset.len", "ffnn.architecture", "ffnn.forward", "training.step", "training.accuracy"]


def grader(*args: str, cwd: Path, env: dict, timeout: float = 1200) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "grader", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def reports(folder: Path) -> dict[str, Report]:
    found = (Report.model_validate_json(p.read_bytes()) for p in folder.glob("*.json") if not p.name.startswith("."))
    return {r.submission.file: r for r in found}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A cache of its own; the calibration the sheet ships (GRADER_CALIBRATION unset)."""
    cache = tmp_path_factory.mktemp("cache")
    environment = {**os.environ, "GRADER_CACHE": str(cache)}
    environment.pop("GRADER_CALIBRATION", None)
    return environment


@pytest.fixture(scope="module")
def graded(tmp_path_factory, env):
    folder = tmp_path_factory.mktemp("sheet5")  # no grading.toml here: --sheet names the sheet
    done = grader(
        "grade", "--sheet", "sheet5", str(SUBMISSIONS), "--out", "reports", "--workers", "2", cwd=folder, env=env
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return folder / "reports", done.stdout


def test_each_example_gets_the_verdicts_its_mistake_deserves(graded):
    out, stdout = graded
    found = reports(out)
    assert set(found) == set(EXPECTED)
    for name, report in found.items():
        assert report.execution.status == "ok", (name, report.execution.notes)
        assert [c.id for c in report.checks] == CHECKS
        lost = sorted(c.id for c in report.checks if c.status != "pass")
        assert lost == sorted(EXPECTED[name]["loses"]), (name, {c.id: c.message for c in report.checks})
        assert report.violations == [], [v.message for v in report.violations]
        assert [e.id for e in report.exercises] == ["5.1", "5.2", "5.3", "5.4"]
        assert report.total.max_points == 10 and report.total.points == sum(c.points for c in report.checks)
        assert report.execution.data.kind == "none" and report.execution.time_limits.calibration is not None
    assert "Automatic points (5.4):" in stdout


def test_the_train_that_returns_nothing_grades_fully(graded):
    out, _ = graded
    name = next(n for n, e in EXPECTED.items() if "returns nothing" in e["defect"])
    report = reports(out)[name]
    assert report.total.points == 2.0
    assert "the FFNN trained in In [7] classifies" in {c.id: c.message for c in report.checks}["training.accuracy"]


def test_the_outputs_carry_sheet_5s_exercises_and_points(graded):
    out, _ = graded
    cms = list(csv.reader((out / "cms.csv").read_text(encoding="utf-8-sig").splitlines()))
    assert cms[0] == ["student_id", "name", "team", "5.1", "5.2", "5.3", "5.4", "total", "bonus", "complete"]
    assert len(cms) == 1 + sum(len(e["team"]) for e in EXPECTED.values())
    sheet = (out / "manual_points.csv").read_text(encoding="utf-8-sig").splitlines()[0]
    assert "5.4 part 4 (max 1)" in sheet and "override training.step (max 0.5)" in sheet and "6." not in sheet
    summary = next(csv.reader((out / "summary.csv").read_text(encoding="utf-8-sig").splitlines()))
    assert summary[6:12] == CHECKS
    pages = [out / "summary.html", *(out / "feedback").glob("*.html")]
    assert len(pages) == 1 + len(EXPECTED)
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert "Sheet 5" in text and "Sheet 6" not in text and "Fashion" not in text


@pytest.fixture(scope="module")
def sharded(tmp_path_factory, env):
    """prepare, two shards and the merge, with [sheet] name = "sheet5" in grading.toml (what the
    cluster's scripts read)."""
    folder = tmp_path_factory.mktemp("sheet5-shards")
    (folder / "grading.toml").write_text('[sheet]\nname = "sheet5"\n[run]\nworkers = 1\n', encoding="utf-8")
    done = grader("prepare", str(SUBMISSIONS), "--out", "merged", "--shards", "2", cwd=folder, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for k in (1, 2):
        shard = grader(
            "grade", str(SUBMISSIONS), "--out", f"shards/shard-{k}", "--shard", f"{k}/2", cwd=folder, env=env
        )
        assert shard.returncode == 0, shard.stdout[-3000:] + shard.stderr[-3000:]
    merged = grader("merge", "shards/shard-1", "shards/shard-2", "--out", "merged", cwd=folder, env=env)
    assert merged.returncode == 0, merged.stdout[-3000:] + merged.stderr[-3000:]
    return folder / "merged", done.stdout


def test_two_shards_merged_grade_as_one_batch(sharded, graded):
    merged, prepared = sharded
    assert "Calibration:" in prepared and "sheet5/reference/calibration.json" in prepared
    one, two = reports(graded[0]), reports(merged)
    assert set(two) == set(one)
    for name in one:
        assert [(c.id, c.status, c.points) for c in two[name].checks] == [
            (c.id, c.status, c.points) for c in one[name].checks
        ]
    assert (merged / "cms.csv").read_text(encoding="utf-8-sig") == (graded[0] / "cms.csv").read_text(
        encoding="utf-8-sig"
    )


@pytest.mark.parametrize(
    "name, exit_status",
    [
        ("Lena_Vogt_7212345_Tobias_Kern_7254321.zip", 0),  # the solution: ready to upload
        ("Paula_Lorenz_7267890_Max_Winter_7278901_Ida_Roth_7289012.zip", 1),  # __len__ one short
    ],
)
def test_the_students_check_of_sheet_5(tmp_path, env, name, exit_status):
    done = grader("check", "--sheet", "sheet5", str(SUBMISSIONS / name), cwd=tmp_path, env=env, timeout=900)
    assert done.returncode == exit_status, done.stdout[-3000:] + done.stderr[-3000:]
    text = " ".join(done.stdout.split())
    assert "graded by tutors: 5.1, 5.2, 5.3, 5.4 part 4 (experiments and answers)" in text
    if exit_status:
        assert "would lose points: dataset.len (0.25)" in text and "is 96 for 97 points" in text
    else:
        assert "ready to upload" in text


def test_a_check_without_a_sheet_says_how_to_name_one(tmp_path, env):
    done = grader(
        "check", str(SUBMISSIONS / "Lena_Vogt_7212345_Tobias_Kern_7254321.zip"), cwd=tmp_path, env=env, timeout=300
    )
    assert done.returncode == 2
    assert "no sheet is named" in done.stdout and "--sheet NAME" in done.stdout
