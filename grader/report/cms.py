"""`cms.csv`: one row per student for the course system's import.

Format decisions:
- UTF-8 with a byte-order mark by default (`[cms] bom = true`): Excel opens a UTF-8 file without a
  BOM as Windows-1252 and garbles umlauts ("MÃ¼ller"); Python (`utf-8-sig`), LibreOffice and most
  importers skip the BOM. Set `bom = false` for an importer that does not.
- Names are written in NFC, so an umlaut typed on a Mac (decomposed) matches the course system's.
- The matriculation number is text and always quoted (`"0701234"`), so a leading zero survives and
  importers that honour quotes (LibreOffice: "format quoted field as text") keep it as text. Excel
  drops the quotes when a file is opened by double-click: import it via Data → From Text with the
  column typed as Text instead.
- Delimiter and decimal separator come from `[cms] delimiter` / `[cms] decimal` (defaults `,` and
  `.`; `;` and `,` for German spreadsheets). Exercise cells are empty while the exercise is pending.
- `complete` says whether every part is graded: import only complete rows as final grades.
- A student in two teams is left out (and listed on the console and in summary.html) until the
  tutors decide which submission counts; so is a member the file name gives no student id (the
  course system could not match the row); everyone else is written.
- Text cells are protected against spreadsheet formulas (`report/csvfile.py`).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path

from grader.config import Config
from grader.models import Report
from grader.report.csvfile import CsvFormat, Text, render_csv
from grader.util.atomic import write_atomic

CMS_NAME = "cms.csv"
IMPORT_NAME = "cms_import.csv"  # the course system's own import (report/cms_import.py)


@dataclass(frozen=True)
class TwoTeams:
    """A student listed in more than one team: left out of cms.csv until the tutors decide."""

    student_id: str
    name: str
    stems: tuple[str, ...]

    def message(self) -> str:
        teams = " and ".join(repr(stem) for stem in self.stems)
        return (
            f"student {self.name} ({self.student_id}) is in {len(self.stems)} teams, {teams}: left out of "
            f"{CMS_NAME} and {IMPORT_NAME}. Decide which submission counts for them (remove or rename the "
            f"other one, or correct the name it was submitted under) and run `grader grade` again"
        )


@dataclass(frozen=True)
class NoStudentId:
    """A member the file name gives no student id: the course system could not match a row."""

    name: str
    stem: str

    def message(self) -> str:
        return (
            f"student {self.name} of {self.stem!r} has no student id (the file name names them without "
            f"one): left out of {CMS_NAME} and {IMPORT_NAME}. Add their id to the file name (or grade them "
            "by hand) and run `grader grade` again"
        )


@dataclass(frozen=True)
class StudentGrade:
    """One student of one team: what both files for the course system are made of."""

    student_id: str
    name: str
    stem: str
    report: Report


def students_of(reports: list[tuple[str, Report]]) -> tuple[list[StudentGrade], list[TwoTeams | NoStudentId]]:
    """Every student in exactly one team with a student id, sorted by id, and those left out: in
    more than one team (the course system must never get two grades for one person), or without a
    student id to be matched by."""
    teams_of: dict[str, list[StudentGrade]] = {}
    without_id: list[NoStudentId] = []
    for stem, report in reports:
        for member in report.submission.team:
            student_id = member.student_id.strip()
            name = unicodedata.normalize("NFC", member.name).strip()
            if not student_id:
                without_id.append(NoStudentId(name=name, stem=stem))
                continue
            found = teams_of.setdefault(student_id, [])
            if not any(g.stem == stem for g in found):  # named twice in one file name: one student
                found.append(StudentGrade(student_id, name, stem, report))
    once = [found[0] for found in teams_of.values() if len(found) == 1]
    twice = [
        TwoTeams(student_id=sid, name=found[0].name, stems=tuple(g.stem for g in found))
        for sid, found in sorted(teams_of.items())
        if len(found) > 1
    ]
    return sorted(once, key=lambda g: (g.student_id, g.stem)), [*twice, *without_id]


def cms_columns(exercise_ids: tuple[str, ...]) -> list[str]:
    return ["student_id", "name", "team", *exercise_ids, "total", "bonus", "complete"]


def cms_rows(
    reports: list[tuple[str, Report]], exercise_ids: tuple[str, ...]
) -> tuple[list[list], list[TwoTeams | NoStudentId]]:
    """The rows (numbers as numbers, ids as Text), sorted by student id, and the students left out
    (students_of); everyone else is written."""
    grades, left_out = students_of(reports)
    rows = []
    for grade in grades:
        report = grade.report
        exercises = {e.id: e.points for e in report.exercises}
        rows.append(
            [
                Text(grade.student_id),
                grade.name,
                grade.stem,
                *(exercises.get(e) for e in exercise_ids),
                report.total.points,
                report.total.bonus_points,
                "yes" if report.total.complete else "no",
            ]
        )
    return rows, left_out


def render_cms(reports: list[tuple[str, Report]], config: Config) -> tuple[bytes, list[TwoTeams | NoStudentId]]:
    exercise_ids = config.sheet_def.exercise_ids
    rows, left_out = cms_rows(reports, exercise_ids)
    return render_csv(cms_columns(exercise_ids), rows, CsvFormat.of(config)), left_out


def write_cms_csv(reports: list[tuple[str, Report]], out_dir: Path, config: Config) -> list[TwoTeams | NoStudentId]:
    """Write `<out_dir>/cms.csv` atomically, every student who is in exactly one team and has a
    student id; returns the students left out, for the tutors to decide."""
    data, left_out = render_cms(reports, config)
    write_atomic(Path(out_dir) / CMS_NAME, data)
    return left_out
