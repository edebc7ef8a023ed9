"""Limits that fit the work: time limits derived from the solution's timings on the same data
(`[limits] cell_timeout_s = "auto"`), and a total disk cap per kernel (`[limits] disk_mb`).

The unit tests compute limits from calibration entries; the kernel tests run real notebooks in real
sandboxed kernels: a never-ending cell on the default subset and in a student's self-check, and
cells that write files until they are refused.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import json
import os
import shutil
import tempfile
from pathlib import Path

import nbformat
import pytest
from conftest import ROOT, needs_torch, recorded

from grader.config import ConfigError, config_from_dict, load_config
from grader.engine.calibrate import CELL_FACTOR, CELL_FLOOR_S, NOTEBOOK_FLOOR_S, time_limits
from grader.models import DataInfo
from grader.run.context import KernelContext
from grader.run.execute import FALLBACK_CELL_TIMEOUT_S, FALLBACK_NOTEBOOK_TIMEOUT_S, KernelSession
from grader.run.sandbox import SUBMISSION_MOUNT, kernel_command
from grader.sheets.sheet6 import SHEET

CALIBRATION_FILE = SHEET.shipped_calibration

HAVE_BWRAP = shutil.which("bwrap") is not None
needs_bwrap = pytest.mark.skipif(not HAVE_BWRAP, reason="bubblewrap (bwrap) is not installed")
SHARED_DATA = (ROOT / ".." / "shared" / "data" / "fashion-mnist").resolve()


def data_info(fingerprint="f" * 16) -> DataInfo:
    return DataInfo(
        kind="real-subset", description="some data", train_size=6000, test_size=1000, fingerprint=fingerprint
    )


def calibration(tmp_path, cell_seconds) -> Path:
    path = tmp_path / "calibration.json"
    path.write_text(
        json.dumps(
            {
                "sheet6/" + "f" * 16: {
                    "data": "some data",
                    "baseline": [[0.1] * 5],
                    "batchnorm": [[0.1] * 5],
                    **({"cell_seconds": cell_seconds} if cell_seconds is not None else {}),
                }
            }
        )
    )
    return path


def auto_limits(**explicit):
    return config_from_dict({"limits": explicit}, source="<tests>").limits


# ------------------------------------------------------------------------------ configuration


def test_time_limits_are_auto_by_default_and_a_number_wins():
    limits = auto_limits()
    assert limits.cell_timeout_s == "auto" and limits.notebook_timeout_s == "auto"
    assert load_config(ROOT / "grading.toml").limits.cell_timeout_s == "auto"
    assert auto_limits(cell_timeout_s=45).cell_timeout_s == 45.0
    assert auto_limits(notebook_timeout_s=0.5).notebook_timeout_s == 0.5


@pytest.mark.parametrize(
    "raw, words",
    [
        ({"limits": {"cell_timeout_s": "fast"}}, ["limits.cell_timeout_s", '"auto"', "'fast'"]),
        ({"limits": {"notebook_timeout_s": -5}}, ["limits.notebook_timeout_s", "greater than 0", "-5"]),
        ({"limits": {"cell_timeout_s": True}}, ["limits.cell_timeout_s"]),
        ({"limits": {"disk_mb": 0}}, ["limits.disk_mb", "greater than 0"]),
        ({"limits": {"disk_mb": "1G"}}, ["limits.disk_mb", "'1G'"]),
        ({"limits": {"disk_mb": 100}}, ["limits.disk_mb (100)", "archive.max_uncompressed_mb (200)"]),
    ],
)
def test_wrong_limits_are_errors_naming_the_key(raw, words):
    with pytest.raises(ConfigError) as err:
        config_from_dict(raw, source="grading.toml")
    for word in words:
        assert word in str(err.value), str(err.value)


def test_disk_cap_default_and_validation():
    assert auto_limits().disk_mb == 1024
    config = config_from_dict({"limits": {"disk_mb": 64}, "archive": {"max_uncompressed_mb": 32}}, source="<t>")
    assert config.limits.disk_mb == 64


# ------------------------------------------------------------------------------ derived limits


def test_limits_are_a_multiple_of_the_solutions_timings(tmp_path):
    # Seconds per code cell of three runs of the solution on the default subset; the third on a
    # machine busy with other work.
    path = calibration(
        tmp_path,
        [
            [0.02, 0.01, 3.27, 0.02, 3.22, 0.17],
            [0.02, 0.01, 3.0, 0.01, 3.4, 0.15],
            [0.03, 0.01, 8.71, 0.02, 23.36, 0.28],
        ],
    )
    found = time_limits(auto_limits(), data_info(), SHEET, path)
    assert found.cell_timeout_s == round(CELL_FACTOR * 3.4)  # the median run's slowest cell
    assert 30 <= found.cell_timeout_s <= 90  # a never-ending cell costs about a minute
    assert found.notebook_timeout_s >= found.cell_timeout_s + 6.7
    assert "slowest cell (3.4 s" in found.source and "3 run(s)" in found.source and path.name in found.source


def test_tiny_timings_get_the_floor(tmp_path):
    path = calibration(tmp_path, [[0.01, 0.01, 0.7, 0.01, 0.71, 0.1]] * 3)
    found = time_limits(auto_limits(), data_info(), SHEET, path)
    assert (found.cell_timeout_s, found.notebook_timeout_s) == (CELL_FLOOR_S, NOTEBOOK_FLOOR_S)
    assert "at least" in found.source


def test_a_number_in_grading_toml_wins(tmp_path):
    path = calibration(tmp_path, [[0.01, 3.0, 3.0]])
    found = time_limits(auto_limits(cell_timeout_s=300), data_info(), SHEET, path)
    assert found.cell_timeout_s == 300 and found.notebook_timeout_s >= 300
    assert "per cell from grading.toml" in found.source
    both = time_limits(auto_limits(cell_timeout_s=300, notebook_timeout_s=900), data_info(), SHEET, path)
    assert (both.cell_timeout_s, both.notebook_timeout_s) == (300, 900) and "grading.toml" in both.source


@pytest.mark.parametrize("cell_seconds", [None, []], ids=["entry without timings", "no runs"])
def test_without_timings_the_fallback_applies_and_says_why(tmp_path, cell_seconds):
    path = calibration(tmp_path, cell_seconds)
    for fingerprint in ("f" * 16, "0" * 16):  # the entry has no timings / there is no entry
        found = time_limits(auto_limits(), data_info(fingerprint), SHEET, path)
        assert (found.cell_timeout_s, found.notebook_timeout_s) == (
            FALLBACK_CELL_TIMEOUT_S,
            FALLBACK_NOTEBOOK_TIMEOUT_S,
        )
        assert "fallback" in found.source and "grader calibrate" in found.source


def _staged(config):
    from grader.data.staging import stage_dataset
    from grader.engine.batch import cache_dir

    return stage_dataset(config.data, config.data_source, cache_dir() / "data", SHEET.dataset)


@pytest.mark.parametrize(
    "real",
    [
        pytest.param(
            True,
            marks=pytest.mark.skipif(not SHARED_DATA.exists(), reason="the real Fashion-MNIST is not on this machine"),
        ),
        False,
    ],
    ids=["real data", "generated stand-in"],
)
def test_shipped_calibration_times_the_graded_data_and_the_self_check(real):
    """The shipped reference/calibration.json has the solution's timings for the data graded by
    default and for the self-check's small subset: both get derived limits, the self-check's in
    seconds."""
    from grader.commands.check import check_config

    shipped = load_config(ROOT / "grading.toml")
    if not real:
        shipped = shipped.model_copy(update={"data": shipped.data.model_copy(update={"source": ""})})
    found = {}
    for name, config in (("graded", shipped), ("self-check", check_config(shipped, full=False))):
        data = _staged(config).info
        entry = json.loads(CALIBRATION_FILE.read_text())[f"sheet6/{data.fingerprint}"]
        assert len(entry["cell_seconds"]) >= 3 and len(entry["baseline"]) == len(entry["cell_seconds"]), name
        found[name] = time_limits(config.limits, data, SHEET, CALIBRATION_FILE)
        assert "slowest cell" in found[name].source, (name, found[name])
    assert 30 <= found["graded"].cell_timeout_s <= 90, found
    assert found["self-check"].cell_timeout_s < 60, found
    assert found["self-check"].cell_timeout_s <= found["graded"].cell_timeout_s


@needs_torch
@pytest.mark.kernel
def test_calibration_records_the_seconds_of_each_cell(grading_context):
    """The session's calibration (conftest: one run of the solution on tiny data) keeps the CPU time
    of every code cell of the solution, which the limits are derived from; or, when the machine was
    busy during the run (test_cpu_time), says so and keeps no timings."""
    from grader.engine.calibrate import load_calibration

    entry = load_calibration(SHEET)[grading_context.data.info.fingerprint]
    solution = nbformat.read(ROOT / "reference" / "solution.ipynb", as_version=4)
    code_cells = [c for c in solution.cells if c.cell_type == "code" and c.source.strip()]
    assert len(entry["baseline"]) == 1
    if entry.get("busy_runs"):
        assert "cell_seconds" not in entry and "CPU time" in entry["busy_runs"][0]["why"], entry
        return
    assert len(entry["cell_seconds"]) == len(entry["cell_wall_seconds"]) == 1 and entry["clock"] == "cpu"
    assert len(entry["cell_seconds"][0]) == len(code_cells)
    assert all(seconds >= 0 for seconds in entry["cell_seconds"][0]) and max(entry["cell_seconds"][0]) > 0
    limits = time_limits(auto_limits(), grading_context.data.info, SHEET)
    assert "1 run(s) of the solution" in limits.source and "of CPU time" in limits.source


def test_a_batch_on_data_without_calibration_gets_the_fallback(tmp_path, monkeypatch):
    from conftest import tiny_config

    from grader.engine.batch import prepare_context

    monkeypatch.setenv("GRADER_CALIBRATION", str(tmp_path / "empty.json"))
    config = tiny_config(limits={"cell_timeout_s": "auto", "notebook_timeout_s": "auto"})
    ctx = prepare_context(config, tmp_path, workers=1, auto_calibrate=False)
    assert ctx.time_limits.cell_timeout_s == FALLBACK_CELL_TIMEOUT_S
    assert "fallback" in ctx.time_limits.source


# ------------------------------------------------------------------------------ never-ending cells

NEVER_ENDING = ["x = 6 * 7", "while True:\n    pass", "print('after the endless cell', x)"]


def write_notebook(folder: Path, cells: list[str]) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# never ending")] + [nbformat.v4.new_code_cell(c) for c in cells]
    path = folder / "Erika_Mustermann_1234567_Max_Meier_7654321.ipynb"
    nbformat.write(nb, path)
    return path


def assert_interrupted_at(report, cell_limit: float):
    execution = report.execution
    assert execution.status == "timeout", execution
    assert execution.time_limits.cell_timeout_s == cell_limit
    assert "slowest cell" in execution.time_limits.source, execution.time_limits
    # Named as Jupyter does (the markdown cell is cell 1, the endless one cell 3 and In [2]).
    assert any(
        "cell In [2] (" in n and f"ran over the limit of {cell_limit:g} s per cell" in n and "slowest cell" in n
        for n in execution.notes
    ), execution.notes
    assert execution.cells_run == execution.cells_total == 3


@needs_torch
@pytest.mark.kernel
def test_a_never_ending_cell_on_the_default_subset_costs_about_a_minute(tmp_path, monkeypatch):
    """The shipped configuration and calibration, as a tutor grades: the endless cell is interrupted
    at the derived limit, not after ten minutes, and the cells after it run."""
    from grader.engine.batch import prepare_context
    from grader.pipeline import grade_submission

    shipped_copy = tmp_path / "calibration.json"  # read only, but never let a run write the shipped file
    shutil.copy(CALIBRATION_FILE, shipped_copy)
    monkeypatch.setenv("GRADER_CALIBRATION", str(shipped_copy))
    config = load_config(ROOT / "grading.toml")
    ctx = prepare_context(config, tmp_path, workers=2, auto_calibrate=False)
    limit = ctx.time_limits.cell_timeout_s
    assert 30 <= limit <= 90, ctx.time_limits
    submissions = tmp_path / "submissions"
    submissions.mkdir()
    graded = grade_submission(write_notebook(submissions, NEVER_ENDING), submissions, ctx)
    assert_interrupted_at(graded.report, limit)
    after = [c for c in graded.executed.cells if c.cell_type == "code"][2]
    assert "after the endless cell 42" in after.outputs[0]["text"]
    assert graded.report.execution.data.fingerprint == ctx.data.info.fingerprint


@needs_torch
@pytest.mark.kernel
def test_the_self_check_has_a_limit_in_seconds(tmp_path, monkeypatch, capsys):
    """`grader check` on the small subset: its own derived limit, through the same mechanism."""
    from rich.console import Console

    from grader.commands.check import check_path

    shipped_copy = tmp_path / "calibration.json"
    shutil.copy(CALIBRATION_FILE, shipped_copy)
    monkeypatch.setenv("GRADER_CALIBRATION", str(shipped_copy))
    path = write_notebook(tmp_path, NEVER_ENDING)
    code = check_path(
        path,
        config_path=str(ROOT / "grading.toml"),
        as_json=True,
        full=False,
        console=Console(file=open(os.devnull, "w")),
    )
    from grader.models import Report

    report = Report.model_validate_json(capsys.readouterr().out)
    # Stopped by the grader's limit, no check lost for it: a tutor decides (exit 3), not "would lose points".
    assert code == 3 and {c.status for c in report.checks} <= {"pass", "needs_review"}, report.checks
    assert report.execution.time_limits.cell_timeout_s < 60, report.execution.time_limits
    assert_interrupted_at(report, report.execution.time_limits.cell_timeout_s)
    assert shipped_copy.read_bytes() == CALIBRATION_FILE.read_bytes()  # it had the entry: no calibration ran


# ------------------------------------------------------------------------------ the disk cap

DISK_MB = 64
FILL = r"""
import errno, json, os
written, refused = 0, None
try:
    open(SUBMISSION + "/planted.txt", "w")
    planted = "written"
