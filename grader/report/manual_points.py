"""The tutors' sheet, `manual_points.csv`: one row per team, one column per part graded by hand (its
maximum in the header), optional overrides of the automatic checks and a comment. Its columns (from
the sheet's exercises and checks), reading it (every problem listed by line, team and column), and
writing it (never with less than it holds: new teams and new columns are merged in, filled cells
are kept as typed). The rows of submissions no longer graded are set aside in
`manual/removed_rows.csv` (the sheet's inactive part) and come back with their submission. Applying a
row to a report is manual.py's; the dated versions of the sheet are manual_points_history.py's.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from grader.config import Config
from grader.errors import ManualPointsError
from grader.models import Report
from grader.report.csvfile import CsvFormat, decode_text, format_number, parse_number, read_rows, render_csv
from grader.util.atomic import write_atomic

MANUAL_POINTS_NAME = "manual_points.csv"
HISTORY_DIR = "manual"  # under the output folder: the sheet's versions, its inactive part
REMOVED_ROWS = "removed_rows.csv"  # in HISTORY_DIR: rows of submissions no longer in the folder
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


def manual_points_columns(config: Config) -> list[str]:
    return [
        *INFO_COLUMNS,
        *(part_label(p, config) for p in manual_parts(config)),
        *(override_label(c, config) for c in config.sheet_def.check_ids),
        COMMENT,
    ]


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
        exercise = bare[len(COMMENT) + 1 :].strip()
        return ("exercise_comment", exercise) if exercise in config.sheet_def.exercise_ids else None
    if low.startswith(OVERRIDE):
        check = bare[len(OVERRIDE) :].strip()
        return ("override", check) if check in config.sheet_def.check_ids else None
    parts = manual_parts(config)
    name = re.sub(r"\s+bonus$", "", bare, flags=re.IGNORECASE).strip()
    if name in parts:
        return "part", name
    return None


# ---------------------------------------------------------------- reading


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text).strip()


def known_stem(cell: str, known: dict[str, str]) -> str | None:
    """The stem (a value of `known`, by NFC key) that a sheet's stem cell names: as written, or as
    Excel's "CSV" (Windows-1252) leaves it: a letter it lacks (ễ, ă, Ł, Ż) saved as '?' or without
    its accent. Such a cell names a stem only when it names no other."""
    cell = _nfc(cell)
    if cell in known or not cell.isprintable():
        return known.get(cell)
    found = [stem for key, stem in known.items() if _lossy_copy(cell, key)]
    return found[0] if len(found) == 1 else None


def _lossy_copy(cell: str, name: str) -> bool:
    if len(cell) != len(name) or cell == name:
        return False
    return all(a == b or (not _in_cp1252(b) and a in ("?", _base_letter(b))) for a, b in zip(cell, name))


def _in_cp1252(ch: str) -> bool:
    try:
        ch.encode("cp1252")
        return True
    except UnicodeEncodeError:
        return False


def _base_letter(ch: str) -> str:
    return unicodedata.normalize("NFKD", ch)[0]


def decode_manual_points(data: bytes, path: Path | str) -> str:
    """The sheet's text. UTF-8 (with or without BOM), Windows-1252 (Excel's "CSV"), and UTF-16 or
    UTF-32 with a byte-order mark (Excel's "Unicode Text") are read; anything else is one
    ManualPointsError about the encoding, not a list of garbled columns."""
    for bom, codec in (
        (b"\xff\xfe\x00\x00", "utf-32"),
        (b"\x00\x00\xfe\xff", "utf-32"),
        (b"\xff\xfe", "utf-16"),
        (b"\xfe\xff", "utf-16"),
    ):
        if data.startswith(bom):
            try:
                return data.decode(codec).lstrip("\ufeff")
            except UnicodeDecodeError as exc:
                raise ManualPointsError(
                    path,
                    [
                        f"starts like {codec.upper()} text but is not ({exc.reason} at byte "
                        f'{exc.start}); save it as "CSV UTF-8 (comma delimited)"'
                    ],
                ) from None
    what = None
    if data.startswith(b"PK\x03\x04"):
        what = "an Excel or LibreOffice workbook (a zip), not a CSV file"
    elif data.startswith(b"\xd0\xcf\x11\xe0"):
        what = "an old Excel workbook (.xls), not a CSV file"
    elif b"\x00" in data[:4096]:
        what = "not text: it holds zero bytes (UTF-16 without a byte-order mark, or a binary file)"
    if what:
        raise ManualPointsError(
            path,
            [f'the file is {what}; save it as "CSV UTF-8 (comma delimited)" (or "Unicode Text") under the same name'],
        )
    return decode_text(data)


def manual_points_encoding_note(data: bytes) -> str | None:
    """A line for the tutors when the sheet is not UTF-8: the grader writes it back as UTF-8."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")):
        return (
            f'{MANUAL_POINTS_NAME} was saved as UTF-16/UTF-32 (Excel\'s "Unicode Text"): read, and written back as '
            f"UTF-8 with a BOM (the version as saved is kept in {HISTORY_DIR}/)"
        )
    return None


