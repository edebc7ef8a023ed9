"""Grading many submissions: workers, the cache of earlier reports, shards and progress.

The pipeline grades one submission; this module decides which ones, runs them in worker processes,
writes their outputs atomically and keeps the batch going whatever one submission does.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import json
import logging
import os
import signal
import socket
import stat
import sys
import tempfile
import time
import traceback
import unicodedata
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import dataclass, field
from multiprocessing.util import Finalize
from pathlib import Path

from grader.calibration import store as calibration_store
from grader.checks.framework import placeholder_checks
from grader.config import Config
from grader.data.staging import StagedData, no_data, stage_dataset
from grader.engine.calibrate import (
    CalibrationError,
    CalibrationMissing,
    accuracy_range,
    ensure_calibration,
    time_limits,
)
from grader.engine.preflight import Preflight, preflight
from grader.engine.slots import BrokenProcessPool, Slot, die_with_parent, spawn_executor
from grader.intake import discover, duplicate_students, identify, parse_name
from grader.intake.discover import graded_files
from grader.intake.naming import files_sha256, kind_of
from grader.intake.types import Discovery, Submission
from grader.models import ExecutionInfo, Report, Violation
from grader.pipeline import Graded, GradingContext, grade_submission, grade_submission_async, make_grader_info
from grader.report.cms_import import remove_import_files
from grader.report.manual_points import held_points
from grader.report.outputs import write_batch_outputs
from grader.report.score import build_report
from grader.report.store import (
    REMOVED_DIR,
    SHARD_FILE,
    bring_back,
    read_report,
    report_path,
    write_executed,
    write_report,
)
from grader.run.kernel_packages import KernelQueryError, kernel_environment
from grader.run.kernels import ForkKernels, FreshKernels, WarmKernels
from grader.run.sandbox import choose_sandbox
from grader.util.atomic import write_atomic
from grader.util.cache import cache_dir
from grader.util.fsclean import WORK_PREFIX, WORKER_PREFIX, owned_dir, release_dir, sweep_stale
from grader.util.locks import hold_out_dir
from grader.util.textsafe import plain, replace_controls

__all__ = ["Shard", "cache_dir", "plan", "preflight_only", "prepare_context", "run_batch"]


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        try:
            k, n = (int(part) for part in text.split("/"))
        except ValueError:
            raise ValueError(f"--shard expects K/N with whole numbers, e.g. 2/8; got {text!r}") from None
        if not (n >= 1 and 1 <= k <= n):
            raise ValueError(f"--shard {text}: K must be between 1 and N")
        return cls(k, n)

    def owns(self, rel: str) -> bool:
        """A fixed, disjoint share: by a hash of the submission's path, so adding files moves nothing."""
        digest = int(hashlib.sha256(rel.encode("utf-8", "surrogateescape")).hexdigest(), 16)
        return digest % self.count == self.index - 1


@dataclass
class Plan:
    discovery: Discovery
    submissions: list[Submission]  # everything found, whichever shard it belongs to
    jobs: list[Job]  # to grade now
    cached: list[tuple[str, Report]]  # earlier reports that still stand
    held: dict[str, dict] = field(default_factory=dict)  # tutors' points the earlier reports hold, by stem
    duplicates: list[str] = field(default_factory=list)  # one team submitted more than once, for the tutors


@dataclass
class Job:
    path: Path
    submission: Submission
    stem: str  # output name; made unique when two submissions share a file name

    @property
    def unreadable(self) -> bool:
        """The file cannot even be read (see `_identify`): reported without a worker."""
        return self.submission.sha256.startswith(UNREADABLE)


@dataclass
class Outcome:
    stem: str
    status: str  # the execution status, or "cached" / "grader_error"
    points: float
    max_points: float
    seconds: float
    message: str = ""

    @classmethod
    def failed(cls, stem: str, message: str) -> Outcome:
        """A submission the grader failed on (`message` says how): no points, no time, status grader_error."""
        return cls(stem=stem, status="grader_error", points=0, max_points=0, seconds=0, message=message)


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


