"""Student-supplied strings where they go in the grader's own process: spreadsheet formulas in the
CSV files, rich markup and control characters on the terminal, text that is not valid UTF-8 in the
reports, malformed notebook files. No kernels."""

from __future__ import annotations

import asyncio
import csv
import gc
import io
import json
import logging
from pathlib import Path

import nbformat
import pytest
from rich.console import Console
from test_report_outputs import ALICE, CONFIG, german, make_report

from grader.models import CellError, Violation
from grader.report.manual_points import MANUAL_POINTS_NAME, read_manual_points, write_manual_points
from grader.report.outputs import write_batch_outputs
from grader.report.store import read_report, write_report
from grader.report.summary import write_summary

# The helpers below are new with issue 14; imported where used, so that the tests of what users get
# (the files, the terminal) also run, and fail, on the code before it.

FORMULAS = [
    '=HYPERLINK("https://evil.example","click")',
    "@SUM(A:A)",
    "+1+2",
    "-2+3",
    "\tx",
    "\r=1",
    "'=already quoted",
    "''=twice",
]


# ---------------------------------------------------------------- spreadsheet formulas


@pytest.mark.parametrize("text", FORMULAS)
def test_a_cell_that_starts_like_a_formula_is_text_and_reads_back_unchanged(text):
    from grader.report.csvfile import protect, unprotect

    shown = protect(text)
    assert shown.startswith("'") and shown[1:] == text
    assert unprotect(shown) == text


@pytest.mark.parametrize(
    "text", ["7012345", "0701234", "3.5", "3,5", "-0.5", "+1", "1e-3", "Anna Äpfel", "a=b", "'quoted'", ""]
)
def test_numbers_ids_and_ordinary_text_are_left_as_they_are(text):
    from grader.report.csvfile import protect, unprotect

    assert protect(text) == text and unprotect(text) == text


def formula_team():
    """A team whose file name and member names are formulas (names from the file name, the notebook
    or the PDF all end up in these columns)."""
    return make_report(
        [('=HYPERLINK("https://evil.example";"x")', "7000011"), ("@SUM(A:A)", "0700012")],
        stem='=HYPERLINK("https://evil.example")_7000011_@SUM(A:A)_0700012',
    )


def cells(path: Path, delimiter: str = ",") -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig")), delimiter=delimiter))


@pytest.mark.parametrize("config", [CONFIG, german()], ids=["comma", "german"])
def test_no_csv_cell_starts_a_formula(tmp_path, config):
    evil = formula_team()
    reports = [ALICE, evil]
    write_summary(reports, tmp_path, config)
    write_batch_outputs(reports, tmp_path, config)
    delimiter = config.cms.delimiter
    for name in ("summary.csv", "cms.csv", MANUAL_POINTS_NAME):
        raw = (tmp_path / name).read_bytes()
        assert raw.startswith(b"\xef\xbb\xbf"), name  # one writer: the course's BOM everywhere
        for row in cells(tmp_path / name, delimiter):
            for cell in row:
                assert not cell.startswith(("=", "+", "@", "\t", "\r")), (name, cell)
                assert not cell.startswith("-") or cell.replace(",", ".").lstrip("-").replace(".", "").isdigit()
    cms = {row[0]: row for row in cells(tmp_path / "cms.csv", delimiter)[1:]}
    assert cms["0700012"][1] == "'@SUM(A:A)" and cms["0700012"][2] == "'" + evil[0]
    total = f"{ALICE[1].total.points:g}".replace(".", config.cms.decimal)
    assert cms["7000001"][1:3] == ["Anna Äpfel", ALICE[0]] and cms["7000001"][-3:] == [total, "0", "no"]
    summary = {row[1]: row for row in cells(tmp_path / "summary.csv", delimiter)[1:]}
    assert "'" + evil[0] in summary and summary["'" + evil[0]][3] == "7000011; 0700012"


