"""Time limits that do not depend on how busy the machine is (issue 21): a cell's limit counts the CPU
time of the kernel's processes, with a wall-clock backstop for cells that sleep or wait; calibrations
record CPU time and keep the timings of a run on a busy machine out of the cache; `grader check` says
which cell did not finish and is never "ready to upload" then; its cache falls back to a temporary
folder where the home folder cannot be written.

The unit tests compute limits, read the CPU time of real process trees and decide verdicts; the
kernel tests run real notebooks in real kernels beside two CPU-bound processes (`busy_machine`), in a
fresh sandboxed kernel, in a forked one and, where this machine allows it, in a kernel throttled to a
third of a core (a laptop three times slower).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path

import nbformat
import pytest
from conftest import ROOT, needs_torch, notebook
from rich.console import Console

from grader.commands.check import FINE, TUTORS_MAY_DEDUCT, verdict
from grader.config import config_from_dict
from grader.engine.calibrate import BUSY_RATIO, busy_reason, time_limits
from grader.models import DataInfo, ExecutionInfo, TimedOutCell, TimeLimits
from grader.run import cputime
from grader.run.context import KernelContext
from grader.run.execute import WALL_FACTOR, WALL_FLOOR_S, KernelSession, configured_time_limits, wall_backstop
from grader.run.sandbox import kernel_command
from grader.sheets.sheet6 import SHEET
from grader.util import cache

HAVE_BWRAP = shutil.which("bwrap") is not None
needs_bwrap = pytest.mark.skipif(not HAVE_BWRAP, reason="bubblewrap (bwrap) is not installed")


# ----------------------------------------------------------------------------- limits


def test_the_wall_clock_backstop_is_a_multiple_of_the_cpu_limit_with_a_floor():
    assert wall_backstop(20) == 20 + WALL_FLOOR_S  # small limits: the floor
    assert wall_backstop(600) == WALL_FACTOR * 600  # large ones: the multiple
    assert all(wall_backstop(s) >= max(WALL_FACTOR * s, s + WALL_FLOOR_S) for s in (0.5, 2, 30, 100, 5000))


def test_limits_from_grading_toml_count_cpu_time_with_backstops():
    config = config_from_dict({"limits": {"cell_timeout_s": 30, "notebook_timeout_s": 300}}, source="<tests>")
    limits = configured_time_limits(config.limits)
    assert (limits.clock, limits.cell_timeout_s, limits.notebook_timeout_s) == ("cpu", 30, 300)
    assert (limits.cell_wall_s, limits.notebook_wall_s) == (wall_backstop(30), wall_backstop(300))
    assert "CPU time" in limits.source and "grading.toml" in limits.source


def test_a_report_of_schema_1_1_still_loads_with_its_wall_clock_limits():
    old = {"status": "timeout", "time_limits": {"cell_timeout_s": 60, "notebook_timeout_s": 300, "source": "x"}}
    info = ExecutionInfo.model_validate(old)
    assert info.time_limits.clock == "wall" and info.time_limits.cell_wall_s is None
    assert info.timed_out == [] and info.cpu_s is None


def _data(fingerprint="c" * 16) -> DataInfo:
    return DataInfo(
        kind="real-subset", description="some data", train_size=6000, test_size=1000, fingerprint=fingerprint
    )


def _auto():
    return config_from_dict({}, source="<tests>").limits


def test_auto_limits_from_a_calibration_in_cpu_time(tmp_path):
    path = tmp_path / "calibration.json"
    path.write_text(
        json.dumps(
            {
                "c" * 16: {
                    "baseline": [[0.1] * 5],
                    "batchnorm": [[0.1] * 5],
                    "clock": "cpu",
                    "cell_seconds": [[0.02, 3.1, 0.1], [0.02, 3.4, 0.1], [0.03, 3.2, 0.1]],
                    "cell_wall_seconds": [[0.03, 3.3, 0.1]] * 3,
                }
            }
        )
    )
    limits = time_limits(_auto(), _data(), SHEET, path)
    assert limits.clock == "cpu" and limits.cell_timeout_s == 32  # 10 × the median slowest cell
    assert limits.cell_wall_s == wall_backstop(32) and limits.notebook_wall_s == wall_backstop(
        limits.notebook_timeout_s
    )
    assert "slowest cell (3.2 s of CPU time" in limits.source


def test_cpu_limits_grow_with_the_threads_per_kernel_beyond_the_calibrations(tmp_path):
    """The same work costs more CPU time on more threads: a calibration on 2 threads, a kernel with 8."""
    path = tmp_path / "calibration.json"
    path.write_text(
        json.dumps(
            {
                "c" * 16: {
                    "baseline": [[0.1] * 5],
                    "batchnorm": [[0.1] * 5],
                    "clock": "cpu",
                    "threads": 2,
                    "cell_seconds": [[0.02, 3.2, 0.1]],
                }
            }
        )
    )
    same = time_limits(_auto(), _data(), SHEET, path, threads=2)
    more = time_limits(_auto(), _data(), SHEET, path, threads=8)
    fewer = time_limits(_auto(), _data(), SHEET, path, threads=1)
    assert (same.cell_timeout_s, more.cell_timeout_s, fewer.cell_timeout_s) == (32, 128, 32)
    assert more.notebook_timeout_s > same.notebook_timeout_s
    assert "× 4 for 8 threads per kernel against 2 when calibrated" in more.source


def test_a_calibration_on_a_busy_machine_is_recognised():
    quiet_cpu, quiet_wall = [0.02, 3.1, 3.3, 0.1], [0.03, 3.4, 3.6, 0.1]
    assert busy_reason(quiet_cpu, quiet_wall, "cpu") is None
    # The busy machine: cells 20-40 times slower in wall-clock time, the same CPU time.
    busy = busy_reason(quiet_cpu, [0.5, 90.0, 110.0, 3.0], "cpu")
    assert busy and "× their CPU time" in busy
    assert busy_reason(quiet_cpu, [w * (BUSY_RATIO - 0.2) for w in quiet_cpu], "cpu") is None
    # Without CPU time (wall-clock timings): the load average decides.
    assert busy_reason(quiet_wall, quiet_wall, "wall", load=9.0, cores=2) is not None
    assert busy_reason(quiet_wall, quiet_wall, "wall", load=1.0, cores=2) is None


def test_an_entry_whose_runs_were_all_busy_gives_the_fallback_and_says_why(tmp_path):
    path = tmp_path / "calibration.json"
    path.write_text(
        json.dumps(
            {"c" * 16: {"baseline": [[0.1] * 5], "batchnorm": [[0.1] * 5], "busy_runs": [{"why": "x", "load": 7.0}]}}
        )
    )
    limits = time_limits(_auto(), _data(), SHEET, path)
    assert limits.cell_timeout_s == 600 and "busy machine" in limits.source and "fallback" in limits.source


@needs_torch
@pytest.mark.kernel
def test_a_calibration_whose_cells_wait_more_than_they_compute_keeps_no_timings(grading_context, tmp_path):
    """The issue's busy machine recorded cells 20-40 times slower than a quiet one, and the limits
    derived from them stayed in the cache. A run whose cells spend most of their wall-clock time
    waiting (here: sleeping, as a kernel waits for a core on a busy machine) is recognised: its
    accuracies are kept, its timings are not, it says so, and the limits are not derived from them."""
    from grader.engine.calibrate import calibrate, load_calibration

    solution = nbformat.read(ROOT / "reference" / "solution.ipynb", as_version=4)
    solution.cells.append(nbformat.v4.new_code_cell("import time\ntime.sleep(20)"))
    path = tmp_path / "solution.ipynb"
    nbformat.write(solution, path)
    target = tmp_path / "calibration.json"
    said = []
    calibrate(grading_context, runs=1, path=target, solution=path, progress=said.append)
    entry = load_calibration(SHEET, target)[grading_context.data.info.fingerprint]
    assert len(entry["baseline"]) == 1 and "cell_seconds" not in entry, entry
    assert "× their CPU time in wall-clock time" in entry["busy_runs"][0]["why"], entry
    assert any("the machine was busy" in line and "not kept" in line for line in said), said
    limits = time_limits(_auto(), grading_context.data.info, SHEET, target)
    assert limits.cell_timeout_s == 600 and "busy machine" in limits.source, limits


# ----------------------------------------------------------------------------- reading CPU time

_TREE = r"""
import os, sys, time
def burn(seconds):
    start = time.process_time()
    while time.process_time() - start < seconds:
        pass
