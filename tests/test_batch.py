"""The batch around the pipeline: killed and resumed, sharded and merged, nothing lost or doubled.
Real kernels run small notebooks (no training) on a tiny generated data set."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from conftest import needs_torch

from grader.models import Report
from grader.sheets.sheet6 import SHEET

pytestmark = [pytest.mark.kernel, needs_torch]

TEAMS = [
    "Anna Schmidt_7000001_Bernd Weber_7000002",
    "Clara Fischer_7000003_Dieter Wolf_7000004",
    "Eva Koch_7000005_Frank Bauer_7000006",
    "Gerd Lang_7000007_Hanna Ott_7000008",
    "Ida Roth_7000009_Jan Vogt_7000010",
    "Karl Ernst_7000011_Lena Graf_7000012",
]


def _notebook(seconds: float) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(f"import time\ntime.sleep({seconds})\nanswer = 42")]
    return nb


@pytest.fixture
def batch_setup(tmp_path):
    """Six small submissions, a configuration on tiny generated data, and a calibration for it."""
    from grader.config import load_config
    from grader.data.staging import stage_dataset
    from grader.engine.batch import cache_dir
    from grader.engine.calibrate import calibration_file

    subs = tmp_path / "subs"
    subs.mkdir()
    for index, team in enumerate(TEAMS):
        nbformat.write(_notebook(0.5 + 0.2 * index), subs / f"{team}.ipynb")
    config_path = tmp_path / "grading.toml"
    config_path.write_text(
        '[sheet]\nname = "sheet6"\n[data]\nsource = ""\ntrain_size = 256\ntest_size = 128\n[run]\nworkers = 2\n'
    )
    config = load_config(config_path)
    staged = stage_dataset(config.data, None, cache_dir() / "data", SHEET.dataset)
    calibration = calibration_file()
    entries = json.loads(calibration.read_text()) if calibration.exists() else {}
    entries[f"sheet6/{staged.info.fingerprint}"] = {"baseline": [[0.1] * 5], "batchnorm": [[0.1] * 5]}
    calibration.write_text(json.dumps(entries))
    return subs, config_path


def _grade(subs: Path, config: Path, out: Path, *extra: str, **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "grader", "--config", str(config), "grade", str(subs), "--out", str(out), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        **popen,
    )


def _processes_mentioning(text: str) -> list[str]:
    """Processes whose command line mentions `text` (kernels and their bubblewrap, by their folders)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and entry.name != str(os.getpid()):
            found.append(f"{entry.name}: {cmdline[:120]}")
    return found


def _reports(out: Path) -> dict[str, Report]:
    # The shard marker is `.shard.json` (hidden, so that no submission's report can have its name).
    return {
        p.stem: Report.model_validate_json(p.read_bytes()) for p in out.glob("*.json") if not p.name.startswith(".")
    }


def test_killed_batch_resumes_with_every_report_whole(batch_setup, tmp_path):
    subs, config = batch_setup
    out = tmp_path / "out"
    scratch = tmp_path / "t"  # the batches' work folders and kernels' sockets: how we find their kernels
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}
    # Killed before any report is written, just after the first one, and halfway; the last run has
    # half of the submissions still to grade, however fast the machine is.
    for reports_before_kill in (0, 1, len(TEAMS) // 2):
        process = _grade(subs, config, out, env=env)
        if reports_before_kill == 0:
            time.sleep(2.0)
        deadline = time.monotonic() + 240
        while len(list(out.glob("*.json"))) < reports_before_kill and time.monotonic() < deadline:
            time.sleep(0.02)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        _reports(out)  # whatever is there is whole: a half-written report would not parse
    assert len(_reports(out)) < len(TEAMS), "everything was graded before the last kill"
    finished = _grade(subs, config, out, env=env)
    output = finished.communicate(timeout=300)[0].decode()
    assert finished.returncode == 0, output
    # Plain progress lines (no terminal), then the summary, its first line whole (not wrapped to a table's width).
    assert re.search(rf"^Graded {len(TEAMS)} submission\(s\) in [\d.]+ s → ", output, re.M), output
    assert re.search(r"^\[\d+/\d+\] .+: ok, [\d.]+/[\d.]+ automatic points", output, re.M), output
    time.sleep(3)
    assert _processes_mentioning(str(scratch)) == [], "kernels outlived their killed grader"
    reports = _reports(out)
    assert sorted(reports) == sorted(TEAMS)
    assert not list(out.rglob("*.tmp"))
    assert (out / "summary.csv").read_text(encoding="utf-8").count("\n") == len(TEAMS) + 1
    for stem, report in reports.items():
        assert report.execution.status == "ok" and report.submission.stem == stem


def test_shards_are_disjoint_and_merge_refuses_missing_or_doubled_parts(batch_setup, tmp_path):
    subs, config = batch_setup
    parts = []
    for k in (1, 2):
        out = tmp_path / f"shard{k}"
        process = _grade(subs, config, out, "--shard", f"{k}/2", "--workers", "1")
        output = process.communicate(timeout=300)[0].decode()
        assert process.returncode == 0, output
        parts.append(set(_reports(out)))
    assert parts[0].isdisjoint(parts[1]) and parts[0] | parts[1] == set(TEAMS)

    def merge(*folders: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "grader",
                "--config",
                str(config),
                "merge",
                *folders,
                "--out",
                str(tmp_path / "merged"),
            ],
            capture_output=True,
            text=True,
        )

    missing = merge(str(tmp_path / "shard1"))
    assert missing.returncode == 2 and "missing shard(s) 2/2" in missing.stdout
    doubled = merge(str(tmp_path / "shard1"), str(tmp_path / "shard1"))
    assert doubled.returncode == 2 and "given twice" in doubled.stdout
    merged = merge(str(tmp_path / "shard1"), str(tmp_path / "shard2"))
    assert merged.returncode == 0, merged.stdout
    assert sorted(_reports(tmp_path / "merged")) == sorted(TEAMS)
    assert (tmp_path / "merged" / "summary.csv").read_text(encoding="utf-8").count("\n") == len(TEAMS) + 1
    assert (tmp_path / "merged" / "cms.csv").exists()


@pytest.mark.parametrize("given, expected", [(None, "1"), ("3", "3")])
def test_grader_processes_use_one_blas_thread_unless_told(given, expected):
    """The grader's own numpy work runs beside the kernels: spinning BLAS threads would take their
    cores. A value the user set is kept."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
    }
    if given is not None:
        env["OPENBLAS_NUM_THREADS"] = given
    code = "import grader, os; print(os.environ['OPENBLAS_NUM_THREADS'], os.environ['OMP_NUM_THREADS'])"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == [expected, "1"]
