"""The course's list of students as spreadsheets and the course system write it: the bytes of each
file are written here as those programs write them (Excel in a German locale, Excel's "CSV UTF-8"
and "Unicode text", LibreOffice with quoted text cells), and every way a list can be unreadable
stops with one message naming the file, the line and what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from grader.errors import RosterError
from grader.report.roster import read_roster


def write(tmp_path: Path, data: bytes, name: str = "students.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def table(roster) -> dict[str, tuple[str, str]]:
    return {sid: (s.name, s.email) for sid, s in roster.students.items()}


# Excel, "CSV (Trennzeichen-getrennt)" in a German locale: ';', Windows-1252, CRLF, no BOM, quotes
# only where a field holds ';' or '"', and the empty rows of the used range at the end as ';;;;'.
EXCEL_GERMAN = (
    "Matrikelnummer;Vorname;Nachname;E-Mail;Studiengang\r\n"
    "0701234;Jürgen;Müller;jm@uni-saarland.de;Informatik\r\n"
    '7012345;Zoë;O\'Brien-Straße;zo@uni-saarland.de;"Data Science; AI"\r\n'
    '7023456;"Anna ""Anni""";Öztürk;ao@uni-saarland.de;€-Studies\r\n'
    ";;;;\r\n"
    ";;;;\r\n"
).encode("cp1252")


def test_excel_in_a_german_locale(tmp_path):
    roster = read_roster(write(tmp_path, EXCEL_GERMAN))
    assert table(roster) == {
        "0701234": ("Jürgen Müller", "jm@uni-saarland.de"),
        "7012345": ("Zoë O'Brien-Straße", "zo@uni-saarland.de"),
        "7023456": ('Anna "Anni" Öztürk', "ao@uni-saarland.de"),
    }
    assert roster.students["7012345"].line == 3


def test_excel_csv_utf8_with_bom(tmp_path):
    data = "\ufeffMatrikelnummer;Vorname;Name;E-Mail\r\n7000001;Łukasz;Żółć;lz@example.org\r\n".encode("utf-8")
    roster = read_roster(write(tmp_path, data))
    # German exports say "Vorname" and "Name": Name is then the family name
    assert table(roster) == {"7000001": ("Łukasz Żółć", "lz@example.org")}


# LibreOffice Calc, "Text CSV" with "Quote all text cells": UTF-8 without BOM, ',', text quoted and
# numbers not; ids typed as text keep their zero. LF line ends (Linux), a name with a line break.
LIBREOFFICE = (
    '"Last name","First name","Student ID","Email address","Points so far"\n'
    '"Nguyễn","Thị Minh","0700001","tm@example.org",12.5\n'
    '"Smith, Jr.","John","7000002","js@example.org",3\n'
    '"van der Berg","Anne\nMarie","7000003","ab@example.org",\n'
    "\n\n"
).encode()


def test_libreoffice_quoted_text_cells(tmp_path):
    roster = read_roster(write(tmp_path, LIBREOFFICE))
    assert table(roster) == {
        "0700001": ("Thị Minh Nguyễn", "tm@example.org"),
        "7000002": ("John Smith, Jr.", "js@example.org"),
        "7000003": ("Anne Marie van der Berg", "ab@example.org"),
    }
    assert roster.students["7000003"].line == 4


def test_tabs_a_full_name_column_and_no_email(tmp_path):
    data = b"Name\tmtknr\tGroup\r\nErika Mustermann\t7012345\tA\r\nMax Mustermann\t7054321\tB\r\n"
    assert table(read_roster(write(tmp_path, data))) == {
        "7012345": ("Erika Mustermann", ""),
        "7054321": ("Max Mustermann", ""),
    }


def test_excel_unicode_text_is_utf16_with_tabs(tmp_path):
    data = "Matriculation number\tFull name\r\n0712345\tÅsa Öberg\r\n".encode("utf-16")
    assert table(read_roster(write(tmp_path, data))) == {"0712345": ("Åsa Öberg", "")}


@pytest.mark.parametrize(
    "header",
    [
        "mtknr",
        "MTKNR",
        "Matrikelnummer",
        "matriculation number",
        "Matriculation Number",
        "Student ID",
        "student_id",
        " student id ",
    ],
)
def test_the_id_column_is_found_by_its_name(tmp_path, header):
    data = f"Vorname,{header},Nachname\nAnna,7000001,Alt\n".encode()
    assert table(read_roster(write(tmp_path, data))) == {"7000001": ("Anna Alt", "")}


def test_a_title_line_above_the_header(tmp_path):
    data = b"NNTI WS 2024/25 - participants\r\n\r\nmtknr;Name\r\n7000001;Anna Alt\r\n"
    assert table(read_roster(write(tmp_path, data))) == {"7000001": ("Anna Alt", "")}