child = os.fork()
if child == 0:                      # a child that burns and ends: waited for, so in our cutime
    burn(0.6)
    os._exit(0)
os.waitpid(child, 0)
done_r, done_w = os.pipe()
grandchild = os.fork()
if grandchild == 0:                 # one that is still running when read: counted as it is
    burn(0.4)
    os.write(done_w, b"x")
    sys.stdin.readline()            # until the test closes the pipe
    os._exit(0)
burn(0.3)
os.read(done_r, 1)                  # the grandchild has burnt its share too
print("ready", flush=True)
sys.stdin.readline()                # until the test has read the clock
"""


def test_the_clock_counts_the_whole_tree_and_children_that_ended():
    process = subprocess.Popen([sys.executable, "-c", _TREE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "ready"
        clock = cputime.ProcessTreeClock(lambda: process.pid)
        seconds = clock.read()
        # 0.6 (ended child) + 0.4 (running grandchild) + 0.3 (itself) + Python's start-up, in clock
        # ticks (a hundredth of a second each, sampled: a little under the exact figure at times).
        assert 1.2 <= seconds < 1.3 + 1.5, seconds
        assert clock.read() >= seconds  # never backwards
    finally:
        process.kill()
        process.wait()
        process.stdin.close()  # the grandchild ends too
    assert cputime.ProcessTreeClock(lambda: process.pid).read() is None  # gone: no reading


def test_a_pid_in_no_namespace_of_its_own_is_its_own_number():
    assert cputime.namespace_pids(os.getpid())[0] == os.getpid()


# ----------------------------------------------------------------------------- in real kernels

ENDLESS_AND_SLEEPING = ["x = 6 * 7", "while True:\n    pass", "import time\ntime.sleep(600)", "print('after', x)"]


def _limits(cpu: float, wall: float) -> TimeLimits:
    return TimeLimits(
        cell_timeout_s=cpu,
        notebook_timeout_s=300,
        clock="cpu",
        cell_wall_s=wall,
        notebook_wall_s=1200,
        source="a test's limits",
    )


def _assert_cpu_then_wall(execution, cpu: float, wall: float):
    info = execution.info
    assert info.status == "timeout", info
    endless, sleeping = info.timed_out
    assert (endless.execution_count, endless.limit) == (2, "cell_cpu"), info.timed_out
    assert cpu <= endless.cpu_s < cpu + 2, endless  # stopped at its CPU time, however slow the machine
    assert (sleeping.execution_count, sleeping.limit) == (3, "cell_wall"), info.timed_out
    assert sleeping.wall_s >= wall and sleeping.cpu_s < 1, sleeping
    assert any(
        f"cell In [2] ('while True:') ran over the limit of {cpu:g} s per cell, in CPU time" in n
        and f"cell In [3] ('import time') ran over the wall-clock backstop of {wall:g} s per cell" in n
        for n in info.notes
    ), info.notes
    assert "after 42" in "".join(o.get("text", "") for o in execution.notebook.cells[3].outputs)
    assert not [e for e in info.errors if e.ename == "KeyboardInterrupt"], info.errors  # the grader's interrupt
    assert info.cpu_s is not None and info.cpu_s >= cpu
    assert execution.alive and len(execution.cell_seconds) == 4


@pytest.mark.kernel
@pytest.mark.usefixtures("busy_machine")
@pytest.mark.parametrize("mode", [pytest.param("auto", marks=[needs_bwrap, pytest.mark.bwrap]), "none"])
def test_an_endless_loop_is_stopped_by_cpu_time_and_a_sleeping_cell_by_the_backstop(tmp_path, mode):
    config = config_from_dict({"limits": {"processes": 64}, "run": {"sandbox": mode}}, source="<tests>")

    async def go():
        command = kernel_command(config, tmp_path, threads=1)
        async with KernelSession(command, tmp_path, config.limits, time_limits=_limits(2, 25)) as session:
            return await session.run_notebook(notebook(*ENDLESS_AND_SLEEPING))

    _assert_cpu_then_wall(asyncio.run(go()), 2, 25)


@pytest.mark.kernel
def test_where_cpu_time_cannot_be_read_the_backstops_are_the_limits(tmp_path):
    """A system where the kernel's processes cannot be read (as if no /proc and no psutil): the
    limits are not the CPU seconds taken as wall-clock ones, but the backstops, and the report says so."""
    config = config_from_dict({"limits": {"processes": 64}, "run": {"sandbox": "none"}}, source="<tests>")

    async def go():
        command = dataclasses.replace(kernel_command(config, tmp_path, threads=1), cpu_root=lambda: None)
        async with KernelSession(command, tmp_path, config.limits, time_limits=_limits(1, 4)) as session:
            return await session.run_notebook(notebook("while True:\n    pass", "print('next')"))

    info = asyncio.run(go()).info
    assert (info.time_limits.clock, info.time_limits.cell_timeout_s) == ("wall", 4), info.time_limits
    assert [(c.limit, c.cpu_s) for c in info.timed_out] == [("cell_wall", None)] and info.timed_out[0].wall_s >= 4
    assert any("could not be read" in n and "backstops" in n for n in info.notes), info.notes
    assert info.cpu_s is None


@needs_bwrap
@pytest.mark.kernel
@pytest.mark.bwrap
@pytest.mark.usefixtures("busy_machine")
def test_a_forked_kernel_is_timed_by_its_own_processes():
    """A batch's kernels come from a fork server, in PID namespaces of their own: the grader finds
    each kernel's processes by the number the server gives, and times them alone."""
    from grader.run.kernels import ForkKernels

    work = Path(tempfile.mkdtemp(prefix="g6-cpu-"))
    config = config_from_dict({"limits": {"processes": 64}, "run": {"sandbox": "bubblewrap"}}, source="<tests>")
    ctx = KernelContext(config=config, work_dir=work, data_root=None, time_limits=_limits(2, 25))

    async def go():
        kernels = ForkKernels(ctx)
        try:
            runs = []
            for _ in range(2):  # the second kernel is timed afresh
                async with kernels.kernel() as kernel:
                    runs.append(await kernel.session.run_notebook(notebook(*ENDLESS_AND_SLEEPING)))
            return runs
        finally:
            await kernels.close()

    try:
        for execution in asyncio.run(go()):
            _assert_cpu_then_wall(execution, 2, 25)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# A cell of honest work: CPU_WORK seconds of CPU time, measured by the kernel itself.
