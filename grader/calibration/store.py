"""Where calibrations are kept, found and written: no kernels, no pipeline (reading one costs a JSON file).

A calibration entry is what a sheet's solution notebook did on one staged data set: the test
accuracies of several runs of its networks (by network key) and the seconds each code cell took,
with when it was made. Entries are kept by sheet and data (`<sheet>/<data fingerprint>`; an entry
written before calibrations were kept by sheet, under the fingerprint alone, is still read) and
looked up, first match wins, in

1. `GRADER_CALIBRATION`, when set: that file alone (the tests and benchmarks keep their own);
2. the grader's cache, `<cache>/calibration.json` (see grader/util/cache.py): what `grader prepare`,
   `grader calibrate` and a first `grader grade` on new data write;
3. the calibration the sheet ships in its reference folder (`<reference>/calibration.json`): a
   read-only default, never written (but by `grader calibrate --shipped`).

Every write holds the file's lock (`<file>.lock`), reads the file again, changes one entry and
replaces the file atomically (a temporary file, then `os.replace`): concurrent writers of other
entries lose nothing, and a reader never sees half a file.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from grader.errors import CalibrationError
from grader.models import CalibrationRef
from grader.util.atomic import write_atomic
from grader.util.cache import cache_dir
from grader.util.locks import hold

CACHE_NAME = "calibration.json"


class SheetFiles(Protocol):
    """What the store needs of a sheet (a grader.sheet.Sheet): its name, and the calibration it ships."""

    @property
    def name(self) -> str: ...

    @property
    def shipped_calibration(self) -> Path: ...


def entry_key(sheet: str, fingerprint: str) -> str:
    """An entry's key in a calibration file: the sheet's name and the data's fingerprint."""
    return f"{sheet}/{fingerprint}"


class CalibrationMissing(CalibrationError):
    """A shard found no calibration for its data: `grader prepare` makes it, once, before the shards."""


def writable_file() -> Path:
    """Where calibrations are written: GRADER_CALIBRATION, or the cache's file. Never the shipped one."""
    override = os.environ.get("GRADER_CALIBRATION")
    return Path(override) if override else cache_dir() / CACHE_NAME


def search_path(sheet: SheetFiles) -> list[Path]:
    """The files an entry of `sheet` is looked up in, first match wins."""
    override = os.environ.get("GRADER_CALIBRATION")
    return [Path(override)] if override else [cache_dir() / CACHE_NAME, sheet.shipped_calibration]


def load_file(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise CalibrationError(
            f"{path}: cannot be read ({exc}); delete it and run `grader prepare` (or `grader calibrate`)"
        ) from exc
    if not isinstance(data, dict):
        raise CalibrationError(
            f"{path}: not a calibration file (expected a JSON object of entries by data "
            f"fingerprint); delete it and run `grader prepare`"
        )
    return data


def _entry_in(data: dict, sheet: str, fingerprint: str):
    """The entry of `sheet` for `fingerprint` in a file's content (or one kept by the fingerprint alone)."""
    entry = data.get(entry_key(sheet, fingerprint))
    return entry if entry is not None else data.get(fingerprint)


def load_all(sheet: SheetFiles) -> dict:
    """Every entry of `sheet` that lookup would find, by data fingerprint (the first file's entry wins)."""
    merged: dict = {}
    for path in reversed(search_path(sheet)):
        data = load_file(path)
        merged.update({key: entry for key, entry in data.items() if "/" not in key})  # kept by fingerprint alone
        prefix = entry_key(sheet.name, "")
        merged.update({key[len(prefix) :]: entry for key, entry in data.items() if key.startswith(prefix)})
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
        return CalibrationRef(
            fingerprint=self.fingerprint,
            created=str(self.entry.get("created") or ""),
            sha256=entry_hash(self.entry),
            file=str(self.path),
        )


def lookup(
    sheet: SheetFiles, fingerprint: str, *, need: Callable[[dict], bool] | None = None, path: Path | None = None
) -> Found | None:
    """The first entry of `sheet` for `fingerprint` along the search path, or in `path` alone (with
    `need`: the first that has what is needed)."""
    for where in [path] if path is not None else search_path(sheet):
        entry = _entry_in(load_file(where), sheet.name, fingerprint)
        if isinstance(entry, dict) and entry and (need is None or need(entry)):
            return Found(fingerprint, entry, where)
    return None


def usable(networks: tuple[str, ...]) -> Callable[[dict], bool]:
    """Whether an entry can be graded with: the accuracies of every one of `networks` (the sheet's
    networks that define the accuracy range) are there."""
    return lambda entry: bool(networks) and all(entry.get(key) for key in networks)


def places(sheet: SheetFiles) -> str:
    """Where lookup looks, for messages."""
    return ", ".join(str(p) for p in search_path(sheet))


def lock_path(path: Path | None = None) -> Path:
    path = path or writable_file()
    return path.with_name(path.name + ".lock")


def holding_lock(
    path: Path | None = None, on_wait: Callable[[str], None] | None = None
) -> AbstractContextManager[None]:
    """The calibration file's lock, waited for: one process calibrates, the others then find its entry."""
    target = path or writable_file()
    return hold(
        lock_path(target), command="calibration", what=f"the calibration file {target}", wait=True, on_wait=on_wait
    )


def save(sheet: str, fingerprint: str, entry: dict, path: Path | None = None, *, locked: bool = False) -> Found:
    """Store `entry` of the sheet named `sheet` for `fingerprint` (the rest of the file stays) and
    return it as found there. `locked`: the caller holds the file's lock already."""
    path = path or writable_file()
    if not locked:
        with holding_lock(path):
            return save(sheet, fingerprint, entry, path, locked=True)
    data = load_file(path)
    data[entry_key(sheet, fingerprint)] = entry
    write_atomic(path, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    return Found(fingerprint, entry, path)
