"""Text from students (file names, cell output, error messages, PDF text) made safe for where it goes.

The one filter of control characters is here (`CONTROL`): every place that shows or stores a student's
string uses it, so none misses a character the others catch.

- any text: `escape_controls(text, keep=...)` shows control characters and bidirectional overrides
  as `\\x1b` / `\\u202e` (the pages, the CSVs), `replace_controls(text, by)` replaces them (an
  output's file name, the messages about the grading environment);
- the terminal: `terminal(text)` for a string printed through rich (markup escaped, control
  characters shown as `\\x1b` instead of being sent), `plain(text)` for one printed as is. An ANSI
  escape in a file name would otherwise recolour, hide or retitle the tutor's terminal, or emit a
  hyperlink; `[/]` or `[link=...]` would be taken as rich markup (and `[/]` alone makes rich raise).
- UTF-8: `valid_text` / `valid_json` replace lone surrogates (`"\\ud800"`), which a kernel's output, a
  notebook's JSON escapes, a PDF's text or an undecodable file name can carry. Python strings hold
  them, but nothing can write them as UTF-8: the report, the executed notebook and the CSVs would fail.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from rich.markup import escape

REPLACEMENT = "\ufffd"
_SURROGATE = re.compile("[\ud800-\udfff]")
# C0 and C1 control characters and DEL; bidirectional marks, embeddings, overrides and isolates, which
# reorder what a terminal or a page shows ("exe.txt" shown for "txt.exe"). U+061C (Arabic letter
# mark) is one of them too; U+2028/2029 break lines in some terminals and pages. Line breaks and tabs
# are among them: a caller keeps them only where it asks (`keep`).
CONTROL = "\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_LINE_BREAK = re.compile("[\n\r\t]")


@functools.cache
def _controls(keep: str) -> re.Pattern[str]:
    """The characters of `CONTROL` but those in `keep`, as one character class."""
    return re.compile(f"[{CONTROL}](?<![{re.escape(keep)}])" if keep else f"[{CONTROL}]")


def valid_text(text: str) -> str:
    """`text` with every lone surrogate replaced by U+FFFD, so that it can be written as UTF-8."""
    if text.isascii():  # the common case, checked in C at memory speed (a cell may print 100 MB)
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return _SURROGATE.sub(REPLACEMENT, text)


def valid_json(value):
    """A copy of a JSON-like value (dicts, lists, strings, numbers) with `valid_text` applied to every
    string, keys included. Iterative: a kernel's output or a notebook may be nested deeper than
    Python's recursion limit."""
    if isinstance(value, str):
        return valid_text(value)
    if not isinstance(value, (dict, list, tuple)):
        return value
    root: list = [None]
    stack: list[tuple[Any, Any, Any]] = [(root, 0, value)]
    while stack:
        parent, key, item = stack.pop()
        copy: Any
        if isinstance(item, dict):
            copy = type(item)() if type(item) is not dict else {}
            for k, v in item.items():
                k = valid_text(k) if isinstance(k, str) else k
                copy[k] = None
                stack.append((copy, k, v))
        elif isinstance(item, (list, tuple)):
            copy = [None] * len(item)
            for i, v in enumerate(item):
                stack.append((copy, i, v))
        elif isinstance(item, str):
            copy = valid_text(item)
        else:
            copy = item
        parent[key] = copy
    return root[0]


def _shown(match: re.Match) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str, *, keep: str = "") -> str:
    """`text` with every character of `CONTROL` but those in `keep` shown as its escape (`\\x1b`,
    `\\u202e`): seen, not obeyed."""
    return _controls(keep).sub(_shown, text)


def replace_controls(text: str, by: str, *, keep: str = "") -> str:
    """`text` with every character of `CONTROL` but those in `keep` replaced by `by`."""
    return _controls(keep).sub(lambda _: by, text)


def plain(text: object, *, lines: bool = False) -> str:
    """Student text for a terminal, printed as is (not through rich markup), or for a page: control
    characters are shown escaped; line breaks and tabs become spaces unless `lines` (then a carriage
    return is shown escaped: a terminal would go back to the line's start and overwrite it)."""
    text = valid_text(str(text))
    if not lines:
        text = _LINE_BREAK.sub(" ", text)
    return escape_controls(text, keep="\t\n")


def terminal(text: object, *, lines: bool = False) -> str:
    """Student text inside a string printed through rich: `plain`, then its markup escaped."""
    return escape(plain(text, lines=lines))
