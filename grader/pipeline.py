"""The one way a submission travels: identify → unpack → execute → probe → check → score.

Only this module knows the order. Batch concerns (workers, cache, shards, progress) live in engine/batch.py
and wrap `grade_submission`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import shutil
import stat
import tempfile
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import nbformat
import numpy as np

from grader import PACKAGE_DIR, __version__
from grader.checks.environment_faults import (
    environment_faults,
    fault_notes,
    fault_violations,
    outside_course_violations,
    pip_notes,
    review_after_time_limit,
    review_checks,
    review_over_limits,
)
from grader.checks.framework import AccuracyRange, run_checks
from grader.child.parser import ParseLimits
from grader.child.parser import configure as configure_parsing
from grader.config import Config
from grader.data.staging import StagedData, link_into
from grader.intake import SheetHints, check_identity, identify, team_with_emails, unpack
from grader.intake.discover import graded_files
from grader.intake.identity import pdf_text as read_pdf_text
from grader.intake.identity import team_from_files
from grader.intake.imports import notebook_imports
from grader.intake.naming import complete_from_files, files_sha256
from grader.intake.types import Submission, Workspace
from grader.models import ExecutionInfo, GraderInfo, Report, TimeLimits, Violation
from grader.observations import Observations, not_run
from grader.report.score import build_report
from grader.run.context import KernelContext
from grader.run.execute import Execution, KernelStartError, ProgressCallback, read_notebook
from grader.run.kernel_packages import KernelEnvironment
from grader.run.kernels import FreshKernels
from grader.run.probe import prepare_kernel, probe, setup_settings
from grader.sheet import Sheet
from grader.util.fsclean import remove_tree
from grader.util.notebook_file import MAX_NOTEBOOK_BYTES, NotebookInvalid, NotebookTooLarge, fit_outputs
from grader.util.notebook_file import configure as configure_notebooks

SHEETS_DIR = PACKAGE_DIR / "sheets"


def grader_hash(sheet: Sheet) -> str:
    """A hash of the grader's own code (its modules and the pages' templates) and of the sheet graded
    (its folder, also one loaded by [sheet] path, and its reference folder): a changed grader or
    sheet re-grades everything. Other sheets do not count."""
    digest = hashlib.sha256(__version__.encode())
    core = [
        p
        for p in sorted([*PACKAGE_DIR.rglob("*.py"), *PACKAGE_DIR.rglob("templates/*")])
        if SHEETS_DIR not in p.parents and p.is_file()
    ]
    folders = [("grader", PACKAGE_DIR, core)]
    for label, folder in (("sheet", sheet.folder), ("reference", sheet.reference_dir)):
        if folder is not None and folder.is_dir():
            folders.append((label, folder, sorted(folder.rglob("*.py")) + sorted(folder.rglob("calibration.json"))))
    for label, folder, paths in folders:
        for path in paths:
            digest.update(f"{label}/{path.relative_to(folder).as_posix()}".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class GradingContext:
    """What every submission of a batch shares."""

    config: Config
    data: StagedData
    accuracy_range: AccuracyRange | None
    work_dir: Path  # workspaces are made here and removed after grading
    grader: GraderInfo
    threads: int = 1
    mpl_cache: Path | None = None
    kernel: KernelEnvironment | None = None  # what the kernel's Python has installed
    outside_course: frozenset[str] = frozenset()  # modules it has that the course's pinned environment lacks
    time_limits: TimeLimits | None = None  # resolved from [limits] and the calibration (None: [limits] alone)

    @property
    def probe_inputs(self) -> dict[str, np.ndarray]:
        return _probe_inputs(self.config.sheet_def, self.data)

    @property
    def setup_settings(self) -> dict:
        """What the kernel's set-up step does for this sheet (before every notebook)."""
        sheet = self.config.sheet_def
        return setup_settings(
            sheet.probe,
            str(self.data.raw_dir or ""),
            sheet.dataset.torchvision_class if sheet.dataset is not None else "",
        )

    @property
    def kernel_context(self) -> KernelContext:
        """What the run stage needs to start this batch's kernels."""
        return KernelContext(
            config=self.config,
            work_dir=self.work_dir,
            data_root=self.data.root,
            threads=self.threads,
            mpl_cache=self.mpl_cache,
            time_limits=self.time_limits,
            warmup_imports=self.config.sheet_def.warmup_imports,
        )


_PROBE_INPUTS: dict[tuple[str, str, str], dict[str, np.ndarray]] = {}


