"""The kernel's sandbox (grader/run/sandbox.py) and the time limits of KernelSession under it.

Unit tests check the command that is built; kernel tests start real (torch-free) kernels and look
from the inside at what they can see and do. Kernels here import nothing heavy, so each costs ~1 s.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest
from conftest import ATTEMPT_HELPERS, fork_loop, notebook
from conftest import ROOT as REPO_ROOT  # the source checkout the tests run from

from grader.config import config_from_dict
from grader.run import sandbox
from grader.run.execute import KernelSession
from grader.run.sandbox import SandboxError, kernel_command

HAVE_BWRAP = shutil.which("bwrap") is not None
needs_bwrap = pytest.mark.skipif(not HAVE_BWRAP, reason="bubblewrap (bwrap) is not installed")


def make_config(sandbox_mode="auto", **limits):
    raw_limits = {"cell_timeout_s": 20, "notebook_timeout_s": 120, "probe_timeout_s": 30, "processes": 64}
    raw_limits.update(limits)
    return config_from_dict({"limits": raw_limits, "run": {"sandbox": sandbox_mode}}, source="<tests>")


@pytest.fixture
def workspace():
    # Outside pytest's tmp_path on purpose: a sibling folder with a secret next to the workspace,
    # as the batch lays workspaces out side by side in its work dir.
    root = Path(tempfile.mkdtemp(prefix="g6-sbx-"))
    (root / "other-team").mkdir()
    (root / "other-team" / "secret.txt").write_text("the other team's solution")
    ws = root / "team"
    ws.mkdir()
    yield ws
    shutil.rmtree(root, ignore_errors=True)


def run(config, ws: Path, nb: nbformat.NotebookNode, *, after: str | None = None):
    """Run `nb` in a kernel started as the pipeline starts it; optionally `after` through run_code."""

    async def go():
        command = kernel_command(config, ws, threads=1, mpl_cache=None)
        async with KernelSession(command, ws, config.limits) as session:
            execution = await session.run_notebook(nb)
            extra = await session.run_code(after, timeout=20) if after else None
        return command, execution, extra

    return asyncio.run(go())


def outputs_text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        elif "data" in out:
            parts.append(out["data"].get("text/plain", ""))
        elif out.get("output_type") == "error":
            parts.append(f"{out.get('ename')}: {out.get('evalue')}")
    return "".join(parts)


def recorded(cell) -> dict:
    """The JSON a cell printed after the marker `RESULT `."""
    for line in outputs_text(cell).splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise AssertionError(f"no RESULT in the cell's output: {outputs_text(cell)[:2000]}")


# ------------------------------------------------------------------------------- the command itself


def test_none_means_limits_only(tmp_path):
    command = kernel_command(make_config("none"), tmp_path)
    assert command.isolated is False and command.sandbox == "none"
    assert "bwrap" not in " ".join(command.argv)
    assert any("without isolation" in note for note in command.notes)
    assert any(a.startswith("RLIMIT_AS=") for a in command.argv)


def test_auto_without_bwrap_falls_back_with_a_note(tmp_path, monkeypatch):
    monkeypatch.setattr(sandbox, "bubblewrap_available", lambda: None)
    command = kernel_command(make_config("auto"), tmp_path)
    assert command.isolated is False and command.sandbox == "none"
    assert any("not installed" in note for note in command.notes)


def test_bubblewrap_required_but_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(sandbox, "bubblewrap_available", lambda: None)
    with pytest.raises(SandboxError, match="bubblewrap"):
        kernel_command(make_config("bubblewrap"), tmp_path)
    with pytest.raises(SandboxError, match="bubblewrap"):
        sandbox.choose_sandbox(make_config("bubblewrap"))
    sandbox.choose_sandbox(make_config("auto"))  # no error: falls back


@pytest.fixture
def bwrap_that_cannot_start(tmp_path, monkeypatch):
    """A `bwrap` as on Ubuntu 24.04, where AppArmor refuses unprivileged user namespaces."""
    fake = tmp_path / "fakebin" / "bwrap"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    sandbox.bubblewrap_problem.cache_clear()
    yield fake
    sandbox.bubblewrap_problem.cache_clear()


def test_bwrap_that_cannot_start_means_no_sandbox_for_auto(tmp_path, bwrap_that_cannot_start):
    command = kernel_command(make_config("auto"), tmp_path)
    assert command.isolated is False and command.sandbox == "none"
    assert "bwrap" not in " ".join(command.argv)
    (note,) = command.notes
    assert (
        "bubblewrap is installed but cannot start a sandbox here: bwrap: setting up uid map: Permission denied" in note
    )
    assert sandbox.choose_sandbox(make_config("auto")).fallback
    with pytest.raises(SandboxError, match="cannot start a sandbox on this machine .bwrap: setting up uid map"):
        sandbox.choose_sandbox(make_config("bubblewrap"))


def test_bwrap_is_tried_once_per_process(tmp_path, bwrap_that_cannot_start):
    counter = tmp_path / "tries"
    bwrap_that_cannot_start.write_text(f"#!/bin/sh\necho x >> {counter}\nexit 1\n")
    for _ in range(3):
        kernel_command(make_config("auto"), tmp_path)
    assert counter.read_text().count("x") == 1


def test_grading_without_a_sandbox_is_said_loudly(tmp_path, bwrap_that_cannot_start):
    (tmp_path / "subs").mkdir()
    config = tmp_path / "grading.toml"
    config.write_text(
        '[sheet]\nname = "sheet6"\n[data]\ntrain_size = 1000\ntest_size = 500\n'
    )  # calibrated in the shipped file
    calibration = tmp_path / "calibration.json"
    shutil.copy(REPO_ROOT / "reference" / "calibration.json", calibration)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "grader",
            "--config",
            str(config),
            "grade",
            str(tmp_path / "subs"),
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "300", "GRADER_CALIBRATION": str(calibration)},
    )
    assert done.returncode == 0, done.stderr
    assert (
        "WARNING: the students' notebooks run WITHOUT a sandbox (bubblewrap is installed but cannot start"
        in done.stdout
    ), done.stdout


@needs_bwrap
def test_bubblewrap_command(tmp_path):
    command = kernel_command(make_config("auto"), tmp_path)
    argv = command.argv
    assert command.isolated is True and command.sandbox == "bubblewrap"
    assert command.interrupt_mode == "message"
    for flag in ("--unshare-net", "--unshare-pid", "--unshare-user", "--die-with-parent", "--new-session"):
        assert flag in argv
    binds = [argv[i + 1] for i, a in enumerate(argv) if a in ("--bind", "--ro-bind")]
    assert str(REPO_ROOT) not in binds
    assert not any(b == str(REPO_ROOT / "grader") or b.startswith(str(REPO_ROOT / "reference")) for b in binds)
    rw = [argv[i + 1] for i, a in enumerate(argv) if a == "--bind"]
    # The workspace is a size-limited tmpfs of its own; the grader's folder of it is read-only.
    tmpfs = [argv[i + 1] for i, a in enumerate(argv) if a == "--tmpfs"]
    ro = [(argv[i + 1], argv[i + 2]) for i, a in enumerate(argv) if a == "--ro-bind"]
    assert str(tmp_path.resolve()) in tmpfs and str(tmp_path.resolve()) not in rw
    assert (str(tmp_path.resolve()), sandbox.SUBMISSION_MOUNT) in ro
    assert command.submission_mount == sandbox.SUBMISSION_MOUNT
    assert all(b.startswith((sandbox.RUNTIME, str(tmp_path.resolve()))) for b in rw)
    assert "JPY_PARENT_PID" in argv  # set to 1 by the launcher (see kernel_command)


# ------------------------------------------------------------------------------- real kernels

ENVIRONMENT = (
    r"""
