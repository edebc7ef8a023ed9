"""The plausible range of test accuracies: what the solution notebook reaches on the same data.

`reference/calibration.json` holds, per staged data set (by its fingerprint), the per-epoch test
accuracies of several runs of `reference/solution.ipynb`. `grader calibrate` (re)computes the
entry for the configured data; `grader grade` computes it on first use when the solution is there.
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from grader.checks.sheet6 import AccuracyRange, choose_accuracies
from grader.intake.types import Workspace
from grader.pipeline import REFERENCE_DIR, observe
from grader.report.render import write_atomic
from grader.run.kernels import FreshKernels

CALIBRATION_FILE = REFERENCE_DIR / "calibration.json"
SOLUTION = REFERENCE_DIR / "solution.ipynb"


def calibration_file() -> Path:
    """The calibration in use; GRADER_CALIBRATION points elsewhere (the tests keep the shipped file untouched)."""
    return Path(os.environ.get("GRADER_CALIBRATION") or CALIBRATION_FILE)


class CalibrationError(RuntimeError):
    pass


def load_calibration(path: Path | None = None) -> dict:
    path = path or calibration_file()
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise CalibrationError(f"{path}: cannot be read ({exc}); delete it and run `grader calibrate`") from exc


def accuracy_range(fingerprint: str, path: Path | None = None) -> AccuracyRange | None:
    """Per epoch: from 0 up to the best the solution's networks (with or without BatchNorm) reached.

    No lower bound beyond 0: a network with another mistake (softmax in forward, a missing ReLU)
    learns more slowly, and that mistake already costs its own check; how much more slowly depends
    on the data size, so a lower bound would make the verdict depend on the subset graded on. The
    upper bound catches numbers this recipe does not reach on this data (hard-coded results,
    accuracies measured on the training set of a memorising network, counts read as fractions)."""
    entry = load_calibration(path).get(fingerprint)
    if not entry or not entry.get("baseline"):
        return None
    runs = entry["baseline"] + entry.get("batchnorm", [])
    epochs = len(entry["baseline"][0])
    high = tuple(max(run[i] for run in runs if len(run) == epochs) for i in range(epochs))
    return AccuracyRange(low=(0.0,) * epochs, high=high,
                         source=f"{len(entry['baseline'])} run(s) of the solution on {entry.get('data', fingerprint)}")


async def _observe(workspace, ctx):
    async with FreshKernels(ctx) as kernels:
        execution, observations, _ = await observe(workspace, ctx, kernels)
    return execution, observations


def calibrate(ctx, runs: int = 3, path: Path | None = None, solution: Path = SOLUTION,
              progress=print) -> AccuracyRange:
    """Run the solution `runs` times on ctx's data and store its accuracies under the data's fingerprint."""
    if not solution.exists():
        raise CalibrationError(f"{solution} is missing: calibration needs the solution notebook "
                               f"(it is not part of the students' package)")
    results: dict[str, list[list[float]]] = {"baseline": [], "batchnorm": []}
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
            raise CalibrationError(f"the solution did not run cleanly on {ctx.data.info.description}: "
                                   f"{execution.info.status}, {execution.info.errors or observations.message}")
        for key in results:
            chosen = choose_accuracies(observations.network(key), ctx.config.tolerance.epochs)
            if chosen is None:
                raise CalibrationError(f"the solution recorded no accuracies for {key}")
            results[key].append([round(v, 6) for v in chosen[1]])
        progress(f"calibration run {run + 1}/{runs}: baseline {results['baseline'][-1]}, "
                 f"batchnorm {results['batchnorm'][-1]}")
    path = path or calibration_file()
    data = load_calibration(path)
    data[ctx.data.info.fingerprint] = {
        "data": ctx.data.info.description, **results,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_atomic(path, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    return accuracy_range(ctx.data.info.fingerprint, path)