def _probe_inputs(sheet: Sheet, data: StagedData) -> dict[str, np.ndarray]:
    """The sheet's probe inputs, made once per staged data set (the full test set is 7.8 MB to parse)."""
    key = (sheet.name, str(data.raw_dir), data.info.fingerprint)
    if key not in _PROBE_INPUTS:
        inputs = sheet.probe.inputs(data)
        for array in inputs.values():
            array.setflags(write=False)
        _PROBE_INPUTS[key] = inputs
    return _PROBE_INPUTS[key]


@dataclass
class Graded:
    report: Report
    executed: nbformat.NotebookNode | None


def make_grader_info(config: Config, kernel: KernelEnvironment | None = None) -> GraderInfo:
    """The grader, its configuration and the kernel's packages: a change of any one regrades."""
    return GraderInfo(
        version=__version__,
        grader_hash=grader_hash(config.sheet_def),
        config_hash=config.fingerprint[:16],
        kernel_env=kernel.fingerprint if kernel else "",
        kernel_packages=kernel.reported if kernel else {},
    )


def _relocate(workspace: Workspace, target: Path) -> Workspace:
    """Move an unpacked submission into the kernel's workspace folder (same file system: renames)."""
    for entry in workspace.dir.iterdir():
        shutil.move(str(entry), str(target / entry.name))

    def rebase(path: Path | None) -> Path | None:
        return None if path is None else target / path.relative_to(workspace.dir)

    return dataclasses.replace(workspace, dir=target, notebook=rebase(workspace.notebook), pdf=rebase(workspace.pdf))


class Phases:
    """Where a submission's grading time goes (reported as execution.timings)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._mark = time.monotonic()

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.seconds[name] = round(self.seconds.get(name, 0.0) + now - self._mark, 3)
        self._mark = now


async def observe(
    workspace: Workspace,
    ctx: GradingContext,
    kernels: FreshKernels,
    phases: Phases | None = None,
    progress: ProgressCallback | None = None,
) -> tuple[Execution, Observations, Workspace]:
    """Run the workspace's notebook in a kernel from `kernels`, then probe the live kernel.
    `progress` is told as each cell starts and ends."""
    phases = phases or Phases()
    assert workspace.notebook is not None, "observe runs a workspace's notebook"
    notebook = read_notebook(workspace.notebook)
    limits = ctx.config.limits
    async with kernels.kernel() as kernel:
        workspace = _relocate(workspace, kernel.workspace)
        link_into(ctx.data, workspace.dir)
        await kernel.session.copy_in()
        setup_failed = prepare_kernel(kernel.session, ctx.setup_settings)
        phases.lap("kernel_start")
        execution = await kernel.session.run_notebook(notebook, progress=progress)
        phases.lap("cells")
        if setup_failed:
            execution = _with_note(execution, setup_failed)
        if not execution.alive and limits.restart_for_probe and execution.info.last_cell:
            execution = await _restart_for_probe(kernel.session, execution, ctx)
        if execution.alive:
            observations = await probe(
                kernel.session, ctx.probe_inputs, timeout_s=limits.probe_timeout_s, spec=ctx.config.sheet_def.probe
            )
            if observations.status == "ok" and not observations.setup_ran:
                execution = _with_note(
                    execution,
                    "the grader's set-up step did not run before the notebook: "
                    "networks kept under other names, and data under another root, "
                    "may not have been found",
                )
        else:
            observations = not_run(f"the networks could not be observed: {execution.info.notes[-1]}")
        phases.lap("probe")
    phases.lap("kernel_stop")
    return execution, observations, workspace


def _with_note(execution: Execution, note: str) -> Execution:
    return dataclasses.replace(
        execution, info=execution.info.model_copy(update={"notes": [*execution.info.notes, note]})
    )


async def _restart_for_probe(session, execution: Execution, ctx: GradingContext) -> Execution:
    """The kernel died in cell N: a new one runs cells 1..N-1 again so that the networks can be
    probed. The status stays kernel_died; the executed notebook keeps the first run's outputs."""
    fatal = execution.info.last_cell
    if not await session.restart():
        return _with_note(execution, "the kernel could not be restarted for the probe")
    prepare_kernel(session, ctx.setup_settings)
    ran, failed = await session.replay(execution.notebook, fatal)
    note = f"the kernel was restarted for the probe and ran cells In [1]–In [{ran}] again" + (
        f" (cell(s) {', '.join(f'In [{n}]' for n in failed)} failed this time)" if failed else ""
    )
    return dataclasses.replace(
        execution,
        alive=await session.alive(),
        info=execution.info.model_copy(update={"notes": [*execution.info.notes, note]}),
    )