def test_a_comma_in_a_name_does_not_fool_the_delimiter(tmp_path):
    data = 'Name;Matrikelnummer\r\n"Müller, Jürgen";7000001\r\nAnna Alt;7000002\r\n'.encode("cp1252")
    assert table(read_roster(write(tmp_path, data))) == {"7000001": ("Müller, Jürgen", ""), "7000002": ("Anna Alt", "")}


# ---------------------------------------------------------------- unreadable lists


@pytest.mark.parametrize(
    "data, words",
    [
        (b"", ["line 1", "empty"]),
        (
            b"Vorname;Nachname;E-Mail\r\nAnna;Alt;a@x\r\n",
            ["line 1", "no column of matriculation numbers", "Vorname;Nachname;E-Mail"],
        ),
        (b"mtknr;Name\r\n7000001;Anna\r\n;Bernd\r\n", ["line 3", "no matriculation number", "'mtknr'"]),
        (
            b"mtknr;Name\r\n7,01E+06;Anna\r\n",
            ["line 2", "'7,01E+06'", "not a matriculation number", "format the column as text"],
        ),
        (b"mtknr;Name\r\n7000001.0;Anna\r\n", ["line 2", "'7000001.0'", "spreadsheet turned it into a number"]),
        (b"mtknr;Name\r\nabc;Anna\r\n", ["line 2", "'abc'", "expected digits only"]),
        ("mtknr;Name\r\n７０００００１;Anna\r\n".encode(), ["line 2", "expected digits only"]),
        (b"mtknr;Name\r\n7000001;Anna\r\n7000002;Bernd\r\n7000001;Carla\r\n", ["line 4", "7000001", "line 2 too"]),
        (b"mtknr;Name\r\n7000001;Anna\r\n7000002;B\x81rnd\r\n", ["line 3", "0x81", "neither UTF-8 nor Windows-1252"]),
        (b"mtknr;Name\r\n7000001;An\x00na\r\n", ["line 2", "NUL"]),
        (b"mtknr;Name\r\n", ["line 1", "no student below it"]),
        (b'mtknr;Name\r\n7000001;"Anna\r\n7000002;Bernd\r\n', ["not readable as CSV"]),
    ],
)
def test_an_unreadable_list_names_file_line_and_problem(tmp_path, data, words):
    path = write(tmp_path, data)
    with pytest.raises(RosterError) as err:
        read_roster(path)
    message = str(err.value)
    assert message.startswith(f"{path}: "), message
    assert "\n" not in message  # one line
    for word in words:
        assert word in message, message


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(RosterError, match="nope.csv: cannot read the list of students"):
        read_roster(tmp_path / "nope.csv")


def test_the_roster_is_relative_to_grading_toml_and_the_option_to_the_current_folder(tmp_path, monkeypatch):
    from grader.config import load_config
    from grader.report.roster import load_roster

    (tmp_path / "course").mkdir()
    (tmp_path / "course" / "grading.toml").write_text('[cms]\nroster = "students.csv"\n')
    write(tmp_path / "course", b"mtknr;Name\r\n7000001;Anna Alt\r\n")
    config = load_config(tmp_path / "course" / "grading.toml")
    assert config.roster_path == (tmp_path / "course" / "students.csv").resolve()
    assert list(load_roster(config).students) == ["7000001"]
    monkeypatch.chdir(tmp_path)
    write(tmp_path, b"mtknr;Name\r\n7000002;Bernd Brot\r\n", "other.csv")
    other = config.with_roster("other.csv")
    assert list(load_roster(other).students) == ["7000002"]
    assert other.fingerprint == config.fingerprint  # a roster changes no verdict: nothing is regraded
    assert load_roster(load_config(None)) is None


def test_a_bad_roster_stops_grade_and_merge_before_anything_is_written(tmp_path):
    import subprocess
    import sys

    subs, out = tmp_path / "subs", tmp_path / "out"
    subs.mkdir()
    (subs / "Anna_Alt_7000001_Bernd_Brot_7000002.ipynb").write_text("{}")
    bad = write(tmp_path, b"mtknr;Name\r\n7000001;Anna Alt\r\n70000O2;Bernd Brot\r\n", "bad.csv")
    (tmp_path / "grading.toml").write_text("")
    for command in (["grade", str(subs), "--out", str(out)], ["merge", str(subs), "--out", str(out)]):
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "grader",
                "--config",
                str(tmp_path / "grading.toml"),
                *command,
                "--roster",
                str(bad),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 2, run.stdout + run.stderr
        assert f"roster: {bad}: line 3: '70000O2' is not a matriculation number" in " ".join(run.stdout.split())
        assert not out.exists() or not any(out.glob("*.json")), "graded or merged despite the roster"
