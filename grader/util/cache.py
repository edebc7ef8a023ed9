"""The grader's cache: what outlives a batch and is shared by every batch on the machine (or, on a
cluster, by every shard that sees the same home folder): the staged data and the calibration.

`GRADER_CACHE` names it; otherwise `$XDG_CACHE_HOME/sheet6-grader`, by default
`~/.cache/sheet6-grader`. A wheel install can write there, unlike into its own package. Where that
default cannot be written (a home folder that is read-only, say on a lab machine or a cluster node),
a folder of the user's own in the system's temporary folder is used, and that is said once, in one
line on stderr. A `GRADER_CACHE` that cannot be written is an error: it was asked for by name.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

# Where the fallback was said (once per process), and how: one line on stderr by default.
_fallback: Path | None = None
say: Callable[[str], None] = lambda line: print(line, file=sys.stderr)


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")) / "sheet6-grader"


def _writable(path: Path) -> str | None:
    """None when `path` is (now) a folder this process can write in; else why not."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return exc.strerror or str(exc)
    if not path.is_dir():
        return "not a folder"
    if not os.access(path, os.W_OK | os.X_OK):
        return "not writable"
    return None


def _own_temporary_cache() -> Path:
    """`<tmp>/sheet6-grader-<user>`, made private (0700); another user's folder, or a link planted
    under that name, is never used: then a new folder of its own."""
    user = str(os.getuid()) if hasattr(os, "getuid") else (os.environ.get("USERNAME") or "user")
    path = Path(tempfile.gettempdir()) / f"sheet6-grader-{user}"
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError:
        return Path(tempfile.mkdtemp(prefix="sheet6-grader-"))
    try:
        info = os.lstat(path)
        mine = not hasattr(os, "getuid") or (info.st_uid == os.getuid() and not info.st_mode & 0o077)
        if stat.S_ISDIR(info.st_mode) and mine and os.access(path, os.W_OK | os.X_OK):
            return path
    except OSError:
        pass
    return Path(tempfile.mkdtemp(prefix="sheet6-grader-"))


def cache_dir() -> Path:
    global _fallback
    named = os.environ.get("GRADER_CACHE")
    if named:
        path = Path(named)
        path.mkdir(parents=True, exist_ok=True)
        return path
    if _fallback is not None:
        return _fallback
    path = default_cache_dir()
    why = _writable(path)
    if why is None:
        return path
    _fallback = _own_temporary_cache()
    say(
        f"note: the grader's cache {path} cannot be written ({why}); using {_fallback} instead "
        "(set GRADER_CACHE to choose the folder)"
    )
    return _fallback
