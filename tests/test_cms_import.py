"""cms_import.csv (the course system's own import), the roster's checks of the teams' ids and
missing.csv, on reports built by hand (no kernels). The files are compared byte for byte, and read
back by a parser written from the course system's format, not from our writer."""

from __future__ import annotations

import csv
import io
import random
import re
from decimal import Decimal
from pathlib import Path

import pytest
from test_report_outputs import CONFIG, ROOT, make_report

from grader.config import ConfigError, config_from_dict
from grader.errors import RosterError
from grader.models import Violation
from grader.report.cms_import import (
    IMPORT_NAME,
    MISSING_NAME,
    import_number,
    plan_import,
    render_import,
)
from grader.report.enrolment import NOT_ENROLLED, ROSTER_NAME, apply_roster, id_relation, missing_students, same_name
from grader.report.manual import apply_manual
from grader.report.manual_points import MANUAL_POINTS_NAME, ManualEntry
from grader.report.outputs import write_batch_outputs
from grader.report.roster import read_roster
from grader.report.store import read_report, write_report

PART3 = f"{CONFIG.sheet_def.automatic_exercise} {CONFIG.sheet_def.manual_part}"


def graded(item, points: dict[str, float], overrides: dict[str, float] | None = None):
    """The report with a tutor's row of manual_points.csv applied."""
    stem, report = item
    return stem, apply_manual(report, ManualEntry(stem=stem, line=2, points=points, overrides=overrides or {}), CONFIG)


# Complete: 3.5 + 1.25 + 0.5 + 1 + 1 + (1.5 automatic + 0.25) = 9, bonus 0.75.
ALICE = graded(
    make_report([("Anna Äpfel", "7000001"), ("Bernd Brot", "0700002")]),
    {"6.1": 3.5, "6.2": 1.25, "6.3": 0.5, "6.4": 1, "6.5": 1, PART3: 0.25, "6.7": 0.75},
)
# Pending: the automatic points so far, 1.5 - 0.25 (forward fails) - 0.25 (accuracies to review) = 1.
BOB = make_report(
    [("Carla Chen", "7000003"), ("Dieter Dörr", "7000004"), ("Eva Ernst", "7000005")],
    failing=("baseline.forward",),
    review=("baseline.accuracies",),
)
# Complete: 2.5 + 0.5 + 0.25 + 1.5 + 0 + 1.5 = 6.25, bonus 1.5.
CARL = graded(
    make_report([("Fritz Fink", "7000006"), ("Gina Gans", "7000007")]),
    {"6.1": 2.5, "6.2": 0.5, "6.3": 0.25, "6.4": 1.5, "6.5": 0, PART3: 0, "6.7": 1.5},
)
REPORTS = [ALICE, BOB, CARL]


def config(**cms):
    return config_from_dict({"sheet": {"name": "sheet6"}, "cms": cms}, source="<test>", base_dir=ROOT)


def import_bytes(reports, cfg=CONFIG, roster=None) -> bytes:
    return render_import(plan_import(reports, cfg, roster).lines)


def parse_cms_import(data: bytes) -> dict[str, Decimal]:
    """The course system's format, as its import form takes it: `mtknr;points` and one
    `<matriculation number>;<points>` per student, each line ended by CRLF; plain ASCII text, no BOM,
    no quotes, a decimal point. Written from that description, not from the writer."""
    assert not data.startswith(b"\xef\xbb\xbf"), "a BOM"
    text = data.decode("ascii")
    assert text.endswith("\r\n"), "the last line is not ended by CRLF"
    lines = text[:-2].split("\r\n")
    assert not any("\r" in line or "\n" in line for line in lines), "a line end other than CRLF"
    assert lines[0] == "mtknr;points"
    points: dict[str, Decimal] = {}
    for line in lines[1:]:
        match = re.fullmatch(r"(\d+);((?:0|[1-9]\d*)(?:\.\d*[1-9])?)", line)
        assert match, f"not `<mtknr>;<points>` with a decimal point and no trailing zeros: {line!r}"
        assert match[1] not in points, f"{match[1]} twice"
        points[match[1]] = Decimal(match[2])
    return points


