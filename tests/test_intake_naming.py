"""File names -> team and naming violations (docs/spec.md, "Submissions and naming")."""

from __future__ import annotations

import hashlib
import unicodedata
from pathlib import Path

import pytest

from grader.config import Naming
from grader.intake import duplicate_students, identify, parse_name
from grader.intake.naming import kind_of, split_extension

NAMING = Naming()
OK = "Müller_1234567_Schmidt_7654321"

# (file name, exact set of codes, team as (name, id) pairs, expected canonical name or None)
CASES = [
    ("Müller_1234567_Schmidt_7654321.zip", set(), [("Müller", "1234567"), ("Schmidt", "7654321")], None),
    ("Mu\u0308ller_1234567_Schmidt_7654321.zip", set(), [("Müller", "1234567"), ("Schmidt", "7654321")], None),
    ("Anna-Lena_1234567_Weiß_7654321.zip", set(), [("Anna-Lena", "1234567"), ("Weiß", "7654321")], None),
    (
        "van der Berg_1234567_O'Neil_7654321_José_1111111.zip",
        set(),
        [("van der Berg", "1234567"), ("O'Neil", "7654321"), ("José", "1111111")],
        None,
    ),
    ("Jose\u0301_1234567_Zoë_7654321.ipynb", set(), [("José", "1234567"), ("Zoë", "7654321")], None),
    (
        "Anna Maria Müller_1234567_Schmidt_7654321.pdf",
        set(),
        [("Anna Maria Müller", "1234567"), ("Schmidt", "7654321")],
        None,
    ),
    ("Müller_1234567_Schmidt_7654321.py", set(), [("Müller", "1234567"), ("Schmidt", "7654321")], None),
    ("Müller_1234567_Schmidt_7654321.ZIP", set(), [("Müller", "1234567"), ("Schmidt", "7654321")], None),
    # browser copies and sloppy separators: parsed, reported, expected name given
    (
        "Müller_1234567_Schmidt_7654321 (1).zip",
        {"name.pattern"},
        [("Müller", "1234567"), ("Schmidt", "7654321")],
        f"{OK}.zip",
    ),
    (
        "Müller_1234567-Schmidt_7654321.zip",
        {"name.pattern"},
        [("Müller", "1234567"), ("Schmidt", "7654321")],
        f"{OK}.zip",
    ),
    (
        "Müller 1234567 Schmidt 7654321.zip",
        {"name.pattern"},
        [("Müller", "1234567"), ("Schmidt", "7654321")],
        f"{OK}.zip",
    ),
    ("Müller1234567Schmidt7654321.zip", {"name.pattern"}, [("Müller", "1234567"), ("Schmidt", "7654321")], f"{OK}.zip"),
    (
        "Müller_1234567_Schmidt_7654321_final.zip",
        {"name.pattern"},
        [("Müller", "1234567"), ("Schmidt", "7654321")],
        f"{OK}.zip",
    ),
    (
        "Sheet6_Müller_1234567_Schmidt_7654321.zip",
        {"name.pattern"},
        [("Müller", "1234567"), ("Schmidt", "7654321")],
        f"{OK}.zip",
    ),
    (
        "Müller_1234567_Schmidt_7654321_Exercise-sheet-6.zip",
        {"name.pattern"},
        [("Müller", "1234567"), ("Schmidt", "7654321")],
        f"{OK}.zip",
    ),
    (
        "Müller_1234567__Schmidt_7654321.zip",
        {"name.pattern"},
        [("Müller", "1234567"), ("Schmidt", "7654321")],
        f"{OK}.zip",
    ),
    # ids
    ("Müller_123456_Schmidt_7654321.zip", {"name.student_id"}, [("Müller", "123456"), ("Schmidt", "7654321")], None),
    (
        "Müller_12345678_Schmidt_7654321.zip",
        {"name.student_id"},
        [("Müller", "12345678"), ("Schmidt", "7654321")],
        None,
    ),
    (
        "Müller_\u0661\u0662\u0663\u0664\u0665\u0666\u0667_Schmidt_7654321.zip",
        {"name.student_id"},
        [("Müller", "1234567"), ("Schmidt", "7654321")],
        f"{OK}.zip",
    ),
    ("Müller_1234567_Schmidt.zip", {"name.pattern", "name.student_id"}, [("Müller", "1234567"), ("Schmidt", "")], None),
    # group size
    ("Müller_1234567.zip", {"name.group_size"}, [("Müller", "1234567")], None),
    (
        "A_1234567_B_2345678_C_3456789_D_4567890.zip",
        {"name.group_size"},
        [("A", "1234567"), ("B", "2345678"), ("C", "3456789"), ("D", "4567890")],
        None,
    ),
    # extensions
    (
        "Müller_1234567_Schmidt_7654321.rar",
        {"name.extension"},
        [("Müller", "1234567"), ("Schmidt", "7654321")],
        f"{OK}.zip",
    ),
    (
        "Müller_1234567_Schmidt_7654321.7z",
        {"name.extension"},
        [("Müller", "1234567"), ("Schmidt", "7654321")],
        f"{OK}.zip",
    ),
    (
        "Müller_1234567_Schmidt_7654321.tar.gz",
        {"name.extension"},
        [("Müller", "1234567"), ("Schmidt", "7654321")],
        f"{OK}.zip",
    ),
    (
        "Müller_1234567_Schmidt_7654321.docx",
        {"name.extension"},
        [("Müller", "1234567"), ("Schmidt", "7654321")],
        f"{OK}.zip",
    ),
    # nothing parseable
    ("notebook.ipynb", {"name.pattern"}, [], None),
    ("Sheet6 solution.zip", {"name.pattern"}, [], None),
    ("1234567_7654321.zip", {"name.pattern"}, [("", "1234567"), ("", "7654321")], None),
]


