"""Attacks on the pages and files made from students' strings: each test failed before its fix."""

from __future__ import annotations

import pytest
from test_report_outputs import make_report

from grader.models import Violation
from grader.report.feedback import feedback_html
from grader.report.overview import overview_html
from grader.sheets.sheet6 import SHEET as SHEET6

BIDI = "\u202e"  # RIGHT-TO-LEFT OVERRIDE: "evil\u202efdp.ipynb" is shown as "evilbnypi.pdf"


@pytest.mark.parametrize("control", [BIDI, "\u2066", "\u200f", "\u061c", "\u2028", "\x1b", "\x07", "\x00"])
def test_pages_show_bidirectional_overrides_and_control_characters_instead_of_obeying_them(control):
    """html.escape leaves bidirectional overrides alone: a file or entry name could reorder what a
    tutor reads on summary.html and a team on its feedback page (a .exe shown as .pdf)."""
    stem, report = make_report(
        [(f"Eva{control}Ernst", "7000005"), ("Carl Fuchs", "7000006")],
        violations=[
            Violation(
                code="identity.mismatch", severity="warning", message=f"grading 'a.ipynb', not 'evil{control}fdp.ipynb'"
            )
        ],
    )
    pages = [feedback_html(report, None, SHEET6), overview_html([(stem, report)], sheet=SHEET6)]
    for page in pages:
        assert control not in page
        assert f"evil\\u{ord(control):04x}fdp.ipynb" in page or f"evil\\x{ord(control):02x}fdp.ipynb" in page


def test_members_without_a_student_id_are_not_one_student_in_two_teams():
    """A file name with a name but no id (`Rita_7000091_Otto_7000092_Extra.zip`) gives a member
    with the id "": two such teams made cms.csv report "student Extra () is in 2 teams" and leave
    both out under that label, and one such team wrote a row without an id for the course system."""
    from grader.report.cms import cms_rows

    one = make_report([("Rita Roth", "7000091"), ("Extra", "")])
    two = make_report([("Otto Ott", "7000093"), ("Other Extra", "")])
    rows, left_out = cms_rows([one, two], SHEET6.exercise_ids)
    assert sorted(str(row[0]) for row in rows) == ["7000091", "7000093"]
    assert len(left_out) == 2
    messages = [entry.message() for entry in left_out]
    assert not any("2 teams" in m for m in messages), messages
    assert all("no student id" in m for m in messages), messages
    assert any("Extra" in m and one[0] in m for m in messages), messages
