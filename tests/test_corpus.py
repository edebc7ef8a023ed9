"""The corpus of notebooks written the way students write them (tests/corpus/, made by
tools/make_corpus.py), graded end to end as a tutor does: `grader grade` on the command line, one
batch with two workers (kernels forked from fork servers), in real kernels, on tiny data. Each
notebook must get exactly the verdicts of tests/corpus/expected.json; the batch must print the
import pre-flight before its first notebook runs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, needs_torch, tiny_config
from rich.console import Console

from grader.models import Report
from grader.sheets.sheet6 import SHEET
from grader.sheets.sheet6 import SHEET as SHEET6

pytestmark = [pytest.mark.kernel, needs_torch]

CORPUS = ROOT / "tests" / "corpus"
EXPECTED = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))["notebooks"]
MISSING_MODULE_TEAM = next(name for name, e in EXPECTED.items() if "environment.missing_module" in e["violations"])


@pytest.fixture(scope="module")
def corpus_run(grading_context, tmp_path_factory):
    """`grader grade tests/corpus` with the tiny data of the tests (calibrated by `grading_context`)."""
    folder = tmp_path_factory.mktemp("corpus")
    config = tiny_config()
    toml = folder / "grading.toml"
    toml.write_text(
        f'[sheet]\nname = "sheet6"\n[data]\nsource = {json.dumps(config.data.source)}\ntrain_size = {config.data.train_size}\n'
        f"test_size = {config.data.test_size}\nseed = {config.data.seed}\n\n"
        f"[limits]\ncell_timeout_s = 60\nnotebook_timeout_s = 300\nprobe_timeout_s = 60\n",
        encoding="utf-8",
    )
    out = folder / "reports"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "grader",
            "--config",
            str(toml),
            "grade",
            str(CORPUS),
            "--out",
            str(out),
            "--workers",
            "2",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=1800,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    reports = {}
    for path in out.glob("*.json"):
        report = Report.model_validate_json(path.read_bytes())
        reports[Path(report.submission.file).name] = report
    return run.stdout, reports, out


def test_every_corpus_notebook_is_graded(corpus_run):
    _, reports, _ = corpus_run
    assert set(reports) == set(EXPECTED)
    assert len(EXPECTED) >= 12


@pytest.mark.parametrize("name", sorted(EXPECTED), ids=[EXPECTED[n]["style"][:50] for n in sorted(EXPECTED)])
def test_corpus_notebook_gets_its_verdicts(corpus_run, name):
    _, reports, _ = corpus_run
    report, expected = reports[name], EXPECTED[name]
    messages = {c.id: c.message for c in report.checks}
    assert {c.id: c.status for c in report.checks} == expected["checks"], messages
    assert [c.id for c in report.checks] == list(SHEET.check_ids)
    assert report.execution.status == expected["execution"], report.execution
    codes = [v.code for v in report.violations if v.code.startswith("environment.")]
    assert codes == expected["violations"], [v.message for v in report.violations]
    assert {v.code for v in report.violations} <= {"content.no_pdf", *expected["violations"]}
    for check in report.checks:  # no points taken for the environment's faults, none given either
        assert check.points == (check.max_points if check.status == "pass" else 0.0)
    texts = dict(
        messages, violations=" | ".join(v.message for v in report.violations), notes=" | ".join(report.execution.notes)
    )
    if "outputs" in expected["mention"]:
        executed = json.loads((corpus_run[2] / "executed" / f"{Path(name).stem}.ipynb").read_text(encoding="utf-8"))
        texts["outputs"] = " | ".join(
            "".join(out.get("text", "")) for cell in executed["cells"] for out in cell.get("outputs", [])
        )
    for where, words in expected["mention"].items():
        for word in words:
            assert word in texts[where], (where, word, texts[where])


def test_the_issues_three_cases_earn_full_points(corpus_run):
    """tqdm without a fallback, instances called model / model_bn, other data roots."""
    _, reports, _ = corpus_run
    styles = {EXPECTED[name]["style"]: report for name, report in reports.items()}
    for start in ("tqdm progress bars", "instances called model and model_bn", "data under ./datasets"):
        report = next(r for style, r in styles.items() if style.startswith(start))
        assert sum(c.points for c in report.checks) == pytest.approx(1.5), {c.id: c.message for c in report.checks}
        assert len(report.accuracies["baseline"]) == 5


def test_preflight_table_comes_before_the_first_notebook(corpus_run):
    stdout, _, _ = corpus_run
    table = stdout.index(f"Imports of {len(EXPECTED)} notebook(s)")
    first = re.search(rf"^\[1/{len(EXPECTED)}\]", stdout, re.M)
    assert first and table < first.start(), stdout[:3000]
    preflight = stdout[table : first.start()]
    assert re.search(r"wandb\s*│\s*1\s*│\s*MISSING", preflight), preflight
    assert re.search(r"google\.colab\s*│\s*1\s*│\s*platform only", preflight), preflight
    assert re.search(r"tqdm\s*│\s*\d+\s*│\s*available", preflight), preflight
    assert f"wandb: imported by 1 team(s): {Path(MISSING_MODULE_TEAM).stem}" in preflight
    assert "make lock" in preflight and "make install" in preflight


def test_missing_module_team_needs_a_tutor_in_the_summary(corpus_run):
    _, _reports, out = corpus_run
    html = (out / "summary.html").read_text(encoding="utf-8")
    section = html[html.index("Submissions that need a tutor") : html.index("Exercise 6.3")]
    for name, expected in EXPECTED.items():
        if "needs_review" in expected["checks"].values():
            assert Path(name).stem in section, name
    assert "wandb" in section


def test_grader_check_tells_the_student_about_the_missing_module(corpus_run):
    """What `grader check` prints for that notebook (its report, printed as the check prints it)."""
    from grader.commands.check import LOSES_POINTS, print_verdict, verdict

    _, reports, _ = corpus_run
    report = reports[MISSING_MODULE_TEAM]
    console = Console(record=True, width=200)
    print_verdict(report, console, None, SHEET6)
    text = console.export_text()
    assert "environment.missing_module" in text and "'wandb' is not in the course's grading environment" in text
    # Stopped by the environment, not by the team (main 1d5cd9a): no check lost, so a tutor decides (exit 3).
    assert verdict(report) != LOSES_POINTS and "tutors may deduct points" in text


def test_reports_record_the_kernels_packages(corpus_run):
    _, reports, _ = corpus_run
    for report in reports.values():
        assert len(report.grader.kernel_env) == 16
        assert set(report.grader.kernel_packages) == {"torch", "torchvision", "numpy"}


def test_a_fresh_kernel_also_finds_networks_made_inside_a_function(grading_context, tmp_path):
    """In a kernel started for one notebook (not forked: torch is not imported before the notebook
    does it), the set-up step still sees the notebook's classes and FashionMNIST's root."""
    import shutil

    from grader.pipeline import grade_submission

    name = next(n for n, e in EXPECTED.items() if e["style"].startswith("networks made and trained inside a function"))
    shutil.copy(CORPUS / name, tmp_path / name)
    report = grade_submission(tmp_path / name, tmp_path, grading_context).report
    assert {c.id: c.status for c in report.checks} == EXPECTED[name]["checks"], {c.id: c.message for c in report.checks}
    accuracies = next(c for c in report.checks if c.id == "baseline.accuracies")
    assert "returned by optimize in In [" in accuracies.message, accuracies.message
