"""The sandbox's seccomp filter: a classic-BPF program as bubblewrap's --seccomp reads it, assembled
here for the host's architecture (x86-64 or aarch64)."""

from __future__ import annotations

import platform
import struct
from typing import Any

# System calls that do nothing inside the sandbox, per host architecture. When the grader runs as
# root, the sandbox's user is root of the machine without capabilities, and so the owner of the
# device nodes bound into /dev: with chmod or an ACL a notebook could change the machine's own
# /dev/null for everyone. A change of mode is ignored (it reports success: IPython and shutil.copy
# change modes as a matter of course, and no notebook of the sheet depends on them); a change of
# extended attributes (ACLs) is refused with EPERM. aarch64 has no chmod (only the *at calls).
# setxattrat/removexattrat (Linux 6.13) have the same number on every architecture, as has fchmodat2.
_NATIVE_SYSCALLS: dict[str, dict[str, Any]] = {
    "x86_64": {
        "audit_arch": 0xC000003E,  # AUDIT_ARCH_X86_64
        "ignored": {"chmod": 90, "fchmod": 91, "fchmodat": 268, "fchmodat2": 452},
        "refused": {
            "setxattr": 188,
            "lsetxattr": 189,
            "fsetxattr": 190,
            "removexattr": 197,
            "lremovexattr": 198,
            "fremovexattr": 199,
            "setxattrat": 463,
            "removexattrat": 466,
        },
    },
    "aarch64": {
        "audit_arch": 0xC00000B7,  # AUDIT_ARCH_AARCH64
        "ignored": {"fchmod": 52, "fchmodat": 53, "fchmodat2": 452},
        "refused": {
            "setxattr": 5,
            "lsetxattr": 6,
            "fsetxattr": 7,
            "removexattr": 14,
            "lremovexattr": 15,
            "fremovexattr": 16,
            "setxattrat": 463,
            "removexattrat": 466,
        },
    },
}
_X32_SYSCALL_BIT = 0x40000000  # x86-64's x32 ABI: native arch value, numbers with this bit set
SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_ALLOW = 0x7FFF0000


def host_machine() -> str:
    return platform.machine().lower()


def seccomp_program(machine: str | None = None) -> bytes | None:
    """A classic-BPF seccomp filter (as bubblewrap's --seccomp reads it) for a host of `machine`
    (default: this one), or None where there is none (a host that is neither x86-64 nor aarch64).

    A system call of any other architecture than the host's own (i386 through `int 0x80` on
    x86-64, arm32 on aarch64; also x86-64's x32 ABI) kills the whole process at once: those tables
    reach chmod and the xattr calls by other numbers, and no notebook of the sheet needs them. Of the
    native calls, mode changes are ignored, xattr changes refused with EPERM, the rest allowed."""
    table = _NATIVE_SYSCALLS.get(host_machine() if machine is None else machine)
    if table is None:
        return None
    ld_abs, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06
    ignore, refuse = SECCOMP_RET_ERRNO | 0, SECCOMP_RET_ERRNO | 1  # success without effect / EPERM
    checks = [(n, ignore) for n in sorted(table["ignored"].values())] + [
        (n, refuse) for n in sorted(table["refused"].values())
    ]
    x32 = table["audit_arch"] == _NATIVE_SYSCALLS["x86_64"]["audit_arch"]
    # Layout: the header, one test per call, then the returns: allow, ignore, refuse, kill.
    header: list[tuple[int, int | None, int | None, int]] = [
        (ld_abs, 0, 0, 4),  # A = seccomp_data.arch
        (jeq, 0, None, table["audit_arch"]),  # not the host's architecture: kill
        (ld_abs, 0, 0, 0),
    ]  # A = seccomp_data.nr
    if x32:
        header.append((jge, None, 0, _X32_SYSCALL_BIT))  # x32: kill
    first_return = len(header) + len(checks)
    target = {
        SECCOMP_RET_ALLOW: first_return,
        ignore: first_return + 1,
        refuse: first_return + 2,
        SECCOMP_RET_KILL_PROCESS: first_return + 3,
    }
    prog = []
    for here, (code, jt, jf, k) in enumerate(header):
        kill = target[SECCOMP_RET_KILL_PROCESS] - here - 1
        prog.append((code, kill if jt is None else jt, kill if jf is None else jf, k))
    for i, (number, action) in enumerate(checks):
        here = len(header) + i
        prog.append((jeq, target[action] - here - 1, 0, number))
    prog += [
        (ret, 0, 0, SECCOMP_RET_ALLOW),
        (ret, 0, 0, ignore),
        (ret, 0, 0, refuse),
        (ret, 0, 0, SECCOMP_RET_KILL_PROCESS),
    ]
    return b"".join(struct.pack("<HBBI", *insn) for insn in prog)


def seccomp_note(program: bytes | None) -> str:
    if program is not None:
        return ""
    return (
        f"; NO seccomp filter (none is written for this machine's architecture, {host_machine()}): "
        "the kernel could change file modes and ACLs, also of the device nodes in /dev, and issue "
        "system calls of other architectures"
    )
