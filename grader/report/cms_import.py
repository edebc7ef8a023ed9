"""`cms_import.csv`: the points of the sheet as the course system imports them, and `missing.csv`.

The course system (Saarland's CMS) takes one testing's points as plain text: the header `mtknr;points`,
then one line `<matriculation number>;<points>` per student, every line ended by CRLF. So this file
is exactly that, whatever `[cms]` says for the files people open in spreadsheets: no BOM, no quotes,
a decimal point, no trailing zeros (`7.5`, `9`, never `9.0`, `-0` or `1e-05`), sorted by number.

Who is written (`[cms]`):
- `import_points`: "total" (the sheet's points without the bonus), "total+bonus", or one exercise.
- Only students whose grade is complete (every exercise graded; for one exercise, that exercise),
  unless `import_pending = true` (the points so far; pending exercises count 0, the automatic one
  its automatic points).
- Left out, and listed on the console and in summary.html: a student in two teams, a member without
  an id (as for cms.csv), an id that is not a matriculation number (digits, `[naming] id_digits` of
  them), and with a roster an id that is not on it: the course system would file it under nobody,
  or under somebody else.
- With a roster, in a whole course (not a shard): the enrolled students no submission names go to
  `missing.csv` (id, name, e-mail, in the spreadsheet format of `[cms]`), and with
  `import_missing_as_zero = true` into the import with 0 points.

Both files are written whenever the reports change, and removed when they cannot be written
correctly: an import file must never describe other reports than those beside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from grader.config import Config
from grader.models import Report
from grader.report.cms import IMPORT_NAME, NoStudentId, TwoTeams, students_of
from grader.report.csvfile import CsvFormat, Text, render_csv
from grader.report.enrolment import ROSTER_NAME, Missing, closest, missing_students
from grader.report.roster import Roster, Student, load_roster
from grader.report.store import SHARD_FILE
from grader.util.atomic import write_atomic

MISSING_NAME = "missing.csv"
HEADER = "mtknr;points"


def import_number(value: float) -> str:
    """Points as the course system reads them: `7.5`, `9`, `0.25`; rounded to 4 places like the reports.
    ValueError for NaN and infinities (a report read back may hold them): the system would take them
    as text or refuse the file."""
    if not math.isfinite(value):
        raise ValueError(f"{value!r} points: not a number the course system can take")
    number = Decimal(repr(round(float(value), 4)))
    if number == 0:
        return "0"
    return format(number.normalize(), "f")


def render_import(lines: list[tuple[str, float]]) -> bytes:
    """The file's bytes: the header, then `mtknr;points` per student in the order given, CRLF."""
    text = "".join(f"{line}\r\n" for line in [HEADER, *(f"{sid};{import_number(p)}" for sid, p in lines)])
    return text.encode("ascii")


def import_value(report: Report, what: str, automatic_exercise: str) -> tuple[float, bool]:
    """(points, complete) of `what` ("total", "total+bonus" or an exercise id) in the report."""
    if what == "total":
        return report.total.points, report.total.complete
    if what == "total+bonus":
        return report.total.points + report.total.bonus_points, report.total.complete
    exercise = next((e for e in report.exercises if e.id == what), None)
    if exercise is not None and exercise.points is not None:
        return exercise.points, True
    return (report.auto_points if what == automatic_exercise else 0.0), False


@dataclass(frozen=True)
class LeftOut:
    """A student the import cannot carry (besides TwoTeams and NoStudentId of cms.py)."""

    student_id: str
    name: str
    stem: str
    why: str

    def message(self) -> str:
        return f"student {self.name} ({self.student_id}) of {self.stem!r}: left out of {IMPORT_NAME}: {self.why}"


@dataclass
class ImportPlan:
    lines: list[tuple[str, float]] = field(default_factory=list)
    left_out: list[TwoTeams | NoStudentId | LeftOut] = field(default_factory=list)
    zeros: list[Student] = field(default_factory=list)
    missing: Missing | None = None  # with a roster, in a whole course