def test_the_manual_sheet_with_formula_names_reads_back_and_keeps_the_tutors_points(tmp_path):
    evil = formula_team()
    reports = [ALICE, evil]
    write_manual_points(reports, tmp_path, CONFIG)
    rows = cells(tmp_path / MANUAL_POINTS_NAME)
    header = rows[0]
    assert [r[0] for r in rows[1:]] == sorted([ALICE[0], "'" + evil[0]], key=lambda s: s.lstrip("'"))
    # A tutor fills the team's row; a comment that starts with "-" is theirs and stays as typed.
    for r in rows[1:]:
        if r[0] == "'" + evil[0]:
            r[header.index(next(h for h in header if h.startswith("6.1")))] = "2,5"
            r[header.index("comment")] = "-0.5 for the missing plot"
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    (tmp_path / MANUAL_POINTS_NAME).write_text(buffer.getvalue(), encoding="utf-8")
    entries = read_manual_points(tmp_path / MANUAL_POINTS_NAME, reports, CONFIG)
    assert entries[evil[0]].points["6.1"] == 2.5 and entries[evil[0]].comment == "-0.5 for the missing plot"
    # Writing the sheet again (the next batch): the tutor's comment is protected too, and reads back
    # as typed; writing once more changes nothing (no second quote on anything).
    write_manual_points(reports, tmp_path, CONFIG)
    again = cells(tmp_path / MANUAL_POINTS_NAME)
    assert [c for r in again for c in r if c.endswith("missing plot")] == ["'-0.5 for the missing plot"]
    assert (
        read_manual_points(tmp_path / MANUAL_POINTS_NAME, reports, CONFIG)[evil[0]].comment
        == "-0.5 for the missing plot"
    )
    write_manual_points(reports, tmp_path, CONFIG)
    assert cells(tmp_path / MANUAL_POINTS_NAME) == again
    # A spreadsheet that saved the cell without the quote: the team is still found.
    text = (tmp_path / MANUAL_POINTS_NAME).read_text(encoding="utf-8").replace("'=HYPERLINK", "=HYPERLINK")
    (tmp_path / MANUAL_POINTS_NAME).write_text(text, encoding="utf-8")
    assert evil[0] in read_manual_points(tmp_path / MANUAL_POINTS_NAME, reports, CONFIG)


def test_one_csv_writer_numbers_and_ids():
    from grader.report.csvfile import CsvFormat, Text, render_csv

    data = render_csv(
        ["id", "points", "name"], [[Text("0701234"), 1.25, "x;y"]], CsvFormat(delimiter=";", decimal=",", bom=False)
    )
    assert data.decode("utf-8") == 'id;points;name\r\n"0701234";1,25;"x;y"\r\n'


# ---------------------------------------------------------------- the terminal


def test_student_text_for_the_terminal_shows_escapes_and_markup_as_text():
    from grader.util.textsafe import plain, terminal

    name = "[/] [conceal]x[link=https://evil.example]y\x1b]8;;https://evil.example\x07z\x1b[2J\u202etxt.exe\n"
    shown = terminal(name)
    console = Console(file=io.StringIO(), force_terminal=True, width=300, color_system=None)
    console.print(f"[bold]{shown}[/]")
    out = console.file.getvalue()
    assert "\x1b]8" not in out and "\x1b[2J" not in out and "\u202e" not in out
    assert "[/] [conceal]x[link=https://evil.example]y\\x1b]8;;https://evil.example\\x07z\\x1b[2J\\u202etxt.exe" in out
    assert plain("a\tb\nc") == "a b c" and plain("a\nb", lines=True) == "a\nb"


def test_the_progress_bar_takes_any_file_name():
    from grader.cli import ProgressReporter
    from grader.engine.batch import Outcome

    console = Console(file=io.StringIO(), force_terminal=True, width=200)
    reporter = ProgressReporter(console)
    reporter.start(total=2, cached=0, skipped=0)
    stems = ["[/]broken", "Ida_7000009_[conceal]_Jan_7000010\x1b]8;;https://evil.example\x07"]
    try:
        for stem in stems:
            reporter.started(stem)
        reporter.finished(
            Outcome(
                stem=stems[0],
                status="not_run",
                points=0,
                max_points=1.5,
                seconds=0.1,
                message="grader failure ([/]: [red]x)",
            )
        )
        reporter.finished(Outcome(stem=stems[1], status="ok", points=1.5, max_points=1.5, seconds=0.1))
    finally:
        reporter.stop()
    out = console.file.getvalue()
    assert "[/]broken: not_run" in out and "grader failure ([/]: [red]x)" in out
    assert "[conceal]" in out and "\x1b]8;;https://evil" not in out


# ---------------------------------------------------------------- text that is not UTF-8


def test_a_report_with_lone_surrogates_is_written(tmp_path):
    stem, report = make_report([("Anna \ud800", "7000001"), ("Bernd", "7000002")], status="errors", stem="anna")
    report = report.model_copy(
        update={
            "violations": [Violation(code="x.y", severity="warning", message="bad \udcff byte")],
            "execution": report.execution.model_copy(
                update={"errors": [CellError(cell=1, ename="E", evalue="\ud800")]}
            ),
        }
    )
    write_report(report, tmp_path, stem)
    written = read_report(tmp_path / f"{stem}.json")
    assert written.submission.team[0].name == "Anna \ufffd" and written.violations[0].message == "bad \ufffd byte"