# ---------------------------------------------------------------- the file, byte for byte


def test_complete_grades_only_by_default():
    assert import_bytes(REPORTS) == (b"mtknr;points\r\n0700002;9\r\n7000001;9\r\n7000006;6.25\r\n7000007;6.25\r\n")


def test_pending_grades_when_asked():
    assert import_bytes(REPORTS, config(import_pending=True)) == (
        b"mtknr;points\r\n0700002;9\r\n7000001;9\r\n7000003;1\r\n7000004;1\r\n7000005;1\r\n"
        b"7000006;6.25\r\n7000007;6.25\r\n"
    )


def test_total_with_bonus():
    assert import_bytes(REPORTS, config(import_points="total+bonus")) == (
        b"mtknr;points\r\n0700002;9.75\r\n7000001;9.75\r\n7000006;7.75\r\n7000007;7.75\r\n"
    )


def test_one_exercise():
    auto = CONFIG.sheet_def.automatic_exercise
    assert import_bytes(REPORTS, config(import_points=auto)) == (
        b"mtknr;points\r\n0700002;1.75\r\n7000001;1.75\r\n7000006;1.5\r\n7000007;1.5\r\n"
    )
    # pending, the automatic exercise counts its automatic points so far
    assert import_bytes(REPORTS, config(import_points=auto, import_pending=True)).count(b";1\r\n") == 3
    assert import_bytes(REPORTS, config(import_points="6.5")) == (
        b"mtknr;points\r\n0700002;1\r\n7000001;1\r\n7000006;0\r\n7000007;0\r\n"
    )


def test_an_unknown_exercise_is_an_error_naming_the_key():
    with pytest.raises(ConfigError) as err:
        config(import_points="6.9")
    assert "'cms.import_points'" in str(err.value) and "'6.9'" in str(err.value) and "6.7" in str(err.value)


def test_left_out_students_are_not_written_and_are_listed(tmp_path):
    twice = graded(
        make_report([("Bernd Brot", "0700002"), ("Hans Huhn", "7000008")]),
        {"6.1": 1, "6.2": 1, "6.3": 0, "6.4": 0, "6.5": 0, PART3: 0, "6.7": 0},
    )
    no_id = graded(
        make_report([("Ida Igel", "7000009"), ("Jan Ohne", "")], stem="Ida_Igel_7000009_Jan_Ohne"),
        {"6.1": 1, "6.2": 0, "6.3": 0, "6.4": 0, "6.5": 0, PART3: 0, "6.7": 0},
    )
    short = graded(
        make_report([("Karl Kurz", "700001"), ("Lena Lang", "7000011")]),
        {"6.1": 2, "6.2": 0, "6.3": 0, "6.4": 0, "6.5": 0, PART3: 0, "6.7": 0},
    )
    reports = [ALICE, twice, no_id, short]
    for stem, report in reports:
        write_report(report, tmp_path, stem)
    warnings = write_batch_outputs(reports, tmp_path, CONFIG)
    assert (tmp_path / IMPORT_NAME).read_bytes() == (
        b"mtknr;points\r\n7000001;9\r\n7000008;3.5\r\n7000009;2.5\r\n7000011;3.5\r\n"
    )
    said = "\n".join(warnings)
    assert "Bernd Brot (0700002)" in said and f"left out of cms.csv and {IMPORT_NAME}" in said
    assert "Jan Ohne" in said
    assert f"Karl Kurz (700001) of {short[0]!r}: left out of {IMPORT_NAME}: not a matriculation number of 7" in said
    page = (tmp_path / "summary.html").read_text(encoding="utf-8")
    assert "Karl Kurz (700001)" in page and "Bernd Brot (0700002)" in page
    assert not (tmp_path / MISSING_NAME).exists()  # no roster, no list of who is missing


