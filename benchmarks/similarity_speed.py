"""How the comparison of similar notebooks grows with notebook size (issue 14).

    .venv/bin/python benchmarks/similarity_speed.py            # 1,000 and 10,000 cells, about 20 s
    .venv/bin/python benchmarks/similarity_speed.py --old REV  # also the code of git revision REV

Two notebooks of N generated code cells each (distinct functions, as a long notebook has), compared
by `similar_pairs` as `grader grade` does at the end of a batch (template and solution taken out).
Prints the seconds per size and the ratio of the largest to the smallest: about 10 means linear.
Run by hand; never part of the test suite (the machine is shared: only ratios from one run count).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make(n: int, seed: int):
    import nbformat

    rnd = random.Random(seed)
    nb = nbformat.v4.new_notebook()
    for i in range(n):
        op, act, red = rnd.choice("+-*/"), rnd.choice(["relu", "tanh", "sigmoid"]), rnd.choice(["sum", "mean", "max"])
        nb.cells.append(
            nbformat.v4.new_code_cell(
                f"def f{i}(a, b):\n    c = a {op} b\n    for k in range({i % 17}):\n"
                f"        c = torch.{act}(c {op} k)\n    return c.{red}()\nprint(f{i}({i}, 2))"
            )
        )
    return nb


def timed(n: int) -> float:
    import nbformat

    from grader.report.similarity import similar_pairs

    template = nbformat.read(ROOT / "reference" / "template.ipynb", as_version=4)
    a, b = make(n, 1), make(n, 2)
    start = time.perf_counter()
    similar_pairs({"a": a, "b": b}, template)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--old", default=None, help="a git revision whose similarity.py to time as well")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.child:
        print(json.dumps({n: timed(n) for n in sizes}))
        return 0
    results = {"load_start": open("/proc/loadavg").read().split()[:3] if os.path.exists("/proc/loadavg") else None}
    runs = {"current": None}
    if args.old:
        runs[args.old] = args.old
    for label, revision in runs.items():
        env = dict(os.environ)
        with tempfile.TemporaryDirectory() as tmp:
            if revision:
                subprocess.run(f"git -C {ROOT} archive {revision} | tar -x -C {tmp}", shell=True, check=True)
                env["PYTHONPATH"] = tmp
            out = subprocess.run(
                [sys.executable, __file__, "--child", "--sizes", args.sizes],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        seconds = {int(k): v for k, v in json.loads(out).items()}
        results[label] = {"seconds": seconds, "ratio_largest_to_smallest": seconds[max(sizes)] / seconds[min(sizes)]}
        print(
            f"{label}: "
            + ", ".join(f"{n} cells {s:.2f} s" for n, s in seconds.items())
            + f"; ratio {results[label]['ratio_largest_to_smallest']:.1f} for {max(sizes) // min(sizes)}x the cells"
        )
    results["load_end"] = open("/proc/loadavg").read().split()[:3] if os.path.exists("/proc/loadavg") else None
    (ROOT / "benchmarks" / "results" / "similarity_speed.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
