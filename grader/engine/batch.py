"""Grading many submissions: the batch from start to end.

The pipeline grades one submission. A batch stages the data and finds the calibration
(`prepare_context`), asks `grader.engine.planning` which submissions to grade and which earlier
reports still stand, hands the jobs to `grader.engine.dispatch` (workers, slots, retries), and writes
the batch's outputs from the reports.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from grader.calibration import store as calibration_store
from grader.config import Config
from grader.data.staging import StagedData, no_data, stage_dataset
from grader.engine.calibrate import (
    CalibrationError,
    CalibrationMissing,
    accuracy_range,
    ensure_calibration,
    time_limits,
)
from grader.engine.dispatch import Outcome, dispatch, start_slots
from grader.engine.planning import Shard, plan
from grader.engine.preflight import Preflight, preflight
from grader.engine.slots import Slot
from grader.intake import duplicate_students
from grader.intake.types import Discovery
from grader.models import Report
from grader.pipeline import GradingContext, make_grader_info
from grader.report.cms_import import remove_import_files
from grader.report.outputs import write_batch_outputs
from grader.report.store import SHARD_FILE, read_report, report_path
from grader.run.kernel_packages import KernelQueryError, kernel_environment
from grader.run.sandbox import choose_sandbox
from grader.util.atomic import write_atomic
from grader.util.cache import cache_dir
from grader.util.fsclean import WORK_PREFIX, owned_dir, release_dir, sweep_stale
from grader.util.locks import hold_out_dir

__all__ = ["Outcome", "Shard", "cache_dir", "plan", "preflight_only", "prepare_context", "run_batch"]


@dataclass
class BatchResult:
    outcomes: list[Outcome] = field(default_factory=list)
    reports: list[tuple[str, Report]] = field(default_factory=list)
    discovery: Discovery | None = None
    duplicates: dict[str, list[str]] = field(default_factory=dict)
    data_description: str = ""
    warnings: list[str] = field(default_factory=list)
    preflight: Preflight | None = None

    @property
    def all_reported(self) -> bool:
        return len(self.reports) == len(self.outcomes)


def prepare_context(
    config: Config,
    work_dir: Path,
    workers: int,
    *,
    progress: Callable[[str], None] = print,
    auto_calibrate: bool = True,
    require_calibration: bool = False,
) -> GradingContext:
    """Stage the data once for the batch and find (or make) the accuracy range for it.

    `require_calibration` (a shard): never calibrate; no calibration for the data is a
    CalibrationMissing that says to run `grader prepare` first. Otherwise, with `auto_calibrate`,
    a missing calibration is made (once, under the calibration file's lock)."""
    choose_sandbox(config)  # a required sandbox that is missing stops the batch before it starts
    sheet = config.sheet_def
    data: StagedData = (
        stage_dataset(config.data, config.data_source, cache_dir() / "data", sheet.dataset)
        if sheet.dataset is not None
        else no_data(sheet.name, sheet.probe.inputs(None))
    )
    mpl_cache = cache_dir() / "matplotlib"
    mpl_cache.mkdir(exist_ok=True)
    cores = os.cpu_count() or 1
    try:  # once per batch: the kernel's packages decide, with the grader, whether a report still stands
        kernel = kernel_environment(config.kernel_python)
    except KernelQueryError as exc:
        progress(f"warning: {exc}; reports will not record the kernel's packages")
        kernel = None
    ctx = GradingContext(
        config=config,
        data=data,
        accuracy_range=None,
        work_dir=work_dir,
        grader=make_grader_info(config, kernel),
        threads=config.run.threads or max(1, cores // max(1, workers)),
        mpl_cache=mpl_cache,
        kernel=kernel,
    )
    found = accuracy_range(sheet, data.info.fingerprint)
    if found is None and require_calibration:
        raise CalibrationMissing(
            f"no calibration of {sheet.name} for the data of this batch ({data.info.description}; data fingerprint "
            f"{data.info.fingerprint}) in {calibration_store.places(sheet)}. Shards never calibrate (each would "
            f"get its own accuracy range): run `grader prepare` once with the same grading.toml (and "
            f"GRADER_CACHE) before the shards"
        )
    if found is None and auto_calibrate:
        try:
            found = ensure_calibration(ctx, runs=3, progress=progress)
        except CalibrationError as exc:
            progress(f"Calibration failed: {exc}. The accuracy check will ask for a tutor's review.")
    return GradingContext(
        **{
            **ctx.__dict__,
            "accuracy_range": found,
            "time_limits": time_limits(config.limits, data.info, sheet, threads=ctx.threads),
        }
    )


def preflight_only(root: Path, config: Config, *, shard: Shard | None = None) -> Preflight:
    """`grader grade --preflight`: the imports of every submission found (earlier reports aside)."""
    planned = plan(root, config, Path(tempfile.gettempdir()), shard=shard, force=True, grader_hash="")
    with tempfile.TemporaryDirectory(prefix="grader-preflight-") as work:
        return preflight([job.submission for job in planned.jobs], config, Path(work))


def run_batch(
    root: Path,
    config: Config,
    out_dir: Path,
    *,
    workers: int | None = None,
    shard: Shard | None = None,
    force: bool = False,
    reporter=None,
    progress: Callable[[str], None] = print,
    show_preflight: Callable[[Preflight], None] | None = None,
    allow_clearing: bool = False,
) -> BatchResult:
    """Grade what `plan` finds. Before any notebook runs, the imports of those to grade are checked
    against the kernel (`show_preflight` prints the table; without it, `progress` gets the warnings).
    `allow_clearing`: the tutors' sheet may take points out of reports (see report/outputs.py)."""
    # One grader at a time writes a folder: a second one on the same --out is refused before it
    # touches anything (it would take the first one's half-written files for leftovers).
    with hold_out_dir(out_dir, "grader grade"):
        return _run_batch(
            root,
            config,
            out_dir,
            workers=workers,
            shard=shard,
            force=force,
            reporter=reporter,
            progress=progress,
            show_preflight=show_preflight,
            allow_clearing=allow_clearing,
        )


def write_shard_marker(out_dir: Path, shard: Shard, config: Config, *, stems: list[str] | None = None) -> None:
    """`.shard.json`: which part of the course the folder holds, for `grader merge`. Written "in
    progress" when the shard starts (with who grades it), "done" with its stems at the end: merge
    refuses a shard that is not done."""
    info: dict[str, object] = {"shard": f"{shard.index}/{shard.count}", "config_hash": config.fingerprint[:16]}
    if stems is None:
        info.update(
            state="in progress",
            command="grader grade",
            pid=os.getpid(),
            host=socket.gethostname(),
            since=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        )
    else:
        info.update(state="done", stems=stems)
    write_atomic(out_dir / SHARD_FILE, json.dumps(info, indent=2).encode("utf-8"))


def _run_batch(
    root: Path,
    config: Config,
    out_dir: Path,
    *,
    workers: int | None,
    shard: Shard | None,
    force: bool,
    reporter,
    progress: Callable[[str], None],
    show_preflight: Callable[[Preflight], None] | None,
    allow_clearing: bool = False,
) -> BatchResult:
    workers = workers or config.worker_count
    out_dir.mkdir(parents=True, exist_ok=True)
    if shard is not None:  # from now until the end, `grader merge` sees that this part is not done
        write_shard_marker(out_dir, shard, config)
    for leftover in out_dir.rglob(".*.tmp"):  # half-written files of a batch that was killed
        leftover.unlink(missing_ok=True)
    sweep_stale()  # what an earlier grader, killed, left in the temporary folder
    work_dir = owned_dir(WORK_PREFIX)
    slots: list[Slot] = []
    dispatched = False
    try:
        # A shard only reads the calibration `grader prepare` made: shards of one course grade alike.
        ctx = prepare_context(config, work_dir, workers, progress=progress, require_calibration=shard is not None)
        used = ctx.time_limits.calibration if ctx.time_limits else None
        planned = plan(
            root,
            config,
            out_dir,
            shard=shard,
            force=force,
            grader_hash=ctx.grader.grader_hash,
            kernel_env=ctx.grader.kernel_env,
            calibration=used.sha256 if used else None,
            restore_removed=True,
        )
        discovery, jobs, cached = planned.discovery, planned.jobs, planned.cached
        result = BatchResult(discovery=discovery, data_description=ctx.data.info.description)
        if jobs:
            result.preflight = preflight([job.submission for job in jobs], config, work_dir, ctx.kernel)
            ctx = dataclasses.replace(ctx, outside_course=result.preflight.outside_course)
            if show_preflight is not None:
                show_preflight(result.preflight)
            else:  # `grader check`: the student reads it; adding a package is the tutors' business
                for line in result.preflight.warning_lines(how_to_add=False):
                    progress(line)
        result.outcomes = [
            Outcome(stem=s, status="cached", points=r.auto_points, max_points=r.auto_max_points, seconds=0)
            for s, r in cached
        ]
        if reporter:
            reporter.start(total=len(jobs), cached=len(cached), skipped=len(discovery.skipped))
        if jobs:
            slots, ctx = start_slots(ctx, config, len(jobs), workers)
            remove_import_files(out_dir)  # from here on it would describe other reports than those beside it
            dispatch(slots, jobs, root, out_dir, ctx, result.outcomes, reporter, progress)
            # The workers stop their kernels and fork servers while the summary is written; the
            # work folder goes only once they are done (see below).
            for slot in slots:
                slot.retire()
        dispatched = True
        for outcome in result.outcomes:
            report = read_report(report_path(out_dir, outcome.stem))
            if report is not None:
                result.reports.append((outcome.stem, report))
        result.reports.sort(key=lambda item: item[0])
        if shard is not None:  # what `grader merge` checks: every part there, none twice, all graded
            write_shard_marker(out_dir, shard, config, stems=[stem for stem, _ in result.reports])
        result.duplicates = duplicate_students(planned.submissions)
        # Every output from these reports: tutors' points, summary, cms.csv, pages; the outputs of
        # submissions no longer in the folder move to removed/.
        result.warnings += write_batch_outputs(
            result.reports,
            out_dir,
            config,
            data_description=result.data_description,
            held=planned.held,
            allow_clearing=allow_clearing,
            notes=planned.duplicates,
        )
        return result
    finally:
        for slot in slots:
            if dispatched:
                slot.join()
            else:  # stopped (SIGTERM, Ctrl-C) or failed: the workers go now, not after their jobs
                slot.kill()
        _remove_work_dir(work_dir)


def _remove_work_dir(work_dir: Path) -> None:
    """The batch's work folder (unpacked submissions, workspaces) and the folders of its workers
    that were killed (a worker that ended normally removed its own). Never raises."""
    try:
        for marker in work_dir.glob(".worker-*"):
            try:
                folder = Path(marker.read_text(encoding="utf-8"))
            except OSError:
                continue
            sweep_stale(folder.parent, min_age_s=0, only=folder.name)
    except Exception:  # clean-up never raises
        pass
    release_dir(work_dir)
