"""The tutors' sheet, `manual_points.csv`: one row per team, one column per part graded by hand (its
maximum in the header), optional overrides of the automatic checks and a comment. Its columns (from
the sheet's exercises and checks), reading it (every problem listed by line, team and column), and
writing it (never with less than it holds: new teams and new columns are merged in, filled cells
are kept as typed). Applying a row to a report is manual.py's.
"""
from __future__ import annotations

import re
import shutil
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from grader.atomic import write_atomic
from grader.config import Config
from grader.errors import ManualPointsError
from grader.models import Report
from grader.report.csvfile import CsvFormat, decode_text, format_number, parse_number, read_rows, render_csv

SHEET_NAME = "manual_points.csv"
INFO_COLUMNS = ("stem", "team", "student_ids")
COMMENT = "comment"
OVERRIDE = "override "
_MAX_SUFFIX = re.compile(r"\s*\((?:max|maximum)\b[^)]*\)\s*$", re.IGNORECASE)
_EPS = 1e-9


@dataclass(frozen=True)
class ManualEntry:
    """One team's row. `points` by part (an exercise id, or the automatic exercise's manual part,
    Sheet.manual_part_id); parts left empty are absent."""
    stem: str
    line: int
    points: dict[str, float] = field(default_factory=dict)
    overrides: dict[str, float] = field(default_factory=dict)
    comment: str | None = None
    exercise_comments: dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------- the columns

def manual_parts(config: Config) -> dict[str, float]:
    """Every part tutors grade, with its maximum: the exercises, and the automatic exercise beyond
    its automatic checks."""
    sheet = config.sheet_def
    points = config.exercises.points
    auto_max = sum(config.checks.points(c) for c in sheet.check_ids)
    parts = {}
    for exercise in sheet.exercise_ids:
        if exercise == sheet.automatic_exercise:
            parts[sheet.manual_part_id] = round(points[exercise] - auto_max, 4)
        else:
            parts[exercise] = points[exercise]
    return parts


def part_label(part: str, config: Config) -> str:
    bonus = " bonus" if part in config.exercises.bonus else ""
    return f"{part}{bonus} (max {format_number(manual_parts(config)[part])})"


def override_label(check_id: str, config: Config) -> str:
    return f"{OVERRIDE}{check_id} (max {format_number(config.checks.points(check_id))})"


def sheet_columns(config: Config) -> list[str]:
    return [*INFO_COLUMNS, *(part_label(p, config) for p in manual_parts(config)),
            *(override_label(c, config) for c in config.sheet_def.check_ids), COMMENT]


def _column_key(header: str, config: Config) -> tuple[str, str] | None:
    """("info"|"part"|"override"|"comment"|"exercise_comment", name) for a header, None when unknown.
    The maximum in the header is informative: the configuration's maximum is the one enforced."""
    text = unicodedata.normalize("NFC", header).strip().lstrip("\ufeff")
    bare = _MAX_SUFFIX.sub("", text).strip()
    low = bare.lower()
    if low in INFO_COLUMNS:
        return "info", low
    if low == COMMENT:
        return "comment", COMMENT
    if low.startswith(COMMENT + " "):
        exercise = bare[len(COMMENT) + 1:].strip()
        return ("exercise_comment", exercise) if exercise in config.sheet_def.exercise_ids else None
    if low.startswith(OVERRIDE):
        check = bare[len(OVERRIDE):].strip()
        return ("override", check) if check in config.sheet_def.check_ids else None
    parts = manual_parts(config)
    name = re.sub(r"\s+bonus$", "", bare, flags=re.IGNORECASE).strip()
    if name in parts:
        return "part", name
    return None


# ---------------------------------------------------------------- reading

def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text).strip()


