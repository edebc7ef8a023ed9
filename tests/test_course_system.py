"""From the course system's list of students to its import, end to end: a real `grader grade` and
`grader merge` (subprocesses, real kernels) on small notebooks that do not train, on tiny generated
data, with a roster exported by Excel in a German locale.

The course: 12 students on the roster; 4 teams submitted, one with a typo in an id (Lukas Weber's
7045678 typed 7045687), one with a member who is not enrolled (Mia Neumann); 3 students submitted
nothing. Tutors then grade two teams completely and one in part, and `grader merge` writes the
complete grades only."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import needs_torch

from grader.models import Report
from grader.sheets.sheet6 import SHEET

pytestmark = [pytest.mark.kernel, needs_torch]

# As Excel saves "CSV (Trennzeichen-getrennt)" in a German locale: ';', Windows-1252, CRLF, the
# course system's columns and one more, the empty rows of the used range at the end.
ROSTER = (
    "Matrikelnummer;Vorname;Nachname;E-Mail;Studiengang\r\n"
    "7012345;Erika;Mustermann;erika@uni-saarland.de;Informatik\r\n"
    "7023456;Jürgen;Müller;juergen@uni-saarland.de;Informatik\r\n"
    "7034567;Anna;Schmidt;anna@uni-saarland.de;Data Science\r\n"
    "7045678;Lukas;Weber;lukas@uni-saarland.de;Informatik\r\n"
    "7056789;Sophie;Becker;sophie@uni-saarland.de;Mathematik\r\n"
    "7067890;Jonas;Fischer;jonas@uni-saarland.de;Informatik\r\n"
    "7078901;Lea;Hoffmann;lea@uni-saarland.de;Physik\r\n"
    "7089012;Paul;Koch;paul@uni-saarland.de;Informatik\r\n"
    "7090123;Marie;Richter;marie@uni-saarland.de;Informatik\r\n"
    "7101234;Felix;Klein;felix@uni-saarland.de;Informatik\r\n"
    "7112345;Laura;Wolf;laura@uni-saarland.de;Computerlinguistik\r\n"
    "0712340;Tim;Schröder;tim@uni-saarland.de;Informatik\r\n"
    ";;;;\r\n;;;;\r\n"
).encode("cp1252")

COMPLETE = "Juergen_Mueller_7023456_Erika_Mustermann_7012345"  # the roster spells him Jürgen Müller
TYPO = "Anna_Schmidt_7034567_Lukas_Weber_7045687"
NOT_ENROLLED = "Sophie_Becker_7056789_Jonas_Fischer_7067890_Mia_Neumann_7391582"
UNGRADED = "Lea_Hoffmann_7078901_Paul_Koch_7089012_Marie_Richter_7090123"
TEAMS = [COMPLETE, TYPO, NOT_ENROLLED, UNGRADED]


@pytest.fixture
def course(tmp_path):
    from grader.calibration.store import entry_key
    from grader.config import load_config
    from grader.data.staging import stage_dataset
    from grader.engine.batch import cache_dir
    from grader.engine.calibrate import calibration_file

    subs = tmp_path / "Abgaben"
    subs.mkdir()
    for team in TEAMS:
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell("answer = 6 * 7\nprint(answer)")]
        nbformat.write(nb, subs / f"{team}.ipynb")
    (tmp_path / "students.csv").write_bytes(ROSTER)
    config = tmp_path / "grading.toml"
    config.write_text(
        '[sheet]\nname = "sheet6"\n[data]\nsource = ""\ntrain_size = 256\ntest_size = 128\n[run]\nworkers = 2\n'
        '[cms]\nroster = "students.csv"\nimport_missing_as_zero = true\n'
    )
    staged = stage_dataset(load_config(config).data, None, cache_dir() / "data", SHEET.dataset)
    calibration = calibration_file()
    entries = json.loads(calibration.read_text()) if calibration.exists() else {}
    entries[entry_key(SHEET.name, staged.info.fingerprint)] = {"baseline": [[0.1] * 5], "batchnorm": [[0.1] * 5]}
    calibration.write_text(json.dumps(entries))
    return tmp_path, subs, config


def grader(config: Path, *args: str) -> tuple[int, str]:
    run = subprocess.run(
        [sys.executable, "-m", "grader", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COLUMNS": "200"},
    )
    return run.returncode, run.stdout + run.stderr


def fill(sheet: Path, points: dict[str, dict[str, str]]) -> None:
    """A tutor's points in manual_points.csv: {stem: {column prefix: value}}."""
    rows = list(csv.reader(io.StringIO(sheet.read_text(encoding="utf-8-sig"))))
    header = rows[0]
    for row in rows[1:]:
        for prefix, value in points.get(row[0], {}).items():
            row[next(i for i, h in enumerate(header) if h.startswith(prefix))] = value
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    sheet.write_text(buffer.getvalue(), encoding="utf-8")


