#!/usr/bin/env python
"""CPU time against wall-clock time of the solution's cells: quiet, beside busy processes, throttled.

    .venv/bin/python benchmarks/cpu_time_limits.py                  # default subset, 2 runs per condition
    .venv/bin/python benchmarks/cpu_time_limits.py --small          # the self-check's subset (1,000 / 500)
    .venv/bin/python benchmarks/cpu_time_limits.py --runs 3 --busy 2 --throttle 3 --threads 1

Runs `reference/solution.ipynb` the way a calibration does (a fresh, warmed-up kernel, the same
pipeline) under three conditions, one after another:

- `as is`: the machine as it is (say what else runs: the load average is recorded);
- `busy`: with `--busy` processes beside it that each burn a core (`while True: pass`);
- `throttled`: the whole run in a cgroup with a CPU quota of 1/`--throttle` of one core (a laptop
  that many times slower; needs root and the cgroup `cpu` controller, v1 or v2, else skipped).

For each run it records every code cell's CPU seconds (the kernel's processes, as the time limits
count them) and wall-clock seconds, the "auto" per-cell limit the run would give in CPU time (10 ×
its slowest cell, at least 20 s) and the one the same rule gives in wall-clock time (what the grader
derived before), and whether the calibration would call the machine busy (its timings then stay out
of the cache). Nothing is asserted; figures mean something only side by side, from one run. Writes
benchmarks/results/cpu_time_limits.json (--out elsewhere).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "cpu_time_limits.json"
BURN = "import ctypes\nctypes.CDLL(None).prctl(1, 9)\nwhile True:\n    pass\n"


def worker(small: bool, threads: int) -> None:
    """One run of the solution; prints its cells' CPU and wall-clock seconds as JSON."""
    import asyncio
    import shutil

    sys.path.insert(0, str(REPO))
    from grader.commands.check import check_config
    from grader.config import load_config
    from grader.engine.batch import prepare_context
    from grader.engine.calibrate import _observe, busy_reason
    from grader.intake.types import Workspace

    config = load_config(REPO / "grading.toml")
    if small:
        config = check_config(config, full=False)
    if threads:
        config = config.model_copy(update={"run": config.run.model_copy(update={"threads": threads})})
    work = Path(tempfile.mkdtemp(prefix="g6-bench-cpu-"))
    try:
        ctx = prepare_context(config, work, 1, auto_calibrate=False, progress=lambda text: None)
        solution = REPO / "reference" / "solution.ipynb"
        folder = work / "run"
        folder.mkdir()
        shutil.copy(solution, folder / solution.name)
        execution, _ = asyncio.run(_observe(Workspace(dir=folder, notebook=folder / solution.name), ctx))
        cpu, wall = execution.cell_seconds, execution.cell_wall_seconds
        print(
            json.dumps(
                {
                    "data": ctx.data.info.description,
                    "clock": execution.clock,
                    "status": execution.info.status,
                    "threads": ctx.threads,
                    "cpu": [round(v, 2) for v in cpu],
                    "wall": [round(v, 2) for v in wall],
                    "busy": busy_reason(cpu, wall, execution.clock, os.getloadavg()[0]),
                }
            )
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _cgroup(fraction: int) -> Path | None:
    if os.geteuid() != 0:
        return None
    for base, v1 in ((Path("/sys/fs/cgroup/cpu"), True), (Path("/sys/fs/cgroup"), False)):
        try:
            if v1 and (base / "cpu.cfs_quota_us").exists():
                group = base / f"g6-bench-{os.getpid()}"
                group.mkdir(exist_ok=True)
                (group / "cpu.cfs_period_us").write_text("100000")
                (group / "cpu.cfs_quota_us").write_text(str(100000 // fraction))
                return group
            if not v1 and "cpu" in (base / "cgroup.subtree_control").read_text():
                group = base / f"g6-bench-{os.getpid()}"
                group.mkdir(exist_ok=True)
                (group / "cpu.max").write_text(f"{100000 // fraction} 100000")
                return group
        except OSError:
            continue
    return None


def one_run(small: bool, cgroup: Path | None, threads: int) -> dict:
    argv = [sys.executable, __file__, "--worker", "--threads", str(threads)] + (["--small"] if small else [])
    # Into the cgroup before it starts anything: every process it starts (the kernel) is in it too.
    pre = (lambda: (cgroup / "cgroup.procs").write_text(str(os.getpid()))) if cgroup else None
    load = os.getloadavg()[0]
    done = subprocess.run(argv, capture_output=True, text=True, preexec_fn=pre, cwd=REPO)
    if done.returncode != 0:
        raise SystemExit(f"the worker failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["load_before"], result["load_after"] = load, os.getloadavg()[0]
    slowest_cpu, slowest_wall = max(result["cpu"]), max(result["wall"])
    result.update(
        {
            "sum_cpu": round(sum(result["cpu"]), 2),
            "sum_wall": round(sum(result["wall"]), 2),
            "wall_over_cpu": round(sum(result["wall"]) / max(sum(result["cpu"]), 0.01), 2),
            "cell_limit_cpu": max(20, round(10 * slowest_cpu)),
            "cell_limit_if_wall": max(20, round(10 * slowest_wall)),
        }
    )
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--small", action="store_true", help="the self-check's subset (1,000 / 500)")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--busy", type=int, default=2, help="CPU-bound processes beside the 'busy' runs")
    ap.add_argument("--throttle", type=int, default=3, help="the 'throttled' runs get 1/N of one core")
    ap.add_argument("--threads", type=int, default=0, help="torch threads per kernel (0: as a self-check, the cores)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.small, args.threads)
        return 0
    conditions: dict[str, list[dict]] = {}
    print(f"load average at start: {os.getloadavg()}", flush=True)
    conditions["as is"] = [one_run(args.small, None, args.threads) for _ in range(args.runs)]
    burners = [subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(args.busy)]
    try:
        time.sleep(2)
        conditions[f"busy ({args.busy} processes burning a core each)"] = [
            one_run(args.small, None, args.threads) for _ in range(args.runs)
        ]
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    group = _cgroup(args.throttle)
    if group is None:
        print("throttled runs skipped: needs root and the cgroup cpu controller", flush=True)
    else:
        try:
            conditions[f"throttled (1/{args.throttle} of a core)"] = [
                one_run(args.small, group, args.threads) for _ in range(args.runs)
            ]
        finally:
            for pid in (group / "cgroup.procs").read_text().split():
                (group.parent / "cgroup.procs").write_text(pid)
            group.rmdir()
    for name, runs in conditions.items():
        for run in runs:
            print(
                f"{name:45s} CPU {run['sum_cpu']:6.2f} s  wall {run['sum_wall']:6.2f} s  wall/CPU {run['wall_over_cpu']:5.2f}  "
                f"cell limit {run['cell_limit_cpu']} s CPU (by wall: {run['cell_limit_if_wall']} s)  "
                f"busy: {run['busy'] or 'no'}",
                flush=True,
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "cores": os.cpu_count(),
                "small": args.small,
                "threads": args.threads,
                "conditions": conditions,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