GRADER_ERROR = "grader.error"
UNREADABLE = "unreadable-"  # the sha256 field of a submission whose file cannot be read


def made_by_grader_failure(report: Report) -> bool:
    """A report that says the grader failed (a worker died, the report could not be written): never
    taken as the submission's result on a later run."""
    return any(v.code == GRADER_ERROR for v in report.violations)


def _stem_key(stem: str) -> str:
    # Names that differ only in case or Unicode normalisation are one file on macOS and Windows.
    return unicodedata.normalize("NFC", stem).casefold()


def _identify(path: Path, root: Path, config: Config) -> Submission:
    """identify(), for any file: one that cannot be read (no permission, a named pipe that would
    block) is a submission whose report says so, not the end of the batch."""
    problem = None
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            problem = "it is a named pipe or a device, not a regular file"
        else:
            found = identify(path, root, config.naming)
            files = graded_files(path, found.rel)  # a notebook's PDF is graded too: part of its hash
            return found if len(files) == 1 else dataclasses.replace(found, sha256=files_sha256(files))
    except OSError as exc:
        problem = exc.strerror or str(exc)
    rel = path.name if path == root else path.relative_to(root).as_posix()
    name = parse_name(path.name, config.naming)
    return Submission(
        path=path,
        rel=rel,
        stem=name.stem,
        kind=kind_of(path.name),
        team=name.team,
        sha256=UNREADABLE + hashlib.sha256(rel.encode("utf-8", "surrogateescape")).hexdigest()[:16],
        violations=(
            *name.violations,
            Violation(
                code="archive.corrupt",
                severity="error",
                message=f"{rel}: cannot be read ({problem}); expected a readable file",
            ),
        ),
    )


# `<stem>.ipynb` and the like must fit a file system's 255 bytes for a name, with room to spare.
MAX_STEM_BYTES = 200


def _file_name_safe(stem: str) -> str:
    """A stem as an output's name: no control characters or bidirectional overrides (`ls` would send
    them to the terminal, or show the name reordered), no leading '-' (an option to `rm *`)."""
    stem = replace_controls(stem, "_")
    return "_" + stem if stem.startswith("-") else stem


def raw_rel(path: Path, root: Path) -> bytes:
    """A submission's path relative to the folder graded, as the file system holds it: bytes, before
    any decoding or Unicode normalisation (`Submission.rel` is normalised for people to read, so a
    Mac's, a Linux and a Windows upload of one name have the same `rel`, never the same bytes)."""
    try:
        rel = Path(path.name) if path == root or root.is_file() else path.relative_to(root)
    except ValueError:
        rel = Path(path.name)
    return b"/".join(os.fsencode(part) for part in rel.parts)


def _output_stem(sub: Submission, raw: bytes, unique: bool) -> str:
    """The name of a submission's outputs: its stem (`_file_name_safe`); with a hash of its path's
    raw bytes when another submission has the same stem (so two different files never share one),
    or when the stem is too long for a file name (cut short)."""
    stem = _file_name_safe(sub.stem)
    if unique and len(stem.encode("utf-8", "surrogateescape")) <= MAX_STEM_BYTES:
        return stem
    while len(stem.encode("utf-8", "surrogateescape")) > MAX_STEM_BYTES - 9:
        stem = stem[:-1]
    return f"{stem}~{hashlib.sha256(raw).hexdigest()[:8]}"


