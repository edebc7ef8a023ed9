"""What the sheet's solution notebook does on the same data: the range of test accuracies it
reaches, and the time a notebook may take.

A calibration entry holds, per sheet and staged data set (by its fingerprint), the test accuracies
the sheet records (`Sheet.recorded_accuracies`: per epoch, or one) of several runs of its solution
notebook, by network key, and the CPU seconds each of its code cells took (the kernel's processes,
as the time limits count them; "clock": "cpu"; entries made before hold wall-clock seconds and no
"clock"). A run on a busy machine (its cells took more than BUSY_RATIO times their CPU time in
wall-clock time) keeps its accuracies, but not its timings. Entries are kept by
grader/calibration/store.py (the cache's `calibration.json`, with the calibration the sheet ships in
its reference folder as a read-only default). `grader prepare` and `grader calibrate` (re)compute
the entry for the configured data; `grader grade` computes it on first use when the solution is
there, under the calibration file's lock; a shard (`--shard K/N`) never does.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from statistics import median

from grader.calibration import store
from grader.calibration.store import CalibrationError, CalibrationMissing
from grader.checks.framework import AccuracyRange
from grader.config import Limits
from grader.intake.types import Workspace
from grader.models import DataInfo, TimeLimits
from grader.pipeline import observe
from grader.run.execute import configured_time_limits, cpu_time_limits
from grader.run.kernels import FreshKernels
from grader.sheet import Sheet

__all__ = [
    "CalibrationError",
    "CalibrationMissing",
    "accuracy_range",
    "calibrate",
    "calibration_file",
    "ensure_calibration",
    "load_calibration",
    "time_limits",
]

# "auto" time limits: a cell may take CELL_FACTOR times the solution's slowest cell on the same data,
# at least CELL_FLOOR_S; a notebook one cell at that limit plus NOTEBOOK_FACTOR times the solution's
# whole run, at least NOTEBOOK_FLOOR_S. The factors leave room for slower students' code (an extra
# pass over the training set per epoch, progress bars, a few more networks) and a busier or slower
# machine; the floors for tiny data, where the solution's cells take a fraction of a second. Every
# kernel has imported torch before the notebook starts, so no cell pays for that.
CELL_FACTOR, CELL_FLOOR_S = 10, 20.0
NOTEBOOK_FACTOR, NOTEBOOK_FLOOR_S = 10, 120.0
# A calibration run whose cells took more than BUSY_RATIO times their CPU time in wall-clock time had
# less than half a core for its kernel: the machine was busy with other work. Its CPU seconds would
# still be about right, but a busy machine inflates them too (shared caches, a sibling hyperthread),
# so its timings are not kept: the limits of every later batch would follow from them. Where the CPU
# time cannot be read (wall-clock timings), a load average above BUSY_LOAD per core says the same.
BUSY_RATIO, BUSY_LOAD = 2.0, 1.5


def calibration_file() -> Path:
    """Where a calibration is written: GRADER_CALIBRATION (the tests keep their own), else the cache's file."""
    return store.writable_file()


def load_calibration(sheet: Sheet, path: Path | None = None) -> dict:
    """Every entry of `sheet` by data fingerprint: of one file, or (no path) as lookup finds them
    along the search path."""
    if path is None:
        return store.load_all(sheet)
    data = store.load_file(path)
    prefix = store.entry_key(sheet.name, "")
    return {
        **{k: v for k, v in data.items() if "/" not in k},
        **{k[len(prefix) :]: v for k, v in data.items() if k.startswith(prefix)},
    }


def _entry(sheet: Sheet, fingerprint: str, path: Path | None) -> tuple[dict | None, Path | None]:
    found = store.lookup(sheet, fingerprint, need=store.usable(sheet.range_networks), path=path)
    return (found.entry, found.path) if found else (None, None)


def accuracy_range(sheet: Sheet, fingerprint: str, path: Path | None = None) -> AccuracyRange | None:
    """Per epoch (or measurement), the lowest and the highest the solution's runs of the sheet's
    accuracy networks reached. How a check uses them is the sheet's: one may take no lower bound
    (a network with another mistake learns more slowly, which costs its own check already), another
    the lowest less a margin."""
    entry, _ = _entry(sheet, fingerprint, path)
    if not entry:
        return None
    keys = sheet.range_networks
    runs = [run for key in keys for run in entry[key]]
    epochs = len(entry[keys[0]][0])
    same = [run for run in runs if len(run) == epochs]
    low = tuple(min(run[i] for run in same) for i in range(epochs))
    high = tuple(max(run[i] for run in same) for i in range(epochs))
    return AccuracyRange(
        low=low, high=high, source=f"{len(entry[keys[0]])} run(s) of the solution on {entry.get('data', fingerprint)}"
    )