def _not_run(reason: str, ctx: GradingContext, *, isolated: bool = False, sandbox: str = "none") -> ExecutionInfo:
    return ExecutionInfo(status="not_run", notes=[reason], data=ctx.data.info, isolated=isolated, sandbox=sandbox)


def _pdf_text(workspace: Workspace) -> str | None:
    if workspace.pdf is None:
        return None
    try:
        return read_pdf_text(workspace.pdf)  # read once: the identity checks asked for it already
    except Exception:  # content.pdf_unreadable says why already
        return None


def grade_submission(
    path: Path,
    root: Path,
    ctx: GradingContext,
    submission: Submission | None = None,
    progress: ProgressCallback | None = None,
) -> Graded:
    """Grade one submission file in a kernel of its own. Never raises for anything the submission does."""

    async def run() -> Graded:
        async with FreshKernels(ctx.kernel_context) as kernels:
            return await grade_submission_async(path, root, ctx, kernels, submission, progress)

    return asyncio.run(run())


async def grade_submission_async(
    path: Path,
    root: Path,
    ctx: GradingContext,
    kernels: FreshKernels,
    submission: Submission | None = None,
    progress: ProgressCallback | None = None,
) -> Graded:
    """`submission`: the file already identified (the batch has), else it is identified here.
    `progress`: told as each of the notebook's cells starts and ends."""
    phases = Phases()
    limits = ctx.config.limits
    configure_parsing(ParseLimits(timeout_s=limits.parse_timeout_s, memory_mb=limits.parse_memory_mb))
    configure_notebooks(cells=limits.notebook_cells)
    submission = submission or identify(path, root, ctx.config.naming)
    unpack_dir = Path(tempfile.mkdtemp(prefix=_safe(submission.stem)[:40] + "-", dir=ctx.work_dir))
    try:
        submission, workspace = _unpack_as_read(submission, unpack_dir, ctx)
        identity = check_identity(submission, workspace)  # the files against the file name's team
        # Where the file's name does not say (all of) who submitted it, the files do, and so can the
        # expected name (the naming messages then say that name).
        submission = complete_from_files(submission, team_from_files(submission, workspace), ctx.config.naming)
        violations: list[Violation] = [*submission.violations, *workspace.violations, *identity]
        pdf_text = _pdf_text(workspace)
        team = list(team_with_emails(submission, workspace))  # read now: the workspace goes with its kernel
        phases.lap("intake")
        executed, over_limits = None, False
        if workspace.notebook is None:
            execution = _not_run("no notebook to run", ctx)
            observations = not_run("no notebook was found, so the automatic checks were skipped")
        else:
            notebook_path = workspace.notebook
            try:
                result, observations, workspace = await observe(workspace, ctx, kernels, phases, progress)
                execution, executed = result.info, result.notebook
                execution = execution.model_copy(update={"data": ctx.data.info})
            except KernelStartError as exc:
                execution = _not_run(str(exc), ctx, isolated=exc.isolated, sandbox=exc.sandbox)
                observations = not_run(f"the notebook could not be run: {exc}")
            except NotebookInvalid as exc:
                where = notebook_path.relative_to(workspace.dir).as_posix()
                # One violation for one cause: this one replaces the identity check's warning.
                violations = [v for v in violations if v.code != "content.notebook_unreadable"]
                too_large = isinstance(exc, NotebookTooLarge)
                over_limits = too_large
                why = "is over the grader's limits" if too_large else "cannot be read"
                violations.append(
                    Violation(
                        code="content.notebook_too_large" if too_large else "content.notebook_invalid",
                        severity="error",
                        message=f"{submission.rel}: the notebook '{where}' {why}: {exc}",
                    )
                )
                execution = _not_run(
                    f"the notebook '{where}' {why}: {exc}"
                    if too_large
                    else f"the notebook '{where}' is not a readable notebook: {exc}",
                    ctx,
                )
                observations = not_run(f"the notebook {why} ({exc}), so the automatic checks were skipped")
        sheet = ctx.config.sheet_def
        checks = run_checks(observations, ctx.config, ctx.accuracy_range)
        # A module the kernel lacks or data the grader cannot serve: the team is not marked down for it.
        dataset = sheet.dataset
        faults = environment_faults(executed, dataset.path_words if dataset else ())
        imports = notebook_imports(executed) if executed is not None else None
        violations += fault_violations(
            faults,
            dataset.served_hint if dataset else "the grader serves no data for this sheet: the notebook makes its own",
        ) + outside_course_violations(executed, ctx.outside_course, faults, imports)
        checks = review_after_time_limit(review_checks(checks, faults), execution)
        if over_limits:  # a limit of the grader's, however generous: a tutor decides
            checks = review_over_limits(checks, "content.notebook_too_large")
        if notes := fault_notes(faults) + pip_notes(executed, ctx.kernel, imports):
            execution = execution.model_copy(update={"notes": [*execution.notes, *notes]})
        evidence = sheet.evidence(pdf_text, executed)
        accuracies = sheet.recorded_accuracies(observations, ctx.config.sheet_settings)
        info = submission.info().model_copy(update={"team": team})
        if workspace.notebook is not None:
            info = info.model_copy(update={"notebook": workspace.notebook.relative_to(workspace.dir).as_posix()})
        if workspace.pdf is not None:
            info = info.model_copy(update={"pdf": workspace.pdf.relative_to(workspace.dir).as_posix()})
        if executed is not None and (left_out := fit_outputs(executed)):
            execution = execution.model_copy(update={"notes": [*execution.notes, _left_out_note(executed, left_out)]})
        phases.lap("checks")
        execution = execution.model_copy(update={"timings": phases.seconds})
        report = build_report(
            submission=info,
            violations=violations,
            execution=execution,
            checks=checks,
            config=ctx.config,
            grader=ctx.grader,
            evidence=evidence,
            accuracies=accuracies,
        )
        return Graded(report=report, executed=executed)
    finally:
        remove_tree(unpack_dir)


