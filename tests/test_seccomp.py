"""The sandbox's seccomp filter (grader/run/seccomp.py `seccomp_program`).

The program is run through a small classic-BPF interpreter for each host architecture it is written
for; then real notebooks in real sandboxed kernels (fresh, and forked from a fork server) issue a
32-bit `chmod` through `int 0x80`, which the filter must answer by killing the kernel.
"""

from __future__ import annotations

import asyncio
import platform
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import needs_torch, notebook, recorded

from grader.config import config_from_dict
from grader.run import seccomp
from grader.run.context import KernelContext
from grader.run.execute import KernelSession
from grader.run.sandbox import kernel_command
from grader.run.seccomp import seccomp_program
from grader.sheets.sheet6 import SHEET

AUDIT_ARCH_X86_64, AUDIT_ARCH_I386 = 0xC000003E, 0x40000003
AUDIT_ARCH_AARCH64, AUDIT_ARCH_ARM = 0xC00000B7, 0x40000028
KILL_PROCESS, ALLOW, ERRNO = 0x80000000, 0x7FFF0000, 0x00050000
IGNORED, EPERM = ERRNO | 0, ERRNO | 1


def run_bpf(program: bytes, nr: int, arch: int) -> int:
    """What the kernel's seccomp would return for system call `nr` of architecture `arch`: a
    classic-BPF interpreter for the instructions a seccomp filter may use here, checking what the
    kernel's verifier checks (forward jumps inside the program, a return at the end)."""
    assert len(program) % 8 == 0 and 0 < len(program) // 8 <= 4096
    insns = [struct.unpack("<HBBI", program[i : i + 8]) for i in range(0, len(program), 8)]
    assert insns[-1][0] == 0x06, "the program must end with a return"
    data = struct.pack("<iIQ6Q", nr, arch, 0, *[0] * 6)  # struct seccomp_data
    pc, acc = 0, 0
    for _ in range(len(insns)):
        code, jt, jf, k = insns[pc]
        if code == 0x20:  # BPF_LD | BPF_W | BPF_ABS
            assert k % 4 == 0 and k + 4 <= len(data)
            acc = struct.unpack_from("<I", data, k)[0]
            pc += 1
        elif code in (0x15, 0x35, 0x25, 0x45):  # jeq, jge, jgt, jset (with a constant)
            taken = {0x15: acc == k, 0x35: acc >= k, 0x25: acc > k, 0x45: bool(acc & k)}[code]
            pc += 1 + (jt if taken else jf)
        elif code == 0x06:  # BPF_RET | BPF_K
            return k
        else:
            raise AssertionError(f"instruction {code:#x} not expected in the filter")
        assert pc < len(insns), "a jump leaves the program"
    raise AssertionError("no return reached")


def test_x86_64_filter():
    program = seccomp_program("x86_64")
    native = lambda nr: run_bpf(program, nr, AUDIT_ARCH_X86_64)
    for nr in (90, 91, 268, 452):  # chmod, fchmod, fchmodat, fchmodat2
        assert native(nr) == IGNORED, nr
    for nr in (188, 189, 190, 197, 198, 199, 463, 466):  # set/remove xattr, also the *at forms
        assert native(nr) == EPERM, nr
    for nr in (0, 1, 2, 56, 57, 59, 257, 435):  # read, write, open, clone, fork, execve, openat, clone3
        assert native(nr) == ALLOW, nr
    for nr in (15, 0, 1, 94, 226, 1000):  # i386: chmod, restart_syscall, exit, fchmod, setxattr ...
        assert run_bpf(program, nr, AUDIT_ARCH_I386) == KILL_PROCESS, nr
    for nr in (0, 90, 188, 512):  # x32 ABI: the native arch with bit 30 set
        assert native(0x40000000 | nr) == KILL_PROCESS, nr
    assert run_bpf(program, 53, AUDIT_ARCH_AARCH64) == KILL_PROCESS


def test_aarch64_filter():
    program = seccomp_program("aarch64")
    native = lambda nr: run_bpf(program, nr, AUDIT_ARCH_AARCH64)
    for nr in (52, 53, 452):  # fchmod, fchmodat, fchmodat2 (aarch64 has no chmod)
        assert native(nr) == IGNORED, nr
    for nr in (5, 6, 7, 14, 15, 16, 463, 466):
        assert native(nr) == EPERM, nr
    for nr in (56, 63, 64, 220, 221, 90, 268):  # openat, read, write, clone, execve; x86-64's chmod numbers
        assert native(nr) == ALLOW, nr
    for nr in (15, 0, 1, 226):  # arm32 (chmod is 15 there too)
        assert run_bpf(program, nr, AUDIT_ARCH_ARM) == KILL_PROCESS, nr
    assert run_bpf(program, 90, AUDIT_ARCH_X86_64) == KILL_PROCESS


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")
def test_another_architecture_runs_without_a_filter_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(seccomp, "host_machine", lambda: "ppc64le")
    assert seccomp_program() is None
    config = config_from_dict({"run": {"sandbox": "bubblewrap"}}, source="<tests>")
    command = kernel_command(config, tmp_path)
    assert "--seccomp" not in command.argv and "--seccomp-hex" not in command.argv
    assert any("NO seccomp filter" in note and "ppc64le" in note for note in command.notes), command.notes
    monkeypatch.setattr(seccomp, "host_machine", lambda: "x86_64")
    command = kernel_command(config, tmp_path)
    assert "--seccomp-hex" in command.argv and not any("seccomp" in note for note in command.notes)


