"""One filter of control characters (textsafe.CONTROL), used wherever a student's string is shown or
stored: the pages, the CSVs, the terminal, the outputs' file names and the report's messages about
the grading environment. No place lets through a character another one catches."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from grader.checks.environment_faults import environment_faults, fault_violations, pip_notes
from grader.report.csvfile import CsvFormat, render_csv
from grader.sheets.sheet6 import SHEET
from grader.util.textsafe import CONTROL, plain, terminal

ROOT = Path(__file__).resolve().parents[1]
# One of each kind: C0 (ESC, BEL, NUL), DEL, C1 (NEL, CSI), the Arabic letter mark, the right-to-left
# mark, a line separator, the embeddings and overrides (U+202A-202E) and isolates (U+2066-2069).
SAMPLE = [
    "\x1b",
    "\x07",
    "\x00",
    "\x7f",
    "\x85",
    "\x9b",
    "\u061c",
    "\u200f",
    "\u2028",
    "\u202a",
    "\u202b",
    "\u202c",
    "\u202d",
    "\u202e",
    "\u2066",
    "\u2067",
    "\u2068",
    "\u2069",
]


def test_the_sample_is_the_filter():
    assert all(re.fullmatch(f"[{CONTROL}]", c) for c in SAMPLE)


def executed_with_error(ename: str, evalue: str, source: str = "cell()") -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(source)
    cell.execution_count = 1
    cell.outputs.append(nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=[]))
    nb.cells = [cell]
    return nb


@pytest.mark.parametrize("control", SAMPLE)
@pytest.mark.filterwarnings("ignore:`make_tokens_by_line`:UserWarning")  # IPython on a cell split by NEL or U+2028
def test_messages_about_the_environment_strip_bidirectional_overrides_too(control):
    """checks/environment.py (now environment_faults.py) had its own copy of the filter, without the bidirectional overrides and
    isolates: a path "mnist\\u202ecsv.gz" reached the report's message, the console and the CSVs as
    it was, shown reordered."""
    path = f"/kaggle/input/mnist{control}vsc.niart/train.csv"
    nb = executed_with_error(
        "FileNotFoundError", f"[Errno 2] No such file or directory: '{path}'", source=f"%pip install tqdm{control}x"
    )
    [fault] = environment_faults(nb, SHEET.dataset.path_words)
    [violation] = fault_violations([fault], SHEET.dataset.served_hint)
    [note] = pip_notes(nb, None)
    for text in (fault.what, fault.error, violation.message, note):
        assert control not in text
    assert "/kaggle/input/mnistvsc.niart/train.csv" in violation.message
    breaks_line = len(f"a{control}b".splitlines()) == 2  # NEL, U+2028: the cell's source has two lines
    assert ("`%pip install tqdm`" if breaks_line else "`%pip install tqdmx`") in note


@pytest.mark.parametrize("control", SAMPLE)
def test_every_place_a_students_string_goes_shows_the_same_characters_escaped(control, tmp_path):
    from grader.engine.planning import _file_name_safe

    name = f"Eva{control}Ernst"
    shown = f"Eva\\x{ord(control):02x}Ernst" if ord(control) < 0x100 else f"Eva\\u{ord(control):04x}Ernst"
    csv = render_csv(["name"], [[name]], CsvFormat(bom=False)).decode("utf-8")
    assert plain(name) == plain(name, lines=True) == shown
    assert terminal(name) == shown and shown in csv and control not in csv
    assert _file_name_safe(name) == "Eva_Ernst"


def test_line_breaks_and_tabs_are_kept_only_where_asked():
    from grader.engine.planning import _file_name_safe

    text = "a\tb\nc\rd"
    assert plain(text) == "a b c d"  # one line on a terminal
    assert plain(text, lines=True) == "a\tb\nc\\x0dd"  # a page: a carriage return would overwrite the line
    assert render_csv(["c"], [[text]], CsvFormat(bom=False)).decode("utf-8") == 'c\r\n"a\tb\nc\rd"\r\n'  # a comment
    assert _file_name_safe(text) == "a_b_c_d"


def test_one_module_spells_out_the_control_characters():
    """`grep` finds one filter: no other module of the grader writes a range of control characters or
    the bidirectional overrides into a pattern of its own."""
    spelled = re.compile(
        r"\\x[0-9a-f]{2}-\\x|\\u202a-|\\u2066-|[\x00-\x08\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]"
    )
    found = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "grader").rglob("*.py"))
        if path.name != "textsafe.py" and spelled.search(path.read_text(encoding="utf-8"))
    ]
    assert found == []
