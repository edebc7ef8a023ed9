"""Snapshot the reports of the example submissions and the test corpus, and compare two snapshots.

A refactor must not change what the grader says. This grades `submissions/` and `tests/corpus/` (Sheet 6)
and Sheet 5's examples (grader/sheets/sheet5/submissions/) with `grader grade`, Sheet 6 on the tests' tiny data (640 / 256 images, seed 6, the same time limits as the tests),
then writes each report normalised (the CSVs as they are): what varies from run to run or from version to version
is taken out (the grader's version and hashes, the schema's version, timings, the accuracies themselves and decimal numbers
in messages, which come from unseeded training and random weights).

    python tools/compare_reports.py snapshot DIR [--calibration FILE]
    python tools/compare_reports.py compare BEFORE AFTER

`--calibration` is the accuracy calibration of the tiny data (GRADER_CALIBRATION); made with one run of
the solution when missing. Use the same file for both snapshots, so that both grade against the same
accuracy range and time limits.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = (ROOT / ".." / "shared" / "data" / "fashion-mnist").resolve()
# name -> (sheet, folder): Sheet 6's examples and corpus, Sheet 5's examples.
SETS = {
    "examples": ("sheet6", ROOT / "submissions"),
    "corpus": ("sheet6", ROOT / "tests" / "corpus"),
    "sheet5": ("sheet5", ROOT / "grader" / "sheets" / "sheet5" / "submissions"),
}
CSVS = ("summary.csv", "manual_points.csv", "cms.csv")
DECIMAL = re.compile(r"-?\d+\.\d+(?:e[-+]?\d+)?%?")


def _toml(folder: Path, sheet: str = "sheet6") -> Path:
    toml = folder / f"grading-{sheet}.toml"
    source = str(DATA) if DATA.exists() and sheet == "sheet6" else ""
    toml.write_text(
        f'[sheet]\nname = "{sheet}"\n\n[data]\nsource = {json.dumps(source)}\ntrain_size = 640\ntest_size = 256\nseed = 6\n\n'
        "[limits]\ncell_timeout_s = 60\nnotebook_timeout_s = 300\nprobe_timeout_s = 60\n",
        encoding="utf-8",
    )
    return toml


def _grader(toml: Path, *args: str, env: dict) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "grader", "--config", str(toml), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if run.returncode != 0:
        sys.exit(f"grader {' '.join(args)} failed ({run.returncode}):\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")


def normalise_report(report: dict) -> dict:
    report = json.loads(json.dumps(report))
    report.pop("grader", None)
    report.pop("graded_at", None)
    report.pop("schema_version", None)  # the report format's version (1.1: overrides as objects)
    execution = report.get("execution", {})
    for key in ("duration_s", "cpu_s", "timings"):
        execution.pop(key, None)
    report["accuracies"] = {
        name: values if isinstance(values, int) else len(values)  # how many, not which
        for name, values in report.get("accuracies", {}).items()
    }
    for check in report.get("checks", []):
        check["message"] = DECIMAL.sub("<n>", check["message"])
    for exercise in report.get("exercises", []):
        exercise["evidence"] = [DECIMAL.sub("<n>", line) for line in exercise.get("evidence", [])]
    execution["notes"] = [DECIMAL.sub("<n>", note) for note in execution.get("notes", [])]
    return report


def normalise_csv(text: str) -> str:
    """The CSVs hold no accuracies or timings: only the BOM goes (read as utf-8-sig)."""
    return text


def snapshot(dest: Path, calibration: Path) -> None:
    env = dict(os.environ, GRADER_CALIBRATION=str(calibration.resolve()))
    with tempfile.TemporaryDirectory(prefix="compare-reports-") as tmp:
        calibrated = json.loads(calibration.read_text(encoding="utf-8")) if calibration.exists() else {}
        for sheet in sorted({sheet for sheet, _ in SETS.values()}):
            if not any(key.startswith(f"{sheet}/") for key in calibrated):
                _grader(_toml(Path(tmp), sheet), "calibrate", "--runs", "1", env=env)
        if dest.exists():
            shutil.rmtree(dest)
        for name, (sheet, folder) in SETS.items():
            toml = _toml(Path(tmp), sheet)
            out = Path(tmp) / name
            _grader(toml, "grade", str(folder), "--out", str(out), "--workers", "2", "--force", env=env)
            target = dest / name
            target.mkdir(parents=True)
            for path in sorted(out.glob("*.json")):
                report = normalise_report(json.loads(path.read_text(encoding="utf-8")))
                (target / path.name).write_text(
                    json.dumps(report, indent=1, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8"
                )
            for csv in CSVS:
                if (out / csv).exists():
                    (target / csv).write_text(
                        normalise_csv((out / csv).read_text(encoding="utf-8-sig")), encoding="utf-8"
                    )
    print(f"snapshot in {dest}: " + ", ".join(f"{n}: {len(list((dest / n).iterdir()))} files" for n in SETS))


def compare(before: Path, after: Path) -> int:
    differences = 0
    names = sorted(
        {p.relative_to(before) for p in before.rglob("*") if p.is_file()}
        | {p.relative_to(after) for p in after.rglob("*") if p.is_file()}
    )
    for name in names:
        a, b = before / name, after / name
        if not a.exists() or not b.exists():
            print(f"only in {'after' if b.exists() else 'before'}: {name}")
            differences += 1
            continue
        left, right = a.read_text(encoding="utf-8"), b.read_text(encoding="utf-8")
        if name.suffix == ".json":  # normalised again: a snapshot made before a rule was added compares too
            left, right = (
                json.dumps(normalise_report(json.loads(t)), indent=1, ensure_ascii=False, sort_keys=True) + "\n"
                for t in (left, right)
            )
        if left != right:
            differences += 1
            print(
                "".join(
                    difflib.unified_diff(
                        left.splitlines(True), right.splitlines(True), f"before/{name}", f"after/{name}"
                    )
                )
            )
    print(f"{len(names)} files compared, {differences} differ")
    return 1 if differences else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    snap = sub.add_parser("snapshot")
    snap.add_argument("dest", type=Path)
    snap.add_argument("--calibration", type=Path, required=True)
    comp = sub.add_parser("compare")
    comp.add_argument("before", type=Path)
    comp.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    if args.command == "snapshot":
        snapshot(args.dest, args.calibration)
        return 0
    return compare(args.before, args.after)


if __name__ == "__main__":
    sys.exit(main())
