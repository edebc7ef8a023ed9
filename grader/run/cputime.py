"""The CPU time of a kernel's processes, read from outside the kernel (the notebook cannot change it).

A cell's time limit is counted in CPU time: a `while True: pass` burns it at full rate on any machine,
busy or not, and an honest cell needs about the same CPU seconds on a quiet machine as on a loaded
one, where its wall-clock time may be many times longer (see `execute.KernelSession.run_notebook`).

`ProcessTreeClock` sums, over a process and all its descendants, the user and system time of each
(all its threads) and of its children that have ended and been waited for (cutime, cstime: a
process that ends is waited for by its parent inside the tree, the sandbox's init or the fork
server's, so its seconds stay counted). On Linux it reads /proc/<pid>/stat of every process once per
reading (one pass gives both the tree and the times); elsewhere (a student's Mac or Windows laptop)
it asks psutil. The processes are the grader's user's: no privilege is needed.

The kernel runs in its own PID namespace (bubblewrap, the fork server); the grader reads the host's
pids. `namespace_pids` gives, for a host pid, its pid in every namespace it is in (NSpid), with which
the fork server's answer (its own pid for a kernel) is turned into the host's pid.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

_PROC = "/proc"
_LINUX = sys.platform.startswith("linux") and os.path.isdir(f"{_PROC}/self")
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") and "SC_CLK_TCK" in os.sysconf_names else 100


def _linux_table() -> dict[int, tuple[int, float]]:
    """pid -> (ppid, CPU seconds of the process and of its waited-for children), for every process."""
    table = {}
    for name in os.listdir(_PROC):
        if not name.isdigit():
            continue
        try:
            with open(f"{_PROC}/{name}/stat", "rb") as f:
                text = f.read()
        except OSError:  # ended meanwhile
            continue
        # "pid (comm) state ppid ... utime stime cutime cstime ...": comm may hold spaces and ')'.
        fields = text[text.rfind(b")") + 2 :].split()
        try:
            table[int(name)] = (int(fields[1]), sum(int(v) for v in fields[11:15]) / _TICKS)
        except (IndexError, ValueError):
            continue
    return table


def linux_tree_seconds(root: int) -> float | None:
    """CPU seconds of `root` and its descendants (Linux), None when `root` is not running."""
    table = _linux_table()
    if root not in table:
        return None
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    total, todo, seen = 0.0, [root], set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += table[pid][1]
        todo.extend(children.get(pid, ()))
    return total


def psutil_tree_seconds(root: int) -> float | None:
    """The same through psutil (macOS, Windows, a Linux without /proc)."""
    try:
        import psutil
    except ImportError:
        return None
    try:
        top = psutil.Process(root)
        processes = [top, *top.children(recursive=True)]
    except psutil.Error:
        return None
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:  # ended meanwhile, or not ours to read
            continue
        total += (
            times.user + times.system + getattr(times, "children_user", 0.0) + getattr(times, "children_system", 0.0)
        )
    return total


def tree_seconds(root: int) -> float | None:
    return linux_tree_seconds(root) if _LINUX else psutil_tree_seconds(root)


def namespace_pids(pid: int) -> list[int]:
    """`pid`'s number in each PID namespace it is in, the host's first (Linux's NSpid); [pid] where
    the kernel does not say (no namespaces, not Linux)."""
    try:
        with open(f"{_PROC}/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"NSpid:"):
                    return [int(v) for v in line.split()[1:]]
    except (OSError, ValueError):
        pass
    return [pid]


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is `pid` (Linux: from /proc; elsewhere psutil)."""
    if _LINUX:
        return sorted(p for p, (ppid, _) in _linux_table().items() if ppid == pid)
    try:
        import psutil

        return [c.pid for c in psutil.Process(pid).children()]
    except Exception:  # psutil missing or the process gone
        return []


class ProcessTreeClock:
    """CPU seconds used by the process tree under `root()` (a callable: the kernel's root process
    may be known only once it has started, and changes when the kernel is restarted).

    `read()` never goes backwards while the root stays the same (a child waited for between two
    reads moves its seconds into its parent's); it returns None when the tree cannot be read (the
    root is not running, or this system offers no way to read it)."""

    def __init__(self, root: Callable[[], int | None]):
        self._root = root
        self._pid: int | None = None
        self._last = 0.0

    def read(self) -> float | None:
        try:
            pid = self._root()
        except Exception:  # whatever finding the root raised: no reading
            return None
        if pid is None:
            return None
        seconds = tree_seconds(pid)
        if seconds is None:
            return None
        if pid != self._pid:
            self._pid, self._last = pid, 0.0
        self._last = max(self._last, seconds)
        return self._last