def read_manual_points(
    path: Path,
    reports: list[tuple[str, Report]] | dict[str, Report],
    config: Config,
    *,
    inactive: set[str] | frozenset[str] = frozenset(),
) -> dict[str, ManualEntry]:
    """Validate the whole sheet and return its rows by stem. Every problem is collected; when there is
    any, one ManualPointsError lists them all (line number, team, column, what is wrong). Rows of
    `inactive` stems (submissions no longer in the folder: their reports are being set aside) are
    neither validated nor returned."""
    path = Path(path)
    known = {_nfc(stem): stem for stem, _ in (reports.items() if isinstance(reports, dict) else reports)}
    text = decode_manual_points(path.read_bytes(), path)
    return _parse_manual_points(text, path, known, config, skip={_nfc(stem) for stem in inactive})


def _parse_manual_points(
    text: str, path: Path, known: dict[str, str], config: Config, *, skip: set[str] | None = None
) -> dict[str, ManualEntry]:
    """The rows of `known` stems (NFC → stem); a row of another stem is an error, unless it is in
    `skip` (None: every other row is skipped)."""
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
                problems.append(
                    f"line {header_line}, column {index + 1} {name.strip()!r}: unknown column "
                    f"(expected one of: {', '.join(manual_points_columns(config))}, or 'comment <exercise>')"
                )
        elif key in seen:
            problems.append(
                f"line {header_line}, column {index + 1} {name.strip()!r}: the same part as column {seen[key]!r}"
            )
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
        stem = known_stem(raw_stem, known) if raw_stem else None
        if raw_stem and stem is None and (skip is None or known_stem(raw_stem, {s: s for s in skip})):
            continue  # a submission no longer in the folder: its row is set aside, not read
        where = f"line {line} (team {raw_stem!r})" if raw_stem else f"line {line}"
        if len(fields) > len(header):  # even when the extra cells are empty: the values have shifted
            problems.append(
                f"{where}: {len(fields)} fields but the header has {len(header)}; is a decimal "
                f"comma unquoted in a comma-separated sheet? Use `;` as the delimiter or write 7.5"
            )
            continue
        if len(fields) < len(header):  # cells lost or moved: reading on would put values in other columns
            problems.append(
                f"{where}: {len(fields)} fields but the header has {len(header)}; cells are missing "
                f"or have moved (an unquoted decimal comma such as 2,1 splits a cell in two). "
                f"Give the row every column of the header"
            )
            continue
        if not raw_stem:
            problems.append(f"{where}: the 'stem' cell is empty")
            continue
        if stem is None:
            problems.append(
                f"{where}, column 'stem': unknown team: no report of that name among the "
                f"{len(known)} graded submission(s); fix the name or delete the row"
            )
            continue
        if stem in entries:
            problems.append(f"{where}: the team already has a row (line {entries[stem].line})")
            continue
        points: dict[str, float] = {}
        overrides: dict[str, float] = {}
        exercise_comments: dict[str, str] = {}
        comment: str | None = None
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
                    problems.append(
                        f"{at}: {value.strip()!r} is not a number (write e.g. 0.5 or 0,5; "
                        f"leave the cell empty while the part is not graded)"
                    )
                    continue
                if number < 0:
                    problems.append(
                        f"{at}: {value.strip()} is negative; points are between 0 and {format_number(maximum)}"
                    )
                elif number > maximum + _EPS:
                    problems.append(f"{at}: {value.strip()} is above the maximum {format_number(maximum)}")
                else:
                    (points if kind == "part" else overrides)[name] = number
            elif kind == "comment":
                comment = value.strip()
            elif kind == "exercise_comment":
                exercise_comments[name] = value.strip()
        entries[stem] = ManualEntry(
            stem=stem,
            line=line,
            points=points,
            overrides=overrides,
            comment=comment,
            exercise_comments=exercise_comments,
        )
    if problems:
        raise ManualPointsError(path, problems)
    return entries


