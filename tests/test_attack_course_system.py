"""Attacks on what goes to the course system (cms_import.csv, missing.csv) and on the roster, as a
broken upload, a hand-edited report or a spreadsheet's export would make them. No kernels."""

from __future__ import annotations

import pytest
from test_cms_import import ALICE, CARL, CONFIG, PART3, ROSTER, config, graded, parse_cms_import
from test_report_outputs import make_report

from grader.errors import RosterError
from grader.report.cms_import import IMPORT_NAME, import_number, plan_import, write_import_files
from grader.report.enrolment import missing_students
from grader.report.outputs import write_batch_outputs
from grader.report.roster import read_roster
from grader.report.store import read_report, write_report


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_point_value_that_is_not_a_number_is_never_written(value):
    with pytest.raises(ValueError):
        import_number(value)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_report_with_points_that_are_not_a_number_leaves_its_students_out(tmp_path, value):
    """A report read back from a shard (JSON allows NaN and Infinity) that says its total is not a
    number: its students are left out and listed, everyone else is written."""
    stem, report = CARL
    broken = (stem, report.model_copy(update={"total": report.total.model_copy(update={"points": value})}))
    reports = [ALICE, broken]
    for s, r in reports:
        write_report(r, tmp_path, s)
    result = write_import_files(reports, tmp_path, CONFIG, None)
    parsed = parse_cms_import((tmp_path / IMPORT_NAME).read_bytes())
    assert set(parsed) == {"7000001", "0700002"}
    said = "\n".join(result.warnings)
    assert "7000006" in said and "7000007" in said and "not a number" in said, said


# ---------------------------------------------------------------- who is written as 0


@pytest.fixture
def roster(tmp_path):
    path = tmp_path / "students.csv"
    path.write_bytes(ROSTER)
    return read_roster(path)


@pytest.mark.parametrize("team", [[], [("Zoë Z.", "")]], ids=["no team", "a member without id nor known name"])
def test_nobody_is_written_as_0_while_a_submission_names_nobody(tmp_path, roster, team):
    """`submission.zip` names no team: whoever sent it is on the roster and looks as if they had
    submitted nothing. Writing the missing as 0 would give its authors 0 for work they handed in."""
    unnamed = make_report(team, stem="submission")
    reports = [ALICE, unnamed]
    cfg = config(import_missing_as_zero=True)
    plan = plan_import(reports, cfg, roster)
    assert not [sid for sid, points in plan.lines if points == 0], plan.lines
    result = write_import_files(reports, tmp_path, cfg, roster)
    assert b";0\r\n" not in (tmp_path / IMPORT_NAME).read_bytes()
    said = "\n".join(result.warnings)
    assert "'submission'" in said and "nobody is written as 0" in said, said
    assert (tmp_path / "missing.csv").exists()  # still listed for the staff to write to


def test_a_typo_in_the_id_and_the_name_keeps_its_student_off_the_missing(roster):
    """Dieter typed 7000044 (his id is 7000004) and spelled his name 'Dieter Dörrr': the id is one
    digit away, so he probably submitted; he must not be written as 0."""
    typo = make_report([("Carla Chen", "7000003"), ("Dieter Dörrr", "7000044")])
    missing = missing_students([ALICE, typo, CARL], roster)
    assert "7000004" not in [s.student_id for s in missing.students]
    assert [(s.student_id, typed) for s, typed, _ in missing.probably_mistyped] == [("7000004", "7000044")]


# ---------------------------------------------------------------- the roster as files come


def test_a_utf8_roster_with_a_few_windows_1252_lines_reads_both(tmp_path):
    """A list saved as UTF-8, then a few rows pasted in by an editor that wrote Windows-1252: every
    name as it is meant, neither garbled ('JÃ¼rgen') nor refused."""
    data = (
        "\ufeffMatrikelnummer;Vorname;Nachname\r\n7000001;Jürgen;Müller\r\n".encode("utf-8")
        + "7000002;Jörg;Weiß\r\n".encode("cp1252")
        + "7000003;Zoë;Łukasiewicz\r\n".encode()
    )
    path = tmp_path / "students.csv"
    path.write_bytes(data)
    names = {sid: s.name for sid, s in read_roster(path).students.items()}
    assert names == {"7000001": "Jürgen Müller", "7000002": "Jörg Weiß", "7000003": "Zoë Łukasiewicz"}