CPU_WORK = 4.0
HONEST = (
    "import time\nstart = time.process_time()\nwhile time.process_time() - start < %s:\n    pass\n"
    "print('done')" % CPU_WORK
)


def _cpu_cgroups() -> Path | None:
    """Where a cgroup with a CPU quota can be made (root, cgroup v1 `cpu` or v2 with `cpu`)."""
    if os.geteuid() != 0:
        return None
    for base in (Path("/sys/fs/cgroup/cpu"), Path("/sys/fs/cgroup")):
        if (base / "cpu.cfs_quota_us").exists() or "cpu" in cputime_read(base / "cgroup.subtree_control"):
            return base
    return None


def cputime_read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


@contextmanager
def _a_third_of_a_core():
    """A cgroup whose processes get a third of one core: a laptop three times slower."""
    base = _cpu_cgroups()
    group = base / f"g6-slow-{os.getpid()}"
    group.mkdir()
    try:
        if (group / "cpu.cfs_quota_us").exists():
            (group / "cpu.cfs_period_us").write_text("100000")
            (group / "cpu.cfs_quota_us").write_text("33333")
        else:
            (group / "cpu.max").write_text("33333 100000")
        yield group
    finally:
        for pid in cputime_read(group / "cgroup.procs").split():
            try:  # back where they came from, or the group cannot be removed
                (base / "cgroup.procs").write_text(pid)
            except OSError:
                pass
        group.rmdir()