@pytest.mark.parametrize("filename,codes,team,expected", CASES, ids=[c[0] for c in CASES])
def test_parse_name_exact_codes(filename, codes, team, expected):
    parsed = parse_name(filename, NAMING)
    assert {v.code for v in parsed.violations} == codes, [v.message for v in parsed.violations]
    assert [(m.name, m.student_id) for m in parsed.team] == team
    assert parsed.expected_name == expected
    for v in parsed.violations:
        assert v.message.startswith(unicodedata.normalize("NFC", filename) + ":"), v.message
        assert "expected" in v.message


def test_unparseable_name_is_an_error_and_parsed_ones_are_warnings():
    assert {v.severity for v in parse_name("notebook.ipynb", NAMING).violations} == {"error"}
    for filename, _codes, _team, _exp in CASES:
        if parse_name(filename, NAMING).team:
            assert {v.severity for v in parse_name(filename, NAMING).violations} <= {"warning"}, filename


def test_expected_name_is_in_the_message():
    v = parse_name("Müller_1234567-Schmidt_7654321 (1).zip", NAMING).violations
    assert f"expected name: {OK}.zip" in v[0].message


def test_wrong_id_message_names_the_id_and_rule():
    (v,) = parse_name("Müller_123456_Schmidt_7654321.zip", NAMING).violations
    assert "'123456'" in v.message and "6 digits" in v.message and "7 ASCII digits" in v.message


def test_naming_config_is_respected():
    naming = Naming(min_members=1, max_members=4, id_digits=6)
    parsed = parse_name("Müller_123456.zip", naming)
    assert parsed.violations == ()
    assert {v.code for v in parse_name("Müller_1234567.zip", naming).violations} == {"name.student_id"}


def test_split_extension_and_kind():
    assert split_extension("a_1234567.tar.gz") == ("a_1234567", ".tar.gz")
    assert split_extension("noext") == ("noext", "")
    assert kind_of("x.IPYNB") == "ipynb" and kind_of("x.zip") == "zip" and kind_of("x.rar") == "other"