def removed_entries(out_dir: Path, reports: list[tuple[str, Report]], config: Config) -> dict[str, ManualEntry]:
    """The set-aside rows (`manual/removed_rows.csv`) of these reports' stems: the tutors' points of a
    submission that was removed from the folder and is back."""
    path = Path(out_dir) / HISTORY_DIR / REMOVED_ROWS
    if not reports or not path.exists():
        return {}
    known = {_nfc(stem): stem for stem, _ in reports}
    return _parse_manual_points(decode_manual_points(path.read_bytes(), path), path, known, config, skip=None)


# ---------------------------------------------------------------- what reports hold


def held_points(report: Report, config: Config) -> dict[tuple[str, str], float]:
    """The tutors' points an earlier merge put into a report, by the sheet's column key: the
    manual parts and the overrides. A sheet that lacks one of them would take it out again."""
    held: dict[tuple[str, str], float] = {}
    sheet = config.sheet_def
    auto = report.auto_points
    for exercise in report.exercises:
        if exercise.points is None:
            continue
        if exercise.id == sheet.automatic_exercise:
            held[("part", sheet.manual_part_id)] = max(0.0, round(exercise.points - auto, 4))
        else:
            held[("part", exercise.id)] = exercise.points
    for check in report.checks:
        if check.override is not None:
            held[("override", check.id)] = check.points
    return held


def clearings(
    held: dict[str, dict[tuple[str, str], float]], entries: dict[str, ManualEntry], config: Config
) -> list[str]:
    """What the sheet's `entries` would take out of the reports: one line per team naming each part
    (and the points it held) that has no value in the sheet any more."""
    lost = []
    for stem, points in sorted(held.items()):
        entry = entries.get(stem)
        gone = [
            (key, value)
            for key, value in points.items()
            if entry is None or key[1] not in (entry.points if key[0] == "part" else entry.overrides)
        ]
        if not gone:
            continue
        where = "its row is missing" if entry is None else f"line {entry.line}"
        parts = ", ".join(
            f"{key[1] if key[0] == 'part' else OVERRIDE + key[1]} ({format_number(value)})"
            for key, value in sorted(gone)
        )
        lost.append(f"team {stem!r} ({where}): {parts} would lose the points the report holds")
    return lost


# ---------------------------------------------------------------- writing


def _cells_from_report(report: Report, config: Config, decimal: str) -> dict[tuple[str, str], str]:
    """What an earlier merge put into the report, as cells: a new sheet starts from it, so writing a
    sheet never loses points that are already in the reports."""
    cells = {key: format_number(value).replace(".", decimal) for key, value in held_points(report, config).items()}
    for exercise in report.exercises:
        if exercise.points is not None and (own := exercise.comment):
            cells[("exercise_comment", exercise.id)] = own
    if comment := report.comment:
        cells[("comment", COMMENT)] = comment
    return cells


def _info(stem: str, report: Report) -> dict[tuple[str, str], str]:
    return {
        ("info", "stem"): stem,
        ("info", "team"): "; ".join(m.name for m in report.submission.team),
        ("info", "student_ids"): "; ".join(m.student_id for m in report.submission.team),
    }


def render_held(
    held: dict[str, dict[tuple[str, str], float]], reports: list[tuple[str, Report]], config: Config
) -> bytes:
    """A sheet of the points the reports hold (`held_points` by stem): what the history keeps
    before a merge takes points out (--allow-clearing), so that they can be restored."""
    fmt = CsvFormat.of(config)
    keys = [_column_key(h, config) for h in manual_points_columns(config)]
    by_stem = dict(reports)
    rows = []
    for stem, points in sorted(held.items()):
        cells = {key: fmt.number(value) for key, value in points.items()}
        cells.update(_info(stem, by_stem[stem]) if stem in by_stem else {("info", "stem"): stem})
        rows.append([cells.get(k, "") if k else "" for k in keys])
    return render_csv(manual_points_columns(config), rows, fmt)


def cms_format(config: Config) -> tuple[str, str, bool]:
    """(delimiter, decimal separator, BOM) of the CSV files people open in spreadsheets."""
    return config.cms.delimiter, config.cms.decimal, config.cms.bom