@pytest.mark.kernel
@pytest.mark.skipif(_cpu_cgroups() is None, reason="needs root and a cgroup with the cpu controller")
def test_a_kernel_three_times_slower_gets_the_same_verdict(tmp_path):
    """The kernel is throttled to a third of a core: its honest cell of 4 s of CPU time takes about
    12 s, three times its limit of 5 s, and still runs to its end, as on a quiet machine."""
    config = config_from_dict({"limits": {"processes": 64}, "run": {"sandbox": "none"}}, source="<tests>")

    async def go():
        command = kernel_command(config, tmp_path, threads=1)
        async with KernelSession(command, tmp_path, config.limits, time_limits=_limits(5, 60)) as session:
            with _a_third_of_a_core() as group:
                root = session._cpu_root()
                table = cputime._linux_table()
                tree = [pid for pid in table if pid == root or _under(pid, root, table)]
                for pid in tree:
                    (group / "cgroup.procs").write_text(str(pid))
                execution = await session.run_notebook(notebook(HONEST, "print('next')"))
        return execution

    execution = asyncio.run(go())
    info = execution.info
    assert info.status == "ok", (info.notes, info.timed_out)
    assert execution.cell_seconds[0] >= CPU_WORK
    assert execution.cell_wall_seconds[0] >= 2 * execution.cell_seconds[0], execution.cell_wall_seconds  # throttled
    assert execution.cell_wall_seconds[0] > 5  # over the limit, had it been counted in wall-clock time


