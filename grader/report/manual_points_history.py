"""Every version of the tutors' sheet, kept: before a merge writes, the sheet as the tutors left it
goes to `<out>/manual/<when>-manual_points.csv` (a new file each time it changed; none is ever
overwritten), and `grader merge --restore NAME` puts one of them back as `manual_points.csv`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from grader.config import Config
from grader.errors import ManualPointsError
from grader.report.manual_points import HISTORY_DIR, MANUAL_POINTS_NAME, _keyed_rows, decode_manual_points
from grader.util.atomic import write_atomic

VERSION_SUFFIX = "-" + MANUAL_POINTS_NAME
_VERSION = re.compile(r"^\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d(_\d+)?(-[a-z-]+)?-" + re.escape(MANUAL_POINTS_NAME) + "$")


@dataclass(frozen=True)
class Version:
    path: Path
    rows: int  # teams with a row
    points: int  # cells with points (parts and overrides)
    problem: str = ""  # when the version cannot be read

    @property
    def name(self) -> str:
        return self.path.name


def history_dir(out_dir: Path) -> Path:
    return Path(out_dir) / HISTORY_DIR


def _paths(out_dir: Path) -> list[Path]:
    folder = history_dir(out_dir)
    return sorted(p for p in folder.glob(f"*{VERSION_SUFFIX}") if _VERSION.match(p.name)) if folder.is_dir() else []


def save_version(out_dir: Path, data: bytes | None = None, *, label: str = "") -> Path | None:
    """Keep `data` (default: the sheet as it is now) as a new dated version, unless it is the same as
    the newest one kept. `label` marks versions the grader made (`held-by-reports`)."""
    out_dir = Path(out_dir)
    if data is None:
        sheet = out_dir / MANUAL_POINTS_NAME
        if not sheet.exists():
            return None
        data = sheet.read_bytes()
    kept = _paths(out_dir)
    if kept and not label and kept[-1].read_bytes() == data:
        return None
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    tag = f"-{label}" if label else ""
    path = history_dir(out_dir) / f"{stamp}{tag}{VERSION_SUFFIX}"
    count = 1
    while path.exists():  # two merges within a second
        count += 1
        path = history_dir(out_dir) / f"{stamp}_{count:02d}{tag}{VERSION_SUFFIX}"
    write_atomic(path, data)
    return path


def versions(out_dir: Path, config: Config) -> list[Version]:
    """The versions kept, oldest first, with how many teams and point cells each holds."""
    found = []
    for path in _paths(out_dir):
        try:
            _, rows = _keyed_rows(decode_manual_points(path.read_bytes(), path), config)
        except (OSError, ManualPointsError) as exc:
            found.append(Version(path=path, rows=0, points=0, problem=str(exc).splitlines()[-1].strip(" -")))
            continue
        points = sum(1 for _, _, cells in rows for key in cells if key[0] in ("part", "override"))
        found.append(Version(path=path, rows=len(rows), points=points))
    return found


def find_version(out_dir: Path, name: str) -> Path:
    """A kept version by its file name, or by the start of it (`2025-01-14_10-02`)."""
    kept = _paths(out_dir)
    exact = [p for p in kept if p.name == name]
    matches = exact or [p for p in kept if p.name.startswith(name)]
    if len(matches) == 1:
        return matches[0]
    listed = ", ".join(p.name for p in kept[-8:]) or "none"
    why = "matches several versions" if matches else "is not a version kept"
    raise ManualPointsError(
        history_dir(out_dir),
        [
            f"{name!r} {why} in {history_dir(out_dir)} (newest: {listed}); "
            "`grader merge OUT --out OUT --restore` lists them"
        ],
    )


def restore_version(out_dir: Path, name: str) -> tuple[Path, Path | None]:
    """Put a kept version back as the sheet. The sheet it replaces is kept first. Returns the
    version restored and where the replaced sheet went (None: it was kept already)."""
    out_dir = Path(out_dir)
    chosen = find_version(out_dir, name)
    data = chosen.read_bytes()
    replaced = save_version(out_dir)
    write_atomic(out_dir / MANUAL_POINTS_NAME, data)
    return chosen, replaced
