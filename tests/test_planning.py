"""The batch's two halves without kernels: planning (which submissions, which earlier reports still
stand) from the folder, the configuration and the reports on disk; and the rule by which dispatch
takes a job as graded (the report its worker says it wrote, still there as written)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import SimpleNamespace

from grader.config import load_config
from grader.engine.dispatch import Outcome, Written, _settle
from grader.engine.planning import GRADER_ERROR, Job, plan
from grader.intake.types import Submission
from grader.models import DataInfo, ExecutionInfo, GraderInfo, Report, Violation
from grader.report.score import build_report
from grader.report.store import read_report, report_path, write_report

ROOT = Path(__file__).resolve().parents[1]
CONFIG = load_config(ROOT / "grading.toml")
DATA = DataInfo(kind="generated", description="stand-in data", train_size=6, test_size=1, fingerprint="fp")
NOTEBOOK = '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'
TEAMS = ("Anna_Schmidt_7000001_Ben_Meyer_7000002", "Carla_Diaz_7000003_Dan_Li_7000004")


def _report(path: Path, stem: str, *, grader_hash: str = "g", failed: bool = False) -> Report:
    return build_report(
        submission=Submission(
            path=path,
            rel=path.name,
            stem=stem,
            sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
            kind="ipynb",
        ).info(),
        violations=[Violation(code=GRADER_ERROR, severity="error", message="it failed")] if failed else [],
        execution=ExecutionInfo(status="ok", data=DATA),
        checks=[],
        config=CONFIG,
        grader=GraderInfo(version="0", grader_hash=grader_hash, config_hash=CONFIG.fingerprint[:16]),
    )


def _course(tmp_path: Path) -> tuple[Path, Path]:
    subs, out = tmp_path / "subs", tmp_path / "out"
    subs.mkdir()
    out.mkdir(exist_ok=True)
    for team in TEAMS:
        (subs / f"{team}.ipynb").write_text(NOTEBOOK, encoding="utf-8")
    return subs, out


def _plan(subs: Path, out: Path, **kwargs):
    return plan(subs, CONFIG, out, shard=None, force=kwargs.pop("force", False), grader_hash="g", **kwargs)


def test_a_report_of_the_same_bytes_stands_and_the_rest_are_jobs(tmp_path):
    subs, out = _course(tmp_path)
    first, second = TEAMS
    write_report(_report(subs / f"{first}.ipynb", first), out, first)
    before = sorted(p.name for p in out.rglob("*"))
    planned = _plan(subs, out)
    assert [stem for stem, _ in planned.cached] == [first]
    assert [job.stem for job in planned.jobs] == [second]
    assert sorted(p.name for p in out.rglob("*")) == before, "planning wrote into the output folder"
    assert [job.stem for job in _plan(subs, out, force=True).jobs] == sorted(TEAMS)


def test_a_changed_file_another_grader_and_a_failure_report_are_graded_again(tmp_path):
    subs, out = _course(tmp_path)
    first, second = TEAMS
    write_report(_report(subs / f"{first}.ipynb", first, failed=True), out, first)
    write_report(_report(subs / f"{second}.ipynb", second, grader_hash="older"), out, second)
    assert sorted(job.stem for job in _plan(subs, out).jobs) == sorted(TEAMS)
    write_report(_report(subs / f"{first}.ipynb", first), out, first)
    (subs / f"{first}.ipynb").write_text(NOTEBOOK + "\n", encoding="utf-8")
    assert sorted(job.stem for job in _plan(subs, out).jobs) == sorted(TEAMS)


def _settle_in(tmp_path: Path, outcome: Outcome) -> tuple[Outcome, Report | None]:
    subs, out = _course(tmp_path)
    stem = TEAMS[0]
    path = subs / f"{stem}.ipynb"
    sub = Submission(path=path, rel=path.name, stem=stem, sha256="x", kind="ipynb")
    ctx = SimpleNamespace(
        config=CONFIG, data=SimpleNamespace(info=DATA), grader=GraderInfo(version="0", grader_hash="g", config_hash="c")
    )
    settled = _settle(Job(path=path, submission=sub, stem=stem), out, ctx, outcome)  # type: ignore[arg-type]
    return settled, read_report(report_path(out, stem))


def _ok(written: Written | None) -> Outcome:
    return Outcome(stem=TEAMS[0], status="ok", points=1, max_points=1, seconds=1, written=written)


def test_the_report_the_worker_says_it_wrote_is_the_result(tmp_path):
    stem = TEAMS[0]
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "nb.ipynb").write_text(NOTEBOOK, encoding="utf-8")
    written = Written.of(write_report(_report(tmp_path / "nb.ipynb", stem), out, stem))
    settled, report = _settle_in(tmp_path, _ok(written))
    assert settled == _ok(written)
    assert report is not None and not any(v.code == GRADER_ERROR for v in report.violations)


def test_a_report_on_disk_the_worker_did_not_return_is_not_taken(tmp_path):
    """A worker that died returned nothing: a report under its name (an earlier run's, or one the
    dying worker wrote) is not this run's result; the batch writes the failure's report."""
    stem = TEAMS[0]
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "nb.ipynb").write_text(NOTEBOOK, encoding="utf-8")
    write_report(_report(tmp_path / "nb.ipynb", stem), out, stem)
    died = Outcome.failed(stem, "the worker process grading it died twice")
    settled, report = _settle_in(tmp_path, died)
    assert settled.status == "grader_error" and settled.written is not None and settled.written.still_there()
    assert report is not None and [v.code for v in report.violations] == [GRADER_ERROR]
    assert "died twice" in report.violations[0].message


def test_a_report_changed_after_the_worker_wrote_it_is_not_taken(tmp_path):
    stem = TEAMS[0]
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "nb.ipynb").write_text(NOTEBOOK, encoding="utf-8")
    path = write_report(_report(tmp_path / "nb.ipynb", stem), out, stem)
    written = Written.of(path)
    path.write_bytes(path.read_bytes().replace(b'"ok"', b'"errors"'))
    settled, report = _settle_in(tmp_path, _ok(written))
    assert settled.status == "grader_error" and "wrote no report" in settled.message
    assert report is not None and report.violations[-1].code == GRADER_ERROR