def write_manual_points(
    reports: list[tuple[str, Report]],
    out_dir: Path,
    config: Config,
    *,
    set_aside: set[str] | frozenset[str] = frozenset(),
) -> Path:
    """Write `manual_points.csv`, or merge into the one tutors are filling: their rows, columns and
    filled cells stay as they are (in the sheet's own delimiter); teams and columns it lacks are
    added (a team that comes back gets its set-aside row back), and the team/student_ids cells are
    refreshed. Rows of `set_aside` stems (submissions no longer in the folder) leave the sheet for
    `manual/removed_rows.csv`. An unchanged sheet is not rewritten. Earlier versions are kept by
    manual_points_history.save_version, which the caller runs before a merge."""
    out_dir = Path(out_dir)
    path = out_dir / MANUAL_POINTS_NAME
    delimiter, decimal, bom = cms_format(config)
    by_stem = {_nfc(stem): (stem, report) for stem, report in reports}
    aside = {_nfc(stem) for stem in set_aside} - set(by_stem)
    header = manual_points_columns(config)
    rows: list[list[str]] = []
    original = None
    if path.exists():
        original = path.read_bytes()
        text = decode_manual_points(original, path)
        delimiter, parsed = read_rows(text)
        # Written back as UTF-8: with a BOM where the tutors' file had one, or was not UTF-8 at all
        # (Excel's "CSV" is Windows-1252: without a BOM, Excel would show 'Ã„pfel' and save that).
        bom = (
            original.startswith(b"\xef\xbb\xbf")
            or manual_points_encoding_note(original) is not None
            or not _is_utf8(original)
        )
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
    present, leaving, kept = set(), {}, []
    placeable = {key: key for key in (*by_stem, *aside)}
    for row in rows:
        nfc_stem = _nfc(row[stem_col])
        named = known_stem(nfc_stem, placeable)
        if named is not None and named != nfc_stem:  # a name Excel saved with '?': written as it is
            row[stem_col] = by_stem[named][0] if named in by_stem else named
            nfc_stem = named
        if nfc_stem in aside:
            leaving[nfc_stem] = {k: v for k, v in zip(keys, row) if k and v.strip()}
            continue
        kept.append(row)
        found = by_stem.get(nfc_stem)
        if found is None:
            continue  # a row the grader cannot place: reading the sheet says so
        present.add(nfc_stem)
        for key, value in _info(*found).items():
            if key in keys and key != ("info", "stem"):
                row[keys.index(key)] = value
    rows = kept
    labels, returning = _removed_rows(out_dir, config)
    returning = {stem: cells for stem, cells in returning.items() if stem in by_stem and stem not in present}
    extra = sorted({k for cells in returning.values() for k in cells} - set(keys))
    if extra:  # a returning row fills a column the sheet has lost (a comment on one exercise)
        at = keys.index(("comment", COMMENT)) if ("comment", COMMENT) in keys else len(keys)
        header = header[:at] + [labels[k] for k in extra] + header[at:]
        rows = [r[:at] + [""] * len(extra) + r[at:] for r in rows]
        keys = [_column_key(h, config) for h in header]
    for nfc_stem, (stem, report) in sorted(by_stem.items()):
        if nfc_stem in present:
            continue
        cells = {**(returning.get(nfc_stem) or _cells_from_report(report, config, decimal)), **_info(stem, report)}
        rows.append([cells.get(k, "") if k else "" for k in keys])
    if leaving:  # first into the inactive part, then out of the sheet: a crash in between loses nothing
        _write_removed_rows(out_dir, config, add=leaving)
    data = render_csv(header, rows, CsvFormat(delimiter=delimiter, decimal=decimal, bom=bom))
    if original is None or decode_manual_points(original, path).replace("\r\n", "\n") != decode_text(data).replace(
        "\r\n", "\n"
    ):
        write_atomic(path, data)
    if returning:
        _write_removed_rows(out_dir, config, drop=set(returning))
    return path


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _keyed_rows(text: str, config: Config) -> tuple[dict[tuple[str, str], str], list[tuple[int, str, dict]]]:
    """A sheet's column labels by key, and its rows as (line, stem in NFC, {key: value of filled cells})."""
    _, parsed = read_rows(text)
    if not parsed:
        return {}, []
    keys = [_column_key(h, config) for h in parsed[0][1]]
    labels = {key: label.strip().lstrip("\ufeff") for key, label in zip(keys, parsed[0][1]) if key}
    if ("info", "stem") not in keys:
        return labels, []
    stem_col = keys.index(("info", "stem"))
    rows = []
    for line, fields in parsed[1:]:
        stem = _nfc(fields[stem_col]) if stem_col < len(fields) else ""
        if stem:
            rows.append((line, stem, {k: v for k, v in zip(keys, fields) if k and v.strip()}))
    return labels, rows


