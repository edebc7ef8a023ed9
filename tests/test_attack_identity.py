"""Attacks on reading the course's identity cell (Name 1:, Student id 1:, Email 1:) as teams really
fill it in: a markdown table, a value on the line below its label (markdown joins them into one
line on the page), and what must not be taken for a value."""

from __future__ import annotations

import pytest
from intake_corpus import TEMPLATE_CODE, notebook_json
from test_intake_identity import THREE, _workspace

from grader.intake import check_identity, team_with_emails
from grader.intake.identity import identity_form, team_from_files

TABLE = (
    "| Name 1: | Student id 1: | Email 1: |\n|---|:---:|---|\n"
    "| Erika Mustermann | 7012345 | s8ermust@stud.uni-saarland.de |\n\n"
    "| Name 2: | Student id 2: | Email 2: |\n|---|---|---|\n"
    "| Jürgen Müller | 7054321 | s8jumuel@stud.uni-saarland.de |\n\n"
    "| Name 3: | Student id 3: | Email 3: |\n|---|---|---|\n"
    "| Anna-Lena van der Berg | 7066666 | anna.berg@uni-saarland.de |"
)
BELOW = "\n".join(
    f"{label} {n}:\n{value}"
    for n, member in enumerate(THREE, start=1)
    for label, value in zip(("Name", "Student id", "Email"), member)
)


@pytest.mark.parametrize("cell", [TABLE, BELOW], ids=["markdown table", "value on the line below"])
def test_the_identity_cell_filled_in_otherwise_is_read(tmp_path, cell):
    assert identity_form(cell) == {n: {"name": a, "id": b, "email": c} for n, (a, b, c) in enumerate(THREE, start=1)}
    nb = notebook_json([("markdown", cell), ("code", TEMPLATE_CODE)])
    loose, ws = _workspace(tmp_path, "final.zip", {"nb.ipynb": nb})
    assert [(m.name, m.student_id) for m in team_from_files(loose, ws)] == [(a, b) for a, b, _ in THREE]
    # a file name that misses a member: the message does not call the filled-in cell empty
    sub, ws2 = _workspace(tmp_path / "two", "Erika Mustermann_7012345_Jürgen Müller_7054321.zip", {"nb.ipynb": nb})
    (v,) = check_identity(sub, ws2)
    assert v.code == "identity.mismatch" and "not filled in" not in v.message and "empty" not in v.message, v.message


def test_the_template_and_what_follows_it_is_not_a_value():
    """The template's labels end with `<br>`; the text below the cell's last label, and a label followed
    by another label, are never values."""
    cell = (
        "Name 1: <br>\nStudent id 1: <br>\nEmail 1: <br>\nName 2:\nStudent id 2:\n"
        "Email 2:\nPlease fill in the names of all members."
    )
    assert identity_form(cell) == {1: {"name": "", "id": "", "email": ""}, 2: {"name": "", "id": "", "email": ""}}
    assert identity_form("Name 1: <br>\nErika Mustermann\nStudent id 1:\nsee the PDF") == {
        1: {"name": "", "id": "", "email": ""}
    }


def test_two_ids_for_one_member_are_not_guessed_between(tmp_path):
    """`Student id 1: 1234567 <br> Student id 1: 7654321`: the second was probably member 2's. Taking
    the first would make a team of one from a file name that names nobody, and the other student
    would look as if they had submitted nothing."""
    cell = "Name 1: Anna Berg <br>\nStudent id 1: 1234567 <br> Student id 1: 7654321 <br>\nEmail 1: anna@example.org"
    assert identity_form(cell)[1]["id"] == "1234567 7654321"
    nb = notebook_json([("markdown", cell), ("code", TEMPLATE_CODE)])
    loose, ws = _workspace(tmp_path, "final.zip", {"nb.ipynb": nb})
    assert team_from_files(loose, ws) == ()
    # with the team in the file name, both ids are found in the notebook: nothing to say
    sub, ws2 = _workspace(tmp_path / "named", "Anna Berg_1234567_Ben Roth_7654321.zip", {"nb.ipynb": nb})
    assert check_identity(sub, ws2) == []
    assert [m.email for m in team_with_emails(sub, ws2)] == ["anna@example.org", None]
