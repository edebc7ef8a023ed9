"""Attacks on the pages and files made from students' strings: each test failed before its fix."""
from __future__ import annotations

import pytest

from grader.report.feedback import feedback_html
from grader.report.models import Violation
from grader.report.overview import overview_html
from test_report_outputs import make_report

BIDI = "\u202e"   # RIGHT-TO-LEFT OVERRIDE: "evil\u202efdp.ipynb" is shown as "evilbnypi.pdf"


@pytest.mark.parametrize("control", [BIDI, "\u2066", "\u200f", "\u061c", "\u2028", "\x1b", "\x07", "\x00"])
def test_pages_show_bidirectional_overrides_and_control_characters_instead_of_obeying_them(control):
    """html.escape leaves bidirectional overrides alone: a file or entry name could reorder what a
    tutor reads on summary.html and a team on its feedback page (a .exe shown as .pdf)."""
    stem, report = make_report([(f"Eva{control}Ernst", "7000005"), ("Carl Fuchs", "7000006")],
                               violations=[Violation(code="identity.mismatch", severity="warning",
                                                     message=f"grading 'a.ipynb', not 'evil{control}fdp.ipynb'")])
    pages = [feedback_html(report), overview_html([(stem, report)])]
    for page in pages:
        assert control not in page
        assert f"evil\\u{ord(control):04x}fdp.ipynb" in page or f"evil\\x{ord(control):02x}fdp.ipynb" in page
