"""Issue 23's refactored tree attacked the way students, a broken upload and a tutor meet it: hostile
names and text into every output, the students' wheel on broken zips, a tutor's second run."""

from __future__ import annotations

from pathlib import Path

from conftest import SHEET6_HINTS
from intake_corpus import make_pdf, make_zip, solution_notebook

from grader.config import Archive, Naming
from grader.intake import identify, unpack

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
