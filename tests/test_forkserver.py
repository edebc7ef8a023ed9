"""Kernels forked from a worker's fork server (grader/run/forkserver*.py): real servers, real kernels.

The server imports torch once (a few seconds), so each test runs one server and several kernels from
it, the way a batch worker does, and looks from inside the kernels at what they can see and do.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import ATTEMPT_HELPERS, fork_loop, needs_torch, notebook, recorded
from conftest import ROOT as REPO_ROOT  # the source checkout the tests run from

from grader.config import config_from_dict
from grader.run.context import KernelContext
from grader.run.kernels import ForkKernels
from grader.run.sandbox import SANDBOX_UID
from grader.sheets.sheet6 import SHEET

pytestmark = [
    needs_torch,
    pytest.mark.kernel,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed"),
    pytest.mark.bwrap,
]


def context(work: Path, **limits):
    raw = {"cell_timeout_s": 20, "notebook_timeout_s": 120, "probe_timeout_s": 30, "processes": 64, **limits}
    config = config_from_dict({"limits": raw, "run": {"sandbox": "bubblewrap"}}, source="<tests>")
    return KernelContext(config=config, work_dir=work, data_root=None, warmup_imports=SHEET.warmup_imports)


@pytest.fixture
def work():
    # Outside pytest's tmp_path on purpose (short paths), with another team's folder beside the
    # workspaces, as the batch lays them out.
    root = Path(tempfile.mkdtemp(prefix="g6-fork-"))
    (root / "ws-other-team").mkdir()
    (root / "ws-other-team" / "secret.txt").write_text("the other team's solution")
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _alive(pid: str) -> bool:
    """Whether process `pid` still runs (a zombie has ended)."""
    try:
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def host_processes(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and text.encode() in (entry / "cmdline").read_bytes():
                found.append(entry.name)
        except OSError:
            pass
    return found


LOOK_AROUND = (
    r"""
import ctypes, glob, json, os, random, socket, subprocess, sys
import numpy as np
import torch
"""
    + ATTEMPT_HELPERS
    + r"""
