#!/usr/bin/env python
"""What does one never-ending cell cost a batch? A ratio from one run, next to the target of issue 14.

    .venv/bin/python benchmarks/never_ending_cell.py                 # 40 submissions, default subset
    .venv/bin/python benchmarks/never_ending_cell.py --position last # the endless notebook graded last

Builds N submissions (copies of submissions/*.zip under distinct team names, as batch_speed.py does)
twice: once as they are, once with one of them (by default the one in the middle of the grading order)
given an extra cell `while True: pass` after its training. Calibrates the data once, outside the
timed region (the solution's cell timings set the "auto" time limits; --shipped-calibration uses
reference/calibration.json's entry instead, as a tutor's first batch does), then times
`grader grade` on each batch, with the shipped grading.toml's limits ("auto") on the data graded by
default (6,000 / 1,000 real images; the generated stand-in when the real data is missing).

Target: wall time with the endless notebook / wall time without it <= 1.5. Never asserted: the
machine is shared; compare only figures taken in the same run. Writes benchmarks/results/
never_ending_cell.json (--out elsewhere).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import zipfile
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from batch_speed import REAL_DATA, REPO, build_submissions, grade_run, loadavg, say, timed, tool, write_config

RESULTS = REPO / "benchmarks" / "results" / "never_ending_cell.json"
TARGET = 1.5
ENDLESS = "while True:\n    pass"


def make_endless(zip_path: Path) -> None:
    """Rewrite the zip with an endless cell after the notebook's last cell that trains."""
    import nbformat

    with zipfile.ZipFile(zip_path) as zf:
        entries = [(info, zf.read(info)) for info in zf.infolist()]
    out = zip_path.with_suffix(".tmp")
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for info, data in entries:
            if info.filename.endswith(".ipynb"):
                nb = nbformat.reads(data.decode("utf-8"), as_version=4)
                trains = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and ".optimize(" in c.source]
                at = (trains[-1] + 1) if trains else len(nb.cells)
                nb.cells.insert(at, nbformat.v4.new_code_cell(ENDLESS))
                data = nbformat.writes(nb).encode("utf-8")
            zf.writestr(info, data)
    out.replace(zip_path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--submissions", type=int, default=40)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--train-size", type=int, default=6000, help="default: the graded default subset")
    ap.add_argument("--test-size", type=int, default=1000)
    ap.add_argument(
        "--position",
        choices=("first", "middle", "last"),
        default="middle",
        help="where in the grading order the endless notebook is (default: middle)",
    )
    ap.add_argument(
        "--shipped-calibration",
        action="store_true",
        help="use (a copy of) reference/calibration.json instead of calibrating on this machine",
    )
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, reports)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    n, workers = args.submissions, args.workers
    load_start = loadavg()
    say(
        f"never_ending_cell: {n} submissions, {workers} workers, data {args.train_size}/{args.test_size}, "
        f"endless notebook {args.position}, {os.cpu_count()} cores, load {load_start}"
    )
    tmp = Path(tempfile.mkdtemp(prefix="never-ending-"))
    logs = tmp / "logs"
    logs.mkdir()
    try:
        source = str(REAL_DATA) if REAL_DATA.is_dir() else ""
        toml = tmp / "grading.toml"
        # threads 0: the grader's default (cores shared out among the workers); limits as shipped ("auto").
        write_config(toml, source=source, train=args.train_size, test=args.test_size, workers=workers, threads=0)
        clean = build_submissions(n, tmp / "clean")
        shutil.copytree(tmp / "clean", tmp / "endless")
        order = sorted(p.name for p in clean)
        index = {"first": 0, "middle": n // 2, "last": n - 1}[args.position]
        endless_name = order[index]
        make_endless(tmp / "endless" / endless_name)
        say(f"endless notebook: {endless_name} (#{index + 1} of {n} in name order)")

        env = {
            **os.environ,
            "GRADER_CALIBRATION": str(tmp / "calibration.json"),
            "COLUMNS": "200",
            "PYTHONUNBUFFERED": "1",
        }
        if args.shipped_calibration:
            shutil.copy(REPO / "reference" / "calibration.json", tmp / "calibration.json")
            say("using a copy of reference/calibration.json (its timings set the limits)")
        else:
            say("calibrating (3 runs of the solution, not timed): the solution's cell timings set the limits")
            seconds, code, _ = timed(
                [*tool("grader"), "--config", str(toml), "calibrate", "--runs", "3"], env, logs / "calibrate.log"
            )
            if code != 0:
                raise SystemExit(f"calibration failed (exit {code}); see {logs / 'calibrate.log'}")
            say(f"calibrated in {seconds:.1f} s")

        runs = {}
        for label in ("clean", "endless"):
            runs[label] = grade_run(label, toml, tmp / label, tmp / f"out-{label}", env, logs, n, workers)
        report = json.loads((tmp / "out-endless" / f"{Path(endless_name).stem}.json").read_text(encoding="utf-8"))
        execution = report["execution"]
        endless_job = next((j for j in runs["endless"]["jobs"] if j["stem"] == Path(endless_name).stem), None)
        ratio = round(runs["endless"]["wall_s"] / runs["clean"]["wall_s"], 3)
        load_end = loadavg()

        print()
        print(f"{'run':<10}{'wall s':>9}{'Σ cells s':>11}{'statuses':>40}{'load 1-min':>14}")
        for label, r in runs.items():
            statuses = ", ".join(f"{k} {v}" for k, v in sorted(r["statuses"].items()))
            print(
                f"{label:<10}{r['wall_s']:>9.1f}{r['sum_duration_s']:>11.1f}{statuses:>40}"
                f"{r['load_before'].split()[0] + '→' + r['load_after'].split()[0]:>14}"
            )
        limits = execution.get("time_limits") or {}
        print()
        print(
            f"limits applied: {limits.get('cell_timeout_s')} s per cell, {limits.get('notebook_timeout_s')} s "
            f"per notebook ({limits.get('source')})"
        )
        print(
            f"the endless notebook: status {execution['status']}, its cells {execution['duration_s']:.1f} s, "
            f"its job {endless_job and endless_job['job_s']} s"
        )
        print(
            f"wall with it / wall without it = {ratio:.3f} (target <= {TARGET}: "
            f"{'meets' if ratio <= TARGET else 'MISSES'})"
        )

        result = {
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "submissions": n,
            "workers": workers,
            "data": [args.train_size, args.test_size],
            "data_source": source or "generated stand-in",
            "position": args.position,
            "calibration": "shipped" if args.shipped_calibration else "made on this machine (3 runs)",
            "endless_submission": endless_name,
            "load": [load_start, load_end],
            "time_limits": limits,
            "endless_execution": {
                k: execution.get(k) for k in ("status", "duration_s", "notes", "cells_run", "cells_total")
            },
            "endless_job_s": endless_job and endless_job["job_s"],
            "ratio_endless_over_clean": ratio,
            "target": TARGET,
            "runs": runs,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        say(f"results written to {args.out}")
        return 0
    finally:
        if args.keep:
            say(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