def _stems(submissions: list[Submission], raws: list[bytes], out_dir: Path) -> list[str]:
    """The output stem of each submission (`_output_stem`), kept from run to run where the folder
    changes around it: a file whose outputs are under its hashed stem keeps it when it is alone with
    its name again, and when a second file with the same name arrives (the team's upload from a Mac
    beside the one from Linux), the file whose report is under the plain stem keeps it. A stem that
    changed would move a submission that is still there to removed/, with the tutors' points."""
    groups: dict[str, list[int]] = {}
    for index, sub in enumerate(submissions):
        groups.setdefault(_stem_key(_file_name_safe(sub.stem)), []).append(index)
    stems = [""] * len(submissions)
    for members in groups.values():
        for index in members:
            stems[index] = _output_stem(submissions[index], raws[index], unique=False)
        if len(members) == 1:
            (index,) = members
            if not _report_on_disk(out_dir, stems[index]):
                stems[index] = _output_stem(submissions[index], raws[index], unique=True)
            continue
        for index in members:
            plain = _output_stem(submissions[index], raws[index], unique=True)
            if not _report_on_disk(out_dir, stems[index]) and _report_of(out_dir, plain, submissions[index]):
                stems[index] = plain  # one keeper at most: a report is of one file
                break
    return stems


def _report_on_disk(out_dir: Path, stem: str) -> bool:
    return report_path(out_dir, stem).is_file() or report_path(out_dir / REMOVED_DIR, stem).is_file()


def _report_of(out_dir: Path, stem: str, sub: Submission) -> bool:
    """Is the report under `stem` (or the one set aside in removed/) of this very file?"""
    for folder in (out_dir, out_dir / REMOVED_DIR):
        if (report := read_report(report_path(folder, stem))) is not None:
            return report.submission.file == sub.rel and report.submission.sha256 == sub.sha256
    return False