@pytest.mark.parametrize(
    "value, text",
    [
        (9, "9"),
        (9.0, "9"),
        (10.0, "10"),
        (100, "100"),
        (7.5, "7.5"),
        (7.50, "7.5"),
        (0.25, "0.25"),
        (0, "0"),
        (-0.0, "0"),
        (0.1 + 0.2, "0.3"),
        (1e-5, "0"),
        (0.0001, "0.0001"),
        (2.675, "2.675"),
        (1e16, "10000000000000000"),
        (3.14159265, "3.1416"),
    ],
)
def test_points_are_written_as_the_course_system_reads_them(value, text):
    assert import_number(value) == text


def test_round_trip_through_a_parser_of_the_format():
    rng = random.Random(20)
    lines, expected = [], {}
    for _i in range(300):
        sid = f"{rng.randrange(10**7):07d}"
        value = rng.choice(
            [0.0, -0.0, 1e-5, 0.1 + 0.2, rng.randrange(0, 1150) / 100, rng.random() * 12, rng.randrange(0, 48) * 0.25]
        )
        if sid not in expected:
            lines.append((sid, value))
            expected[sid] = Decimal(repr(round(value, 4))) + 0  # + 0: -0 is 0
    parsed = parse_cms_import(render_import(sorted(lines)))
    assert parsed == expected
    assert list(parsed) == sorted(parsed)
    assert parse_cms_import(render_import([])) == {}


def test_the_written_file_round_trips_with_reports(tmp_path):
    for stem, report in REPORTS:
        write_report(report, tmp_path, stem)
    write_batch_outputs(REPORTS, tmp_path, config(import_points="total+bonus", import_pending=True))
    parsed = parse_cms_import((tmp_path / IMPORT_NAME).read_bytes())
    expected = {
        m.student_id: Decimal(repr(r.total.points + r.total.bonus_points))
        for _, r in REPORTS
        for m in r.submission.team
    }
    assert parsed == expected


# ---------------------------------------------------------------- the roster

ROSTER = (
    "Matrikelnummer;Vorname;Nachname;E-Mail\r\n"
    "7000001;Anna;Äpfel;anna@example.org\r\n"
    "0700002;Bernd;Brot;bernd@example.org\r\n"
    "7000003;Carla;Chen;carla@example.org\r\n"
    "7000004;Dieter;Dörr;dieter@example.org\r\n"
    "7000006;Fritz;Fink;fritz@example.org\r\n"
    "7000007;Regina;Gans;gina@example.org\r\n"
    "7000010;Zoe;Zander;zoe@example.org\r\n"
    '7000011;"=HYPERLINK(""http://x"")";<script>alert(1)</script>;evil@example.org\r\n'
).encode("cp1252")

# Bob's team as submitted: Dieter typed 7000044 (one digit off his 7000004), Eva is not enrolled.
BOB_TYPO = make_report(
    [("Carla Chen", "7000003"), ("Dieter Doerr", "7000044"), ("Eva Ernst", "7359146")],
    failing=("baseline.forward",),
    review=("baseline.accuracies",),
)


@pytest.fixture
def roster_file(tmp_path) -> Path:
    path = tmp_path / "students.csv"
    path.write_bytes(ROSTER)
    return path


def test_names_are_the_same_beyond_case_accents_and_order():
    assert same_name("Jürgen Müller", "juergen mueller")
    assert same_name("Jürgen Müller", "Jurgen Muller")
    assert same_name("Müller, Jürgen", "Jürgen MÜLLER")
    assert same_name("Jo\u0308rg Stra\u00dfe", "Jörg Strasse")  # decomposed umlaut, ß
    assert same_name("Anna-Lena Schmidt", "Anna Lena Schmidt")
    assert not same_name("Gina Gans", "Regina Gans")
    assert not same_name("Anna Schmidt", "Anna Maria Schmidt")
    assert not same_name("", "")


