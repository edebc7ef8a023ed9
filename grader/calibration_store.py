"""Where calibrations are kept, found and written: no kernels, no pipeline (reading one costs a JSON file).

A calibration entry is what the solution notebook did on one staged data set (by its fingerprint):
per-epoch test accuracies of several runs of both networks and the seconds each code cell took,
with when it was made. Entries are looked up, first match wins, in

1. `GRADER_CALIBRATION`, when set: that file alone (the tests and benchmarks keep their own);
2. the grader's cache, `<cache>/calibration.json` (see grader/cache.py): what `grader prepare`,
   `grader calibrate` and a first `grader grade` on new data write;
3. `reference/calibration.json`, shipped with the grader: a read-only default, never written.

Every write holds the file's lock (`<file>.lock`), reads the file again, changes one entry and
replaces the file atomically (a temporary file, then `os.replace`): concurrent writers of other
entries lose nothing, and a reader never sees half a file.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from contextlib import AbstractContextManager
from typing import Callable

from grader.atomic import write_atomic
from grader.cache import cache_dir
from grader.errors import CalibrationError
from grader.locks import hold
from grader.models import CalibrationRef

SHIPPED_FILE = Path(__file__).resolve().parent.parent / "reference" / "calibration.json"
CACHE_NAME = "calibration.json"


class CalibrationMissing(CalibrationError):
    """A shard found no calibration for its data: `grader prepare` makes it, once, before the shards."""


def writable_file() -> Path:
    """Where calibrations are written: GRADER_CALIBRATION, or the cache's file. Never the shipped one."""
    override = os.environ.get("GRADER_CALIBRATION")
    return Path(override) if override else cache_dir() / CACHE_NAME


def search_path() -> list[Path]:
    """The files an entry is looked up in, first match wins."""
    override = os.environ.get("GRADER_CALIBRATION")
    return [Path(override)] if override else [cache_dir() / CACHE_NAME, SHIPPED_FILE]


def load_file(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise CalibrationError(f"{path}: cannot be read ({exc}); delete it and run `grader prepare` "
                               f"(or `grader calibrate`)") from exc
    if not isinstance(data, dict):
        raise CalibrationError(f"{path}: not a calibration file (expected a JSON object of entries by data "
                               f"fingerprint); delete it and run `grader prepare`")
    return data


def load_all() -> dict:
    """Every entry that lookup would find, by fingerprint (the first file's entry wins)."""
    merged: dict = {}
    for path in reversed(search_path()):
        merged.update(load_file(path))
    return merged


def entry_hash(entry: dict) -> str:
    """A short hash of an entry's content: two shards that show the same hash graded with the same numbers."""
    return hashlib.sha256(json.dumps(entry, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Found:
    fingerprint: str
    entry: dict
    path: Path

    @property
    def ref(self) -> CalibrationRef:
        return CalibrationRef(fingerprint=self.fingerprint, created=str(self.entry.get("created") or ""),
                              sha256=entry_hash(self.entry), file=str(self.path))


def lookup(fingerprint: str, *, need: Callable[[dict], bool] | None = None) -> Found | None:
    """The first entry for `fingerprint` along the search path (with `need`: the first that has what is needed)."""
    for path in search_path():
        entry = load_file(path).get(fingerprint)
        if isinstance(entry, dict) and entry and (need is None or need(entry)):
            return Found(fingerprint, entry, path)
    return None


def usable(entry: dict) -> bool:
    """An entry the grader can grade with: accuracies of the baseline (the range) are there."""
    return bool(entry.get("baseline"))


def places() -> str:
    """Where lookup looks, for messages."""
    return ", ".join(str(p) for p in search_path())


def lock_path(path: Path | None = None) -> Path:
    path = path or writable_file()
    return path.with_name(path.name + ".lock")


def holding_lock(path: Path | None = None,
                 on_wait: Callable[[str], None] | None = None) -> AbstractContextManager[None]:
    """The calibration file's lock, waited for: one process calibrates, the others then find its entry."""
    target = path or writable_file()
    return hold(lock_path(target), command="calibration", what=f"the calibration file {target}", wait=True,
                on_wait=on_wait)


def save(fingerprint: str, entry: dict, path: Path | None = None, *, locked: bool = False) -> Found:
    """Store `entry` for `fingerprint` (the rest of the file stays) and return it as found there.
    `locked`: the caller holds the file's lock already."""
    path = path or writable_file()
    if not locked:
        with holding_lock(path):
            return save(fingerprint, entry, path, locked=True)
    data = load_file(path)
    data[fingerprint] = entry
    write_atomic(path, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    return Found(fingerprint, entry, path)