def _name_bytes(raw: bytes) -> str:
    """How a file name was written, for tutors who see two names that look the same."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "not UTF-8 (Latin-1/Windows-1252 bytes, as Windows zip tools write)"
    if text.isascii():
        return "ASCII"
    if unicodedata.is_normalized("NFC", text):
        return "UTF-8, composed (NFC)"
    return "UTF-8, decomposed (NFD, as macOS writes)"


def _duplicate_submissions(found: list[tuple[Submission, bytes, str]]) -> list[str]:
    """One line per team name that more than one file carries (the same name from a Mac, a Linux and
    a Windows upload, or the same zip in two folders): each is graded, and the tutors decide."""
    groups: dict[str, list[tuple[Submission, bytes, str]]] = {}
    for item in found:
        groups.setdefault(_stem_key(_file_name_safe(item[0].stem)), []).append(item)
    lines = []
    for items in groups.values():
        if len(items) < 2:
            continue
        files = "; ".join(f"{sub.rel} ({_name_bytes(raw)}) as {stem}" for sub, raw, stem in items)
        lines.append(
            f"duplicate submission: {len(items)} files name the team {items[0][0].stem!r}: {files}. "
            f"Each is graded with its own report; decide which one counts and remove the others "
            f"(their students are left out of cms.csv until then)"
        )
    return lines


def plan(
    root: Path,
    config: Config,
    out_dir: Path,
    *,
    shard: Shard | None,
    force: bool,
    grader_hash: str,
    kernel_env: str | None = None,
    calibration: str | None = None,
    restore_removed: bool = False,
) -> Plan:
    """Which submissions to grade, and which earlier reports still stand (same bytes graded,
    configuration, grader and, when `kernel_env` is given, the same packages in the kernel; when
    `calibration` is given, a report whose notebook ran under another calibration's limits and range
    is graded again). With `restore_removed`, a submission that is back in the folder gets its
    outputs back from `removed/` first (an unchanged file is then not graded again)."""
    discovery = discover(root, config.naming)
    jobs, cached, held = [], [], {}
    submissions = [_identify(path, root, config) for path in discovery.submissions]
    raws = [raw_rel(path, root) for path in discovery.submissions]
    named = []
    for path, sub, raw, stem in zip(discovery.submissions, submissions, raws, _stems(submissions, raws, out_dir)):
        named.append((sub, raw, stem))
        if shard and not shard.owns(sub.rel):
            continue
        if restore_removed:
            bring_back(out_dir, stem)
        earlier = read_report(report_path(out_dir, stem))
        if earlier is not None:
            held[stem] = held_points(earlier, config)
        if (
            not force
            and earlier is not None
            and earlier.submission.sha256 == sub.sha256
            and not made_by_grader_failure(earlier)
            and earlier.grader.config_hash == config.fingerprint[:16]
            and earlier.grader.grader_hash == grader_hash
            and (kernel_env is None or earlier.grader.kernel_env == kernel_env)
            and (calibration is None or _calibration_of(earlier) in (None, calibration))
        ):
            cached.append((stem, earlier))
        else:
            jobs.append(Job(path=path, submission=sub, stem=stem))
    return Plan(
        discovery=discovery,
        submissions=submissions,
        jobs=jobs,
        cached=cached,
        held=held,
        duplicates=_duplicate_submissions(named),
    )


def _calibration_of(report: Report) -> str | None:
    limits = report.execution.time_limits
    if limits is None:  # nothing ran (a naming problem, no notebook): no calibration was used
        return None
    return limits.calibration.sha256 if limits.calibration else ""


def preflight_only(root: Path, config: Config, *, shard: Shard | None = None) -> Preflight:
    """`grader grade --preflight`: the imports of every submission found (earlier reports aside)."""
    planned = plan(root, config, Path(tempfile.gettempdir()), shard=shard, force=True, grader_hash="")
    with tempfile.TemporaryDirectory(prefix="grader-preflight-") as work:
        return preflight([job.submission for job in planned.jobs], config, Path(work))


def error_report(job: Job, ctx: GradingContext, problem: str) -> Report:
    """The report of a submission the grader itself failed on: it says so, earns nothing, and is
    graded again by the next run (its `grader.error` violation)."""
    checks = placeholder_checks(ctx.config, "error", f"not graded: {problem}")
    return build_report(
        submission=job.submission.info(),
        violations=list(job.submission.violations)
        + [
            Violation(
                code=GRADER_ERROR,
                severity="error",
                message=f"{job.submission.rel}: {problem}; run `grader grade` again to grade it",
            )
        ],
        execution=ExecutionInfo(status="not_run", notes=[problem], data=ctx.data.info),
        checks=checks,
        config=ctx.config,
        grader=ctx.grader,
    )


def unreadable_report(job: Job, ctx: GradingContext) -> Report:
    """The report of a file that cannot be read: what is wrong is in its violations."""
    problem = job.submission.violations[-1].message
    checks = placeholder_checks(ctx.config, "skipped", "not graded: the submission's file cannot be read")
    return build_report(
        submission=job.submission.info(),
        violations=list(job.submission.violations),
        execution=ExecutionInfo(status="not_run", notes=[problem], data=ctx.data.info),
        checks=checks,
        config=ctx.config,
        grader=ctx.grader,
    )


def kernel_kind(config: Config, jobs: int, workers: int) -> str:
    """Where a worker's kernels come from. Kernels started ahead of need pay off only when a next
    job comes; the fork server also saves every kernel's imports."""
    if jobs <= min(workers, jobs):
        return "fresh"
    return "fork" if config.run.fork_server else "warm"


# Per worker process: one event loop for its whole life, and where its kernels come from.
_WORKER: dict = {}


def _init_worker(ctx: GradingContext, kind: str, parent_pid: int) -> None:
    die_with_parent(parent_pid)  # kill -9 of the grader takes its workers (and their kernels) along
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the grader stops its workers itself
    # Everything this worker puts in the temporary folder (its fork server's folders, kernels'
    # runtime folders) goes into a folder it owns: when the worker is killed, the grader (or its
    # next run) sees the owner gone and removes the folder.
    own = owned_dir(WORKER_PREFIX)
    tempfile.tempdir = str(own)
    try:
        (ctx.work_dir / f".worker-{os.getpid()}").write_text(str(own), encoding="utf-8")
    except OSError:
        pass
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.set_exception_handler(_background_failure)
    kernels = {"fork": ForkKernels, "warm": WarmKernels, "fresh": FreshKernels}[kind](ctx.kernel_context)
    _WORKER.update(loop=loop, kernels=kernels, ctx=ctx)

    def stop() -> None:
        try:
            loop.run_until_complete(kernels.close())
        finally:
            release_dir(own)

    # multiprocessing ends workers with os._exit: atexit would not run, Finalize does.
    Finalize(None, stop, exitpriority=10)