import json, os, socket, subprocess, sys, time
r = {"uid": os.getuid(), "pid": os.getpid(), "ppid": os.getppid(), "cwd": os.getcwd(),
     "parent_pid_env": os.environ.get("JPY_PARENT_PID")}
"""
    + ATTEMPT_HELPERS
    + r"""r["net_local"] = attempt(lambda: connect("127.0.0.1", 22))
r["net_outside"] = attempt(lambda: connect("192.0.2.1", 80))
r["passwd"] = attempt(lambda: open("/etc/passwd").read())
ws = os.getcwd()
r["sibling"] = attempt(lambda: open(os.path.join(os.path.dirname(ws), "other-team", "secret.txt")).read())
r["siblings_listed"] = attempt(lambda: os.listdir(os.path.dirname(ws)))
r["write_parent"] = attempt(lambda: open(os.path.join(os.path.dirname(ws), "evil.txt"), "w").write("x"))
r["write_usr"] = attempt(lambda: open("/usr/evil.txt", "w").write("x"))
r["write_python"] = attempt(lambda: open(os.path.join(sys.prefix, "evil.txt"), "w").write("x"))
r["write_ws"] = attempt(lambda: open("mine.txt", "w").write("x"))
r["import_grader"] = attempt(lambda: __import__("grader").__file__)
r["import_reference"] = attempt(lambda: __import__("reference").__file__)
r["repo_listing"] = attempt(lambda: os.listdir(REPO))
r["reference_dir"] = attempt(lambda: os.listdir(os.path.join(REPO, "reference")))
r["sleeper"] = subprocess.Popen(["sleep", "4242"]).pid
print("RESULT " + json.dumps(r))
"""
)


@needs_bwrap
@pytest.mark.kernel
@pytest.mark.bwrap
def test_inside_the_sandbox(workspace):
    code = f"REPO = {str(REPO_ROOT)!r}\n" + ENVIRONMENT
    # The later cells show that the kernel outlives ipykernel's parent polling (JPY_PARENT_PID).
    _command, execution, extra = run(
        make_config("auto"),
        workspace,
        notebook(code, "import time; time.sleep(3)", "print('still here')"),
        after="print('probe reaches the kernel')",
    )
    assert execution.info.isolated and execution.info.sandbox == "bubblewrap"
    assert execution.info.status == "ok", execution.info
    r = recorded(execution.notebook.cells[0])
    assert r["uid"] == sandbox.SANDBOX_UID
    assert r["parent_pid_env"] == "1"  # parent polling off: pid 1 is bwrap's init
    assert r["net_local"].startswith(("ConnectionRefusedError", "OSError")), r["net_local"]
    assert not r["net_outside"].startswith("ok"), r["net_outside"]
    assert "student" in r["passwd"] and len(r["passwd"].splitlines()) <= 3  # not the host's users
    assert not r["sibling"].startswith("ok") and "other-team" not in r["siblings_listed"]
    assert not r["write_usr"].startswith("ok") and not r["write_python"].startswith("ok")
    assert r["write_ws"].startswith("ok")
    assert not (workspace.parent / "evil.txt").exists()
    assert r["import_grader"].startswith("ModuleNotFoundError"), r["import_grader"]
    assert r["import_reference"].startswith("ModuleNotFoundError"), r["import_reference"]
    assert "grader" not in r["repo_listing"] and "reference" not in r["repo_listing"]
    assert not r["reference_dir"].startswith("ok")
    assert "still here" in outputs_text(execution.notebook.cells[2])
    assert extra.status == "ok"
    # Nothing the kernel started is left running.
    leftovers = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and b"4242" in (proc / "cmdline").read_bytes():
                leftovers.append(proc.name)
        except OSError:
            pass
    assert leftovers == []


@needs_bwrap
@pytest.mark.kernel
@pytest.mark.bwrap
def test_fork_loop_is_contained(workspace):
    code = fork_loop(500, 3)
    _, execution, _ = run(make_config("auto", processes=64), workspace, notebook(code, "print('alive')"))
    r = recorded(execution.notebook.cells[0])
    assert r["forked"] < 64 and r["error"], r
    assert "alive" in outputs_text(execution.notebook.cells[1])


@pytest.mark.kernel
@pytest.mark.parametrize("mode", [pytest.param("auto", marks=[needs_bwrap, pytest.mark.bwrap]), "none"])
def test_cell_over_its_limit_is_interrupted_and_the_run_goes_on(workspace, mode):
    _, execution, _ = run(
        make_config(mode, cell_timeout_s=2), workspace, notebook("while True: pass", "print('next cell ran')")
    )
    info = execution.info
    assert info.status == "timeout"
    # Named as Jupyter shows it, with the limit and where it came from.
    assert any(
        "cell In [1] ('while True: pass') ran over the limit of 2 s per cell" in n and "grading.toml" in n
        for n in info.notes
    ), info.notes
    assert "next cell ran" in outputs_text(execution.notebook.cells[1])
    assert execution.alive


@needs_bwrap
@pytest.mark.kernel
@pytest.mark.bwrap
def test_cell_ignoring_the_interrupt_stops_the_run(workspace):
    _, execution, _ = run(
        make_config("auto", cell_timeout_s=2),
        workspace,
        notebook("import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: pass", "print('never')"),
    )
    assert execution.info.status == "timeout"
    assert any("ignored the interrupt" in n for n in execution.info.notes)
    assert not execution.alive


@needs_bwrap
@pytest.mark.kernel
@pytest.mark.bwrap
def test_notebook_over_its_total_limit_is_stopped(workspace):
    # The limits count CPU time: cells that compute for 1.5 s of CPU each (a sleeping cell uses none).
    cells = ["import time\nt = time.process_time()\nwhile time.process_time() - t < 1.5: pass"] * 6
    _, execution, _ = run(make_config("auto", notebook_timeout_s=4, cell_timeout_s=3), workspace, notebook(*cells))
    assert execution.info.status == "timeout"
    assert any("over its limit of 4 s of CPU time" in n and "did not run" in n for n in execution.info.notes), (
        execution.info.notes
    )
    assert [c.limit for c in execution.info.timed_out] == ["notebook_cpu"], execution.info.timed_out
    assert execution.info.cells_run == 3


@needs_bwrap
@pytest.mark.kernel
@pytest.mark.bwrap
@pytest.mark.parametrize("death", ["import os; os._exit(1)", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"])
def test_kernel_that_dies_is_reported_with_its_cell(workspace, death):
    _, execution, _ = run(make_config("auto"), workspace, notebook("x = 1", death, "print('never')"))
    assert execution.info.status == "kernel_died"
    assert execution.info.last_cell == 2
    assert not execution.alive


@needs_bwrap
@pytest.mark.kernel
@pytest.mark.bwrap
def test_memory_limit_gives_memory_error(workspace):
    code = (
        "import json\ntry:\n    b = bytearray(50 * 2**30)\n    r = 'allocated'\n"
        "except MemoryError:\n    r = 'MemoryError'\nprint('RESULT ' + json.dumps(r))"
    )
    _, execution, _ = run(make_config("auto", memory_mb=2048), workspace, notebook(code, "print('alive')"))
    assert recorded(execution.notebook.cells[0]) == "MemoryError"
    assert "alive" in outputs_text(execution.notebook.cells[1])


@needs_bwrap
@pytest.mark.kernel
@pytest.mark.bwrap
def test_kernel_log_replaced_by_a_link_is_not_followed(workspace, tmp_path):
    """The grader quotes the end of the kernel's log when a kernel dies. A kernel that swaps the log
    in its runtime folder for a link to a file it cannot see must not get that file quoted."""
    secret = tmp_path / "grader-only.txt"
    secret.write_text("TOP SECRET of the grader's machine")
    code = (
        "import os\nfrom ipykernel.connect import get_connection_file\n"
        "log = os.path.join(os.path.dirname(get_connection_file()), 'kernel.log')\n"
        f"os.unlink(log); os.symlink({str(secret)!r}, log)\nos._exit(1)"
    )
    _, execution, _ = run(make_config("auto"), workspace, notebook(code, "print('never')"))
    assert execution.info.status == "kernel_died"
    assert not any("TOP SECRET" in note for note in execution.info.notes), execution.info.notes


@needs_bwrap
@pytest.mark.kernel
@pytest.mark.bwrap
def test_modes_and_acls_cannot_be_changed(workspace):
    """The sandbox's user owns the device nodes bound into /dev when the grader runs as root: a
    chmod or an ACL there would change the machine's own /dev/null. A chmod does nothing (it
    reports success, as IPython and shutil.copy expect); ACLs are refused."""
    before = os.stat("/dev/null").st_mode
    code = (
        "import json, os, stat\n" + ATTEMPT_HELPERS + "open('mine.txt', 'w').write('x')\n"
        "r = {'dev_null': attempt(lambda: os.chmod('/dev/null', 0o600)),\n"
        "     'own_file': attempt(lambda: os.chmod('mine.txt', 0o600)),\n"
        "     'acl': attempt(lambda: os.setxattr('/dev/null', 'system.posix_acl_access', b'\\x02\\x00\\x00\\x00')),\n"
        "     'write_null': attempt(lambda: open('/dev/null', 'w').write('fine'))}\n"
        "r['modes'] = [oct(stat.S_IMODE(os.stat(p).st_mode)) for p in ('/dev/null', 'mine.txt')]\n"
        "print('RESULT ' + json.dumps(r))"
    )
    _, execution, _ = run(make_config("auto"), workspace, notebook(code))
    r = recorded(execution.notebook.cells[0])
    assert r["dev_null"].startswith("ok") and r["own_file"].startswith("ok"), r  # reported as done ...
    assert r["modes"][0] == oct(stat.S_IMODE(before)) and r["modes"][1] != "0o600", r  # ... but not done
    assert r["acl"].startswith("PermissionError"), r
    assert r["write_null"] == "ok: 4", r
    assert os.stat("/dev/null").st_mode == before


def test_shared_files_never_follow_what_the_kernel_left(tmp_path):
    """The grader (root, perhaps) puts the probe's files in a folder the kernel can write: a link
    planted under one of their names must not make it write elsewhere."""
    from types import SimpleNamespace

    runtime, target = tmp_path / "runtime", tmp_path / "elsewhere.txt"
    runtime.mkdir()
    target.write_text("untouched")
    (runtime / "planted.npy").symlink_to(target)
    session = SimpleNamespace(_runtime_dir=runtime)
    with pytest.raises(FileExistsError):
        KernelSession.share(session, "planted.npy", b"probe data")
    assert target.read_text() == "untouched"
    path = KernelSession.share(session, "fresh.npy", b"probe data")
    assert Path(path).read_bytes() == b"probe data" and Path(path).parent == runtime
