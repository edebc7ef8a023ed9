"""`grader prepare`, the calibration store and the locks on shared files, with real processes.

Two graders on one output folder: the second is refused at once, naming the folder and the holder.
Two graders meeting new data: one calibrates, the other waits and uses it. A shard without a
calibration stops and says to run `grader prepare`. Concurrent writers of the calibration file
lose no entry; concurrent stagings of one data set make one staged folder. `grader prepare` writes
its calibration into the cache, never into the shipped file, and prints what a shard needs.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from conftest import ROOT, needs_torch

SHIPPED = ROOT / "reference" / "calibration.json"  # Sheet 6's (its reference folder)
TEAM = "Erika_Mustermann_7012345_Juergen_Mueller_7054321"
TINY = (
    '[sheet]\nname = "sheet6"\n[data]\nsource = ""\ntrain_size = 256\ntest_size = 128\nseed = 3\n[run]\nworkers = 1\n'
)


def grader(*args: str, env: dict, cwd: Path, **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "grader", *args],
        cwd=cwd,
        env={**env, "COLUMNS": "250"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **popen,
    )


@pytest.fixture
def course(tmp_path):
    """A folder with grading.toml on tiny generated data, and its own cache and calibration file."""
    (tmp_path / "grading.toml").write_text(TINY, encoding="utf-8")
    (tmp_path / "subs").mkdir()
    env = {**os.environ, "GRADER_CACHE": str(tmp_path / "cache"), "GRADER_CALIBRATION": str(tmp_path / "cal.json")}
    return tmp_path, env


def _calibrate_by_hand(folder: Path, env: dict) -> str:
    """An entry for the course's data (what prepare would make), without running the solution."""
    code = (
        "from grader.config import load_config; from grader.util.cache import cache_dir; "
        "from grader.data.staging import stage_dataset; from grader.calibration import store as s; "
        "c = load_config('grading.toml'); d = stage_dataset(c.data, None, cache_dir() / 'data', c.sheet_def.dataset); "
        "s.save('sheet6', d.info.fingerprint, {'baseline': [[0.5] * 5], 'batchnorm': [[0.5] * 5], "
        "'cell_seconds': [[0.1, 0.2]], 'created': '2026-01-01T00:00:00+00:00'}); print(d.info.fingerprint)"
    )
    return subprocess.run(
        [sys.executable, "-c", code], cwd=folder, env=env, capture_output=True, text=True, check=True
    ).stdout.strip()


# --------------------------------------------------------------------------------- the store


def test_lookup_order_and_no_write_into_the_shipped_file(tmp_path, monkeypatch):
    from grader.calibration import store
    from grader.sheets.sheet6 import SHEET

    assert SHEET.shipped_calibration == SHIPPED  # found through the sheet
    shipped = json.loads(SHIPPED.read_text(encoding="utf-8"))
    some = next(iter(shipped)).removeprefix("sheet6/")
    monkeypatch.delenv("GRADER_CALIBRATION", raising=False)
    monkeypatch.setenv("GRADER_CACHE", str(tmp_path / "cache"))
    before = SHIPPED.read_bytes()
    assert store.lookup(SHEET, some).path == SHIPPED  # the shipped default is read
    store.save("sheet6", some, {"baseline": [[0.2] * 5], "created": "x"})
    assert store.lookup(SHEET, some).path == tmp_path / "cache" / "calibration.json"  # the cache's entry wins
    assert SHIPPED.read_bytes() == before  # and is where it was written
    monkeypatch.setenv("GRADER_CALIBRATION", str(tmp_path / "own.json"))
    assert store.lookup(SHEET, some) is None  # GRADER_CALIBRATION alone
    assert store.search_path(SHEET) == [tmp_path / "own.json"]


def test_calibrations_are_kept_by_sheet_and_data(tmp_path, monkeypatch):
    """Two sheets on the same data fingerprint have entries of their own; an entry made before
    calibrations were kept by sheet (the fingerprint alone) is still read, and only where usable."""
    from grader.calibration import store
    from grader.engine.calibrate import accuracy_range
    from grader.sheets.sheet5 import SHEET as SHEET5
    from grader.sheets.sheet6 import SHEET as SHEET6

    path = tmp_path / "calibration.json"
    monkeypatch.setenv("GRADER_CALIBRATION", str(path))
    path.write_text(json.dumps({"f" * 16: {"baseline": [[0.1, 0.2]], "batchnorm": [[0.3, 0.25]]}}))
    assert accuracy_range(SHEET6, "f" * 16).high == (0.3, 0.25)  # the old key: Sheet 6's networks are there
    assert accuracy_range(SHEET5, "f" * 16) is None  # no FFNN in it: not Sheet 5's
    store.save("sheet5", "f" * 16, {"ffnn": [[0.96], [0.97]]})
    store.save("sheet6", "f" * 16, {"baseline": [[0.5, 0.6]], "batchnorm": [[0.4, 0.7]]})
    assert sorted(json.loads(path.read_text())) == ["f" * 16, "sheet5/" + "f" * 16, "sheet6/" + "f" * 16]
    found = accuracy_range(SHEET5, "f" * 16)
    assert (found.low, found.high) == ((0.96,), (0.97,))  # the lowest and the highest of the runs
    assert accuracy_range(SHEET6, "f" * 16).high == (0.5, 0.7)  # the new entry wins


