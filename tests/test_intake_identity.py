"""Do notebook and PDF name the team of the file name?"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from conftest import SHEET6_HINTS
from intake_corpus import TEMPLATE_CODE, make_pdf, make_zip, notebook_json, solution_notebook
from pypdf import PdfReader

from grader.config import Archive, Naming
from grader.intake import check_identity, identify, team_with_emails, unpack
from grader.intake.types import Workspace

NAMING = Naming()
OK = "Müller_1234567_Schmidt_7654321"


def test_make_pdf_text_is_extracted(tmp_path: Path):
    lines = ["Max Müller, 1234567, max@stud.uni-saarland.de", "Sean O'Neil (tutor) \\ 50%", "José Weiß"]
    pdf = make_pdf(tmp_path / "x.pdf", lines)
    text = PdfReader(pdf).pages[0].extract_text()
    for line in lines:
        assert line in text


def _workspace(tmp_path: Path, name: str, entries: dict) -> tuple:
    z = make_zip(tmp_path / name, entries)
    sub = identify(z, tmp_path, NAMING)
    ws = unpack(sub, tmp_path / "ws", Archive(), SHEET6_HINTS)
    return sub, ws


def _pdf(tmp_path: Path, lines: list[str]) -> bytes:
    return make_pdf(tmp_path / "scratch.pdf", lines).read_bytes()


def test_ids_in_notebook_and_pdf_match(tmp_path: Path):
    sub, ws = _workspace(
        tmp_path,
        f"{OK}.zip",
        {
            "nb.ipynb": solution_notebook([("Max Müller", "1234567")]),
            "s.pdf": _pdf(tmp_path, ["Eva Schmidt 7654321 eva.schmidt@uni-saarland.de"]),
        },
    )
    assert check_identity(sub, ws) == []


def test_ids_only_in_pdf(tmp_path: Path):
    sub, ws = _workspace(
        tmp_path,
        f"{OK}.zip",
        {
            "nb.ipynb": notebook_json([("code", TEMPLATE_CODE)]),
            "s.pdf": _pdf(tmp_path, ["Max Müller 1234567", "Eva Schmidt 7654321"]),
        },
    )
    assert check_identity(sub, ws) == []


def test_missing_and_extra_ids_are_named(tmp_path: Path):
    sub, ws = _workspace(
        tmp_path, f"{OK}.zip", {"nb.ipynb": solution_notebook([("Max Müller", "1234567"), ("Ute Ott", "5555555")])}
    )
    (v,) = check_identity(sub, ws)
    assert v.code == "identity.mismatch" and v.severity == "warning"
    assert "7654321 (Schmidt)" in v.message and "5555555 (in the notebook)" in v.message
    assert "notebook 'nb.ipynb'" in v.message and v.message.startswith(f"{OK}.zip:")


def test_no_ids_anywhere(tmp_path: Path):
    sub, ws = _workspace(
        tmp_path,
        f"{OK}.zip",
        {"nb.ipynb": notebook_json([("code", TEMPLATE_CODE)]), "s.pdf": _pdf(tmp_path, ["6.3: h = (9, 0)"])},
    )
    (v,) = check_identity(sub, ws)
    assert v.code == "identity.missing"
    assert "1234567, 7654321" in v.message and "PDF 's.pdf'" in v.message


def test_decimals_and_longer_numbers_are_not_ids(tmp_path: Path):
    sub, ws = _workspace(
        tmp_path,
        f"{OK}.zip",
        {
            "nb.ipynb": notebook_json(
                [
                    ("markdown", "Max 1234567, Eva 7654321"),
                    ("code", "acc = 0.8765432\nseed = 12345678\nn = 1,2345678\n"),
                ]
            )
        },
    )
    assert {v.code for v in check_identity(sub, ws)} == set()


def test_outputs_do_not_count(tmp_path: Path):
    nb = notebook_json([("code", TEMPLATE_CODE)]).replace(
        '"outputs": []', '"outputs": [{"output_type": "stream", "name": "stdout", "text": "1234567 7654321"}]'
    )
    sub, ws = _workspace(tmp_path, f"{OK}.zip", {"nb.ipynb": nb})
    assert {v.code for v in check_identity(sub, ws)} == {"identity.missing"}


@pytest.mark.parametrize("content", [b"%PDF-1.4\n garbage", b"", b"not a pdf at all"])
def test_broken_pdf_is_a_warning_not_a_crash(tmp_path: Path, content: bytes):
    sub, ws = _workspace(
        tmp_path, f"{OK}.zip", {"nb.ipynb": solution_notebook([("A", "1234567"), ("B", "7654321")]), "s.pdf": content}
    )
    codes = [v.code for v in check_identity(sub, ws)]
    assert codes == ["content.pdf_unreadable"]
    assert all(v.severity == "warning" for v in check_identity(sub, ws))


def test_broken_notebook_json(tmp_path: Path):
    sub, ws = _workspace(tmp_path, f"{OK}.zip", {"nb.ipynb": "{not json", "s.pdf": _pdf(tmp_path, ["1234567 7654321"])})
    assert [v.code for v in check_identity(sub, ws)] == ["content.notebook_unreadable"]


def test_no_files_at_all(tmp_path: Path):
    sub, _ = _workspace(tmp_path, f"{OK}.zip", {"x.txt": "1234567"})
    (v,) = check_identity(sub, Workspace(dir=tmp_path / "ws"))
    assert v.code == "identity.missing" and "no notebook or PDF" in v.message


def test_unparseable_name_gives_nothing_to_compare(tmp_path: Path):
    sub, ws = _workspace(tmp_path, "solution.zip", {"nb.ipynb": solution_notebook([("A", "1234567")])})
    assert check_identity(sub, ws) == []


def test_team_with_emails(tmp_path: Path):
    sub, ws = _workspace(
        tmp_path,
        "Mu\u0308ller_1234567_van der Berg_7654321.zip",
        {
            "nb.ipynb": notebook_json([("markdown", "Max Müller 1234567 s8mamuel@stud.uni-saarland.de")]),
            "s.pdf": _pdf(tmp_path, ["Contact: jan.vanderberg@uni-saarland.de"]),
        },
    )
    team = team_with_emails(sub, ws)
    assert [(m.name, m.student_id, m.email) for m in team] == [
        ("Müller", "1234567", "s8mamuel@stud.uni-saarland.de"),
        ("van der Berg", "7654321", "jan.vanderberg@uni-saarland.de"),
    ]


def test_team_and_expected_name_from_the_files_when_the_name_says_nothing(tmp_path):
    from grader.config import Archive, Naming
    from grader.intake import identify, unpack
    from grader.intake.identity import team_from_files
    from grader.intake.naming import complete_from_files

    root = tmp_path / "in"
    root.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell(
            "Name: Anna-Lena van der Berg, Student ID: 7012345, Email: anna@example.org\n\n"
            "Jürgen Müller 7054321 s8jumuel@stud.uni-saarland.de\n\nSee exercise 6.3: 54, 18"
        )
    ]
    nbformat.write(nb, root / "final version.ipynb")
    sub = identify(root / "final version.ipynb", root, Naming())
    assert not sub.team
    ws = unpack(sub, tmp_path / "ws", Archive(), SHEET6_HINTS)
    team = team_from_files(sub, ws)
    assert [(m.name, m.student_id) for m in team] == [
        ("Anna-Lena van der Berg", "7012345"),
        ("Jürgen Müller", "7054321"),
    ]
    assert (
        complete_from_files(sub, team, Naming()).expected_name
        == "Anna-Lena_van_der_Berg_7012345_Jürgen_Müller_7054321.ipynb"
    )


# ---- the course's identity cell: "Name 1: <br>", "Student id 1: <br>", "Email 1: <br>" for members 1-3 --

EMPTY_CELL = "\n".join(f"{label} {n}: <br>" for n in (1, 2, 3) for label in ("Name", "Student id", "Email"))
THREE = [
    ("Erika Mustermann", "7012345", "s8ermust@stud.uni-saarland.de"),
    ("Jürgen Müller", "7054321", "s8jumuel@stud.uni-saarland.de"),
    ("Anna-Lena van der Berg", "7066666", "anna.berg@uni-saarland.de"),
]
TEAM3 = "Erika Mustermann_7012345_Jürgen Müller_7054321_Anna-Lena van der Berg_7066666"


def _filled_cells() -> dict[str, str]:
    """The same three members in the identity cell as teams fill it in: the template's layout, lines
    in another order, no `<br>`, markdown emphasis, HTML, several fields on a line."""
    lines = [
        f"{label} {n}: {value} <br>"
        for n, member in enumerate(THREE, start=1)
        for label, value in zip(("Name", "Student id", "Email"), member)
    ]
    return {
        "template layout": "# Sheet 6\n\n" + "\n".join(lines),
        "shuffled, no <br>": "\n".join(line.replace(" <br>", "") for line in reversed(lines)),
        "markdown bold": "\n".join(f"**{line.split(':')[0]}:** {line.split(': ', 1)[1]}" for line in lines),
        "html": "<p>"
        + "".join(f"<b>{line.split(':')[0]}:</b>&nbsp;{line.split(': ', 1)[1]}" for line in lines)
        + "</p>",
        "one line per member": "\n\n".join(
            f"Name {n}: {a}, Student id {n}: {b}, Email {n}: {c}" for n, (a, b, c) in enumerate(THREE, start=1)
        ),
    }


@pytest.mark.parametrize("layout", sorted(_filled_cells()))
def test_the_identity_cell_filled_in_names_all_three_members(tmp_path: Path, layout: str):
    from grader.intake.identity import team_from_files

    nb = notebook_json([("markdown", _filled_cells()[layout]), ("code", TEMPLATE_CODE)])
    sub, ws = _workspace(tmp_path, f"{TEAM3}.zip", {"nb.ipynb": nb})
    assert check_identity(sub, ws) == []
    assert [(m.name, m.student_id, m.email) for m in team_with_emails(sub, ws)] == THREE
    # Read from the files alone (a file name that names nobody), every member with name and id.
    loose, ws2 = _workspace(tmp_path / "loose", "final.zip", {"nb.ipynb": nb})
    assert [(m.name, m.student_id) for m in team_from_files(loose, ws2)] == [(a, b) for a, b, _ in THREE]


def test_the_identity_cell_partly_filled_says_what_is_empty(tmp_path: Path):
    from grader.intake.identity import team_from_files

    cell = (
        EMPTY_CELL.replace("Name 1: <br>", "Name 1: Erika Mustermann <br>")
        .replace("Student id 1: <br>", "Student id 1: 7012345 <br>")
        .replace("Email 1: <br>", "Email 1: s8ermust@stud.uni-saarland.de <br>")
        .replace("Name 2: <br>", "Name 2: Jürgen Müller <br>")
    )
    nb = notebook_json([("markdown", cell), ("code", TEMPLATE_CODE)])
    sub, ws = _workspace(tmp_path, "Erika Mustermann_7012345_Jürgen Müller_7054321.zip", {"nb.ipynb": nb})
    (v,) = check_identity(sub, ws)
    assert v.code == "identity.mismatch" and "7054321 (Jürgen Müller)" in v.message
    assert "the notebook's identity cell leaves Student id 2, Email 2 empty" in v.message, v.message
    assert [(m.name, m.student_id) for m in team_from_files(sub, ws)] == [("Erika Mustermann", "7012345")]
    emails = [m.email for m in team_with_emails(sub, ws)]
    assert emails == ["s8ermust@stud.uni-saarland.de", None]


def test_the_identity_cell_left_as_the_template_has_it_is_not_filled_in(tmp_path: Path):
    from grader.intake.identity import team_from_files

    nb = notebook_json([("markdown", "# Exercise 6.6\n\n" + EMPTY_CELL), ("code", TEMPLATE_CODE)])
    sub, ws = _workspace(tmp_path, f"{OK}.zip", {"nb.ipynb": nb})
    (v,) = check_identity(sub, ws)
    assert v.code == "identity.missing"
    assert "the notebook's identity cell (Name 1:, Student id 1:, Email 1:, ...) is not filled in" in v.message
    loose, ws2 = _workspace(tmp_path / "loose", "final.zip", {"nb.ipynb": nb})
    assert team_from_files(loose, ws2) == ()
    # Only an id filled in, on the template's line: never "br" or a label as a name.
    only_id = notebook_json([("markdown", "Name 1: <br> Student id 1: 7012345 <br> Email 1: <br>")])
    loose, ws3 = _workspace(tmp_path / "only-id", "final.zip", {"nb.ipynb": only_id})
    assert team_from_files(loose, ws3) == ()
    sub, ws4 = _workspace(tmp_path / "only-id-named", f"{OK}.zip", {"nb.ipynb": only_id})
    (v,) = check_identity(sub, ws4)
    assert "leaves Name 1, Email 1 empty" in v.message, v.message


def test_a_student_line_with_html_breaks_gives_no_br_in_a_name(tmp_path: Path):
    from grader.intake.identity import team_from_files

    nb = notebook_json([("markdown", "Erika Mustermann<br>7012345<br>\n\nJürgen Müller <br/> 7054321")])
    sub, ws = _workspace(tmp_path, "final.zip", {"nb.ipynb": nb})
    assert [(m.name, m.student_id) for m in team_from_files(sub, ws)] == [
        ("Erika Mustermann", "7012345"),
        ("Jürgen Müller", "7054321"),
    ]
