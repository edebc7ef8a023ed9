"""Attacks on what the grader prints and writes for tutors and students (terminal, file names,
outputs), made as a student or a broken upload would: each test failed on the code before its fix."""
from __future__ import annotations

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
    code, output = course.run("grade", str(course.subs), "--preflight",
                              env=course.env(FORCE_COLOR="1", COLUMNS="200"))
    assert "notamodule_xyz" in output and "not read" in output, output
    assert not any(escape in output for escape in ESCAPES), "a student's escape reached the terminal"
    assert "\\x1b]8;;https:evil.example\\x07" in output and "Bad\\x1b[31mRed" in output, output
    assert code == 1, output