def _background_failure(loop, context: dict) -> None:
    """asyncio's report of a failure nobody awaited (a kernel's shutdown, say): kept out of the
    tutor's terminal; the submission's report says what matters."""
    logging.getLogger("grader.worker").debug(
        "background failure: %s", context.get("message"), exc_info=context.get("exception")
    )


def _grade(job: Job, root: Path, ctx: GradingContext) -> Graded:
    """In a worker: with its loop and (warm) kernels; elsewhere: a fresh kernel."""
    if _WORKER:
        loop, kernels = _WORKER["loop"], _WORKER["kernels"]
        return loop.run_until_complete(grade_submission_async(job.path, root, ctx, kernels, job.submission))
    return grade_submission(job.path, root, ctx, job.submission)


def run_job(job: Job, root: Path, out_dir: Path, ctx: GradingContext) -> Outcome:
    """Grade one submission (retried once on a grader-side failure) and write its outputs. A report
    is written whatever happens here: when the real one cannot be, one that says why."""
    started = time.monotonic()
    problem = ""
    graded: Graded | None = None
    for attempt in (1, 2):
        try:
            graded = _grade(job, root, ctx) if attempt == 1 else grade_submission(job.path, root, ctx, job.submission)
            break
        except Exception as exc:  # jupyter_client's "Duplicate Signature" and the like: retry in a fresh kernel
            problem = f"grader failure ({type(exc).__name__}: {exc}) on attempt {attempt}"
            traceback.print_exc(file=sys.stderr)
    if graded is None:
        report, status = error_report(job, ctx, problem), "grader_error"
    else:
        report, status = graded.report, graded.report.execution.status
        if graded.executed is not None:
            try:
                write_executed(graded.executed, out_dir, job.stem)
            except Exception as exc:  # the report matters more than the notebook's copy
                note = f"the executed notebook could not be written ({type(exc).__name__}: {exc})"
                report = report.model_copy(
                    update={"execution": report.execution.model_copy(update={"notes": [*report.execution.notes, note]})}
                )
    try:
        write_report(report, out_dir, job.stem)
    except Exception as exc:  # then a report that says so
        problem = f"the report could not be written ({type(exc).__name__}: {exc})"
        status = "grader_error"
        write_report(error_report(job, ctx, problem), out_dir, job.stem)
    return Outcome(
        stem=job.stem,
        status=status,
        points=report.auto_points,
        max_points=report.auto_max_points,
        seconds=time.monotonic() - started,
        message=problem,
    )