def test_from_the_roster_to_the_course_systems_import(course):
    root, subs, config = course
    out = root / "reports"
    code, output = grader(config, "grade", str(subs), "--out", str(out))
    assert code == 0, output
    reports = {p.stem: Report.model_validate_json(p.read_bytes()) for p in out.glob("*.json")}
    assert sorted(reports) == sorted(TEAMS)
    assert all(
        r.auto_points == 0 and not any(c.status == "needs_review" for c in r.checks) for r in reports.values()
    ), "the notebooks were meant to earn no automatic points"

    # Nobody is completely graded yet: only the 3 students who submitted nothing, as 0.
    assert (out / "cms_import.csv").read_bytes() == b"mtknr;points\r\n0712340;0\r\n7101234;0\r\n7112345;0\r\n"
    assert (out / "missing.csv").read_bytes() == (
        '\ufeffstudent_id,name,email\r\n"0712340",Tim Schröder,tim@uni-saarland.de\r\n'
        '"7101234",Felix Klein,felix@uni-saarland.de\r\n"7112345",Laura Wolf,laura@uni-saarland.de\r\n'
    ).encode("utf-8")

    # The typo, with the enrolled student it most likely means: in the report, on the console, in summary.html.
    typo = [v for v in reports[TYPO].violations if v.code == "identity.not_enrolled"]
    assert len(typo) == 1 and "student id 7045687 (Lukas Weber)" in typo[0].message
    likely = "Lukas Weber (7045678: same name, two neighbouring digits swapped)"
    assert typo[0].message.endswith("Closest enrolled: " + likely)
    console = " ".join(output.split())
    assert f"student Lukas Weber (7045687) of '{TYPO}': left out of cms_import.csv" in console
    assert likely in console
    page = (out / "summary.html").read_text(encoding="utf-8")
    assert "student id 7045687 (Lukas Weber)" in page and likely in page
    # the member who is not enrolled
    mia = [v for v in reports[NOT_ENROLLED].violations if v.code == "identity.not_enrolled"]
    assert len(mia) == 1 and "7391582 (Mia Neumann)" in mia[0].message and "Closest enrolled: nobody" in mia[0].message
    # the 3 who did not submit: listed, and Lukas (who did, under a typo) is not among them
    assert (
        "3 enrolled student(s) submitted nothing: Tim Schröder (0712340), Felix Klein (7101234), "
        "Laura Wolf (7112345)" in console
    )
    section = page.split("Enrolled students without a submission", 1)[1].split("<h2>", 1)[0]
    for name in ("Tim Schröder", "Felix Klein", "Laura Wolf", "felix@uni-saarland.de"):
        assert name in section
    assert "Not listed: Lukas Weber (7045678)" in section
    # Jürgen wrote his name as Juergen Mueller: the same name, no warning
    assert not any(v.code == "identity.roster_name" for r in reports.values() for v in r.violations)

    # Tutors grade two teams completely and one in part; `grader merge` writes the complete grades only.
    full = {"6.1": "3,5", "6.2": "1", "6.3": "0.5", "6.4": "1.5", "6.5": "1", "6.6 part 3": "0.25", "6.7": "1"}
    fill(
        out / "manual_points.csv",
        {
            COMPLETE: full,
            TYPO: {"6.1": "2", "6.2": "0.5", "6.3": "0.25", "6.4": "1", "6.5": "0", "6.6 part 3": "0", "6.7": "0"},
            NOT_ENROLLED: {"6.1": "3"},
        },
    )
    code, output = grader(config, "merge", str(out), "--out", str(out))
    assert code == 0, output
    # 3.5 + 1 + 0.5 + 1.5 + 1 + 0.25 = 7.75 (the bonus is not imported); 2 + 0.5 + 0.25 + 1 = 3.75 for
    # Anna, while Lukas under his mistyped id is left out; the partly graded team is not written.
    assert (out / "cms_import.csv").read_bytes() == (
        b"mtknr;points\r\n0712340;0\r\n7012345;7.75\r\n7023456;7.75\r\n7034567;3.75\r\n7101234;0\r\n7112345;0\r\n"
    )
    merged = Report.model_validate_json((out / f"{TYPO}.json").read_bytes())
    assert merged.total.complete and [v.code for v in merged.violations if v.code.startswith("identity.not")] == [
        "identity.not_enrolled"
    ]