def test_valid_json_walks_values_deeper_than_the_recursion_limit():
    from grader.util.textsafe import valid_json

    deep: list = ["\ud800"]
    for _ in range(5000):
        deep = [deep]
    cleaned = valid_json({"k\ud800": deep})
    inner = cleaned["k\ufffd"]
    for _ in range(5000):
        inner = inner[0]
    assert inner == ["\ufffd"]


# ---------------------------------------------------------------- malformed notebooks


def nb_bytes(**fields) -> bytes:
    base = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": []}
    base.update(fields)
    return json.dumps(base).encode()


@pytest.mark.parametrize(
    "raw, expected",
    [
        (nb_bytes(metadata={"x": json.loads("[" * 600 + "]" * 600)}), "nested more than 100 levels deep"),
        (b"[" * 5000 + b"]" * 5000, "nested more than 100 levels deep"),
        (
            nb_bytes(cells=[{"cell_type": "code", "source": 5, "metadata": {}, "outputs": []}]),
            "cell 1's source is a number, expected text",
        ),
        (
            nb_bytes(cells=[{"cell_type": "code", "source": ["a", None], "metadata": {}, "outputs": []}]),
            "cell 1's source is a list holding null",
        ),
        (nb_bytes(cells=[{"cell_type": "markdown", "source": "x"}, "cell"]), "cell 2 is text, expected an object"),
        (nb_bytes(cells=[{"cell_type": "heading", "source": "x"}]), "cell 1 has cell_type 'heading'"),
        (nb_bytes(cells=[{"cell_type": "code", "source": "", "metadata": []}]), "cell 1's metadata is a list"),
        (nb_bytes(cells={"a": 1}), "expected a list of cells, found 'cells' that is an object"),
        (nb_bytes(metadata=[1]), "the notebook's metadata is a list"),
        (
            b'{"nbformat": 4, "cells": [{"cell_type": "markdown", "source": "M\xfcller"}]}',
            "not UTF-8 at byte 64 (0xfc)",
        ),
        (b"[/] not json", "not JSON (Expecting value at line 1, column 2)"),
        (b'{"hello": 1}', "JSON that is not a notebook: expected an object with 'nbformat' and 'cells'"),
        (b"[1, 2]", "expected an object with 'cells', found a list"),
        (nb_bytes(nbformat=5), "expected nbformat 4, found nbformat 5"),
    ],
)
def test_malformed_notebooks_say_what_is_wrong(raw, expected):
    from grader.util.notebook_file import NotebookInvalid, decode_notebook

    with pytest.raises(NotebookInvalid) as info:
        decode_notebook(raw)
    assert expected in str(info.value)


def test_old_and_list_sourced_notebooks_still_read(tmp_path):
    from grader.run.execute import read_notebook

    v3 = {
        "nbformat": 3,
        "nbformat_minor": 0,
        "metadata": {},
        "worksheets": [
            {"cells": [{"cell_type": "code", "input": "x = 1", "language": "python", "outputs": [], "metadata": {}}]}
        ],
    }
    (tmp_path / "v3.ipynb").write_text(json.dumps(v3))
    assert read_notebook(tmp_path / "v3.ipynb").cells[0].source == "x = 1"
    v4 = nbformat.v4.new_notebook()
    v4.cells = [nbformat.v4.new_code_cell("a = 1\nb = 2")]
    v4.cells[0].metadata["tags"] = 5  # nbclient would trip over it: dropped
    raw = json.loads(nbformat.writes(v4))
    raw["cells"][0]["source"] = ["a = 1\n", "b = 2"]
    (tmp_path / "v4.ipynb").write_text(json.dumps(raw))
    cell = read_notebook(tmp_path / "v4.ipynb").cells[0]
    assert cell.source == "a = 1\nb = 2" and "tags" not in cell.metadata


# ---------------------------------------------------------------- background failures


def test_a_kernel_whose_shutdown_fails_in_the_background_leaves_no_unretrieved_exception(caplog):
    """The kernel of a submission is shut down in the background while the report is written; when
    that fails, asyncio used to print "Task exception was never retrieved" on the tutor's terminal."""
    from grader.run.kernels import FreshKernels, Kernel

    class FailingSession:
        async def __aexit__(self, *exc_info):
            raise RuntimeError("the kernel's shutdown failed")

    class Pool(FreshKernels):
        async def _acquire(self):
            return Kernel(session=FailingSession(), workspace=Path("/nonexistent/never-there"))

    async def one_submission():
        pool = Pool(ctx=None)
        async with pool.kernel():
            pass
        await asyncio.sleep(0.05)  # the shutdown ends (and fails) before anyone waits for it
        return pool

    with caplog.at_level(logging.DEBUG):
        pool = asyncio.run(one_submission())
        del pool
        gc.collect()
    assert "never retrieved" not in caplog.text
    assert "the kernel's shutdown failed" in caplog.text  # kept for the log, at debug level