def test_two_columns_of_ids_that_disagree_stop_with_a_message(tmp_path):
    """Two columns named `Matrikelnummer` (a join of two exports): which one holds the ids cannot be
    told, and taking the first would check every team against the wrong numbers."""
    path = tmp_path / "students.csv"
    path.write_bytes(b"Matrikelnummer;Name;Matrikelnummer\r\n7000001;Anna A;7000001\r\n7000002;Bernd B;7000009\r\n")
    with pytest.raises(RosterError) as err:
        read_roster(path)
    message = str(err.value)
    assert str(path) in message and "line 3" in message and "columns 1 and 3" in message, message
    assert "7000002" in message and "7000009" in message, message
    # the same numbers twice are one column written twice: read
    path.write_bytes(b"Matrikelnummer;Name;Matrikelnummer\r\n7000001;Anna A;7000001\r\n7000002;Bernd B;\r\n")
    assert list(read_roster(path).students) == ["7000001", "7000002"]


# ---------------------------------------------------------------- what the team's own page shows


def test_the_teams_page_does_not_show_the_name_the_roster_has_for_an_id(tmp_path):
    """Gina typed 7000007: the roster's name for it is 'Regina Gans'. Had she mistyped her id into
    another student's, her page would tell her that student's name; the tutors' summary has both."""
    path = tmp_path / "students.csv"
    path.write_bytes(ROSTER)
    for stem, report in (ALICE, CARL):
        write_report(report, tmp_path, stem)
    warnings = write_batch_outputs([ALICE, CARL], tmp_path, config(roster=str(path)))
    assert any("'Regina Gans'" in w for w in warnings)
    page = (tmp_path / "feedback" / f"{CARL[0]}.html").read_text(encoding="utf-8")
    assert "Regina" not in page
    assert "7000007" in page and "another name" in page, page
    assert "Regina Gans" in (tmp_path / "summary.html").read_text(encoding="utf-8")


def test_a_member_named_twice_in_one_file_name_is_one_student(tmp_path):
    """`Anna_Äpfel_7000001_Anna_Äpfel_7000001.zip`: one student written twice, not a student in two teams."""
    stem, report = graded(
        make_report([("Anna Äpfel", "7000001"), ("Anna Äpfel", "7000001")]),
        {"6.1": 3.5, "6.2": 1.25, "6.3": 0.5, "6.4": 1, "6.5": 1, PART3: 0.25, "6.7": 0.75},
    )
    write_report(report, tmp_path, stem)
    warnings = write_batch_outputs([(stem, report)], tmp_path, CONFIG)
    assert parse_cms_import((tmp_path / IMPORT_NAME).read_bytes()) == {"7000001": 9}
    assert not any("teams" in w for w in warnings), warnings
    rows = (tmp_path / "cms.csv").read_text(encoding="utf-8-sig").splitlines()[1:]
    assert [row.split(",")[0] for row in rows] == ['"7000001"']


# ---------------------------------------------------------------- a roster of a whole university


def _big_roster(tmp_path, n: int):
    path = tmp_path / "students.csv"
    path.write_bytes(
        b"mtknr;Vorname;Nachname\r\n" + b"".join(b"%07d;Vor%d;Nach%d\r\n" % (7000000 + i, i, i) for i in range(n))
    )
    return read_roster(path)