def _under(pid: int, root: int, table: dict) -> bool:
    seen = set()
    while pid in table and pid not in seen:
        seen.add(pid)
        pid = table[pid][0]
        if pid == root:
            return True
    return False


# ----------------------------------------------------------------------------- grader check


def _timed_out_report(**kw):
    from test_student_check import _report

    report = _report()
    execution = report.execution.model_copy(
        update={
            "status": "timeout",
            "time_limits": _limits(20, 140),
            "timed_out": [TimedOutCell(cell=9, execution_count=7, limit="cell_cpu", cpu_s=20.0, wall_s=31.5, **kw)],
        }
    )
    return report.model_copy(update={"execution": execution})


def test_a_notebook_stopped_by_the_time_limit_is_never_ready_to_upload():
    from test_student_check import _printed, _report

    assert verdict(_report()) == FINE
    report = _timed_out_report()
    assert all(c.status == "pass" for c in report.checks)
    assert verdict(report) == TUTORS_MAY_DEDUCT
    text = _printed(report)
    assert "ready to upload" not in text and "tutors may deduct points" in text
    assert "cell In [7] did not finish: it was stopped after 20 s of CPU time, the grader's limit per cell" in text
    assert "tutors will see this in the report" in text


def _endless_zip(folder: Path) -> Path:
    """The correct example with `while True: pass` after all its work, as its last cell."""
    source = ROOT / "submissions" / "Erika_Mustermann_7012345_Jürgen_Müller_7054321.zip"
    target = folder / source.name
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith(".ipynb"):
                nb = nbformat.reads(data.decode("utf-8"), as_version=4)
                nb.cells.append(nbformat.v4.new_code_cell("while True:\n    pass"))
                data = nbformat.writes(nb).encode("utf-8")
            zout.writestr(info, data)
    return target