def _left_out_note(nb: nbformat.NotebookNode, cells: list[int]) -> str:
    numbers, number = {}, 0
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and cell.source.strip():
            number += 1
            numbers[index] = number
    shown = ", ".join(f"In [{numbers[i]}]" if i in numbers else f"cell {i + 1}" for i in cells[:10])
    more = f" and {len(cells) - 10} more" if len(cells) > 10 else ""
    return (
        f"outputs of {len(cells)} cell(s) ({shown}{more}) were left out of the executed notebook, to keep it "
        f"within the {MAX_NOTEBOOK_BYTES // 1024 // 1024} MB the grader accepts as a notebook (errors kept)"
    )


def _unpack_as_read(submission: Submission, dest: Path, ctx: GradingContext) -> tuple[Submission, Workspace]:
    """Unpack the submission, and make its `sha256` the hash of the bytes that were graded: a file
    that changed after it was found (a zip copied over again while the batch runs) then does not
    match its report, and the next run grades it again. A zip is read once into a private copy
    (hashed while copied) and unpacked from there; a notebook or PDF is hashed as copied in."""
    hints = SheetHints.of(ctx.config.sheet_def)
    if submission.kind in ("ipynb", "py", "pdf") or not _regular_file(submission.path):
        workspace = unpack(submission, dest, ctx.config.archive, hints)  # a folder, a pipe: unpack says what
        copied = [
            dest / unicodedata.normalize("NFC", path.name) for path in graded_files(submission.path, submission.rel)
        ]  # with its PDFs, as identify hashes
        return dataclasses.replace(submission, sha256=_sha256_of(copied, submission.sha256)), workspace
    snapshot = dest.with_name(dest.name + ".read")
    snapshot.mkdir()
    try:
        copy = snapshot / submission.path.name
        digest = hashlib.sha256()
        try:
            with open(submission.path, "rb") as src, open(copy, "wb") as out:
                while chunk := src.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
        except OSError:  # unpack says what is wrong with the file
            workspace = unpack(submission, dest, ctx.config.archive, hints)
            return submission, workspace
        read = dataclasses.replace(submission, path=copy, sha256=digest.hexdigest())
        workspace = unpack(read, dest, ctx.config.archive, hints)
        return dataclasses.replace(read, path=submission.path), workspace
    finally:
        remove_tree(snapshot)


def _regular_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _sha256_of(paths: list[Path], otherwise: str) -> str:
    try:
        return files_sha256(paths)
    except OSError:  # not copied in (over a limit): the hash taken when it was found
        return otherwise


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text) or "submission"
