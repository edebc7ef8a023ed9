"""Locks on what several grader processes may write at the same time: an output folder, the
calibration file, a data set being staged in the cache.

A lock is an OS file lock (the `filelock` package: `flock` on Unix, also over NFS on Linux;
`LockFileEx` on Windows), so it goes with its process: a grader that is killed (kill -9, a node
that fails) holds nothing afterwards. Beside the lock file, the holder writes who it is (pid, host,
command, since when), so that a refused or waiting process can say who has it.
"""

from __future__ import annotations

import json
import os
import socket
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from grader.errors import FolderBusy

OUT_DIR_LOCK = ".grader.lock"  # hidden and not .json: never a submission's report, never read as one
HOLDER_SUFFIX = ".holder"


def _holder_path(lock: Path) -> Path:
    return lock.with_name(lock.name + HOLDER_SUFFIX)


def describe_holder(lock: Path) -> str:
    """Who holds `lock`, as its holder wrote it: 'grader grade (pid 123 on node7, since 04:12:09 UTC)'."""
    try:
        who = json.loads(_holder_path(lock).read_text(encoding="utf-8"))
        return f"{who['command']} (pid {who['pid']} on {who['host']}, since {who['since']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (it has not said who it is yet)"


def _write_holder(lock: Path, command: str) -> None:
    holder = _holder_path(lock)
    tmp = holder.with_name(f"{holder.name}.{os.getpid()}.part")
    try:
        tmp.write_text(
            json.dumps(
                {
                    "command": command,
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "since": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
                }
            ),
            encoding="utf-8",
        )
        os.replace(tmp, holder)
    except OSError:  # who holds it is a courtesy; the lock itself is what protects
        tmp.unlink(missing_ok=True)


@contextmanager
def hold(
    lock: Path, *, command: str, what: str, wait: bool, on_wait: Callable[[str], None] | None = None
) -> Iterator[None]:
    """Hold the file lock `lock` for the block. Taken at once, or: `wait` False raises FolderBusy
    naming `what` and the holder; `wait` True says so through `on_wait` and waits."""
    from filelock import FileLock, Timeout

    lock = Path(lock)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # no OS lock (neither fcntl nor msvcrt): filelock's lock file, quietly
        warnings.simplefilter("ignore")
        file_lock = FileLock(str(lock))
    try:
        file_lock.acquire(timeout=0)
    except Timeout:
        holder = describe_holder(lock)
        if not wait:
            raise FolderBusy(
                f"{what} is in use by {holder}: wait until it is done, or choose another folder "
                f"(the lock is {lock}; it goes with its process)"
            ) from None
        if on_wait is not None:
            on_wait(f"{what} is in use by {holder}: waiting until it is done…")
        started = time.monotonic()
        file_lock.acquire()
        if on_wait is not None:
            on_wait(f"{what}: got it after {time.monotonic() - started:.1f} s")
    try:
        _write_holder(lock, command)
        yield
    finally:
        try:
            _holder_path(lock).unlink(missing_ok=True)
        except OSError:
            pass
        file_lock.release()


@contextmanager
def hold_out_dir(out_dir: Path, command: str) -> Iterator[None]:
    """One grader at a time writes an output folder (`grade`, `prepare`, `merge`): a second one is
    refused at once, naming the folder and the holder, before it has touched anything."""
    with hold(Path(out_dir) / OUT_DIR_LOCK, command=command, what=f"the output folder {out_dir}", wait=False):
        yield