def test_identify_fills_the_submission(tmp_path: Path):
    root = tmp_path / "subs"
    f = root / "tutor A" / ("Mu\u0308ller_1234567_Schmidt_7654321.zip")
    f.parent.mkdir(parents=True)
    f.write_bytes(b"PK not really")
    sub = identify(f, root, NAMING)
    assert sub.rel == "tutor A/Müller_1234567_Schmidt_7654321.zip"
    assert sub.stem == "Müller_1234567_Schmidt_7654321"
    assert sub.kind == "zip"
    assert sub.sha256 == hashlib.sha256(b"PK not really").hexdigest()
    assert [m.name for m in sub.team] == ["Müller", "Schmidt"]
    assert sub.info().file == sub.rel
    # root is the file itself: rel is just the name
    assert identify(f, f, NAMING).rel == "Müller_1234567_Schmidt_7654321.zip"


def test_identify_never_writes(tmp_path: Path):
    f = tmp_path / "Müller_1234567_Schmidt_7654321.ipynb"
    f.write_text("{}")
    before = (f.stat().st_mtime_ns, f.read_bytes())
    identify(f, tmp_path, NAMING)
    assert (f.stat().st_mtime_ns, f.read_bytes()) == before


def test_duplicate_students(tmp_path: Path):
    names = [
        "Müller_1234567_Schmidt_7654321.zip",
        "Meier_1111111_Müller_1234567.zip",
        "Meier_1111111_Weiß_2222222.ipynb",
        "Ott_3333333_Paul_4444444.zip",
    ]
    subs = []
    for n in names:
        (tmp_path / n).write_bytes(n.encode())
        subs.append(identify(tmp_path / n, tmp_path, NAMING))
    assert duplicate_students(subs) == {
        "1111111": ["Meier_1111111_Müller_1234567.zip", "Meier_1111111_Weiß_2222222.ipynb"],
        "1234567": ["Meier_1111111_Müller_1234567.zip", "Müller_1234567_Schmidt_7654321.zip"],
    }
    assert duplicate_students(subs[3:]) == {}


def test_a_names_problems_are_data_and_its_messages_are_rendered_from_them():
    parsed = parse_name("Anna_Schmidt_7000001_Ben_12345 (1).zip", NAMING)
    found = [(p.code, p.what, dict(p.facts)) for p in parsed.problems]
    assert found[0][:2] == ("name.pattern", "pattern")
    assert found[0][2]["findings"] == (("copy_marker", ("(1)",)),)
    assert ("name.student_id", "id_malformed", {"id": "12345", "digits": 7}) in found
    assert [v.code for v in parsed.violations] == [p.code for p in parsed.problems]
    assert all(v.message.startswith("Anna_Schmidt_7000001_Ben_12345 (1).zip: ") for v in parsed.violations)


def test_the_files_team_renders_the_expected_name_once_in_every_message_that_says_one(tmp_path: Path):
    from grader.intake.naming import complete_from_files
    from grader.models import TeamMember

    path = tmp_path / "Anna_7000001 (1).rar"
    path.write_bytes(b"x")
    sub = identify(path, tmp_path, NAMING)
    assert sub.expected_name == "Anna_7000001.zip"
    stated = (TeamMember(name="Anna Schmidt", student_id="7000001"), TeamMember(name="Ben Meyer", student_id="7000002"))
    completed = complete_from_files(sub, stated, NAMING)
    assert completed.expected_name == "Anna_7000001_Ben_Meyer_7000002.zip"
    hinted = [v.message for v in completed.violations if "expected name" in v.message]
    assert [v.code for v in completed.violations] == [v.code for v in sub.violations]
    assert len(hinted) == 2  # name.pattern and name.extension
    assert all(
        m.count("expected name") == 1 and m.endswith(f"expected name: {completed.expected_name}") for m in hinted
    )
