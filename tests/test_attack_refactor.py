"""Issue 23's refactored tree attacked the way students, a broken upload and a tutor meet it: hostile
names and text into every output, the students' wheel on broken zips, a tutor's second run."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from conftest import SHEET6_HINTS, needs_torch
from intake_corpus import make_pdf, make_zip, solution_notebook
from student_env import chown_nobody
from test_student_package import CORRECT

from grader.config import Archive, Naming
from grader.intake import check_identity, identify, unpack

TEAM = [("Max Müller", "1234567"), ("Eva Schmidt", "7654321")]
OK = "Müller_1234567_Schmidt_7654321"


def test_an_entry_with_a_control_character_in_its_name_is_not_called_a_path_out_of_the_folder(tmp_path: Path):
    pdf = make_pdf(tmp_path / "p.pdf", ["Exercise sheet 6"]).read_bytes()
    z = make_zip(
        tmp_path / "subs" / f"{OK}.zip",
        {"Exercise_6_6\x1b[31m.ipynb": solution_notebook(TEAM), "Sheet6.pdf": pdf},
    )
    ws = unpack(identify(z, tmp_path / "subs", Naming()), tmp_path / "ws", Archive(), SHEET6_HINTS)
    (unsafe,) = [v.message for v in ws.violations if v.code == "archive.unsafe_path"]
    assert "outside" not in unsafe, unsafe  # nothing in its name leads out of the folder
    assert "control character" in unsafe and "Exercise_6_6\\x1b[31m.ipynb" in unsafe, unsafe


def _identity_messages(tmp_path: Path, pdf: bytes) -> list[str]:
    z = make_zip(tmp_path / "subs" / f"{OK}.zip", {"Exercise_6_6.ipynb": solution_notebook(TEAM), "Sheet6.pdf": pdf})
    sub = identify(z, tmp_path / "subs", Naming())
    ws = unpack(sub, tmp_path / "ws", Archive(), SHEET6_HINTS)
    return [v.message for v in check_identity(sub, ws) if v.code == "content.pdf_unreadable"]


@pytest.mark.parametrize(
    ("content", "what"),
    [
        (b"hello, I am not a PDF", "not a PDF"),
        (b"", "an empty file"),
        (b"PK\x03\x04" + b"\0" * 40, "a zip archive or an Office document"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "a PNG image"),
    ],
)
def test_a_pdf_that_is_not_a_pdf_says_what_it_is_instead(tmp_path: Path, content: bytes, what: str):
    (message,) = _identity_messages(tmp_path, content)
    assert message.startswith(f"{OK}.zip: ") and "'Sheet6.pdf'" in message, message
    assert "does not begin with %PDF-" in message and what in message, message
    assert "Stream has ended" not in message and "Error" not in message, message  # pypdf's words, not ours


def test_a_pdf_that_is_broken_inside_still_says_what_the_reader_found(tmp_path: Path):
    (message,) = _identity_messages(tmp_path, b"%PDF-1.4\n1 0 obj broken")
    assert "'Sheet6.pdf'" in message and "does not begin" not in message, message


def test_an_empty_zip_says_there_was_nothing_to_look_in_for_the_ids(tmp_path: Path):
    z = make_zip(tmp_path / "subs" / f"{OK}.zip", {})
    sub = identify(z, tmp_path / "subs", Naming())
    (missing,) = [v.message for v in check_identity(sub, unpack(sub, tmp_path / "ws", Archive(), SHEET6_HINTS))]
    assert "in nothing" not in missing, missing
    assert "found no notebook or PDF to look in" in missing and "1234567, 7654321" in missing, missing


# ----------------------------------------------------------------------------- the students' wheel

BROKEN_ZIPS = {
    # file name → (entries, where the check's output must name what is wrong, its exit status)
    "Erika_Mustermann_7012345_Jonas_Wolf_7054321.zip": (
        {"Exercise_6_6.ipynb": b"this is not json {", "Sheet6.pdf": "pdf"},
        ["the notebook 'Exercise_6_6.ipynb' cannot be read: not JSON"],
        1,
    ),
    "Lena_Graf_7012345_Jonas_Wolf_7054321.zip": (
        {"Sheet6.pdf": "pdf"},
        ["expected a Jupyter notebook (.ipynb) or a Python script (.py), found Sheet6.pdf"],
        1,
    ),
    "our submission.zip": (
        {"Exercise_6_6.ipynb": "notebook", "Sheet6.pdf": b"hello, I am a text file"},
        [
            "our submission.zip: expected Name1_id1_Name2_id2",
            "the PDF 'Sheet6.pdf' is not a PDF: it does not begin with %PDF-",
        ],
        3,
    ),
}


@pytest.mark.kernel
@needs_torch
def test_the_installed_wheel_says_what_is_wrong_with_broken_zips_and_names_the_file(student_install):
    """The wheel as students install it (tests/student_env.py's fixture: a fresh venv outside
    the repository, user `nobody`) on broken zips: every message names the file and what is wrong,
    nothing ends in a traceback, and every program it sends to a kernel is in the wheel (the
    misnamed zip's notebook runs in a kernel, in bubblewrap where there is one)."""
    src = zipfile.ZipFile(student_install.base / "subs" / CORRECT)
    real = {"notebook": src.read("Exercise_6_6.ipynb"), "pdf": src.read("Sheet6.pdf")}
    folder = student_install.base / "work" / "broken"
    folder.mkdir(exist_ok=True)
    for name, (entries, expected, status) in BROKEN_ZIPS.items():
        path = folder / name
        with zipfile.ZipFile(path, "w") as archive:
            for entry, content in entries.items():
                archive.writestr(entry, real.get(content, content) if isinstance(content, str) else content)
        chown_nobody(folder)
        done = student_install.run([student_install.grader, "check", str(path)])
        shown = " ".join(done.stdout.split())  # rich wraps long lines
        assert done.returncode == status, f"{name}: {done.stdout}{done.stderr}"
        assert "Traceback" not in done.stdout + done.stderr, f"{name}: {done.stderr}"
        for words in expected:
            assert words in shown, f"{name}: {words!r} not in\n{done.stdout}"
        if status == 3:  # the notebook ran: the kernel's programs came from the wheel
            assert "ran without errors" in shown and "✓ baseline.forward" in shown, done.stdout


def test_summary_html_links_a_stem_that_holds_a_lone_surrogate():
    """A report whose stem holds bytes that are not UTF-8 (a shard's report file named on another
    system, a hand-edited report): the page shows U+FFFD for them, as for every other value, instead
    of failing in the link's URL encoding."""
    from test_report_outputs import make_report

    from grader.report import overview
    from grader.sheets.sheet6 import SHEET

    stem, report = make_report([("Caf\udce9", "1234567"), ("Eva", "7654321")])
    html = overview.overview_html([(stem, report)], sheet=SHEET)
    assert 'href="feedback/Caf%EF%BF%BD_1234567_Eva_7654321.html"' in html
    assert ">Caf\ufffd_1234567_Eva_7654321</a>" in html


def test_a_cell_without_a_number_is_named_alike_on_the_page_in_the_summary_and_in_the_terminal():
    """One label for a cell (models.cell_label): `In [n]`, or `cell <place>` when the notebook's JSON
    gave no usable number (0, negative). The page, summary.html and `grader check` had copies of
    their own, which called a cell with a negative number `In [-1]`."""
    import io

    from rich.console import Console
    from test_report_outputs import make_report

    from grader.commands.check import print_verdict
    from grader.models import CellError
    from grader.report import feedback, overview
    from grader.sheets.sheet6 import SHEET

    stem, report = make_report(TEAM, status="errors")
    error = CellError(cell=7, execution_count=-1, ename="ZeroDivisionError", evalue="division by zero")
    report = report.model_copy(update={"execution": report.execution.model_copy(update={"errors": [error]})})
    assert error.label == "cell 7"
    page = feedback.feedback_html(report, None, SHEET)
    summary = overview.overview_html([(stem, report)], sheet=SHEET)
    shown = io.StringIO()
    print_verdict(report, Console(file=shown, width=200), None, SHEET)
    for where, text in {"page": page, "summary": summary, "terminal": shown.getvalue()}.items():
        assert "cell 7" in text and "In [-1]" not in text, f"{where}: {text}"