# ---------------------------------------------------------------------------- real kernels

# A 32-bit chmod from a 64-bit process: the path and the code on a page below 4 GiB (MAP_32BIT),
# the code `push rbx; mov eax, 15; mov ebx, path; mov ecx, mode; int 0x80; pop rbx; ret`.
INT80 = r"""
import ctypes, json, os, signal, stat, struct
def int80_chmod(path, mode):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    page = libc.mmap(None, 4096, 7, 0x02 | 0x20 | 0x40, -1, 0)   # RWX, MAP_PRIVATE|ANONYMOUS|32BIT
    assert page and page < 2**32, page
    where = page + 64
    code = (b"\x53" + b"\xb8" + struct.pack("<I", 15) + b"\xbb" + struct.pack("<I", where)
            + b"\xb9" + struct.pack("<I", mode) + b"\xcd\x80" + b"\x5b" + b"\xc3")
    ctypes.memmove(page, code, len(code))
    name = os.fsencode(path) + b"\0"
    ctypes.memmove(where, name, len(name))
    return ctypes.CFUNCTYPE(ctypes.c_int)(page)()
"""

# A child of the kernel tries first (its death is reported by the kernel); then the kernel itself.
CHILD_TRIES = (
    INT80
    + r"""
open("target", "w").write("x")
before = stat.S_IMODE(os.stat("target").st_mode)
pid = os.fork()
if pid == 0:
    os._exit(100 + (int80_chmod("target", 0o777) & 0xff))
_, status = os.waitpid(pid, 0)
print("RESULT " + json.dumps({"before": before, "after": stat.S_IMODE(os.stat("target").st_mode),
                              "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
                              "exit": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None}))
"""
)
KERNEL_TRIES = "print('chmod returned', int80_chmod('target', 0o777), oct(os.stat('target').st_mode))"


def int80_works_here() -> bool:
    """Whether this machine runs i386 system calls at all (IA32 emulation): outside any sandbox,
    the same code must change a file's mode, else the test would prove nothing."""
    if platform.machine().lower() != "x86_64":
        return False
    folder = Path(tempfile.mkdtemp(prefix="g6-int80-"))
    try:
        target = folder / "target"
        target.write_text("x")
        target.chmod(0o600)
        code = INT80 + f"print(int80_chmod({str(target)!r}, 0o640))"
        done = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=30)
        return done.returncode == 0 and (target.stat().st_mode & 0o777) == 0o640
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        shutil.rmtree(folder, ignore_errors=True)


needs_int80 = pytest.mark.skipif(not int80_works_here(), reason="no i386 system calls on this machine")
needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")


def config():
    limits = {"cell_timeout_s": 30, "notebook_timeout_s": 120, "probe_timeout_s": 30, "processes": 64}
    return config_from_dict({"limits": limits, "run": {"sandbox": "bubblewrap"}}, source="<tests>")


def assert_killed(execution):
    r = recorded(execution.notebook.cells[0])
    assert r["signal"] == signal.SIGSYS and r["exit"] is None, r  # the child was killed by the filter
    assert r["after"] == r["before"] != 0o777, r  # and the mode did not change
    info = execution.info
    assert info.status == "kernel_died" and info.last_cell == 2, info  # then the kernel itself
    assert not any("chmod returned" in out.get("text", "") for out in execution.notebook.cells[1].outputs)
    assert execution.notebook.cells[2].outputs == []


@needs_int80
@pytest.mark.kernel
@pytest.mark.bwrap
@needs_bwrap
def test_32_bit_chmod_kills_a_fresh_kernel():
    workspace = Path(tempfile.mkdtemp(prefix="g6-seccomp-"))

    async def go():
        command = kernel_command(config(), workspace, threads=1)
        async with KernelSession(command, workspace, config().limits) as session:
            return await session.run_notebook(notebook(CHILD_TRIES, KERNEL_TRIES, "print('never')"))

    try:
        execution = asyncio.run(go())
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
    assert execution.info.isolated
    assert_killed(execution)


@needs_int80
@pytest.mark.kernel
@pytest.mark.bwrap
@needs_bwrap
@needs_torch
def test_32_bit_chmod_kills_a_forked_kernel_and_the_next_one_runs():
    from grader.run.kernels import ForkKernels

    work = Path(tempfile.mkdtemp(prefix="g6-seccomp-"))
    ctx = KernelContext(config=config(), work_dir=work, data_root=None, warmup_imports=SHEET.warmup_imports)

    async def go():
        kernels = ForkKernels(ctx)
        try:
            async with kernels.kernel() as kernel:
                killed = await kernel.session.run_notebook(notebook(CHILD_TRIES, KERNEL_TRIES, "print('never')"))
            async with kernels.kernel() as kernel:
                after = await kernel.session.run_notebook(notebook("print(6 * 7)"))
            return killed, after, kernels.server.generation
        finally:
            await kernels.close()

    try:
        killed, after, generation = asyncio.run(go())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert killed.info.isolated and any("fork server" in n for n in killed.info.notes)
    assert_killed(killed)
    assert after.info.status == "ok" and "42" in after.notebook.cells[0].outputs[0]["text"]
    assert generation == 1  # the server itself lived on