def test_the_store_and_the_report_pages_import_no_kernels():
    code = (
        "import sys, grader.calibration.store, grader.report.outputs; "
        "print(sorted(m for m in sys.modules if m.startswith(('grader.run', 'grader.pipeline', "
        "'grader.engine.calibrate', 'grader.engine.batch', 'nbclient', 'jupyter_client', 'torch'))))"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert found.stdout.strip() == "[]", found.stdout


def _save_many(path: str, worker: int) -> None:
    from grader.calibration import store

    for n in range(20):
        store.save("sheet6", f"{worker}-{n}", {"baseline": [[n / 20] * 5]}, Path(path))


def test_concurrent_writers_of_the_calibration_lose_no_entry(tmp_path):
    path = tmp_path / "calibration.json"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_save_many, args=(str(path), w)) for w in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
        assert w.exitcode == 0
    assert sorted(json.loads(path.read_text())) == sorted(f"sheet6/{w}-{n}" for w in range(4) for n in range(20))
    assert not list(tmp_path.glob("*.tmp"))


def _stage(cache: str, queue) -> None:
    from grader.config import Data
    from grader.data.staging import stage_dataset
    from grader.sheets.sheet6 import SHEET

    queue.put(
        str(
            stage_dataset(
                Data(source="", train_size=2000, test_size=500, seed=9), None, Path(cache), SHEET.dataset
            ).root
        )
    )


def test_concurrent_stagings_of_one_data_set_make_one_folder(tmp_path):
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_stage, args=(str(tmp_path), queue)) for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
        assert w.exitcode == 0
    roots = {queue.get(timeout=5) for _ in workers}
    assert len(roots) == 1
    assert [p.name for p in tmp_path.iterdir() if p.suffix != ".lock"] == [Path(roots.pop()).name]


# ------------------------------------------------------------------------------ shards, prepare


def test_a_shard_without_calibration_stops_and_says_to_prepare(course):
    folder, env = course
    nbformat.write(nbformat.v4.new_notebook(), folder / "subs" / f"{TEAM}.ipynb")
    run = grader("grade", "subs", "--out", "out", "--shard", "1/2", env=env, cwd=folder)
    output = run.communicate(timeout=120)[0]
    assert run.returncode == 2, output
    assert "grader prepare" in output and str(folder / "cal.json") in output, output
    assert re.search(r"data fingerprint [0-9a-f]{16}", output), output
    assert not [p for p in (folder / "out").glob("*.json") if not p.name.startswith(".")], (
        "a shard without calibration graded something"
    )
    # and `grader merge` sees that this part did not finish
    assert json.loads((folder / "out" / ".shard.json").read_text())["state"] == "in progress"
    assert not (folder / "cal.json").exists(), "a shard calibrated"


def test_a_shard_reads_the_prepared_calibration(course):
    folder, env = course
    _calibrate_by_hand(folder, env)
    run = grader("grade", "subs", "--out", "out", "--shard", "1/2", env=env, cwd=folder)
    output = run.communicate(timeout=120)[0]
    assert run.returncode == 0, output


