"""Attacks on what the grader prints and writes for tutors and students (terminal, file names,
outputs), made as a student or a broken upload would: each test failed on the code before its fix."""

from __future__ import annotations

import json

import nbformat
import pytest
from test_robustness import Course

ESCAPES = ("\x1b]8;;https:evil", "\x1b[8mGraf", "\x1b[31mRed")
HOSTILE = "Karl Ernst_7000011_\x1b]8;;https:evil.example\x07Lena\x1b]8;;\x07_\x1b[8mGraf_7000012"


def test_the_import_preflight_table_shows_student_names_and_pip_lines_as_text(tmp_path):
    """The pre-flight table printed team names (from file names) and unreadable notebooks' names
    through rich's Text, which passes terminal escapes on: a file name could hide text, recolour
    the tutor's terminal or emit a link."""
    course = Course(tmp_path)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import notamodule_xyz\n!pip install evilpkg")])
    nbformat.write(nb, course.subs / f"{HOSTILE}.ipynb")
    (course.subs / "Bad\x1b[31mRed_7000013_Other_7000014.ipynb").write_bytes(b"{not json")
    code, output = course.run("grade", str(course.subs), "--preflight", env=course.env(FORCE_COLOR="1", COLUMNS="200"))
    assert "notamodule_xyz" in output and "not read" in output, output
    assert not any(escape in output for escape in ESCAPES), "a student's escape reached the terminal"
    assert "\\x1b]8;;https:evil.example\\x07" in output and "Bad\\x1b[31mRed" in output, output
    assert code == 1, output


def test_a_file_name_of_250_bytes_gets_its_report_feedback_and_csv_rows(tmp_path):
    """A stem longer than about 236 bytes (a file system allows 255 for a name) made every output
    name too long (`<stem>.json` and its temporary file): the team had no report and no row in the
    CSVs, and the batch ended with exit status 1."""
    from intake_corpus import make_zip, pdf_bytes

    course = Course(tmp_path)
    long_name = "Jürgen Müller-Lüdenscheidt_7000021_Ännchen Schäfer-Würzburger_7000022_" + "ü" * 85
    assert 240 < len((long_name + ".zip").encode()) <= 255
    make_zip(course.subs / f"{long_name}.zip", {"sheet.pdf": pdf_bytes(["7000021 7000022"], tmp_path)})
    code, output = course.run()
    assert code == 0, output
    reports = list(course.out.glob("*.json"))
    assert len(reports) == 1, output
    report = json.loads(reports[0].read_text(encoding="utf-8"))
    assert report["submission"]["file"] == f"{long_name}.zip"
    assert len(reports[0].name.encode()) <= 255
    assert "7000021" in (course.out / "cms.csv").read_text(encoding="utf-8-sig")
    assert long_name in (course.out / "summary.csv").read_text(encoding="utf-8-sig")
    assert len(list((course.out / "feedback").glob("*.html"))) == 1


def test_grader_check_refuses_what_it_cannot_read_with_a_message_not_a_traceback_or_a_hang(tmp_path):
    """A named pipe called `X.zip` made `grader check` wait forever; a folder whose only notebook is
    a broken link (a moved file, a cloud drive's placeholder) ended in a FileNotFoundError traceback."""
    import os

    course = Course(tmp_path)
    fifo = course.subs / "Ida Roth_7000009_Jan Vogt_7000010.zip"
    os.mkfifo(fifo)
    code, output = course.run("check", str(fifo), timeout=60)
    assert code == 2 and "Traceback" not in output, output
    assert "not a regular file" in output and fifo.name in output.replace("\n", ""), output

    folder = tmp_path / "my submission"
    folder.mkdir()
    (folder / "solution.ipynb").symlink_to(tmp_path / "moved-away.ipynb")
    code, output = course.run("check", str(folder), timeout=60)
    assert code == 2 and "Traceback" not in output, output
    assert "solution.ipynb" in output and "cannot be read" in output, output


def test_a_folder_with_a_name_too_long_for_a_zip_is_still_packed(tmp_path):
    """`grader check FOLDER` packs the folder into `<folder name>.zip`: a folder name of 252 bytes
    made that name too long (OSError traceback)."""
    from grader.commands.check import resolve_input

    folder = tmp_path / ("F" * 252)
    folder.mkdir()
    (folder / "solution.ipynb").write_text("{}")
    work = tmp_path / "work"
    work.mkdir()
    given = resolve_input(folder, work)
    assert given.kind == "folder" and given.packed == ("solution.ipynb",)
    assert given.target.exists() and len(given.target.name.encode()) <= 255


@pytest.mark.kernel
def test_grader_check_stopped_by_sigterm_says_so_in_a_students_words(tmp_path):
    """SIGTERM (a closed terminal, a laptop's session ending) printed the batch's message: "workers
    stopped … run the same command again to grade the rest"."""
    import signal
    import time

    course = Course(tmp_path)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import time\ntime.sleep(600)")])
    path = course.subs / "Ida Roth_7000009_Jan Vogt_7000010.ipynb"
    nbformat.write(nb, path)
    process = course.start("check", str(path))
    time.sleep(8)
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=60)[0].decode("utf-8", errors="replace")
    assert process.returncode == 128 + signal.SIGTERM, output
    assert "grade the rest" not in output and "workers" not in output, output
    words = " ".join(output.split())  # rich wraps at the terminal's width, which depends on the temp path
    assert "check" in words and "nothing was written" in words, output