def read_manual_sheet(path: Path, reports: list[tuple[str, Report]] | dict[str, Report],
                      config: Config) -> dict[str, ManualEntry]:
    """Validate the whole sheet and return its rows by stem. Every problem is collected; when there is
    any, one ManualPointsError lists them all (line number, team, column, what is wrong)."""
    path = Path(path)
    known = {_nfc(stem): stem for stem, _ in (reports.items() if isinstance(reports, dict) else reports)}
    text = decode_text(path.read_bytes())
    _, rows = read_rows(text)
    if not rows:
        return {}
    problems: list[str] = []
    header_line, header = rows[0]
    keys: list[tuple[str, str] | None] = []
    seen: dict[tuple[str, str], str] = {}
    for index, name in enumerate(header):
        key = _column_key(name, config)
        if key is None:
            if name.strip():
                problems.append(f"line {header_line}, column {index + 1} {name.strip()!r}: unknown column "
                                f"(expected one of: {', '.join(sheet_columns(config))}, or 'comment <exercise>')")
        elif key in seen:
            problems.append(f"line {header_line}, column {index + 1} {name.strip()!r}: the same part as column "
                            f"{seen[key]!r}")
            key = None
        else:
            seen[key] = name.strip()
        keys.append(key)
    if ("info", "stem") not in seen:
        problems.append(f"line {header_line}: no 'stem' column (the submission's name, as written by the grader)")
        raise ManualPointsError(path, problems)

    parts = manual_parts(config)
    entries: dict[str, ManualEntry] = {}
    stem_index = keys.index(("info", "stem"))
    for line, fields in rows[1:]:
        raw_stem = fields[stem_index].strip() if stem_index < len(fields) else ""
        where = f"line {line} (team {raw_stem!r})" if raw_stem else f"line {line}"
        if len(fields) > len(header):  # even when the extra cells are empty: the values have shifted
            problems.append(f"{where}: {len(fields)} fields but the header has {len(header)}; is a decimal "
                            f"comma unquoted in a comma-separated sheet? Use `;` as the delimiter or write 7.5")
            continue
        if not raw_stem:
            problems.append(f"{where}: the 'stem' cell is empty")
            continue
        stem = known.get(_nfc(raw_stem))
        if stem is None:
            problems.append(f"{where}, column 'stem': unknown team: no report of that name among the "
                            f"{len(known)} graded submission(s); fix the name or delete the row")
            continue
        if stem in entries:
            problems.append(f"{where}: the team already has a row (line {entries[stem].line})")
            continue
        points, overrides, exercise_comments, comment = {}, {}, {}, None
        for key, column, value in zip(keys, header, fields):
            if key is None or not value.strip():
                continue
            kind, name = key
            if kind in ("part", "override"):
                maximum = parts[name] if kind == "part" else config.checks.points(name)
                at = f"{where}, column {column.strip()!r}"
                try:
                    number = parse_number(value)
                except ValueError:
                    problems.append(f"{at}: {value.strip()!r} is not a number (write e.g. 0.5 or 0,5; "
                                    f"leave the cell empty while the part is not graded)")
                    continue
                if number < 0:
                    problems.append(f"{at}: {value.strip()} is negative; points are between 0 and {format_number(maximum)}")
                elif number > maximum + _EPS:
                    problems.append(f"{at}: {value.strip()} is above the maximum {format_number(maximum)}")
                else:
                    (points if kind == "part" else overrides)[name] = number
            elif kind == "comment":
                comment = value.strip()
            elif kind == "exercise_comment":
                exercise_comments[name] = value.strip()
        entries[stem] = ManualEntry(stem=stem, line=line, points=points, overrides=overrides, comment=comment,
                                    exercise_comments=exercise_comments)
    if problems:
        raise ManualPointsError(path, problems)
    return entries


# ---------------------------------------------------------------- writing

def _cells_from_report(report: Report, config: Config, decimal: str) -> dict[tuple[str, str], str]:
    """What an earlier merge put into the report, as cells: a new sheet starts from it, so writing a
    sheet never loses points that are already in the reports."""
    cells: dict[tuple[str, str], str] = {}

    def fmt(value: float) -> str:
        return format_number(value).replace(".", decimal)

    auto = report.auto_points
    sheet = config.sheet_def
    for exercise in report.exercises:
        if exercise.points is None:
            continue
        if exercise.id == sheet.automatic_exercise:
            cells[("part", sheet.manual_part_id)] = fmt(max(0.0, exercise.points - auto))
        else:
            cells[("part", exercise.id)] = fmt(exercise.points)
        if (own := exercise.comment):
            cells[("exercise_comment", exercise.id)] = own
    for check in report.checks:
        if check.override is not None:
            cells[("override", check.id)] = fmt(check.points)
    if (comment := report.comment):
        cells[("comment", COMMENT)] = comment
    return cells


def _info(stem: str, report: Report) -> dict[tuple[str, str], str]:
    return {("info", "stem"): stem,
            ("info", "team"): "; ".join(m.name for m in report.submission.team),
            ("info", "student_ids"): "; ".join(m.student_id for m in report.submission.team)}


def cms_format(config: Config) -> tuple[str, str, bool]:
    """(delimiter, decimal separator, BOM) of the CSV files people open in spreadsheets."""
    return config.cms.delimiter, config.cms.decimal, config.cms.bom


