"""Running a batch's jobs: worker processes in slots, a second try for a job whose worker died, and
one report for every job whatever happens.

A worker returns what it wrote (`Outcome.written`: the report's path and the hash of its bytes);
the batch takes a job as graded when that report is on disk with those bytes, and otherwise writes
the report that says the grader failed. A worker that died returned nothing: its job is graded once
more in a new worker, and after a second death the batch writes the failure's report, over anything
the dying worker may have left.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import logging
import os
import signal
import sys
import tempfile
import time
import traceback
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import dataclass
from multiprocessing.util import Finalize
from pathlib import Path

from grader.checks.framework import placeholder_checks
from grader.config import Config
from grader.engine.planning import GRADER_ERROR, Job
from grader.engine.slots import BrokenProcessPool, Slot, die_with_parent, spawn_executor
from grader.models import ExecutionInfo, Report, Violation
from grader.pipeline import Graded, GradingContext, grade_submission, grade_submission_async
from grader.report.score import build_report
from grader.report.store import write_executed, write_report
from grader.run.kernels import ForkKernels, FreshKernels, WarmKernels
from grader.util.fsclean import WORKER_PREFIX, owned_dir, release_dir
from grader.util.textsafe import plain

__all__ = ["Outcome", "dispatch", "error_report", "kernel_kind", "run_job", "start_slots"]


@dataclass(frozen=True)
class Written:
    """A report a worker wrote: where, and the hash of the bytes it wrote there."""

    path: Path
    sha256: str

    @classmethod
    def of(cls, path: Path) -> Written:
        return cls(path=path, sha256=hashlib.sha256(path.read_bytes()).hexdigest())

    def still_there(self) -> bool:
        """Is this report on disk as it was written (a later write, or none, is another story)?"""
        try:
            return hashlib.sha256(self.path.read_bytes()).hexdigest() == self.sha256
        except OSError:
            return False


@dataclass
class Outcome:
    stem: str
    status: str  # the execution status, or "cached" / "grader_error"
    points: float
    max_points: float
    seconds: float
    message: str = ""
    written: Written | None = None  # the report written for it; None: no report is known to be there

    @classmethod
    def failed(cls, stem: str, message: str) -> Outcome:
        """A submission the grader failed on (`message` says how): no points, no time, status grader_error."""
        return cls(stem=stem, status="grader_error", points=0, max_points=0, seconds=0, message=message)


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
        path = write_report(report, out_dir, job.stem)
    except Exception as exc:  # then a report that says so
        problem = f"the report could not be written ({type(exc).__name__}: {exc})"
        status = "grader_error"
        path = write_report(error_report(job, ctx, problem), out_dir, job.stem)
    return Outcome(
        stem=job.stem,
        status=status,
        points=report.auto_points,
        max_points=report.auto_max_points,
        seconds=time.monotonic() - started,
        message=problem,
        written=Written.of(path),
    )


def _run_job_in_worker(job: Job, root: Path, out_dir: Path) -> Outcome:
    try:
        return run_job(job, root, out_dir, _WORKER["ctx"])
    except BaseException as exc:  # even the error report could not be written: the grader writes one
        return Outcome.failed(job.stem, f"{type(exc).__name__}: {exc}")


def _settle(job: Job, out_dir: Path, ctx: GradingContext, outcome: Outcome) -> Outcome:
    """Every submission ends with a report. The job is graded when its worker said which report it
    wrote and that report is on disk as written; otherwise (the worker died, its report failed, or
    the file is not what it wrote) the batch writes the report that says the grader failed."""
    if outcome.written is not None and outcome.written.still_there():
        return outcome
    problem = outcome.message or "the worker wrote no report"
    try:
        written = Written.of(write_report(error_report(job, ctx, problem), out_dir, job.stem))
    except Exception as exc:  # the outcome says so; the batch goes on
        problem += f"; and no report could be written ({type(exc).__name__}: {exc})"
        written = None
    return dataclasses.replace(outcome, status="grader_error", message=problem, written=written)


def start_slots(ctx: GradingContext, config: Config, jobs: int, workers: int) -> tuple[list[Slot], GradingContext]:
    """The slots for `jobs` jobs (no more than `workers`), and the context their workers grade with."""
    kind = kernel_kind(config, jobs, workers)
    if kind == "warm" and not config.run.threads:  # the kernel warming up beside each one needs a core too
        ctx = dataclasses.replace(ctx, threads=max(1, (os.cpu_count() or 1) // (2 * workers)))
    make = functools.partial(spawn_executor, _init_worker, (ctx, kind, os.getpid()))
    slots = [Slot(make, recycle_after=None if kind == "fork" else 25) for _ in range(min(workers, jobs))]
    return slots, ctx


def dispatch(
    slots: list[Slot],
    jobs: list[Job],
    root: Path,
    out_dir: Path,
    ctx: GradingContext,
    outcomes: list[Outcome],
    reporter,
    progress: Callable[[str], None],
) -> None:
    """Keep every slot busy until all jobs are done; add each outcome to `outcomes` as it comes. A
    job whose worker died gets one more try in a new worker; after a second death its report says so."""
    queue = deque((job, 1) for job in jobs)
    free = list(slots)
    running: dict = {}

    def record(outcome: Outcome, job: Job) -> None:
        outcome = _settle(job, out_dir, ctx, outcome)
        outcomes.append(outcome)
        if reporter:
            reporter.finished(outcome)

    for job in [job for job, _ in queue if job.unreadable]:
        try:
            path = write_report(unreadable_report(job, ctx), out_dir, job.stem)
            outcome = Outcome(
                stem=job.stem, status="not_run", points=0, max_points=0, seconds=0, written=Written.of(path)
            )
        except Exception as exc:  # _settle tries once more
            outcome = Outcome.failed(job.stem, f"{type(exc).__name__}: {exc}")
        record(outcome, job)
    queue = deque(item for item in queue if not item[0].unreadable)
    while queue or running:
        while queue and free:
            job, attempt = queue.popleft()
            slot = free.pop()
            if attempt == 1 and reporter:
                reporter.started(job.stem)
            try:
                future = slot.submit(_run_job_in_worker, job, root, out_dir)
            except Exception as exc:  # no worker could be started for it
                free.append(slot)
                record(
                    Outcome.failed(job.stem, f"no worker process could be started ({type(exc).__name__}: {exc})"), job
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
            record(outcome, job)