def _run_job_in_worker(job: Job, root: Path, out_dir: Path) -> Outcome:
    try:
        return run_job(job, root, out_dir, _WORKER["ctx"])
    except BaseException as exc:  # even the error report could not be written: the grader writes one
        return Outcome.failed(job.stem, f"{type(exc).__name__}: {exc}")


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
            kind = kernel_kind(config, len(jobs), workers)
            if kind == "warm" and not config.run.threads:  # the kernel warming up beside each one needs a core too
                ctx = dataclasses.replace(ctx, threads=max(1, (os.cpu_count() or 1) // (2 * workers)))
            make = functools.partial(spawn_executor, _init_worker, (ctx, kind, os.getpid()))
            slots = [Slot(make, recycle_after=None if kind == "fork" else 25) for _ in range(min(workers, len(jobs)))]
            remove_import_files(out_dir)  # from here on it would describe other reports than those beside it
            _dispatch(slots, jobs, root, out_dir, ctx, result, reporter, progress)
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


def _ensure_report(job: Job, out_dir: Path, ctx: GradingContext, outcome: Outcome, before: int | None) -> Outcome:
    """Every submission ends with a report: when the worker wrote none (it died, or even its error
    report failed), the grader writes one that says why."""
    path = report_path(out_dir, job.stem)
    try:
        written = path.stat().st_mtime_ns != before
    except OSError:
        written = False
    report = read_report(path) if written else None
    # The report's hash is that of the bytes graded, which differs from discovery's when the file
    # changed in between: the report is this job's when it is of this file.
    if report is not None and report.submission.file == job.submission.rel:
        return outcome
    problem = outcome.message or "the worker wrote no report"
    try:
        write_report(error_report(job, ctx, problem), out_dir, job.stem)
    except Exception as exc:  # the outcome says so; the batch goes on
        problem += f"; and no report could be written ({type(exc).__name__}: {exc})"
    return dataclasses.replace(outcome, status="grader_error", message=problem)


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def _dispatch(
    slots: list[Slot],
    jobs: list[Job],
    root: Path,
    out_dir: Path,
    ctx: GradingContext,
    result: BatchResult,
    reporter,
    progress: Callable[[str], None],
) -> None:
    """Keep every slot busy until all jobs are done; record each outcome as it comes. A job whose
    worker died gets one more try in a new worker; after a second death its report says so."""
    queue = deque((job, 1) for job in jobs)
    free = list(slots)
    running: dict = {}
    before: dict[str, int | None] = {}
    for job in [job for job, _ in queue if job.unreadable]:
        before[job.stem] = _mtime(report_path(out_dir, job.stem))
        try:
            write_report(unreadable_report(job, ctx), out_dir, job.stem)
            outcome = Outcome(stem=job.stem, status="not_run", points=0, max_points=0, seconds=0)
        except Exception as exc:  # _ensure_report tries once more
            outcome = Outcome.failed(job.stem, f"{type(exc).__name__}: {exc}")
        _record(outcome, job, out_dir, ctx, before, result, reporter)
    queue = deque(item for item in queue if not item[0].unreadable)
    while queue or running:
        while queue and free:
            job, attempt = queue.popleft()
            slot = free.pop()
            if attempt == 1:
                before[job.stem] = _mtime(report_path(out_dir, job.stem))
                if reporter:
                    reporter.started(job.stem)
            try:
                future = slot.submit(_run_job_in_worker, job, root, out_dir)
            except Exception as exc:  # no worker could be started for it
                free.append(slot)
                _record(
                    Outcome.failed(job.stem, f"no worker process could be started ({type(exc).__name__}: {exc})"),
                    job,
                    out_dir,
                    ctx,
                    before,
                    result,
                    reporter,
                )
                continue
            running[future] = (slot, job, attempt)
        done, _ = wait(running, return_when=FIRST_COMPLETED)
        for future in done:
            slot, job, attempt = running.pop(future)
            free.append(slot)
            try:
                outcome = future.result()
            except BrokenProcessPool:
                death = slot.death()
                slot.replace()
                if attempt == 1:
                    progress(
                        f"The worker grading {plain(job.submission.rel)} died ({death}); "
                        f"grading it once more in a new worker."
                    )
                    queue.appendleft((job, 2))
                    continue
                outcome = Outcome.failed(
                    job.stem,
                    f"the worker process grading {job.submission.rel} died twice "
                    f"(the second time {death}); the machine may have run out of "
                    f"memory",
                )
            except Exception as exc:  # e.g. the job could not be sent to the worker
                outcome = Outcome.failed(job.stem, f"grader failure ({type(exc).__name__}: {exc})")
            _record(outcome, job, out_dir, ctx, before, result, reporter)


def _record(
    outcome: Outcome, job: Job, out_dir: Path, ctx: GradingContext, before: dict, result: BatchResult, reporter
) -> None:
    outcome = _ensure_report(job, out_dir, ctx, outcome, before.get(job.stem))
    result.outcomes.append(outcome)
    if reporter:
        reporter.finished(outcome)
