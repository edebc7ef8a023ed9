"""`cms.csv`: one row per student for the course system's import.

Format decisions:
- UTF-8 with a byte-order mark by default (`[cms] bom = true`): Excel opens a UTF-8 file without a
  BOM as Windows-1252 and garbles umlauts ("MÃ¼ller"); Python (`utf-8-sig`), LibreOffice and most
  importers skip the BOM. Set `bom = false` for an importer that does not.
- Names are written in NFC, so an umlaut typed on a Mac (decomposed) matches the course system's.
- The matriculation number is text and always quoted (`"0701234"`), so a leading zero survives and
  importers that honour quotes (LibreOffice: "format quoted field as text") keep it as text. Excel
  drops the quotes when a file is opened by double-click: import it via Data → From Text with the
  column typed as Text instead.
- Delimiter and decimal separator come from `[cms] delimiter` / `[cms] decimal` (defaults `,` and
  `.`; `;` and `,` for German spreadsheets). Exercise cells are empty while the exercise is pending.
- `complete` says whether every part is graded: import only complete rows as final grades.
"""
from __future__ import annotations

import io
import unicodedata
from pathlib import Path

from grader.config import EXERCISE_IDS, Config
from grader.report.manual import cms_format
from grader.report.models import Report
from grader.report.render import write_atomic

CMS_NAME = "cms.csv"


class CmsError(ValueError):
    """The course system's file cannot be written as it would be wrong (e.g. a student in two teams)."""


def cms_columns() -> list[str]:
    return ["student_id", "name", "team", *EXERCISE_IDS, "total", "bonus", "complete"]


def _points(value: float | None, decimal: str) -> str:
    if value is None:
        return ""
    return f"{round(value, 4):g}".replace(".", decimal)


def cms_rows(reports: list[tuple[str, Report]], decimal: str = ".") -> list[list[str]]:
    """The rows (as text), sorted by student id. A student in more than one team is a CmsError
    naming the student and every team, so the course system never gets two grades for one person."""
    teams_of: dict[str, list[tuple[str, str]]] = {}
    rows = []
    for stem, report in reports:
        exercises = {e.id: e.points for e in report.exercises}
        for member in report.submission.team:
            student_id = member.student_id.strip()
            name = unicodedata.normalize("NFC", member.name).strip()
            teams_of.setdefault(student_id, []).append((name, stem))
            rows.append([student_id, name, stem, *(_points(exercises.get(e), decimal) for e in EXERCISE_IDS),
                         _points(report.total.points, decimal), _points(report.total.bonus_points, decimal),
                         "yes" if report.total.complete else "no"])
    twice = {sid: found for sid, found in teams_of.items() if len(found) > 1}
    if twice:
        problems = [f"student {found[0][0]} ({sid}) is in {len(found)} teams: "
                    + " and ".join(repr(stem) for _, stem in found) for sid, found in sorted(twice.items())]
        raise CmsError("cms.csv not written: " + "; ".join(problems)
                       + ". Decide which submission counts (remove or rename the other) and run again.")
    rows.sort(key=lambda row: (row[0], row[2]))
    return rows


def _field(text: str, delimiter: str, always: bool = False) -> str:
    if always or any(ch in text for ch in (delimiter, '"', "\n", "\r")) or text != text.strip():
        return '"' + text.replace('"', '""') + '"'
    return text


def render_cms(reports: list[tuple[str, Report]], config: Config) -> bytes:
    delimiter, decimal, bom = cms_format(config)
    buffer = io.StringIO()
    buffer.write(delimiter.join(_field(c, delimiter) for c in cms_columns()) + "\r\n")
    for row in cms_rows(reports, decimal):
        fields = [_field(row[0], delimiter, always=True)] + [_field(v, delimiter) for v in row[1:]]
        buffer.write(delimiter.join(fields) + "\r\n")
    return (("\ufeff" if bom else "") + buffer.getvalue()).encode("utf-8")


def write_cms_csv(reports: list[tuple[str, Report]], out_dir: Path, config: Config) -> Path:
    """Write `<out_dir>/cms.csv` atomically; raises CmsError (and writes nothing) when it would be wrong."""
    data = render_cms(reports, config)
    path = Path(out_dir) / CMS_NAME
    write_atomic(path, data)
    return path
