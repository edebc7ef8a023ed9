"""The one way a submission travels: identify → unpack → execute → probe → check → score.

Only this module knows the order. Batch concerns (workers, cache, shards, progress) live in batch.py
and wrap `grade_submission`.
"""
from __future__ import annotations

import asyncio
import hashlib
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nbformat
import numpy as np

from grader import __version__
from grader.checks.sheet6 import AccuracyRange, choose_accuracies, run_checks
from grader.config import Config
from grader.intake import check_identity, identify, unpack
from grader.intake.types import Submission, Workspace
from grader.report.evidence import notebook_evidence, pdf_hints
from grader.report.models import ExecutionInfo, GraderInfo, Report, Violation
from grader.report.score import build_report
from grader.run.dataset import StagedData, link_into, probe_batch
from grader.run.execute import Execution, KernelSession, KernelStartError, read_notebook
from grader.run.probe import Observations, not_run, probe
from grader.run.sandbox import kernel_command

PACKAGE_DIR = Path(__file__).resolve().parent
REFERENCE_DIR = PACKAGE_DIR.parent / "reference"


def grader_hash() -> str:
    """A hash of the grader's own code and reference: a changed grader re-grades everything."""
    digest = hashlib.sha256(__version__.encode())
    for folder in (PACKAGE_DIR, REFERENCE_DIR):
        for path in sorted(folder.rglob("*.py")) + sorted(folder.glob("calibration.json")):
            digest.update(path.relative_to(folder.parent).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class GradingContext:
    """What every submission of a batch shares."""
    config: Config
    data: StagedData
    accuracy_range: AccuracyRange | None
    work_dir: Path                       # workspaces are made here and removed after grading
    grader: GraderInfo
    threads: int = 1
    mpl_cache: Path | None = None

    @property
    def probe_inputs(self) -> tuple[np.ndarray, np.ndarray]:
        return probe_batch(self.data, n=64, seed=0)


@dataclass
class Graded:
    report: Report
    executed: nbformat.NotebookNode | None


def make_grader_info(config: Config) -> GraderInfo:
    return GraderInfo(version=__version__, grader_hash=grader_hash(), config_hash=config.fingerprint[:16])


async def _execute_and_probe(workspace: Workspace, ctx: GradingContext) -> tuple[Execution, Observations]:
    notebook = read_notebook(workspace.notebook)
    link_into(ctx.data, workspace.dir)
    command = kernel_command(ctx.config, workspace.dir, threads=ctx.threads, mpl_cache=ctx.mpl_cache)
    limits = ctx.config.limits
    async with KernelSession(command, workspace.dir, limits, notebook) as session:
        execution = await session.run_notebook()
        if not execution.alive:
            return execution, not_run(f"the networks could not be observed: {execution.info.notes[-1]}")
        probe_x, probe_y = ctx.probe_inputs
        observations = await probe(session, probe_x, probe_y, timeout_s=limits.probe_timeout_s)
    return execution, observations


def _not_run(reason: str, ctx: GradingContext) -> ExecutionInfo:
    return ExecutionInfo(status="not_run", notes=[reason], data=ctx.data.info)


def _pdf_text(workspace: Workspace) -> str | None:
    if workspace.pdf is None:
        return None
    try:
        from pypdf import PdfReader
        return "\n".join(page.extract_text() or "" for page in PdfReader(str(workspace.pdf)).pages)
    except Exception:
        return None


def grade_submission(path: Path, root: Path, ctx: GradingContext) -> Graded:
    """Grade one submission file. Never raises for anything the submission does."""
    submission: Submission = identify(path, root, ctx.config.naming)
    workspace_dir = Path(tempfile.mkdtemp(prefix=_safe(submission.stem)[:40] + "-", dir=ctx.work_dir))
    try:
        workspace = unpack(submission, workspace_dir, ctx.config.archive)
        violations: list[Violation] = [*submission.violations, *workspace.violations,
                                       *check_identity(submission, workspace)]
        executed = None
        if workspace.notebook is None:
            execution = _not_run("no notebook to run", ctx)
            observations = not_run("no notebook was found, so the automatic checks were skipped")
        else:
            try:
                result, observations = asyncio.run(_execute_and_probe(workspace, ctx))
                execution, executed = result.info, result.notebook
                execution = execution.model_copy(update={"data": ctx.data.info})
            except KernelStartError as exc:
                execution = _not_run(str(exc), ctx)
                observations = not_run(f"the notebook could not be run: {exc}")
        checks = run_checks(observations, ctx.config, ctx.accuracy_range)
        evidence = pdf_hints(_pdf_text(workspace))
        evidence["6.6"] = notebook_evidence(executed)
        accuracies = {}
        for key in ("baseline", "batchnorm"):
            net = observations.network(key)
            if net is not None and (chosen := choose_accuracies(net, ctx.config.tolerance.epochs)):
                accuracies[key] = chosen[1]
        info = submission.info()
        if workspace.notebook is not None:
            info = info.model_copy(update={"notebook": workspace.notebook.relative_to(workspace.dir).as_posix()})
        if workspace.pdf is not None:
            info = info.model_copy(update={"pdf": workspace.pdf.relative_to(workspace.dir).as_posix()})
        report = build_report(submission=info, violations=violations, execution=execution, checks=checks,
                              config=ctx.config, grader=ctx.grader, evidence=evidence, accuracies=accuracies)
        return Graded(report=report, executed=executed)
    finally:
        shutil.rmtree(workspace_dir, ignore_errors=True)


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text) or "submission"