def write_manual_sheet(reports: list[tuple[str, Report]], out_dir: Path, config: Config) -> Path:
    """Write `manual_points.csv`, or merge into the one tutors are filling: their rows, columns and
    filled cells stay as they are (in the sheet's own delimiter); teams and columns it lacks are
    added, and the team/student_ids cells are refreshed. An unchanged sheet is not rewritten; a
    changed one is first copied to `manual_points.csv.bak`."""
    out_dir = Path(out_dir)
    path = out_dir / SHEET_NAME
    delimiter, decimal, bom = cms_format(config)
    by_stem = {_nfc(stem): (stem, report) for stem, report in reports}
    header = sheet_columns(config)
    rows: list[list[str]] = []
    original = None
    if path.exists():
        original = path.read_bytes()
        text = decode_text(original)
        delimiter, parsed = read_rows(text)
        bom = original.startswith(b"\xef\xbb\xbf")
        if parsed:
            old_header = [h.strip().lstrip("\ufeff") for h in parsed[0][1]]
            old_keys = [_column_key(h, config) for h in old_header]
            missing = [h for h in header if _column_key(h, config) not in old_keys]
            # new columns go before the comment column when there is one, else at the end
            insert_at = old_keys.index(("comment", COMMENT)) if ("comment", COMMENT) in old_keys else len(old_header)
            header = old_header[:insert_at] + missing + old_header[insert_at:]
            rows = [list(fields) + [""] * (len(old_header) - len(fields)) for _, fields in parsed[1:]]
            rows = [r[:insert_at] + [""] * len(missing) + r[insert_at:] for r in rows]
    keys = [_column_key(h, config) for h in header]
    stem_col = keys.index(("info", "stem"))
    present = set()
    for row in rows:
        found = by_stem.get(_nfc(row[stem_col]))
        if found is None:
            continue  # a team no longer graded: the tutors' row stays; reading the sheet says so
        present.add(_nfc(row[stem_col]))
        for (key, value) in _info(*found).items():
            if key in keys and key != ("info", "stem"):
                row[keys.index(key)] = value
    for nfc_stem, (stem, report) in sorted(by_stem.items()):
        if nfc_stem in present:
            continue
        cells = {**_cells_from_report(report, config, decimal), **_info(stem, report)}
        rows.append([cells.get(k, "") if k else "" for k in keys])
    data = render_csv(header, rows, CsvFormat(delimiter=delimiter, decimal=decimal, bom=bom))
    if original is not None:
        if decode_text(original).replace("\r\n", "\n") == decode_text(data).replace("\r\n", "\n"):
            return path
        shutil.copy2(path, path.with_name(SHEET_NAME + ".bak"))
    write_atomic(path, data)
    return path


def merge_sheets(sources: list[Path], target: Path, config: Config) -> list[str]:
    """Join several shards' sheets into `target` (which may exist): rows by stem, cell by cell. Two
    different filled values for one cell are an error naming both files. Returns notes."""
    table: dict[str, dict[tuple[str, str], tuple[str, str]]] = {}   # stem → key → (value, file)
    labels: dict[tuple[str, str], str] = {}
    problems, notes = [], []
    if not sources:
        return notes
    for source in [target, *sources]:
        if not source.exists():
            continue
        _, parsed = read_rows(decode_text(source.read_bytes()))
        if not parsed:
            continue
        keys = [_column_key(h, config) for h in parsed[0][1]]
        for key, label in zip(keys, parsed[0][1]):
            if key:
                labels.setdefault(key, label.strip().lstrip("\ufeff"))
        if ("info", "stem") not in keys:
            problems.append(f"{source}: no 'stem' column")
            continue
        stem_col = keys.index(("info", "stem"))
        for line, fields in parsed[1:]:
            stem = _nfc(fields[stem_col]) if stem_col < len(fields) else ""
            if not stem:
                continue
            cells = table.setdefault(stem, {})
            for key, value in zip(keys, fields):
                if key is None or not value.strip():
                    continue
                if key in cells and cells[key][0].strip() != value.strip() and key[0] != "info":
                    problems.append(f"team {stem!r}, column {labels[key]!r}: {cells[key][0]!r} in {cells[key][1]} "
                                    f"but {value!r} in {source} (line {line})")
                    continue
                cells.setdefault(key, (value, str(source)))
        if source != target:
            notes.append(f"manual points taken from {source}")
    if problems:
        raise ManualPointsError(target, problems)
    if not table:
        return notes
    header = sheet_columns(config)
    extra = [labels[k] for k in labels if k not in [_column_key(h, config) for h in header]]
    header = header[:-1] + extra + header[-1:]
    keys = [_column_key(h, config) for h in header]
    rows = [[table[stem].get(k, ("", ""))[0] for k in keys] for stem in sorted(table)]
    if target.exists():
        shutil.copy2(target, target.with_name(target.name + ".bak"))
    write_atomic(target, render_csv(header, rows, CsvFormat.of(config)))
    return notes