@pytest.mark.parametrize(
    "typed, enrolled, relation",
    [
        ("7000044", "7000004", "one digit differs"),
        ("7000040", "7000004", "two neighbouring digits swapped"),
        ("700004", "7000004", "one digit missing"),
        ("70000044", "7000004", "one digit more"),
        ("7000004", "7000004", None),
        ("7000440", "7000004", None),
        ("7400004", "7000044", None),
    ],
)
def test_ids_one_edit_away(typed, enrolled, relation):
    assert id_relation(typed, enrolled) == relation


def test_the_roster_checks_every_id_idempotently(tmp_path, roster_file):
    roster = read_roster(roster_file)
    stem, report = BOB_TYPO
    write_report(report, tmp_path, stem)
    ((_, checked),) = apply_roster([BOB_TYPO], roster, tmp_path)
    codes = [(v.code, v.message) for v in checked.violations]
    assert [c for c, _ in codes] == [NOT_ENROLLED, NOT_ENROLLED]
    dieter, eva = (m for _, m in codes)
    assert dieter.startswith("student id 7000044 (Dieter Doerr) is not on the course's list of students (students.csv)")
    assert "Closest enrolled: Dieter Dörr (7000004: same name, one digit differs)" in dieter
    assert "Closest enrolled: nobody" in eva
    assert read_report(tmp_path / f"{stem}.json").violations == checked.violations  # the report on disk says so
    # applied again: the same; with the id corrected on the roster: gone; without a roster: gone
    assert apply_roster([(stem, checked)], roster, tmp_path)[0][1].violations == checked.violations
    fixed = roster_file.read_bytes().replace(b"7000004;", b"7000044;") + b"7359146;Eva;Ernst;eva@example.org\r\n"
    roster_file.write_bytes(fixed)
    assert apply_roster([(stem, checked)], read_roster(roster_file), tmp_path)[0][1].violations == []
    assert apply_roster([(stem, checked)], None, tmp_path)[0][1].violations == []
    assert read_report(tmp_path / f"{stem}.json").violations == []


def test_a_name_other_than_the_rosters_is_a_warning_with_both(roster_file):
    ((_, checked),) = apply_roster([CARL], read_roster(roster_file), Path("/nonexistent"))
    assert [(v.code, v.severity) for v in checked.violations] == [(ROSTER_NAME, "warning")]
    assert "'Gina Gans' in the file name but 'Regina Gans' on the course's list" in checked.violations[0].message


def test_other_violations_are_kept(tmp_path, roster_file):
    own = Violation(code="name.pattern", severity="warning", message="a name")
    stem, report = make_report([("Zoe Zander", "7000010"), ("Max Muster", "7999999")], violations=[own])
    ((_, checked),) = apply_roster([(stem, report)], read_roster(roster_file), tmp_path)
    assert checked.violations[0] == own and [v.code for v in checked.violations[1:]] == [NOT_ENROLLED]


def test_missing_students_leave_out_a_probable_typo(roster_file):
    roster = read_roster(roster_file)
    missing = missing_students([ALICE, BOB_TYPO, CARL], roster)
    assert [s.student_id for s in missing.students] == ["7000010", "7000011"]
    assert [(s.student_id, typed) for s, typed, _ in missing.probably_mistyped] == [("7000004", "7000044")]


def test_a_member_named_without_an_id_is_not_missing(tmp_path, roster_file):
    """Zoe submitted, but the file name gives her no id: she must not be written as 0."""
    stem, report = make_report([("Anna Äpfel", "7000001"), ("Zoe Zander", "")], stem="Anna_Äpfel_7000001_Zoe_Zander")
    write_report(report, tmp_path, stem)
    write_batch_outputs([(stem, report)], tmp_path, config(roster=str(roster_file), import_missing_as_zero=True))
    data = (tmp_path / IMPORT_NAME).read_bytes()
    assert b"7000010" not in data and b"0700002;0\r\n" in data
    page = (tmp_path / "summary.html").read_text(encoding="utf-8")
    assert "Not listed: Zoe Zander (7000010)" in page and "without an id" in page