def plan_import(
    reports: list[tuple[str, Report]], config: Config, roster: Roster | None, *, whole_course: bool = True
) -> ImportPlan:
    """Who is written with which points, who is left out and why, who is missing."""
    cms = config.cms
    sheet = config.sheet_def
    plan = ImportPlan()
    grades, unmatched = students_of(reports)
    plan.left_out = list(unmatched)
    for grade in grades:
        if roster is not None and grade.student_id not in roster:
            plan.left_out.append(
                LeftOut(
                    grade.student_id,
                    grade.name,
                    grade.stem,
                    "not on the course's list of students; closest enrolled: "
                    + closest(grade.student_id, grade.name, roster),
                )
            )
            continue
        if roster is None and not (
            grade.student_id.isascii()
            and grade.student_id.isdigit()
            and len(grade.student_id) == config.naming.id_digits
        ):
            plan.left_out.append(
                LeftOut(
                    grade.student_id,
                    grade.name,
                    grade.stem,
                    f"not a matriculation number of {config.naming.id_digits} digits",
                )
            )
            continue
        points, complete = import_value(grade.report, cms.import_points, sheet.automatic_exercise)
        if not math.isfinite(points):
            plan.left_out.append(
                LeftOut(
                    grade.student_id,
                    grade.name,
                    grade.stem,
                    f"its points ({points!r}) are not a number: grade the team by hand",
                )
            )
            continue
        if complete or cms.import_pending:
            plan.lines.append((grade.student_id, points))
    if roster is not None and whole_course:
        plan.missing = missing_students(reports, roster)
        if cms.import_missing_as_zero and not plan.missing.unplaced:
            plan.zeros = list(plan.missing.students)
            plan.lines += [(s.student_id, 0.0) for s in plan.zeros]
    plan.lines.sort()
    return plan


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def remove_import_files(out_dir: Path) -> None:
    """Before reports change (a batch grades, a merge copies): the old files would describe others."""
    for name in (IMPORT_NAME, MISSING_NAME):
        _remove(Path(out_dir) / name)


def roster_for_outputs(config: Config, out_dir: Path) -> Roster | None:
    """The configured roster, read; when it cannot be, the import files go before the error does."""
    try:
        return load_roster(config)
    except BaseException:
        remove_import_files(out_dir)
        raise


def _warnings(
    reports: list[tuple[str, Report]], plan: ImportPlan, config: Config, roster: Roster | None, whole_course: bool
) -> list[str]:
    # TwoTeams and NoStudentId are said with cms.csv already.
    said = [s.message() for s in plan.left_out if isinstance(s, LeftOut)]
    said += [f"{stem}: {v.message}" for stem, r in reports for v in r.violations if v.code == ROSTER_NAME]
    if roster is not None and not whole_course:
        said.append(
            f"a shard: the enrolled students without a submission ({MISSING_NAME}) are listed by "
            "`grader merge`, which sees every shard"
        )
    if roster is None and config.cms.import_missing_as_zero:
        said.append(
            "[cms] import_missing_as_zero is set, but there is no roster ([cms] roster or --roster): "
            f"nobody is written as 0 in {IMPORT_NAME}"
        )
    if plan.missing is not None and plan.missing.students:
        shown = ", ".join(f"{s.name} ({s.student_id})" for s in plan.missing.students[:5])
        more = f" and {len(plan.missing.students) - 5} more" if len(plan.missing.students) > 5 else ""
        unplaced = plan.missing.unplaced
        if plan.zeros:
            fate = f"written with 0 points in {IMPORT_NAME}"
        elif config.cms.import_missing_as_zero and unplaced:
            stems = ", ".join(repr(stem) for stem in unplaced[:5]) + (" and more" if len(unplaced) > 5 else "")
            fate = (
                f"not in {IMPORT_NAME}: {len(unplaced)} submission(s) do not say who sent them ({stems}), "
                f"and any of these students may have, so nobody is written as 0 until the file names "
                f"name every member with their id"
            )
        else:
            fate = f"not in {IMPORT_NAME} ([cms] import_missing_as_zero = true writes them as 0)"
        said.append(
            f"{len(plan.missing.students)} enrolled student(s) submitted nothing: {shown}{more}; listed in "
            f"{MISSING_NAME} and summary.html, {fate}"
        )
    return said


@dataclass(frozen=True)
class ImportResult:
    warnings: list[str]
    missing: Missing | None


def write_import_files(
    reports: list[tuple[str, Report]],
    out_dir: Path,
    config: Config,
    roster: Roster | None,
    *,
    whole_course: bool | None = None,
) -> ImportResult:
    """Write cms_import.csv (and, with a roster, missing.csv). Whatever goes wrong removes both
    before the error goes on: no file may be left that describes other reports. `whole_course`:
    whether the reports are the whole course (missing students are listed only then; default: unless
    out_dir is a shard's folder)."""
    out_dir = Path(out_dir)
    if whole_course is None:  # a shard sees part of the course
        whole_course = not (out_dir / SHARD_FILE).exists()  # a shard holds part of a course
    try:
        plan = plan_import(reports, config, roster, whole_course=whole_course)
        write_atomic(out_dir / IMPORT_NAME, render_import(plan.lines))
        if plan.missing is not None:
            rows = [[Text(s.student_id), s.name, s.email] for s in plan.missing.students]
            write_atomic(
                out_dir / MISSING_NAME, render_csv(["student_id", "name", "email"], rows, CsvFormat.of(config))
            )
        else:
            _remove(out_dir / MISSING_NAME)
    except BaseException:
        remove_import_files(out_dir)
        raise
    return ImportResult(warnings=_warnings(reports, plan, config, roster, whole_course), missing=plan.missing)
