"""The course's list of students (`[cms] roster`, `--roster`), read as the course system exports it
and as spreadsheets save it.

What is taken: a header row (the first of the first few non-blank rows that names a column of
matriculation numbers); that column, found by its name (`mtknr`, `Matrikelnummer`, `matriculation
number`, `student id`, ...; case, spaces and punctuation ignored); the names, from one full-name
column or from first- and last-name columns (German exports say `Vorname` and `Name`: `Name` is
then the last name); the e-mail when there is a column for it. Other columns are ignored.

How it is read: UTF-8 with or without a BOM (LibreOffice, Excel's "CSV UTF-8"), else Windows-1252
(Excel's "CSV (Trennzeichen-getrennt)" in a German locale; line by line, so that rows of both in one
file are each read as written), or UTF-16 with a BOM (Excel's "Unicode
text"); `,`, `;` or tab, whichever makes a header with an id column; quoted fields; CRLF or LF;
blank rows anywhere (Excel writes `;;;` for the empty rows at the end) are skipped. Ids are text:
`0701234` keeps its zero, also written as Excel's text formula `="0701234"`.

A file that cannot be read raises RosterError with one message naming the file, the line and what is
wrong: the grader must not check enrolments against half a list.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from grader.errors import RosterError
from grader.report.csvfile import CsvSyntaxError, non_blank_rows

__all__ = ["Roster", "RosterError", "Student", "load_roster", "read_roster"]

# Column names, as `_column_key` leaves them.
ID_COLUMNS = (
    "mtknr",
    "matrikelnummer",
    "matrikelnr",
    "matrnr",
    "matnr",
    "matriculationnumber",
    "matriculationno",
    "matriculationnr",
    "studentid",
    "studentidnumber",
    "studentnumber",
)
FIRST_COLUMNS = ("firstname", "firstnames", "givenname", "givennames", "forename", "vorname", "vornamen")
LAST_COLUMNS = ("lastname", "surname", "familyname", "nachname", "familienname")
FULL_COLUMNS = ("name", "fullname", "studentname", "vollständigername", "student")
EMAIL_COLUMNS = ("email", "emailaddress", "mail", "emailadresse", "mailadresse")
DELIMITERS = (";", ",", "\t")
HEADER_SEARCH_ROWS = 5  # a title line or two above the header is fine
MAX_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True)
class Student:
    student_id: str
    name: str
    email: str
    line: int


@dataclass(frozen=True)
class Roster:
    path: Path
    students: dict[str, Student]  # by matriculation number

    def __contains__(self, student_id: str) -> bool:
        return student_id in self.students

    def __len__(self) -> int:
        return len(self.students)


def _column_key(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFC", text).casefold() if ch.isalnum())


def _line_of(data: bytes, position: int) -> int:
    return data[:position].count(b"\n") + 1


def _decode(data: bytes, path: Path) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise RosterError(
                f"{path}: line {_line_of(data, exc.start)}: not valid UTF-16 although the file "
                "starts with a UTF-16 byte-order mark"
            ) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    # Windows-1252, line by line: a UTF-8 list with a few rows pasted in from Windows-1252 keeps its
    # UTF-8 rows (decoded whole as Windows-1252 they would read 'JÃ¼rgen'). A Windows-1252 name is
    # valid UTF-8 only by a combination no name has ('Ã¼').
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    text, offset = [], 0
    for line in data.splitlines(keepends=True):
        try:
            text.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            try:
                text.append(line.decode("cp1252"))
            except UnicodeDecodeError as exc:
                byte = line[exc.start]
                raise RosterError(
                    f"{path}: line {_line_of(data, offset + exc.start)}: byte 0x{byte:02x} is neither "
                    'UTF-8 nor Windows-1252; save the list as "CSV UTF-8"'
                ) from None
        offset += len(line)
    return "".join(text)


def _rows(text: str, delimiter: str, path: Path, *, strict: bool = True) -> list[tuple[int, list[str]]]:
    """(line where the row starts, fields) of every non-blank row."""
    try:
        return non_blank_rows(text, delimiter, strict=strict)
    except CsvSyntaxError as exc:
        raise RosterError(f"{path}: line {exc.line}: not readable as CSV ({exc})") from None


@dataclass(frozen=True)
class _Header:
    index: int  # of the header among the non-blank rows
    line: int
    cells: list[str]
    id_col: int


def _find_header(rows: list[tuple[int, list[str]]]) -> _Header | None:
    for index, (line, fields) in enumerate(rows[:HEADER_SEARCH_ROWS]):
        keys = [_column_key(f) for f in fields]
        for wanted in ID_COLUMNS:
            if wanted in keys:
                return _Header(index=index, line=line, cells=fields, id_col=keys.index(wanted))
    return None


def _first(keys: list[str], names: tuple[str, ...]) -> int | None:
    return next((keys.index(n) for n in names if n in keys), None)


def _cell(fields: list[str], col: int | None) -> str:
    if col is None or col >= len(fields):
        return ""
    return unicodedata.normalize("NFC", fields[col]).strip()


def _excel_text(raw: str) -> str:
    """`="0701234"`, the text formula exports meant for Excel write to keep a leading zero: its text."""
    found = re.fullmatch(r'="(\d+)"', raw)
    return found.group(1) if found else raw


def _id_problem(raw: str) -> str:
    hint = ""
    if re.fullmatch(r"\d+([.,]\d*)?([eE][-+]?\d+)?|\d+[.,]0+", raw):
        hint = (
            " (a spreadsheet turned it into a number: format the column as text and export again, or take "
            "the course system's export as it is)"
        )
    return f"{raw!r} is not a matriculation number: expected digits only{hint}"


def read_roster(path: Path | str) -> Roster:
    """The students of the file at `path`; RosterError names the file, the line and what is wrong."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise RosterError(f"{path}: cannot read the list of students ({exc.strerror or exc})") from None
    if len(data) > MAX_BYTES:
        raise RosterError(f"{path}: larger than {MAX_BYTES // (1024 * 1024)} MB: not a list of a course's students")
    text = _decode(data, path)
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise RosterError(
            f"{path}: line {line}: a NUL character: not a text file (a spreadsheet's own format?); save the list as CSV"
        )
    if not text.strip():
        raise RosterError(
            f"{path}: line 1: the file is empty; expected a header row with a column of "
            "matriculation numbers, then one row per student"
        )

    # The delimiter: the one whose header (among the first lines) has a column of ids, and the most columns.
    head = "\n".join(text.splitlines()[: HEADER_SEARCH_ROWS * 4])
    found = []
    for delimiter in DELIMITERS:
        try:
            header = _find_header(_rows(head, delimiter, path, strict=False))
        except RosterError:
            continue
        if header is not None:
            found.append((len(header.cells), delimiter))
    if not found:
        lines = text.splitlines()
        number = next(i for i, ln in enumerate(lines, 1) if ln.strip())
        raise RosterError(
            f"{path}: line {number}: no column of matriculation numbers in the header; expected one "
            f"named mtknr, Matrikelnummer, matriculation number or student id; found "
            f"{lines[number - 1].strip()[:200]!r}"
        )
    delimiter = max(found, key=lambda item: item[0])[1]
    rows = _rows(text, delimiter, path)
    header = _find_header(rows)
    if header is None:  # a quoted line break above the header moved it out of reach
        raise RosterError(
            f"{path}: line 1: no header with a column of matriculation numbers among the first "
            f"{HEADER_SEARCH_ROWS} rows"
        )

    keys = [_column_key(c) for c in header.cells]
    first_col, last_col = _first(keys, FIRST_COLUMNS), _first(keys, LAST_COLUMNS)
    full_col = _first(keys, FULL_COLUMNS)
    if first_col is not None and last_col is None and full_col is not None and keys[full_col] == "name":
        last_col, full_col = full_col, None  # "Vorname;Name": Name is the family name
    email_col = _first(keys, EMAIL_COLUMNS)
    id_name = header.cells[header.id_col].strip()

    # A column of ids named twice (two exports joined): the same numbers, or which is meant cannot be told.
    twins = [i for i, key in enumerate(keys) if key == keys[header.id_col] and i != header.id_col]

    students: dict[str, Student] = {}
    for line, fields in rows[header.index + 1 :]:
        raw = _excel_text(_cell(fields, header.id_col))
        for twin in twins:
            other = _excel_text(_cell(fields, twin))
            if other and other != raw:
                raise RosterError(
                    f"{path}: line {line}: the columns {header.id_col + 1} and {twin + 1} are both named "
                    f"{id_name!r} and hold different numbers ({raw!r} and {other!r}); keep the one "
                    "with the matriculation numbers"
                )
        if not raw:
            raise RosterError(f"{path}: line {line}: no matriculation number in the column {id_name!r}")
        if not (raw.isascii() and raw.isdigit()):
            raise RosterError(f"{path}: line {line}: {_id_problem(raw)}")
        if raw in students:
            raise RosterError(
                f"{path}: line {line}: the matriculation number {raw} is on line {students[raw].line} too"
            )
        if first_col is not None or last_col is not None:
            name = " ".join(p for p in (_cell(fields, first_col), _cell(fields, last_col)) if p)
        else:
            name = _cell(fields, full_col)
        students[raw] = Student(student_id=raw, name=" ".join(name.split()), email=_cell(fields, email_col), line=line)
    if not students:
        raise RosterError(f"{path}: line {header.line}: a header, but no student below it")
    return Roster(path=path, students=students)


def load_roster(config) -> Roster | None:
    """The configured roster (`[cms] roster` or `--roster`), read; None without one."""
    path = config.roster_path
    return read_roster(path) if path is not None else None