def test_with_a_roster_the_import_lists_the_not_enrolled_and_the_missing(tmp_path, roster_file):
    # complete: 1 + 1 + the automatic 1 (the check to review confirmed at 0) = 3
    bob = graded(
        BOB_TYPO,
        {"6.1": 1, "6.2": 1, "6.3": 0, "6.4": 0, "6.5": 0, PART3: 0, "6.7": 0},
        overrides={"baseline.accuracies": 0},
    )
    reports = [ALICE, bob, CARL]
    for stem, report in reports:
        write_report(report, tmp_path, stem)
    cfg = config(roster=str(roster_file), import_missing_as_zero=True)
    warnings = write_batch_outputs(reports, tmp_path, cfg)
    # Carla is written; Dieter (typo) and Eva (not enrolled) are not; Zoe and the evil one are missing: 0
    assert (tmp_path / IMPORT_NAME).read_bytes() == (
        b"mtknr;points\r\n0700002;9\r\n7000001;9\r\n7000003;3\r\n7000006;6.25\r\n7000007;6.25\r\n"
        b"7000010;0\r\n7000011;0\r\n"
    )
    said = "\n".join(warnings)
    assert (
        f"student Dieter Doerr (7000044) of {bob[0]!r}: left out of {IMPORT_NAME}: not on the course's list "
        "of students; closest enrolled: Dieter Dörr (7000004: same name, one digit differs)"
    ) in said
    assert f"student Eva Ernst (7359146) of {bob[0]!r}: left out of {IMPORT_NAME}" in said
    assert "2 enrolled student(s) submitted nothing: Zoe Zander (7000010)" in said
    assert f"written with 0 points in {IMPORT_NAME}" in said
    assert "'Gina Gans' in the file name but 'Regina Gans'" in said
    # missing.csv: [cms]'s spreadsheet format (BOM, ids quoted), formulas defused
    assert (tmp_path / MISSING_NAME).read_bytes() == (
        '\ufeffstudent_id,name,email\r\n"7000010",Zoe Zander,zoe@example.org\r\n'
        '"7000011","\'=HYPERLINK(""http://x"") <script>alert(1)</script>",evil@example.org\r\n'
    ).encode("utf-8")
    page = (tmp_path / "summary.html").read_text(encoding="utf-8")
    section = page.split("Enrolled students without a submission", 1)[1].split("<h2>", 1)[0]
    assert "zoe@example.org" in section and "&lt;script&gt;alert(1)&lt;/script&gt;" in section
    assert "<script>" not in page
    assert "Not listed: Dieter Dörr (7000004)" in section
    assert "identity.not_enrolled" in page  # the team needs a tutor
    # the team's own page does not show other students' names and ids
    feedback = (tmp_path / "feedback" / f"{bob[0]}.html").read_text(encoding="utf-8")
    assert "7000044" in feedback and "A tutor matches it with the course" in feedback
    assert "Dieter Dörr (7000004" not in feedback
    # the roster changes: Dieter's id corrected, Eva enrolled: nothing regraded, everything follows
    roster_file.write_bytes(ROSTER.replace(b"7000004;", b"7000044;") + b"7359146;Eva;Ernst;eva@x\r\n")
    warnings = write_batch_outputs([(s, read_report(tmp_path / f"{s}.json")) for s, _ in reports], tmp_path, cfg)
    assert b"7000044;3\r\n" in (tmp_path / IMPORT_NAME).read_bytes()
    assert b"7359146;3\r\n" in (tmp_path / IMPORT_NAME).read_bytes()
    assert read_report(tmp_path / f"{bob[0]}.json").violations == []


def test_a_shard_lists_no_missing_students(tmp_path, roster_file):
    (tmp_path / ".shard.json").write_text('{"shard": "1/2"}')
    for stem, report in REPORTS:
        write_report(report, tmp_path, stem)
    warnings = write_batch_outputs(REPORTS, tmp_path, config(roster=str(roster_file), import_missing_as_zero=True))
    assert not (tmp_path / MISSING_NAME).exists()
    assert b";0\r\n" not in (tmp_path / IMPORT_NAME).read_bytes()  # nobody written as 0 from a part of a course
    assert any("a shard" in w and "grader merge" in w for w in warnings)