def test_members_not_enrolled_are_not_compared_with_every_enrolled_student(tmp_path, monkeypatch):
    """A roster of 5,000 (the wrong course's, or the university's) and 20 teams whose members are not
    on it: the closest enrolled students are looked up, not searched for among all 5,000 for each
    member, which made `grade` and `merge` take minutes with a list of 50,000."""
    import grader.report.enrolment as enrolment

    roster = _big_roster(tmp_path, 5000)
    reports = [
        make_report([(f"Some One{i}", f"{8000000 + i}"), (f"Vor{i} Nach{i}", f"{7000000 + 2 * i}1")], stem=f"team{i}")
        for i in range(20)
    ]
    compared = {"n": 0}
    for name in ("same_name", "id_relation"):
        original = getattr(enrolment, name)

        def counting(*args, original=original):
            compared["n"] += 1
            return original(*args)

        monkeypatch.setattr(enrolment, name, counting)
    checked = enrolment.apply_roster(reports, roster, tmp_path)
    enrolment.missing_students(checked, roster)
    assert compared["n"] < 40 * 100, compared  # 40 members, each compared with a few (was 40 × 5,000 × 2)
    # ... and who they may mean is still found: the same name, an id one digit more
    message = next(
        v.message for v in checked[3][1].violations if v.code == enrolment.NOT_ENROLLED and "70000061" in v.message
    )
    assert "Vor3 Nach3 (7000003: same name)" in message and "Vor6 Nach6 (7000006: one digit more)" in message, message


def test_the_closest_enrolled_are_those_a_search_of_the_whole_list_finds(tmp_path):
    """The lookup finds what comparing with every enrolled student finds, in the same order."""
    import random

    from grader.report.enrolment import Candidate, candidates, id_relation, same_name

    rng = random.Random(19)
    path = tmp_path / "students.csv"
    names = ["Jürgen Müller", "Juergen Mueller", "Anna Äpfel", "Müller, Jürgen", "Zoë O'Brien", "Li Na", "Na Li", ""]
    rows = {}
    while len(rows) < 400:
        rows[f"{rng.randrange(10**6, 10**6 + 3000):07d}"] = rng.choice(names)
    path.write_bytes(("mtknr;Name\r\n" + "".join(f"{sid};{name}\r\n" for sid, name in rows.items())).encode())
    roster = read_roster(path)

    def everyone(student_id, name):
        found = []
        for student in roster.students.values():
            reasons = (["same name"] if same_name(name, student.name) else []) + [
                r for r in [id_relation(student_id, student.student_id)] if r
            ]
            if reasons:
                found.append(Candidate(student, tuple(reasons)))
        return sorted(found, key=lambda c: (-len(c.reasons), not c.same_name, c.student.student_id))

    for _ in range(300):
        sid = rng.choice(list(rows))
        typed = rng.choice(
            [
                sid,
                sid[:-1],
                sid + "1",
                sid[:3] + "9" + sid[4:],
                sid[1] + sid[0] + sid[2:],
                "x" + sid[1:],
                f"{rng.randrange(10**7):07d}",
                "",
            ]
        )
        name = rng.choice(names + ["Someone Else", "jurgen muller"])
        assert candidates(typed, name, roster) == everyone(typed, name), (typed, name)


# ---------------------------------------------------------------- never a stale import


def test_an_interrupted_output_run_leaves_no_import_of_before(tmp_path, monkeypatch):
    """The roster now enrols Gina's id under her name: the reports are rewritten at once (their
    roster violations), then the run is interrupted (Ctrl-C) before the import is written. The
    import of before (written under the old roster) must not stay beside the rewritten reports."""
    path = tmp_path / "students.csv"
    path.write_bytes(ROSTER.replace(b"7000006;Fritz;Fink;fritz@example.org\r\n", b""))
    for stem, report in (ALICE, CARL):
        write_report(report, tmp_path, stem)
    cfg = config(roster=str(path))
    write_batch_outputs([ALICE, CARL], tmp_path, cfg)
    assert b"7000006" not in (tmp_path / IMPORT_NAME).read_bytes()  # not enrolled then: left out
    path.write_bytes(ROSTER)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("grader.report.outputs.write_cms_csv", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_batch_outputs([ALICE, CARL], tmp_path, cfg)
    assert not any(v.code == "identity.not_enrolled" for v in read_report(tmp_path / f"{CARL[0]}.json").violations)
    assert not (tmp_path / IMPORT_NAME).exists()


def test_ids_written_as_excel_text_formulas_are_read(tmp_path):
    """Exports meant for Excel keep a leading zero by writing the id as a text formula, `="0701234"`."""
    path = tmp_path / "students.csv"
    path.write_bytes(b'Matrikelnummer;Name\r\n="0701234";Anna A\r\n"=""7000002""";Bernd B\r\n')
    assert list(read_roster(path).students) == ["0701234", "7000002"]