def time_limits(
    limits: Limits, data: DataInfo, sheet: Sheet, path: Path | None = None, *, threads: int | None = None
) -> TimeLimits:
    """The limits for notebooks on `data`: numbers from grading.toml stay; "auto" is derived from
    the solution's timings on the same data, or falls back to generous numbers where there are none.

    `threads`: torch's threads per kernel of the batch. The same work costs more CPU time on more
    threads (each wakes for a small part of an operation): where the calibration ran on fewer, its
    timings are scaled by the ratio (a student's laptop with 8 cores against a calibration on 2)."""
    entry, found_in = _entry(sheet, data.fingerprint, path)
    ref = store.Found(data.fingerprint, entry, found_in).ref if entry and found_in is not None else None
    if limits.cell_timeout_s != "auto" and limits.notebook_timeout_s != "auto":
        return configured_time_limits(limits).model_copy(update={"calibration": ref})
    runs = [run for run in (entry or {}).get("cell_seconds", []) if run]
    if not runs:
        busy = " (made on a busy machine: its timings were not kept)" if (entry or {}).get("busy_runs") else ""
        return configured_time_limits(
            limits,
            f"no timings of the solution on this data in {store.places(sheet) if path is None else path}"
            f"{busy}; `grader prepare` or `grader calibrate` records them",
        ).model_copy(update={"calibration": ref})
    assert entry is not None  # it holds the runs
    # Medians over the runs: one run slowed down by a busy machine does not set the limits.
    slowest, whole = median([max(run) for run in runs]), median([sum(run) for run in runs])
    # Entries made before the limits counted CPU time hold wall-clock seconds (at least the CPU
    # seconds of a single-threaded kernel): used as they are, they give limits as generous or more.
    unit = {"cpu": " of CPU time", "wall": ", wall-clock seconds (the CPU time could not be read)"}.get(
        str(entry.get("clock")), ", wall-clock seconds of a calibration from before CPU timings"
    )
    explained = []
    calibrated_threads = entry.get("threads") if entry.get("clock") == "cpu" else None
    scale, scaled = 1.0, ""
    if threads and isinstance(calibrated_threads, int) and 0 < calibrated_threads < threads:
        scale = threads / calibrated_threads
        scaled = f", × {scale:g} for {threads} threads per kernel against {calibrated_threads} when calibrated"
    if limits.cell_timeout_s == "auto":
        cell = max(CELL_FLOOR_S, round(CELL_FACTOR * slowest * scale))
        explained.append(
            f"per cell {CELL_FACTOR} × the solution's slowest cell ({slowest:.1f} s{unit}, the median "
            f"of its runs{scaled}), at least {CELL_FLOOR_S:g} s"
        )
    else:
        cell = float(limits.cell_timeout_s)
        explained.append("per cell from grading.toml")
    if limits.notebook_timeout_s == "auto":
        notebook = max(NOTEBOOK_FLOOR_S, round(cell + NOTEBOOK_FACTOR * whole * scale))
        explained.append(
            f"per notebook one cell at its limit plus {NOTEBOOK_FACTOR} × the solution's whole "
            f"run ({whole:.1f} s{scaled}), at least {NOTEBOOK_FLOOR_S:g} s"
        )
    else:
        notebook = float(limits.notebook_timeout_s)
        explained.append("per notebook from grading.toml")
    return cpu_time_limits(
        float(cell),
        float(notebook),
        f"{'; '.join(explained)} ({len(runs)} run(s) of the solution on the same data, {found_in})",
        calibration=ref,
    )


def busy_reason(
    cpu: list[float], wall: list[float], clock: str, load: float | None = None, cores: int | None = None
) -> str | None:
    """Why a calibration run's timings say more about a busy machine than about the solution, or
    None when they can be kept. `cpu`, `wall`: seconds per code cell; `clock`: what `cpu` counts
    ("wall" where the CPU time could not be read); `load`: the load average during the run."""
    cores = cores or os.cpu_count() or 1
    spent_cpu, spent_wall = sum(cpu), sum(wall)
    if clock == "cpu" and spent_wall > 1.0 and spent_wall > BUSY_RATIO * max(spent_cpu, 0.01):
        return (
            f"its cells took {spent_wall / max(spent_cpu, 0.01):.1f} × their CPU time in wall-clock time "
            f"({spent_wall:.1f} s for {spent_cpu:.1f} s of CPU)"
        )
    if clock != "cpu" and load is not None and load > BUSY_LOAD * cores:
        return f"the load average was {load:.1f} on {cores} core(s)"
    return None


async def _observe(workspace, ctx):
    async with FreshKernels(ctx.kernel_context) as kernels:
        execution, observations, _ = await observe(workspace, ctx, kernels)
    return execution, observations


