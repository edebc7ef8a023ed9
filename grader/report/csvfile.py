"""The one way the grader writes a CSV file (summary.csv, cms.csv, manual_points.csv), and reads one
back (manual_points.csv, with a tutor's numbers `7.5` or `7,5`): tutors open
them in Excel or LibreOffice, so every file has the course's delimiter, decimal separator and BOM
(`[cms]` in grading.toml), and no cell can be taken for a formula.

Control characters and bidirectional overrides in a cell (a file's name) are shown escaped, as on
the pages and the terminal (as `textsafe.plain` does): `cat summary.csv` must not send a name's ESC
sequences to a tutor's terminal, nor a spreadsheet show 'x\u202egpj.ipynb' reordered. Line breaks
and tabs (a tutor's comment) are kept.

Formulas: a cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return is a formula to a
spreadsheet (`=HYPERLINK(...)` in a file name would become a link, `@SUM(A:A)` a computation), so it
gets a leading `'` (OWASP's rule for CSV injection). Numbers are left as they are: matriculation
numbers are digits and points are numbers, and neither ever starts that way (`-0.5` is a number, not
a formula). A cell that already starts with `'` before such a character gets one more, so that
`unprotect` gives back exactly what was written: reading `manual_points.csv` back finds its teams.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

from grader.util.textsafe import escape_controls, valid_text

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[-+]?(\d+([.,]\d*)?|[.,]\d+)([eE][-+]?\d+)?")
_PROTECTED = re.compile(r"^'+[=+\-@\t\r]")


def protect(text: str) -> str:
    """`text` as a spreadsheet shows it as text (see the module's doc)."""
    if not text or _NUMBER.fullmatch(text):
        return text
    if text.startswith(FORMULA_START) or _PROTECTED.match(text):
        return "'" + text
    return text


def unprotect(text: str) -> str:
    """What `protect` was given."""
    return text[1:] if _PROTECTED.match(text) else text


@dataclass(frozen=True)
class CsvFormat:
    delimiter: str = ","
    decimal: str = "."
    bom: bool = True
    line_end: str = "\r\n"

    @classmethod
    def of(cls, config) -> CsvFormat:
        """The format of `[cms]` in grading.toml (`config` may also be None: the defaults)."""
        if config is None:
            return cls()
        return cls(delimiter=config.cms.delimiter, decimal=config.cms.decimal, bom=config.cms.bom)

    def number(self, value: float | int | None) -> str:
        if value is None:
            return ""
        if isinstance(value, bool):
            return str(value).lower()
        return format_number(float(value)).replace(".", self.decimal)


class Text(str):
    """A cell that is text although it may look like a number (a matriculation number): always
    quoted, so that importers that honour quotes keep it as text (and its leading zero)."""


def _field(value, fmt: CsvFormat) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return fmt.number(value)
    if value is None:
        return ""
    text = protect(escape_controls(valid_text(str(value)), keep="\t\n\r"))  # shown, not sent
    if isinstance(value, Text):
        return '"' + text.replace('"', '""') + '"'
    if any(ch in text for ch in (fmt.delimiter, '"', "\n", "\r")) or text != text.strip():
        return '"' + text.replace('"', '""') + '"'
    return text


def render_csv(header: Iterable[str], rows: Iterable[Iterable], fmt: CsvFormat) -> bytes:
    """The file's bytes: numbers (int, float) with the format's decimal separator, text protected
    against formulas and quoted where needed, `Text` always quoted."""
    buffer = io.StringIO()
    if fmt.bom:
        buffer.write("\ufeff")
    for row in [list(header), *rows]:
        buffer.write(fmt.delimiter.join(_field(value, fmt) for value in row) + fmt.line_end)
    return buffer.getvalue().encode("utf-8")


# ---------------------------------------------------------------- reading back, numbers


def format_number(value: float) -> str:
    """A number as people write it: at most 4 decimals, no trailing zeros, never `-0`."""
    return f"{round(value, 4) + 0.0:g}"  # + 0.0 turns -0.0 (a tutor's `-0`, a rounded -0.00001) into 0


def decode_text(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:  # saved by Excel on Windows as "CSV (delimited)"
        return data.decode("cp1252", errors="replace")


def _sniff_delimiter(text: str) -> str:
    header = text.split("\n", 1)[0]
    counts = {d: header.count(d) for d in (";", ",", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


class CsvSyntaxError(csv.Error):
    """Text that is not CSV; `line` is where the reader stopped."""

    def __init__(self, line: int, reason: str):
        super().__init__(reason)
        self.line = line


def non_blank_rows(text: str, delimiter: str, *, strict: bool = False) -> list[tuple[int, list[str]]]:
    """(first line number, fields) of every row of `text` that is not blank, as they are written.
    Raises CsvSyntaxError (`strict`: also for a quote in the middle of a field)."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=strict)
    rows, line = [], 1
    try:
        for fields in reader:
            if any(f.strip() for f in fields):
                rows.append((line, fields))
            line = reader.line_num + 1
    except csv.Error as exc:
        raise CsvSyntaxError(reader.line_num or line, str(exc)) from None
    return rows


def read_rows(text: str) -> tuple[str, list[tuple[int, list[str]]]]:
    """The delimiter, and (first line number, fields) of every non-blank row, the header first.
    Fields are as the grader meant them: the `'` that protects a cell against formulas is taken off."""
    delimiter = _sniff_delimiter(text)
    return delimiter, [(line, [unprotect(f) for f in fields]) for line, fields in non_blank_rows(text, delimiter)]


def parse_number(text: str) -> float:
    """A tutor's number: `7.5` or `7,5`; raises ValueError for anything else."""
    cleaned = text.strip().replace("\u2212", "-")
    if re.fullmatch(r"[-+]?\d+,\d+", cleaned):
        cleaned = cleaned.replace(",", ".")
    if not re.fullmatch(r"[-+]?(\d+(\.\d*)?|\.\d+)", cleaned):
        raise ValueError(text)
    value = float(cleaned)
    if not math.isfinite(value):
        raise ValueError(text)
    return value + 0.0  # `-0` is 0