except OSError as exc:
    planted = exc.strerror
for i in range(3 * DISK_MB):             # at most three times the cap: the old grader had none
    try:
        with open(f"fill-{i}.bin", "wb") as f:
            f.write(b"x" * 2**20)
        written += 1
    except OSError as exc:
        refused = exc.errno
        break
# The filesystem the workspace is on, as the kernel sees it: its type and its size.
cwd = os.getcwd()
mounts = [line.split() for line in open("/proc/self/mountinfo")]
mount = max((m for m in mounts if cwd == m[4] or cwd.startswith(m[4].rstrip("/") + "/")), key=lambda m: len(m[4]))
fs_type = mount[mount.index("-") + 1]
fs = os.statvfs(cwd)
print("RESULT " + json.dumps({"written_mb": written, "refused": refused, "planted": planted,
                              "submitted": open("submitted.txt").read(), "cwd": cwd,
                              "fs_type": fs_type, "fs_mb": fs.f_blocks * fs.f_frsize / 2**20}))
"""


def disk_config():
    return config_from_dict(
        {
            "limits": {
                "cell_timeout_s": 60,
                "notebook_timeout_s": 120,
                "probe_timeout_s": 30,
                "processes": 64,
                "disk_mb": DISK_MB,
            },
            "archive": {"max_uncompressed_mb": 32},
            "run": {"sandbox": "bubblewrap"},
        },
        source="<tests>",
    )


def fill_notebook() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(f"DISK_MB = {DISK_MB}\nSUBMISSION = {SUBMISSION_MOUNT!r}\n" + FILL),
        nbformat.v4.new_code_cell("open('after.txt', 'w').write('the kernel goes on')\nprint('after')"),
    ]
    return nb


def assert_capped(execution, host_workspace: Path):
    r = recorded(execution.notebook.cells[0])
    assert r["refused"] == errno.ENOSPC, r  # refused, for lack of space ...
    assert DISK_MB - 4 <= r["written_mb"] < DISK_MB, r  # ... at the cap
    assert r["planted"] != "written" and r["submitted"] == "the team's file", r
    assert r["cwd"] == str(host_workspace.resolve())  # the workspace's own path
    assert "after" in execution.notebook.cells[1].outputs[0]["text"]
    # Nothing of it reached the grader's disk: the host's folder holds only what was copied in, and
    # the kernel wrote to a memory filesystem of the cap's size. (Asked of the kernel, not read off
    # the host's free space, which any other job on the machine changes.)
    assert sorted(p.name for p in host_workspace.iterdir()) == ["submitted.txt"]
    assert r["fs_type"] == "tmpfs" and DISK_MB - 1 <= r["fs_mb"] <= DISK_MB, r


@needs_bwrap
@pytest.mark.kernel
@pytest.mark.bwrap
def test_a_fresh_kernel_cannot_write_more_than_its_cap():
    root = Path(tempfile.mkdtemp(prefix="g6-disk-"))
    workspace = root / "ws"
    workspace.mkdir()
    (workspace / "submitted.txt").write_text("the team's file")
    config = disk_config()

    async def go():
        command = kernel_command(config, workspace, threads=1)
        async with KernelSession(command, workspace, config.limits) as session:
            await session.copy_in()
            execution = await session.run_notebook(fill_notebook())
            return execution

    try:
        assert_capped(asyncio.run(go()), workspace)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@needs_bwrap
@needs_torch
@pytest.mark.kernel
@pytest.mark.bwrap
def test_forked_kernels_cannot_write_more_than_their_cap_and_the_next_one_runs():
    from grader.run.kernels import ForkKernels

    work = Path(tempfile.mkdtemp(prefix="g6-disk-"))
    ctx = KernelContext(config=disk_config(), work_dir=work, data_root=None, warmup_imports=SHEET.warmup_imports)

    async def go():
        kernels = ForkKernels(ctx)
        runs = []
        try:
            for _ in range(2):
                async with kernels.kernel() as kernel:
                    (kernel.workspace / "submitted.txt").write_text("the team's file")
                    await kernel.session.copy_in()
                    execution = await kernel.session.run_notebook(fill_notebook())
                    runs.append((execution, kernel.workspace))
                    assert_capped(*runs[-1])
            return runs, kernels.server.generation
        finally:
            await kernels.close()

    try:
        runs, generation = asyncio.run(go())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert generation == 1  # the same server, and the second kernel had its own full cap
    assert recorded(runs[1][0].notebook.cells[0])["written_mb"] >= DISK_MB - 4


@needs_bwrap
@needs_torch
@pytest.mark.kernel
@pytest.mark.bwrap
def test_a_notebook_filling_its_disk_is_graded_and_so_are_the_next(grading_context, tmp_path):
    """Through the pipeline, in a batch worker's forked kernels: the notebook that fills its
    workspace is graded as usual (the solution's cells run on), and so is the team after it."""
    from grader.pipeline import grade_submission_async
    from grader.run.kernels import ForkKernels

    config = grading_context.config
    config = config.model_copy(
        update={
            "limits": config.limits.model_copy(update={"disk_mb": DISK_MB}),
            "archive": config.archive.model_copy(update={"max_uncompressed_mb": 32}),
        }
    )
    ctx = dataclasses.replace(grading_context, config=config, work_dir=tmp_path)
    solution = nbformat.read(ROOT / "reference" / "solution.ipynb", as_version=4)
    paths = []
    for name, extra in (
        (
            "filler",
            f"DISK_MB = {DISK_MB}\nSUBMISSION = {SUBMISSION_MOUNT!r}\n"
            "open('submitted.txt', 'w').write(\"the team's file\")\n" + FILL,
        ),
        ("next", "print('an honest notebook')"),
    ):
        folder = tmp_path / name
        folder.mkdir()
        nb = nbformat.from_dict(json.loads(nbformat.writes(solution)))
        nb.cells.append(nbformat.v4.new_code_cell(extra))
        paths.append(folder / "Erika_Mustermann_1234567_Max_Meier_7654321.ipynb")
        nbformat.write(nb, paths[-1])

    async def go():
        kernels = ForkKernels(ctx.kernel_context)
        try:
            return [await grade_submission_async(path, path.parent, ctx, kernels) for path in paths]
        finally:
            await kernels.close()

    filler, honest = asyncio.run(go())
    for graded in (filler, honest):
        assert graded.report.execution.status == "ok", (graded.report.execution.errors, graded.report.execution.notes)
        passing = {c.id for c in graded.report.checks if c.status == "pass"}
        assert {"baseline.architecture", "baseline.forward", "batchnorm.behaviour"} <= passing, graded.report.checks
    r = recorded(filler.executed.cells[-1])
    assert r["refused"] == errno.ENOSPC and r["written_mb"] < DISK_MB, r
    assert list(tmp_path.glob("**/fill-*.bin")) == []