@needs_torch
@pytest.mark.kernel
def test_grader_check_of_a_notebook_whose_last_cell_never_ends(tmp_path, monkeypatch):
    """Every check passes (all the work ran), yet the notebook does not finish: exit 3, the cell named."""
    from grader.commands.check import check_path

    calibration = tmp_path / "calibration.json"
    shutil.copy(ROOT / "reference" / "calibration.json", calibration)
    monkeypatch.setenv("GRADER_CALIBRATION", str(calibration))
    target = _endless_zip(tmp_path)
    console = Console(record=True, width=300, file=open(os.devnull, "w"))
    code = check_path(target, config_path=str(ROOT / "grading.toml"), as_json=False, full=False, console=console)
    text = console.export_text()
    assert code == 3, text
    assert "ready to upload" not in text
    nb = nbformat.reads(
        zipfile.ZipFile(target)
        .read(next(n for n in zipfile.ZipFile(target).namelist() if n.endswith(".ipynb")))
        .decode(),
        as_version=4,
    )
    last = sum(1 for c in nb.cells if c.cell_type == "code" and c.source.strip())
    assert f"cell In [{last}] did not finish: it was stopped after" in text and "of CPU time" in text, text
    assert "tutors will see this in the report" in text
    marks = re.findall(r"^\s+(\S) (\S+) \(([\d.]+)/[\d.]+\)", text, re.MULTILINE)
    assert len(marks) == 6 and all(mark == "✓" for mark, _, _ in marks), text  # no check lost: all the work ran


# ----------------------------------------------------------------------------- the cache


def test_a_cache_that_cannot_be_made_falls_back_to_a_private_temporary_folder(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would go")
    monkeypatch.delenv("GRADER_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker / "cache"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(cache, "_fallback", None)
    said = []
    monkeypatch.setattr(cache, "say", said.append)
    first = cache.cache_dir()
    assert first.parent == tmp_path / "tmp" and first.is_dir() and (first.stat().st_mode & 0o077) == 0
    assert cache.cache_dir() == first and len(said) == 1  # said once, in one line
    assert str(blocker / "cache" / "sheet6-grader") in said[0] and str(first) in said[0] and "\n" not in said[0]


def test_a_planted_fallback_folder_of_someone_else_is_not_used(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    planted = tmp_path / f"sheet6-grader-{os.getuid()}"
    planted.mkdir(mode=0o777)
    os.chmod(planted, 0o777)  # open to everyone: not a private folder
    found = cache._own_temporary_cache()
    assert found != planted and found.parent == tmp_path


def _python_for_nobody() -> str | None:
    """A Python of this minor version that the user nobody may run (this one may live under /root),
    with which the grader's code and this environment's packages can be imported."""
    if os.geteuid() != 0:
        return None
    try:
        import pwd

        pwd.getpwnam("nobody")
    except (ImportError, KeyError):
        return None
    minor = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    for candidate in (f"/usr/bin/{minor}", f"/usr/local/bin/{minor}"):
        try:
            done = subprocess.run(
                [candidate, "-c", "pass"], user="nobody", group="nogroup", extra_groups=[], capture_output=True, env={}
            )
        except OSError:
            continue
        if done.returncode == 0:
            return candidate
    return None


@pytest.mark.skipif(_python_for_nobody() is None, reason="needs root, the user nobody and a Python it may run")
def test_grader_check_with_a_read_only_home_says_so_in_one_line(tmp_path):
    """As a user whose home folder is read-only and who set no GRADER_CACHE: no traceback, one line
    about the cache, and the check runs to its verdict (here, of a zip that is not a zip)."""
    home = tmp_path / "home"
    home.mkdir()
    os.chmod(home, 0o555)  # read-only, and not nobody's own
    os.chmod(tmp_path, 0o755)
    bad = tmp_path / "Erika_Mustermann_7012345_Max_Meier_7654321.zip"
    bad.write_bytes(b"not a zip at all")
    os.chmod(bad, 0o644)
    import site

    path = os.pathsep.join([str(ROOT), *site.getsitepackages()])
    done = subprocess.run(
        [_python_for_nobody(), "-m", "grader", "check", "--sheet", "sheet6", bad.name],
        user="nobody",
        group="nogroup",
        extra_groups=[],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env={"HOME": str(home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONPATH": path},
    )
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and str(home / ".cache" / "sheet6-grader") in lines[0], done.stderr
    assert "cannot be written" in lines[0] and "GRADER_CACHE" in lines[0]
    assert done.returncode == 1 and "archive.corrupt" in done.stdout, (done.returncode, done.stdout)
