"""Finding submissions in a bulk download: any layout, junk skipped, pairs joined."""

from __future__ import annotations

import os
from pathlib import Path

from conftest import SHEET6_HINTS
from intake_corpus import make_pdf, make_zip, solution_notebook, tree_hashes

from grader.config import Naming
from grader.intake import discover, duplicate_students, identify

NAMING = Naming()


def _touch(path: Path, content: bytes | str = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def _bulk_tree(root: Path) -> None:
    nb = solution_notebook([("A", "1234567")])
    # course-system layout: one folder per team
    make_zip(root / "Gruppe 01" / "Müller_1234567_Schmidt_7654321.zip", {"a.ipynb": nb})
    _touch(root / "Gruppe 02" / "Meier_1111111_Weiß_2222222.ipynb", nb)
    make_pdf(root / "Gruppe 02" / "Meier_1111111_Weiß_2222222.pdf", ["Meier 1111111"])
    # same student (1234567) in a second team, deeper, NFD name from a Mac
    make_zip(root / "tutor B" / "late" / "Mu\u0308ller_1234567_Ott_3333333.zip", {"a.ipynb": nb})
    # loose files at the top
    _touch(root / "Paul_4444444_Roth_5555555.py", "print(1)")
    make_pdf(root / "Zoe_6666666_Yildiz_7777777.pdf", ["Zoe 6666666"])
    _touch(root / "Kurz_8888888_Lang_9999999.rar", b"Rar!")
    _touch(root / "Kurz_8888888_Lang_9999999.docx", b"PK")  # named like a team: reported
    # junk
    _touch(root / ".DS_Store")
    _touch(root / "Gruppe 01" / "Thumbs.db")
    _touch(root / "Gruppe 01" / "._Müller_1234567_Schmidt_7654321.zip")
    _touch(root / "__MACOSX" / "Gruppe 01" / "._x.zip")
    _touch(root / ".hidden" / "Secret_1234567_X_7654321.zip")
    _touch(root / "Gruppe 02" / ".~lock.ipynb#")
    _touch(root / "checksums.md5", "abc  x.zip")
    _touch(root / "Gruppe 01" / "Müller_1234567_Schmidt_7654321.zip.sha256", "abc")
    _touch(root / "tutor notes.txt", "grade fast")
    _touch(root / "README.md", "# notes")
    _touch(root / "grades.csv", "a,b")
    _touch(root / "index.html", "<html>")
    _touch(root / "photo.png", b"\x89PNG")
    _touch(root / "Gruppe 02" / ".ipynb_checkpoints" / "x-checkpoint.ipynb", "{}")


EXPECTED_SUBMISSIONS = [
    "Gruppe 01/Müller_1234567_Schmidt_7654321.zip",
    "Gruppe 02/Meier_1111111_Weiß_2222222.ipynb",
    "Kurz_8888888_Lang_9999999.docx",
    "Kurz_8888888_Lang_9999999.rar",
    "Paul_4444444_Roth_5555555.py",
    "Zoe_6666666_Yildiz_7777777.pdf",
    "tutor B/late/Mu\u0308ller_1234567_Ott_3333333.zip",
]


def test_bulk_download_tree(tmp_path: Path):
    root = tmp_path / "submissions"
    _bulk_tree(root)
    before = tree_hashes(root)
    found = discover(root)
    rels = [p.relative_to(root).as_posix() for p in found.submissions]
    assert rels == EXPECTED_SUBMISSIONS
    skipped = {s.path.relative_to(root).as_posix(): s.reason for s in found.skipped}
    assert set(skipped) == {
        ".DS_Store",
        ".hidden",
        "__MACOSX",
        "Gruppe 01/Thumbs.db",
        "Gruppe 01/._Müller_1234567_Schmidt_7654321.zip",
        "Gruppe 02/.~lock.ipynb#",
        "Gruppe 02/.ipynb_checkpoints",
        "Gruppe 02/Meier_1111111_Weiß_2222222.pdf",
        "checksums.md5",
        "Gruppe 01/Müller_1234567_Schmidt_7654321.zip.sha256",
        "tutor notes.txt",
        "README.md",
        "grades.csv",
        "index.html",
        "photo.png",
    }
    assert "Meier_1111111_Weiß_2222222.ipynb" in skipped["Gruppe 02/Meier_1111111_Weiß_2222222.pdf"]
    assert "checksum" in skipped["checksums.md5"]
    assert "notes" in skipped["tutor notes.txt"]
    assert all(reason for reason in skipped.values())

    subs = [identify(p, root, NAMING) for p in found.submissions]
    both = ["Kurz_8888888_Lang_9999999.docx", "Kurz_8888888_Lang_9999999.rar"]  # one team, two uploads
    assert duplicate_students(subs) == {
        "1234567": ["Gruppe 01/Müller_1234567_Schmidt_7654321.zip", "tutor B/late/Müller_1234567_Ott_3333333.zip"],
        "8888888": both,
        "9999999": both,
    }
    codes = {s.rel: {v.code for v in s.violations} for s in subs}
    assert codes["Kurz_8888888_Lang_9999999.rar"] == {"name.extension"}
    assert codes["Kurz_8888888_Lang_9999999.docx"] == {"name.extension"}
    assert codes["Gruppe 01/Müller_1234567_Schmidt_7654321.zip"] == set()
    assert tree_hashes(root) == before


def test_order_is_deterministic(tmp_path: Path):
    root = tmp_path / "s"
    _bulk_tree(root)
    assert discover(root) == discover(root)


def test_root_is_a_file(tmp_path: Path):
    f = _touch(tmp_path / "whatever.ipynb", "{}")
    assert discover(f).submissions == (f,)
    assert identify(f, f, NAMING).rel == "whatever.ipynb"


def test_missing_root(tmp_path: Path):
    found = discover(tmp_path / "nope")
    assert found.submissions == () and len(found.skipped) == 1


def test_symlinks_are_not_followed(tmp_path: Path):
    outside = tmp_path / "outside"
    make_zip(outside / "Evil_1234567_Link_7654321.zip", {"a.ipynb": "{}"})
    root = tmp_path / "subs"
    root.mkdir()
    os.symlink(outside, root / "linked")
    os.symlink(outside / "Evil_1234567_Link_7654321.zip", root / "Evil_1234567_Link_7654321.zip")
    found = discover(root)
    assert found.submissions == ()
    assert {s.reason for s in found.skipped} == {"symbolic link (not followed)"}


def test_pdf_with_other_stem_is_its_own_submission(tmp_path: Path):
    _touch(tmp_path / "A_1234567_B_7654321.ipynb", "{}")
    make_pdf(tmp_path / "A_1234567_B_7654321_written.pdf", ["x"])
    assert len(discover(tmp_path).submissions) == 2


def test_script_and_pdf_pair(tmp_path: Path):
    _touch(tmp_path / "A_1234567_B_7654321.py", "print(1)")
    make_pdf(tmp_path / "A_1234567_B_7654321.PDF", ["x"])
    found = discover(tmp_path)
    assert [p.name for p in found.submissions] == ["A_1234567_B_7654321.py"]


def test_team_folder_with_loose_files(tmp_path: Path):
    """Course-system layout: the folder names the team, the files inside do not."""
    from grader.config import Archive
    from grader.intake import check_identity, unpack

    root = tmp_path / "subs"
    team = root / "Mu\u0308ller_1234567_Schmidt_7654321"
    _touch(team / "notebook.ipynb", solution_notebook([("Max Müller", "1234567"), ("Eva Schmidt", "7654321")]))
    make_pdf(team / "sheet6.pdf", ["Max Müller 1234567", "Eva Schmidt 7654321"])
    lone = root / "Meier_1111111"
    _touch(lone / "solution.py", "print(1)")
    found = discover(root)
    assert [p.relative_to(root).as_posix() for p in found.submissions] == [
        "Meier_1111111/solution.py",
        "Mu\u0308ller_1234567_Schmidt_7654321/notebook.ipynb",
    ]
    assert [s.path.name for s in found.skipped] == ["sheet6.pdf"]

    sub = identify(found.submissions[1], root, NAMING)
    assert [(m.name, m.student_id) for m in sub.team] == [("Müller", "1234567"), ("Schmidt", "7654321")]
    assert {v.code for v in sub.violations} == {"name.pattern"}
    assert sub.expected_name is None or sub.expected_name.endswith(".ipynb")
    assert "team is read from its folder" in sub.violations[0].message
    ws = unpack(sub, tmp_path / "ws", Archive(), SHEET6_HINTS)
    assert ws.pdf is not None and ws.pdf.name == "sheet6.pdf"
    assert {v.code for v in ws.violations} == set()
    assert check_identity(sub, ws) == []

    lone_sub = identify(found.submissions[0], root, NAMING)
    assert {v.code for v in lone_sub.violations} == {"name.pattern", "name.group_size"}
    assert all(v.message.startswith("solution.py") for v in lone_sub.violations)


def test_folder_name_without_team_keeps_the_error(tmp_path: Path):
    _touch(tmp_path / "Gruppe 3" / "notebook.ipynb", "{}")
    sub = identify(tmp_path / "Gruppe 3" / "notebook.ipynb", tmp_path, NAMING)
    assert sub.team == () and [v.severity for v in sub.violations] == ["error"]