libc = ctypes.CDLL(None, use_errno=True)
status = dict(line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\t" in line)
ws = os.getcwd()
r = {"uid": os.getuid(), "pid": os.getpid(), "cwd": ws,
     "caps": [status[k].strip() for k in ("CapEff", "CapPrm", "CapBnd", "CapAmb")],
     "userns": libc.unshare(0x10000000), "mount": libc.mount(b"tmpfs", b"/mnt", b"tmpfs", 0, None),
     "net": attempt(lambda: connect("192.0.2.1", 80)),
     "siblings": sorted(os.listdir(os.path.dirname(ws))),
     "other_team": attempt(lambda: open(os.path.join(os.path.dirname(os.path.dirname(ws)), "ws-other-team",
                                                      "secret.txt")).read()),
     "write_parent": attempt(lambda: open(os.path.join(os.path.dirname(ws), "evil.txt"), "w").write("x")),
     "import_grader": attempt(lambda: __import__("grader").__file__),
     "repo": attempt(lambda: os.listdir(REPO)),
     "tmp": sorted(os.listdir("/tmp")), "shm": sorted(os.listdir("/dev/shm")),
     # The sandbox's root and /dev outlive a kernel: nothing may be left there for the next one.
     "write_root": [attempt(lambda: open("/planted", "w").write("x")), attempt(lambda: os.mkdir("/planted-dir")),
                    attempt(lambda: os.rename("/" + sorted(os.listdir("/"))[0], "/renamed")),
                    attempt(lambda: open("/dev/planted", "w").write("x"))],
     "random": [random.random(), float(np.random.rand()), float(torch.rand(1))]}
# Every process this kernel did not start: its memory, files, environment and root are closed.
own = os.readlink("/proc/self/ns/pid")
foreign = {}
for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
    try:
        if os.readlink(f"/proc/{pid}/ns/pid") == own:
            continue
    except OSError:
        pass
    foreign[pid] = {"root": attempt(lambda: os.listdir(f"/proc/{pid}/root/tmp")),
                    "cwd": attempt(lambda: os.listdir(f"/proc/{pid}/cwd")),
                    "environ": attempt(lambda: open(f"/proc/{pid}/environ").read()),
                    "mem": attempt(lambda: open(f"/proc/{pid}/mem", "rb").close())}
r["foreign"] = foreign
# Leave things behind: files in /tmp and /dev/shm, and a daemon that escaped the kernel's session.
open("/tmp/planted", "w").write("x")
open("/dev/shm/planted", "w").write("x")
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execvp("sleep", ["sleep", "4242"])
    os._exit(0)
print("RESULT " + json.dumps(r))
"""
)


def test_forked_kernels_are_isolated_from_the_server_and_from_each_other(work):
    ctx = context(work)

    async def scenario():
        kernels = ForkKernels(ctx)
        try:
            async with kernels.kernel() as kernel:
                (kernel.workspace / "mine.txt").write_text("this team's file")
                first = await kernel.session.run_notebook(
                    notebook(
                        f"REPO = {str(REPO_ROOT)!r}\n" + LOOK_AROUND,
                        "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])",
                    )
                )
                assert host_processes("sleep\x004242"), "the daemon should be running while its kernel runs"
            async with kernels.kernel() as kernel:
                # Handed over only once every process of the kernel before has ended.
                leftovers = host_processes("sleep\x004242")
                second = await kernel.session.run_notebook(notebook(f"REPO = {str(REPO_ROOT)!r}\n" + LOOK_AROUND))
            return first, second, leftovers
        finally:
            await kernels.close()

    first, second, leftovers = asyncio.run(scenario())
    assert first.info.status == "ok", first.info
    assert first.info.isolated and any("fork server" in n for n in first.info.notes)
    r = recorded(first.notebook.cells[0])
    assert r["uid"] == SANDBOX_UID and r["pid"] == 2  # PID 2 under the kernel's own init
    assert r["caps"] == ["0000000000000000"] * 4, r["caps"]
    assert r["userns"] == -1 and r["mount"] == -1  # no user namespaces, no mounts
    assert not r["net"].startswith("ok"), r["net"]
    assert r["siblings"] == [Path(r["cwd"]).name], r["siblings"]  # not the runtime or other workspaces
    assert not r["other_team"].startswith("ok"), r
    # Above its workspace is the kernel's own /tmp (in memory): what it writes there reaches no one.
    assert not list(work.rglob("evil.txt"))
    assert r["import_grader"].startswith("ModuleNotFoundError"), r
    assert "grader" not in r["repo"] and "reference" not in r["repo"], r["repo"]
    # Its /tmp: the matplotlib folder, the way to its own workspace and runtime folder, and the way
    # to the Python it runs on when that lives under /tmp (a checkout there, with its venv: read-only).
    python_under_tmp = {Path(p).parts[2] for p in (sys.prefix, REPO_ROOT) if Path(p).parts[:2] == ("/", "tmp")}
    assert all(n in ("mplconfig", work.name, *python_under_tmp) or n.startswith("g6r-") for n in r["tmp"]), r["tmp"]
    assert r["shm"] == [], r["shm"]
    assert not any(w.startswith("ok") for w in r["write_root"]), r["write_root"]
    assert r["foreign"], "the server's processes are listed in /proc"
    opened = {pid: {k: v for k, v in what.items() if v.startswith("ok")} for pid, what in r["foreign"].items()}
    assert not any(opened.values()), opened
    # A plot without plt.show() is shown, as in Jupyter (the inline backend's hooks are in place).
    assert any("image/png" in out.get("data", {}) for out in first.notebook.cells[1].outputs)

    assert leftovers == [], "a process of the previous kernel was still running"
    s = recorded(second.notebook.cells[0])
    assert "planted" not in s["tmp"] and s["shm"] == [], "files of the previous kernel are visible"
    assert s["cwd"] != r["cwd"]
    assert all(a != b for a, b in zip(s["random"], r["random"])), (
        f"forks share their seeds: {s['random']} {r['random']}"
    )
    # torch too: with one torch seed per server, every notebook started from the same initial weights
    assert host_processes("sleep\x004242") == []


def test_forked_kernels_die_time_out_and_survive_a_lost_server(work):
    ctx = context(work, cell_timeout_s=6, processes=64)

    async def scenario():
        kernels = ForkKernels(ctx)
        try:
            async with kernels.kernel() as kernel:
                died = await kernel.session.run_notebook(notebook("x = 1", "import os; os._exit(3)", "print('never')"))
            async with kernels.kernel() as kernel:
                looped = await kernel.session.run_notebook(notebook("while True: pass", "print('next cell ran')"))
            async with kernels.kernel() as kernel:
                forked = await kernel.session.run_notebook(notebook(fork_loop(500, 2), "print('alive')"))
            # The server goes away (it should not, but): the next kernel comes from a new one.
            kernels.server.process.send_signal(signal.SIGKILL)
            await kernels.server.process.wait()
            async with kernels.kernel() as kernel:
                after = await kernel.session.run_notebook(notebook("print('after', 6 * 7)"))
            return died, looped, forked, after
        finally:
            await kernels.close()

    died, looped, forked, after = asyncio.run(scenario())
    assert died.info.status == "kernel_died" and died.info.last_cell == 2, died.info
    assert looped.info.status == "timeout", looped.info
    assert "next cell ran" in looped.notebook.cells[1].outputs[0]["text"]
    r = recorded(forked.notebook.cells[0])
    assert r["error"] and r["forked"] < 64, r
    assert "alive" in forked.notebook.cells[1].outputs[0]["text"]
    assert after.info.status == "ok" and "after 42" in after.notebook.cells[0].outputs[0]["text"]


def test_without_bubblewrap_kernels_are_still_forked_with_limits_only(work):
    """sandbox = "none": no namespaces and a note saying so, but the same fast kernels."""
    raw = {"cell_timeout_s": 20, "notebook_timeout_s": 120, "probe_timeout_s": 30}
    config = config_from_dict({"limits": raw, "run": {"sandbox": "none"}}, source="<tests>")
    ctx = KernelContext(config=config, work_dir=work, data_root=None, warmup_imports=SHEET.warmup_imports)

    async def scenario():
        kernels = ForkKernels(ctx)
        try:
            runs = []
            for _ in range(2):
                async with kernels.kernel() as kernel:
                    runs.append(
                        await kernel.session.run_notebook(
                            notebook(
                                "import os, sys, torch\nprint(os.getcwd(), 'torch' in sys.modules, os.getpid() > 2)"
                            )
                        )
                    )
            generation = kernels.server.generation
            # Without namespaces nothing but the process tree ties a kernel to its server: a server
            # that dies must still take its kernels along.
            async with kernels.kernel() as kernel:
                pid = (
                    (await kernel.session.run_notebook(notebook("import os\nprint(os.getpid())")))
                    .notebook.cells[0]
                    .outputs[0]["text"]
                    .strip()
                )
                kernels.server.process.send_signal(signal.SIGKILL)
                await kernels.server.process.wait()
                for _ in range(100):
                    if not _alive(pid):
                        break
                    await asyncio.sleep(0.05)
                orphaned = _alive(pid)
            return runs, generation, orphaned
        finally:
            await kernels.close()

    runs, generation, orphaned = asyncio.run(scenario())
    assert not orphaned, "a kernel outlived its fork server"
    assert generation == 1  # both kernels from the same server
    for run in runs:
        assert run.info.status == "ok" and not run.info.isolated, run.info
        assert any("without isolation" in n for n in run.info.notes), run.info.notes
        assert run.notebook.cells[0].outputs[0]["text"].split()[1:] == ["True", "True"]
    cwds = [run.notebook.cells[0].outputs[0]["text"].split()[0] for run in runs]
    assert cwds[0] != cwds[1] and all(Path(c).parent.parent == work for c in cwds), cwds


def test_a_fork_server_that_cannot_start_leaves_fresh_kernels_and_one_clear_warning(work, monkeypatch, capsys):
    """A server that dies before "ready" (here: its script exits at once, saying why): the worker
    says so once, with the server's own words, and grades with a new kernel per submission."""
    from grader.run import forkserver

    monkeypatch.setattr(forkserver, "SERVER_SOURCE", "import sys\nsys.exit('no torch here, say')\n")
    ctx = context(work)

    async def scenario():
        kernels = ForkKernels(ctx)
        try:
            runs = []
            for _ in range(2):
                async with kernels.kernel() as kernel:
                    runs.append(await kernel.session.run_notebook(notebook("print(6 * 7)")))
            return runs
        finally:
            await kernels.close()

    runs = asyncio.run(scenario())
    assert [r.info.status for r in runs] == ["ok", "ok"]
    assert all("42" in r.notebook.cells[0].outputs[0]["text"] for r in runs)
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, warnings
    assert warnings[0].count("did not start") == 1 and "no torch here, say" in warnings[0], warnings
    assert "new kernel per submission" in warnings[0]
