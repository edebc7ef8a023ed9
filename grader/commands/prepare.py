"""`grader prepare`: once, before the shards of a course run (on a cluster), what every shard needs.

It stages the data into the cache, calibrates on it (3 runs of the solution, under the calibration
file's lock; nothing when the cache already holds an entry), runs the import pre-flight over every
submission, and works out what one shard needs from Slurm: cores (one per worker), memory and time
(from the calibrated time of the solution and the per-notebook limit). Shards then only read the
calibration: they grade with the same accuracy range and time limits.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from statistics import median

from grader.calibration import store as calibration_store
from grader.config import Config
from grader.engine.preflight import Preflight, preflight
from grader.models import CalibrationRef, TimeLimits
from grader.util.fsclean import WORK_PREFIX, owned_dir, release_dir, sweep_stale

# Memory (MiB). Measured: a batch of the example submissions on the default subset (6,000 / 1,000)
# with 2 workers peaked at 1,786 MiB in all (the sum of PSS over the grader's processes: the grader,
# 2 workers, their fork servers with torch imported, the kernels, the PDF readers); the largest single
# process at 877 MiB. A worker with its fork server and kernels thus needs about 0.8 GiB; we ask for
# 1.25 GiB, as a student's network or batch may be larger than the solution's, and a kernel's
# in-memory /tmp counts towards a job's memory under Slurm's cgroups; the grader's own process and
# the pages at the end get 1 GiB. Over its --mem, Slurm kills the whole shard.
WORKER_MB, GRADER_MB = 1280, 1024
# Time one notebook may take on the cluster: a student's code slower than the solution (extra passes,
# progress bars), plus the grader's part per submission (about 0.2 s, but kernels are started and
# stopped on a loaded node); a fixed start (data check, fork servers importing torch) and room for two
# notebooks stopped at their limit.
SLOWER_THAN_SOLUTION, PER_SUBMISSION_S, START_S = 3, 10, 180


@dataclass(frozen=True)
class ShardResources:
    cores: int
    memory_mb: int
    seconds: int
    why: str

    @property
    def slurm_time(self) -> str:
        minutes = math.ceil(self.seconds / 60)
        return f"{minutes // 60:02d}:{minutes % 60:02d}:00"

    @property
    def sbatch_options(self) -> list[str]:
        return [f"--cpus-per-task={self.cores}", f"--mem={self.memory_mb}M", f"--time={self.slurm_time}"]


def shard_resources(
    *, workers: int, largest_shard: int, solution_seconds: float | None, limits: TimeLimits
) -> ShardResources:
    """What one shard of `largest_shard` submissions, graded by `workers` workers, asks Slurm for."""
    memory = GRADER_MB + WORKER_MB * workers
    rounds = math.ceil(largest_shard / workers)
    if solution_seconds is None:  # no timings: every notebook may take its whole limit
        per_notebook, basis = limits.notebook_timeout_s, f"no timings of the solution: {limits.notebook_timeout_s:g} s"
    else:
        per_notebook = SLOWER_THAN_SOLUTION * solution_seconds + PER_SUBMISSION_S
        basis = (
            f"{SLOWER_THAN_SOLUTION} × the solution's {solution_seconds:.1f} s + {PER_SUBMISSION_S} s "
            f"= {per_notebook:.0f} s"
        )
    seconds = START_S + rounds * per_notebook + 2 * limits.notebook_timeout_s
    seconds = max(600, math.ceil(seconds / 300) * 300)  # whole 5 minutes, at least 10
    why = (
        f"{workers} worker(s), one core each; memory {GRADER_MB} MiB + {WORKER_MB} MiB per worker; time: "
        f"{START_S} s to start + {rounds} notebook(s) per worker ({largest_shard} submission(s) in the "
        f"largest shard) × ({basis}) + 2 notebooks at their limit of {limits.notebook_timeout_s:g} s, "
        f"rounded up to whole 5 minutes"
    )
    return ShardResources(cores=workers, memory_mb=memory, seconds=int(seconds), why=why)


@dataclass
class Prepared:
    data_description: str
    calibration: CalibrationRef | None
    limits: TimeLimits
    submissions: int
    per_shard: list[int]
    resources: ShardResources
    preflight: Preflight | None

    def commands(self, submissions: Path, out: Path, scripts: str = "scripts/slurm") -> list[str]:
        """The exact sbatch commands that grade the shards and then merge them."""
        shards = len(self.per_shard)
        grade = [
            "sbatch",
            "--parsable",
            f"--array=1-{shards}",
            *self.resources.sbatch_options,
            f"{scripts}/grade-shard.sbatch",
            str(submissions),
            str(out),
        ]
        merge = "sbatch --dependency=afterok:$ARRAY_JOB " + shlex.join([f"{scripts}/merge.sbatch", str(out)])
        return ["ARRAY_JOB=$(" + shlex.join(grade) + ")", merge]


def solution_seconds(entry: dict | None) -> float | None:
    runs = [run for run in (entry or {}).get("cell_seconds", []) if run]
    return median(sum(run) for run in runs) if runs else None


def prepare(
    root: Path,
    config: Config,
    *,
    shards: int,
    workers: int,
    runs: int = 3,
    progress: Callable[[str], None] = print,
    show_preflight: Callable[[Preflight], None] | None = None,
) -> Prepared:
    """Stage, calibrate (when the data has no calibration yet), pre-flight, and size one shard."""
    from grader.engine.batch import Shard, plan, prepare_context
    from grader.engine.calibrate import ensure_calibration, time_limits

    if shards < 1:
        raise ValueError(f"--shards must be at least 1, got {shards}")
    sweep_stale()
    work = owned_dir(WORK_PREFIX)
    try:
        ctx = prepare_context(config, work, workers, progress=progress, auto_calibrate=False)
        sheet = config.sheet_def
        if ensure_calibration(ctx, runs=runs, progress=progress) is None:
            raise calibration_store.CalibrationError(
                f"no calibration for {ctx.data.info.description} could be made: the solution notebook "
                f"({sheet.solution}) is needed, and the shards would stop without one"
            )
        limits = time_limits(config.limits, ctx.data.info, sheet, threads=ctx.threads)
        found = calibration_store.lookup(
            sheet, ctx.data.info.fingerprint, need=calibration_store.usable(sheet.range_networks)
        )
        planned = plan(root, config, work, shard=None, force=True, grader_hash="")
        owners = [Shard(k, shards) for k in range(1, shards + 1)]
        per_shard = [sum(1 for s in planned.submissions if shard.owns(s.rel)) for shard in owners]
        found_preflight = None
        if planned.jobs:
            found_preflight = preflight([job.submission for job in planned.jobs], config, work, ctx.kernel)
            if show_preflight is not None:
                show_preflight(found_preflight)
    finally:
        release_dir(work)
    resources = shard_resources(
        workers=workers,
        largest_shard=max(per_shard),
        limits=limits,
        solution_seconds=solution_seconds(found.entry if found else None),
    )
    return Prepared(
        data_description=ctx.data.info.description,
        calibration=limits.calibration,
        limits=limits,
        submissions=len(planned.submissions),
        per_shard=per_shard,
        resources=resources,
        preflight=found_preflight,
    )