def test_an_unreadable_roster_removes_the_import_files(tmp_path, roster_file):
    for stem, report in REPORTS:
        write_report(report, tmp_path, stem)
    cfg = config(roster=str(roster_file))
    write_batch_outputs(REPORTS, tmp_path, cfg)
    assert (tmp_path / IMPORT_NAME).exists() and (tmp_path / MISSING_NAME).exists()
    roster_file.write_bytes(b"mtknr;Name\r\n7000001;Anna\r\nabc;Bernd\r\n")
    with pytest.raises(RosterError, match="line 3"):
        write_batch_outputs(REPORTS, tmp_path, cfg)
    assert not (tmp_path / IMPORT_NAME).exists() and not (tmp_path / MISSING_NAME).exists()


def test_a_file_that_cannot_be_written_is_not_left_stale(tmp_path, monkeypatch):
    for stem, report in REPORTS:
        write_report(report, tmp_path, stem)
    write_batch_outputs(REPORTS, tmp_path, CONFIG)
    assert (tmp_path / IMPORT_NAME).exists()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("grader.report.cms_import.render_import", broken)
    warnings = write_batch_outputs(REPORTS, tmp_path, CONFIG)
    assert any(w.startswith(f"{IMPORT_NAME} not written: OSError: disk full") for w in warnings)
    assert not (tmp_path / IMPORT_NAME).exists()
    assert (tmp_path / "cms.csv").exists() and (tmp_path / "summary.html").exists()


def test_without_a_roster_missing_csv_goes(tmp_path, roster_file):
    for stem, report in REPORTS:
        write_report(report, tmp_path, stem)
    write_batch_outputs(REPORTS, tmp_path, config(roster=str(roster_file)))
    assert (tmp_path / MISSING_NAME).exists()
    write_batch_outputs(REPORTS, tmp_path, CONFIG)
    assert not (tmp_path / MISSING_NAME).exists()
    page = (tmp_path / "summary.html").read_text(encoding="utf-8")
    assert "Enrolled students without a submission" not in page


def test_the_sheet_and_the_roster_together(tmp_path, roster_file):
    """Tutors' points arrive through manual_points.csv: the import follows them, the roster's
    violations stay."""
    reports = [ALICE[0], BOB_TYPO[0]]
    items = [make_report([("Anna Äpfel", "7000001"), ("Bernd Brot", "0700002")]), BOB_TYPO]
    for stem, report in items:
        write_report(report, tmp_path, stem)
    cfg = config(roster=str(roster_file))
    write_batch_outputs(items, tmp_path, cfg)
    assert (tmp_path / IMPORT_NAME).read_bytes() == b"mtknr;points\r\n"
    sheet = tmp_path / MANUAL_POINTS_NAME
    rows = list(csv.reader(io.StringIO(sheet.read_text(encoding="utf-8-sig"))))
    header = rows[0]
    values = {"6.1": "3,5", "6.2": "1.25", "6.3": "0.5", "6.4": "1", "6.5": "1", f"{PART3} ": "0.25", "6.7": "0"}
    for row in rows[1:]:
        if row[0] == reports[0]:
            for prefix, value in values.items():
                row[next(i for i, h in enumerate(header) if h.startswith(prefix))] = value
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    sheet.write_text(buffer.getvalue(), encoding="utf-8")
    write_batch_outputs([(s, read_report(tmp_path / f"{s}.json")) for s in reports], tmp_path, cfg)
    assert (tmp_path / IMPORT_NAME).read_bytes() == b"mtknr;points\r\n0700002;9\r\n7000001;9\r\n"
    assert [v.code for v in read_report(tmp_path / f"{BOB_TYPO[0]}.json").violations] == [NOT_ENROLLED] * 2
