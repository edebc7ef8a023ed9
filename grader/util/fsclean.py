"""Removing what the grader leaves in temporary folders, whatever students put there.

`remove_tree` replaces `shutil.rmtree` for every clean-up: a tree made from a zip entry or by a cell
can be 1,500 folders deep (`shutil.rmtree` recurses and raises RecursionError in Python 3.11), longer
than PATH_MAX, or made of read-only files and folders (mode 000 included). It walks iteratively,
relative to open folder descriptors (at most two open at a time), and never raises.

`owned_dir` makes a temporary folder that says whether its owner still runs: the owner holds a lock
on a file in it for as long as it lives, and the operating system releases the lock when the process
ends, however it ends (kill -9 included). `sweep_stale` removes the folders of owners that are gone:
every run of the grader calls it, so a killed grader's unpacked submissions do not stay in /tmp.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
import time
from pathlib import Path

_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_FD_BASED = os.name == "posix" and os.unlink in os.supports_dir_fd and os.scandir in os.supports_fd
LOCK_NAME = ".owner.lock"
# The folders that carry an owner lock, by prefix: a run's (`grader grade`, `prepare`, `calibrate`), a
# worker's, `grader check`'s. `owned_dir` makes no other, and `sweep_stale` looks at these only.
WORK_PREFIX, WORKER_PREFIX, CHECK_PREFIX = "grader-work-", "g6w-", "grader-check-"
OWNED_PREFIXES = (WORK_PREFIX, WORKER_PREFIX, CHECK_PREFIX)
_held: dict[str, int] = {}  # folder → descriptor of its lock, for as long as this process owns it


def remove_tree(path: os.PathLike | str) -> list[str]:
    """Remove `path` (a folder with all it holds, or a file or link) as far as possible. Returns
    what could not be removed (empty when all went); never raises."""
    path = os.fspath(path)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return []
    except OSError as exc:
        return [f"{path}: {exc}"]
    if not stat.S_ISDIR(info.st_mode):
        try:
            os.unlink(path)
            return []
        except FileNotFoundError:
            return []
        except OSError as exc:
            return [f"{path}: {exc}"]
    if not _FD_BASED:
        import shutil  # Windows: no descriptor-relative calls; its paths are far shallower anyway

        problems: list[str] = []
        try:

            def on_error(_function, failed, info) -> None:
                _make_writable(failed)
                problems.append(f"{failed}: {info[1]}")

            shutil.rmtree(path, onerror=on_error)
        except BaseException as exc:  # clean-up never raises
            problems.append(f"{path}: {exc!r}")
        return problems if os.path.lexists(path) else []
    try:
        return _remove_dir(path)
    except BaseException as exc:  # e.g. MemoryError: clean-up never raises
        return [f"{path}: {exc!r}"]


def _make_writable(path: str) -> None:
    try:
        os.chmod(path, stat.S_IRWXU)
    except OSError:
        pass


def _open_dir(name: str, dir_fd: int | None) -> int:
    """Open a folder (not a link); a folder we may not read or enter is made ours first."""
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except PermissionError:
        os.chmod(name, stat.S_IRWXU, dir_fd=dir_fd)
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)


def _unlink(name: str, dir_fd: int, is_dir: bool) -> None:
    remove = os.rmdir if is_dir else os.unlink
    try:
        remove(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    except PermissionError:
        os.fchmod(dir_fd, stat.S_IRWXU)  # a read-only folder: its entries cannot go until it is writable
        remove(name, dir_fd=dir_fd)


def _remove_dir(path: str) -> list[str]:
    """Depth first, one folder open at a time (plus the top's parent): each level remembers only its
    name, its parent's identity and the sub-folders still to do, so depth costs memory, not
    descriptors or stack. Going back up goes through "..", checked against the identity noted on
    the way down."""
    problems: list[str] = []
    parent_path, top_name = os.path.split(os.path.abspath(path))
    top_parent = os.open(parent_path, _DIR_FLAGS)
    current = -1
    try:
        current = _open_dir(top_name, top_parent)
        levels: list[tuple[str, tuple[int, int], list[str]]] = []
        pending: list[str] | None = None  # None: this folder's entries are not listed yet
        while True:
            if pending is None:
                pending = _clear_files(current, problems, path, levels)
            if pending:
                name = pending.pop()
                try:
                    child = _open_dir(name, current)
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    problems.append(f"{_where(path, levels, name)}: {exc}")
                    continue
                levels.append((name, _identity(current), pending))
                os.close(current)
                current, pending = child, None
                continue
            # Everything in `current` is done: go up, and remove it.
            if not levels:
                os.close(current)
                current = -1
                try:
                    _unlink(top_name, top_parent, is_dir=True)
                except OSError as exc:
                    problems.append(f"{path}: {exc}")
                return problems
            name, parent_identity, pending = levels.pop()
            up = os.open("..", _DIR_FLAGS, dir_fd=current)
            os.close(current)
            current = up
            if _identity(current) != parent_identity:  # moved while we were below it: stop there
                problems.append(f"{_where(path, levels, name)}: moved away during the clean-up")
                return problems
            try:
                _unlink(name, current, is_dir=True)
            except OSError as exc:
                problems.append(f"{_where(path, levels, name)}: {exc}")
    finally:
        os.close(top_parent)
        if current >= 0:
            os.close(current)


def _identity(fd: int) -> tuple[int, int]:
    info = os.fstat(fd)
    return info.st_dev, info.st_ino


def _clear_files(fd: int, problems: list[str], top: str, levels: list) -> list[str]:
    """Unlink every non-folder entry of the folder `fd`; return the names of its sub-folders."""
    folders = []
    try:
        with os.scandir(fd) as entries:
            listed = [(e.name, e.is_dir(follow_symlinks=False)) for e in entries]
    except PermissionError:
        os.fchmod(fd, stat.S_IRWXU)
        with os.scandir(fd) as entries:
            listed = [(e.name, e.is_dir(follow_symlinks=False)) for e in entries]
    for name, is_dir in listed:
        if is_dir:
            folders.append(name)
            continue
        try:
            _unlink(name, fd, is_dir=False)
        except OSError as exc:
            problems.append(f"{_where(top, levels, name)}: {exc}")
    return folders


def _where(top: str, levels: list, name: str) -> str:
    depth = len(levels)
    shown = "/".join(level[0] for level in levels[:3])
    return f"{top}/{shown}{'/…' if depth > 3 else ''}/{name}" if depth else f"{top}/{name}"


# ---------------------------------------------------------------- folders with an owner


def owned_dir(prefix: str, parent: str | os.PathLike | None = None) -> Path:
    """A new temporary folder, locked by this process until `release_dir` (or the process's end).
    The lock's descriptor is not inherited by child processes. `prefix` is one of OWNED_PREFIXES:
    a folder left by a killed process is then removed by `sweep_stale`."""
    if prefix not in OWNED_PREFIXES:
        raise ValueError(f"owned_dir({prefix!r}): not one of OWNED_PREFIXES {OWNED_PREFIXES}, so never swept")
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        import fcntl
    except ImportError:  # Windows: no lock, and no sweeping either
        return path
    fd = os.open(path / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    _held[str(path)] = fd
    return path


def release_dir(path: os.PathLike | str, attempts: int = 3) -> list[str]:
    """Remove an owned folder (never raises) and give up its lock. Processes that are being killed
    may still add a file for a moment: what is left is tried again, a little later."""
    problems = remove_tree(path)
    for _ in range(attempts - 1):
        if not os.path.lexists(path):
            break
        time.sleep(0.3)
        problems = remove_tree(path)
    fd = _held.pop(os.fspath(path), None)
    if fd is not None:
        os.close(fd)
    return problems


def sweep_stale(parent: str | os.PathLike | None = None, min_age_s: float = 5.0, only: str | None = None) -> list[Path]:
    """Remove the owned folders in `parent` (default: the temporary folder) whose owner no longer
    runs (`only`: just the one of that name); returns them. A folder whose lock is held, or that has
    no lock (not ours, or being made right now: younger than `min_age_s`), stays."""
    try:
        import fcntl
    except ImportError:
        return []
    parent = Path(parent or tempfile.gettempdir())
    removed = []
    try:
        candidates = [
            e for e in os.scandir(parent) if e.name.startswith(OWNED_PREFIXES) and (only is None or e.name == only)
        ]
    except OSError:
        return []
    now = time.time()
    for entry in candidates:
        path = Path(entry.path)
        if str(path) in _held:
            continue
        try:
            if not entry.is_dir(follow_symlinks=False) or now - entry.stat(follow_symlinks=False).st_mtime < min_age_s:
                continue
            fd = os.open(path / LOCK_NAME, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # its owner runs
        try:
            if os.fstat(fd).st_uid == os.getuid():
                remove_tree(path)
                removed.append(path)
        finally:
            os.close(fd)
    return removed


if __name__ == "__main__":  # python -m grader.util.fsclean PATH: remove a tree as the grader would
    for argument in sys.argv[1:]:
        for problem in remove_tree(argument):
            print(problem, file=sys.stderr)