def calibrate(
    ctx, runs: int = 3, path: Path | None = None, solution: Path | None = None, progress=print, *, locked: bool = False
) -> AccuracyRange:
    """Run the solution `runs` times on ctx's data and store its accuracies under the data's fingerprint.
    `solution`: the sheet's solution notebook by default."""
    sheet = ctx.config.sheet_def
    solution = solution or sheet.solution
    if not solution.exists():
        raise CalibrationError(
            f"{solution} is missing: calibration needs the solution notebook (it is not part of the students' package)"
        )
    results: dict[str, list[list[float]]] = {network.key: [] for network in sheet.networks}
    cell_seconds: list[list[float]] = []
    cell_wall_seconds: list[list[float]] = []
    busy_runs: list[dict] = []
    clocks: set[str] = set()
    # The solution runs under the configured limits, or the fallback where they say "auto" (never
    # under limits derived from an earlier calibration, which a slower solution might exceed).
    ctx = dataclasses.replace(ctx, time_limits=None)
    for run in range(runs):
        folder = Path(tempfile.mkdtemp(prefix="calibrate-", dir=ctx.work_dir))
        try:
            shutil.copy(solution, folder / solution.name)
            workspace = Workspace(dir=folder, notebook=folder / solution.name)
            # the same way through as every submission
            execution, observations = asyncio.run(_observe(workspace, ctx))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        if execution.info.status != "ok" or observations.status != "ok":
            raise CalibrationError(
                f"the solution did not run cleanly on {ctx.data.info.description}: "
                f"{execution.info.status}, {execution.info.errors or observations.message}"
            )
        recorded = sheet.recorded_accuracies(observations, ctx.config.sheet_settings)
        for key in results:
            if key not in recorded:
                raise CalibrationError(f"the solution recorded no accuracies for {key}")
            results[key].append([round(v, 6) for v in recorded[key]])
        cpu, wall = [round(v, 2) for v in execution.cell_seconds], [round(v, 2) for v in execution.cell_wall_seconds]
        load = _load()
        busy = busy_reason(cpu, wall, execution.clock, load)
        said = (
            f"calibration run {run + 1}/{runs}: "
            + ", ".join(f"{key} {values[-1]}" for key, values in results.items())
            + f", cells {cpu} s {'of CPU time' if execution.clock == 'cpu' else '(wall-clock)'}"
        )
        if busy:
            busy_runs.append({"why": busy, "load": load})
            said += f"; the machine was busy ({busy}): the timings of this run are not kept"
        else:
            cell_seconds.append(cpu)
            cell_wall_seconds.append(wall)
            clocks.add(execution.clock)
        progress(said)
    path = path or calibration_file()
    entry = {
        "data": ctx.data.info.description,
        **results,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if cell_seconds:
        # Per code cell of each run kept (in a kernel that had imported torch, torchvision and
        # matplotlib before, as every kernel does): CPU seconds of the kernel's processes, and
        # wall-clock seconds for the record. "auto" time limits follow from the CPU seconds.
        entry.update(
            {
                "cell_seconds": cell_seconds,
                "cell_wall_seconds": cell_wall_seconds,
                "clock": "cpu" if clocks == {"cpu"} else "wall",
                "threads": ctx.threads,
            }
        )
    if busy_runs:
        # Runs on a busy machine: their accuracies count, their timings never set a limit.
        entry["busy_runs"] = busy_runs
        if not cell_seconds:
            progress(
                f'The machine was busy during every calibration run: no timings were kept, so "auto" time '
                f"limits use the fallback ({configured_time_limits(ctx.config.limits).cell_timeout_s:g} s of CPU "
                f"time per cell) until `grader calibrate` runs on a quieter machine."
            )
    store.save(sheet.name, ctx.data.info.fingerprint, entry, path, locked=locked)
    found = accuracy_range(sheet, ctx.data.info.fingerprint, path)
    if found is None:
        raise CalibrationError(f"{path or calibration_file()}: the calibration just written cannot be read back")
    return found


def _load() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):  # Windows
        return None


def ensure_calibration(ctx, *, runs: int = 3, progress=print) -> AccuracyRange | None:
    """The accuracy range for ctx's data, calibrating first when there is none: under the
    calibration file's lock, looking again once it is held (another grader may have calibrated the
    same data meanwhile), so that concurrent batches calibrate once, not once each."""
    fingerprint = ctx.data.info.fingerprint
    sheet = ctx.config.sheet_def
    found = accuracy_range(sheet, fingerprint)
    if found is not None or not sheet.solution.exists():
        return found
    target = calibration_file()
    with store.holding_lock(target, on_wait=progress):
        found = accuracy_range(sheet, fingerprint)
        if found is not None:
            where = store.lookup(sheet, fingerprint)
            progress(f"Calibrated meanwhile by another grader: {where.path if where else target}")
            return found
        progress(
            f"No reference accuracies for {ctx.data.info.description} yet: running the solution notebook "
            f"{runs} times to calibrate (once; stored in {target})."
        )
        return calibrate(ctx, runs=runs, path=target, progress=progress, locked=True)
