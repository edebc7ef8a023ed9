"""Do the verdicts depend on the data size? Grade the example submissions (and the solution) on the
default subset and on the full data, and compare the points per check.

    .venv/bin/python benchmarks/verdicts_subset_vs_full.py [--workers 2] [--runs 3]

Needs the real Fashion-MNIST (../shared/data/fashion-mnist). Each data set is calibrated first with
`--runs` runs of the solution (into a temporary calibration file; reference/calibration.json is not
touched). Takes long on the full data: every notebook trains on 60,000 images.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = (ROOT / ".." / "shared" / "data" / "fashion-mnist").resolve()


def grade(config: Path, submissions: Path, out: Path, workers: int, env: dict) -> dict[str, dict[str, float]]:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grader",
            "--config",
            str(config),
            "grade",
            str(submissions),
            "--out",
            str(out),
            "--workers",
            str(workers),
            "--force",
        ],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    points = {}
    for path in sorted(out.glob("*.json")):
        report = json.loads(path.read_text(encoding="utf-8"))
        points[report["submission"]["file"]] = {c["id"]: c["points"] for c in report["checks"]}
    return points


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3, help="calibration runs per data set")
    args = parser.parse_args()
    if not SOURCE.exists():
        print(f"{SOURCE} not found: this comparison needs the real data", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="verdicts-"))
    env = {**os.environ, "GRADER_CALIBRATION": str(work / "calibration.json")}
    submissions = work / "submissions"
    shutil.copytree(ROOT / "submissions", submissions)
    shutil.copy(
        ROOT / "reference" / "solution.ipynb", submissions / "Reference_Solution_7000000_Model_Answer_7000001.ipynb"
    )
    base = (ROOT / "grading.toml").read_text(encoding="utf-8")
    results = {}
    for label, sizes in (("subset", None), ("full", (0, 0))):
        text = base.replace('source = "../shared/data/fashion-mnist"', f'source = "{SOURCE}"')
        if sizes:
            text = text.replace("train_size = 6000", "train_size = 0").replace("test_size = 1000", "test_size = 0")
        config = work / f"{label}.toml"
        config.write_text(text, encoding="utf-8")
        started = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "grader", "--config", str(config), "calibrate", "--runs", str(args.runs)],
            check=True,
            env=env,
        )
        results[label] = grade(config, submissions, work / label, args.workers, env)
        print(f"{label}: graded {len(results[label])} submissions in {time.monotonic() - started:.0f} s", flush=True)
    differences = 0
    print(f"\n{'submission':62} {'check':26} subset  full")
    for name in sorted(results["subset"]):
        for check, points in results["subset"][name].items():
            full = results["full"].get(name, {}).get(check)
            mark = "" if full == points else "   <-- differs"
            differences += full != points
            if mark or check == "baseline.architecture":
                print(f"{name[:62]:62} {check:26} {points:6g} {full if full is not None else '-':>5}{mark}")
    print(f"\n{differences} difference(s) in points per check between the default subset and the full data")
    (ROOT / "benchmarks" / "results").mkdir(exist_ok=True)
    (ROOT / "benchmarks" / "results" / "verdicts_subset_vs_full.json").write_text(
        json.dumps({"differences": differences, **results}, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    shutil.rmtree(work, ignore_errors=True)
    return 0 if differences == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
