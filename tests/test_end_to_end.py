"""End to end: the example submissions and correct notebooks in varied styles, graded as a tutor
would, in real kernels on a tiny data subset. Nothing is mocked."""

from __future__ import annotations

import json
import multiprocessing
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, needs_torch, tiny_config

from grader.models import Report
from grader.sheets.sheet6 import SHEET

pytestmark = [pytest.mark.kernel, needs_torch]

EXPECTED = json.loads((ROOT / "submissions" / "expected.json").read_text(encoding="utf-8"))["submissions"]
VARIANTS = sorted((ROOT / "tests" / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def graded_examples(grading_context, tmp_path_factory):
    """Grade submissions/ once with 2 workers; every test below reads the result."""
    from grader.engine.batch import run_batch

    out = tmp_path_factory.mktemp("reports")
    result = run_batch(ROOT / "submissions", tiny_config(), out, workers=2, progress=lambda text: None)
    # The workers stop while the summary pages are written, but the batch returns only once they have.
    # (The PDF parser's child is this process's, started by whichever test parsed a PDF here first.)
    assert [p for p in multiprocessing.active_children() if p.name != "grader-parser"] == []
    return out, result


def _reports(out: Path) -> dict[str, Report]:
    reports = {}
    for path in out.glob("*.json"):
        report = Report.model_validate_json(path.read_bytes())
        reports[report.submission.file] = report
    return reports


def test_every_example_gets_a_report(graded_examples):
    out, result = graded_examples
    assert result.all_reported
    assert set(_reports(out)) == set(EXPECTED)
    assert (out / "summary.csv").read_text(encoding="utf-8").count("\n") == len(EXPECTED) + 1
    for stem in (Path(name).stem for name in EXPECTED):
        assert (out / "executed" / f"{stem}.ipynb").exists()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_loses_exactly_the_points_of_its_mistake(graded_examples, name):
    out, _ = graded_examples
    report = _reports(out)[name]
    expected = EXPECTED[name]
    assert report.execution.status == "ok", report.execution
    assert report.violations == [], [v.message for v in report.violations]
    lost = sorted(c.id for c in report.checks if c.status != "pass")
    assert lost == sorted(expected["loses"]), {c.id: c.message for c in report.checks}
    assert [c.id for c in report.checks] == list(SHEET.check_ids)
    for check in report.checks:
        assert check.points == (check.max_points if check.status == "pass" else 0.0)
        assert check.message
    auto = sum(c.points for c in report.checks)
    assert auto == pytest.approx(1.5 - 0.25 * len(expected["loses"]))
    assert report.total.points == pytest.approx(auto) and not report.total.complete
    assert [(m.name, m.student_id, m.email) for m in report.submission.team] == [
        (m["name"], m["student_id"], m["email"]) for m in expected["team"]
    ]
    assert report.execution.data is not None and report.execution.data.train_size == 640
    pending = [e.id for e in report.exercises if e.points is None]
    assert pending == ["6.1", "6.2", "6.3", "6.4", "6.5", "6.6", "6.7"]
    # Evidence for the tutors: the plot of part 3 and the 6.3 key values found in the PDF.
    evidence = {e.id: " | ".join(e.evidence) for e in report.exercises}
    assert "plot(s) in the executed notebook" in evidence["6.6"], evidence["6.6"]
    assert "the PDF mentions h = (9, 0), logits (54, 18)" in evidence["6.3"], evidence["6.3"]


def test_messages_say_what_was_expected_and_found(graded_examples):
    out, _ = graded_examples
    reports = _reports(out)
    # The examples with a defect (the correct ones' descriptions may name a ReLU or eval too).
    by_defect = {
        EXPECTED[name]["defect"]: {c.id: c for c in report.checks}
        for name, report in reports.items()
        if EXPECTED[name]["loses"]
    }
    softmax = next(v for k, v in by_defect.items() if "softmax" in k)["baseline.forward"].message
    assert "softmax" in softmax and "logits" in softmax
    relu = next(v for k, v in by_defect.items() if "ReLU" in k)["baseline.architecture"].message
    assert "should run" in relu and "Linear(64, 32) → Linear(32, 10)" in relu
    lr = next(v for k, v in by_defect.items() if "lr" in k)["baseline.training_setup"].message
    assert "0.001" in lr and "0.0001" in lr
    eval_mode = next(v for k, v in by_defect.items() if "eval" in k)["batchnorm.behaviour"].message
    assert "self.eval()" in eval_mode


@pytest.mark.parametrize(
    "start, check, words",
    [
        ("correct: one BatchNorm1d(32)", "batchnorm.architecture", "BatchNorm1d after Linear(64, 32)"),
        ("correct: one BatchNorm1d(784)", "batchnorm.architecture", "BatchNorm1d before Linear(784, 64)"),
        (
            "correct: test(self)",
            "batchnorm.behaviour",
            "test() (it takes no loader: called as the notebook calls it, with `fashion_test_loader` pointed",
        ),
    ],
)
def test_what_the_courses_notebook_allows_gets_full_points_and_says_how(graded_examples, start, check, words):
    """The course asks for "a batch normalization layer" wherever the team puts it, and leaves test's
    parameters to the team: these get 1.5/1.5, and the message says what was seen."""
    out, _ = graded_examples
    name = next(n for n, e in EXPECTED.items() if e["defect"].startswith(start))
    report = _reports(out)[name]
    assert sum(c.points for c in report.checks) == pytest.approx(1.5), {c.id: c.message for c in report.checks}
    message = next(c.message for c in report.checks if c.id == check)
    assert words in message, message


def test_reports_validate_against_the_printed_schema(graded_examples):
    jsonschema = pytest.importorskip("jsonschema")
    out, _ = graded_examples
    schema = json.loads(
        subprocess.run([sys.executable, "-m", "grader", "schema"], capture_output=True, text=True, check=True).stdout
    )
    for path in out.glob("*.json"):
        jsonschema.validate(json.loads(path.read_text(encoding="utf-8")), schema)


def test_unchanged_submissions_are_not_graded_again(graded_examples):
    from grader.engine.batch import run_batch

    out, _ = graded_examples
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.json")}
    again = run_batch(ROOT / "submissions", tiny_config(), out, workers=2, progress=lambda text: None)
    assert {o.status for o in again.outcomes} == {"cached"}
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.json")} == before


@pytest.mark.parametrize("notebook", VARIANTS, ids=[p.stem for p in VARIANTS])
def test_correct_notebooks_in_other_styles_get_full_points(grading_context, tmp_path, notebook):
    from grader.pipeline import grade_submission

    target = tmp_path / "Erika Mustermann_7012345_Jürgen Müller_7054321.ipynb"
    shutil.copy(notebook, target)
    report = grade_submission(target, tmp_path, grading_context).report
    assert report.execution.status == "ok", report.execution
    assert {c.id: c.status for c in report.checks} == {c: "pass" for c in SHEET.check_ids}, {
        c.id: c.message for c in report.checks
    }
    assert report.accuracies["baseline"] and all(0 <= v <= 1 for v in report.accuracies["baseline"])


def test_students_check_agrees_with_the_tutors_grading(graded_examples, grading_context):
    """`grader check` runs on a smaller subset than the tutors grade on; per check, the points agree."""
    import dataclasses

    from grader.commands.check import check_config
    from grader.data.staging import stage_dataset
    from grader.engine.batch import cache_dir, run_batch
    from grader.engine.calibrate import calibrate

    config = check_config(tiny_config(), full=False)
    assert config.data.train_size != grading_context.config.data.train_size
    staged = stage_dataset(config.data, config.data_source, cache_dir() / "data", SHEET.dataset)
    calibrate(dataclasses.replace(grading_context, config=config, data=staged), runs=1, progress=lambda text: None)
    out = graded_examples[0].parent / "student-check"
    run_batch(ROOT / "submissions", config, out, workers=2, progress=lambda text: None)
    tutors, students = _reports(graded_examples[0]), _reports(out)
    assert set(students) == set(tutors)
    for name in tutors:
        assert {c.id: c.points for c in students[name].checks} == {c.id: c.points for c in tutors[name].checks}, name
        assert students[name].execution.data.train_size == config.data.train_size