def _removed_rows(out_dir: Path, config: Config) -> tuple[dict[tuple[str, str], str], dict[str, dict]]:
    path = Path(out_dir) / HISTORY_DIR / REMOVED_ROWS
    if not path.exists():
        return {}, {}
    labels, rows = _keyed_rows(decode_manual_points(path.read_bytes(), path), config)
    return labels, {stem: cells for _, stem, cells in rows}


def _write_removed_rows(
    out_dir: Path, config: Config, *, add: dict[str, dict] | None = None, drop: set[str] | None = None
) -> None:
    """`manual/removed_rows.csv`, the sheet's inactive part: rows added (a newer row for a stem
    replaces the older one) or dropped (the team is back in the sheet)."""
    labels, rows = _removed_rows(out_dir, config)
    rows.update(add or {})
    for stem in drop or ():
        rows.pop(stem, None)
    header = manual_points_columns(config)
    keys = [_column_key(h, config) for h in header]
    extra = sorted({k for cells in rows.values() for k in cells} - set(keys))
    header = (
        header[:-1]
        + [labels.get(k) or (f"{COMMENT} {k[1]}" if k[0] == "exercise_comment" else k[1]) for k in extra]
        + header[-1:]
    )
    keys = keys[:-1] + extra + keys[-1:]
    table = [[cells.get(k, "") for k in keys] for _, cells in sorted(rows.items())]
    write_atomic(Path(out_dir) / HISTORY_DIR / REMOVED_ROWS, render_csv(header, table, CsvFormat.of(config)))


def merge_manual_points(sources: list[Path], target: Path, config: Config) -> list[str]:
    """Join several shards' sheets into `target` (which may exist): rows by stem, cell by cell. Two
    different filled values for one cell are an error naming both files. Returns notes. The caller
    keeps the target's version first (manual_points_history.save_version)."""
    table: dict[str, dict[tuple[str, str], tuple[str, str]]] = {}  # stem → key → (value, file)
    labels: dict[tuple[str, str], str] = {}
    problems: list[str] = []
    notes: list[str] = []
    if not sources:
        return notes
    read = {
        source: _keyed_rows(decode_manual_points(source.read_bytes(), source), config)
        for source in [target, *sources]
        if source.exists()
    }
    # The shards' sheets are the grader's, with the names as they are; a row of the tutors' sheet that
    # Excel saved with '?' for letters it lacks is the same team's.
    exact = {stem: stem for source, (_, rows) in read.items() if source != target for _, stem, _ in rows}
    for source, (found, rows) in read.items():
        if found and ("info", "stem") not in found:
            problems.append(f"{source}: no 'stem' column")
            continue
        for key, label in found.items():
            labels.setdefault(key, label)
        for line, stem, filled in rows:
            if (named := known_stem(stem, exact)) not in (None, stem):
                stem, filled = named, {**filled, ("info", "stem"): named}
            cells = table.setdefault(stem, {})
            for key, value in filled.items():
                if key in cells and cells[key][0].strip() != value.strip() and key[0] != "info":
                    problems.append(
                        f"team {stem!r}, column {labels[key]!r}: {cells[key][0]!r} in {cells[key][1]} "
                        f"but {value!r} in {source} (line {line})"
                    )
                    continue
                cells.setdefault(key, (value, str(source)))
        if source != target:
            notes.append(f"manual points taken from {source}")
    if problems:
        raise ManualPointsError(target, problems)
    if not table:
        return notes
    header = manual_points_columns(config)
    extra = [labels[k] for k in labels if k not in [_column_key(h, config) for h in header]]
    header = header[:-1] + extra + header[-1:]
    keys = [_column_key(h, config) for h in header]
    lines = [[table[stem].get(k, ("", ""))[0] if k else "" for k in keys] for stem in sorted(table)]
    write_atomic(target, render_csv(header, lines, CsvFormat.of(config)))
    return notes