@needs_torch
@pytest.mark.kernel
def test_prepare_calibrates_into_the_cache_once_and_prints_what_a_shard_needs(tmp_path):
    (tmp_path / "grading.toml").write_text(TINY, encoding="utf-8")
    (tmp_path / "subs").mkdir()
    for n in range(3):
        nbformat.write(nbformat.v4.new_notebook(), tmp_path / "subs" / f"Team_{7000000 + n}_Other_{7100000 + n}.ipynb")
    env = {k: v for k, v in os.environ.items() if k != "GRADER_CALIBRATION"}
    env["GRADER_CACHE"] = str(tmp_path / "cache")
    before = SHIPPED.read_bytes()
    first = grader("prepare", "subs", "--shards", "2", "--runs", "1", "--options-file", "opts", env=env, cwd=tmp_path)
    output = first.communicate(timeout=600)[0]
    assert first.returncode == 0, output
    assert SHIPPED.read_bytes() == before
    stored = json.loads((tmp_path / "cache" / "calibration.json").read_text())
    assert len(stored) == 1 and len(next(iter(stored.values()))["baseline"]) == 1
    options = (tmp_path / "opts").read_text().split()
    assert (
        options[0] == "--cpus-per-task=1"
        and re.fullmatch(r"--mem=\d+M", options[1])
        and re.fullmatch(r"--time=\d\d:\d\d:00", options[2])
    ), options
    assert "3 submission(s) in 2 shard(s)" in output and "sbatch --parsable --array=1-2 " + " ".join(options) in output
    assert "--dependency=afterok:$ARRAY_JOB" in output
    again = grader("prepare", "subs", "--shards", "2", env=env, cwd=tmp_path)
    output = again.communicate(timeout=300)[0]
    assert again.returncode == 0 and "calibration run" not in output, output


# ----------------------------------------------------------------------------------- locks


@needs_torch
@pytest.mark.kernel
def test_a_second_grade_on_the_same_folder_is_refused_at_once_naming_the_holder(course):
    folder, env = course
    _calibrate_by_hand(folder, env)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import time\ntime.sleep(6)")]
    nbformat.write(nb, folder / "subs" / f"{TEAM}.ipynb")
    first = grader("grade", "subs", "--out", "out", env=env, cwd=folder)
    holder = folder / "out" / ".grader.lock.holder"
    deadline = time.monotonic() + 60
    while not holder.exists():
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()[0]
        time.sleep(0.05)
    for command in (
        ["grade", "subs", "--out", "out"],
        ["merge", "out", "--out", "out"],
        ["prepare", "subs", "--out", "out"],
    ):
        second = grader(*command, env=env, cwd=folder)
        output = second.communicate(timeout=60)[0]
        assert second.returncode == 2, (command, output)
        assert "the output folder out is in use by grader grade" in output, output
        assert f"pid {first.pid} on {socket.gethostname()}" in output, output
    # Refused, not waiting: the first batch still runs, so none of them waited for its lock.
    assert first.poll() is None, "the first batch ended before the others were refused: the test proves nothing"
    output = first.communicate(timeout=300)[0]
    assert first.returncode == 0, output
    report = json.loads((folder / "out" / f"{TEAM}.json").read_text())
    assert report["execution"]["status"] == "ok"
    assert not holder.exists()
    # Free again: the next grader takes the folder (nothing to grade: the report stands).
    third = grader("grade", "subs", "--out", "out", env=env, cwd=folder)
    assert third.wait(timeout=120) == 0


@needs_torch
@pytest.mark.kernel
def test_two_graders_meeting_new_data_calibrate_once(course):
    folder, env = course
    runs = [grader("grade", "subs", "--out", f"out{n}", env=env, cwd=folder) for n in (1, 2)]
    outputs = [run.communicate(timeout=900)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    both = "\n".join(outputs)
    assert both.count("running the solution notebook 3 times") == 1, both
    entries = json.loads((folder / "cal.json").read_text())
    assert len(entries) == 1 and len(next(iter(entries.values()))["baseline"]) == 3


def test_merge_warns_when_shards_were_graded_with_different_calibrations(tmp_path):
    from test_report_outputs import ALICE, BOB

    from grader.models import CalibrationRef, TimeLimits
    from grader.report.store import write_report

    for index, ((stem, report), sha) in enumerate(((ALICE, "a" * 16), (BOB, "b" * 16)), start=1):
        folder = tmp_path / f"shard-{index}"
        limits = TimeLimits(
            cell_timeout_s=20,
            notebook_timeout_s=120,
            source="test",
            calibration=CalibrationRef(
                fingerprint="fp-test", created="2026-01-01T00:00:00+00:00", sha256=sha, file="cal.json"
            ),
        )
        write_report(
            report.model_copy(update={"execution": report.execution.model_copy(update={"time_limits": limits})}),
            folder,
            stem,
        )
        (folder / ".shard.json").write_text(json.dumps({"shard": f"{index}/2", "stems": [stem], "config_hash": "c"}))
    run = grader(
        "merge", "--sheet", "sheet6", "shard-1", "shard-2", "--out", "merged", env={**os.environ}, cwd=tmp_path
    )
    output = run.communicate(timeout=120)[0]
    assert run.returncode == 0, output
    assert "graded with different calibrations" in output and "aaaaaaaaaaaaaaaa in shard-1" in output, output
