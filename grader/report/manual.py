"""The tutors' points applied to a report. The manual points file (manual_points.py) is the one source of the
tutors' points: `apply_manual` first undoes whatever an earlier merge put into a report, then applies
the sheet's row, so merging twice gives the same report and a cell emptied by a tutor makes its part
pending again.
"""

from __future__ import annotations

from grader.config import Config
from grader.models import CheckResult, ExerciseResult, Override, Report, auto_points
from grader.report.manual_points import ManualEntry
from grader.report.score import with_totals

# ---------------------------------------------------------------- applying


def _undo_overrides(checks: list[CheckResult]) -> list[CheckResult]:
    restored = []
    for check in checks:
        if check.override is not None:
            check = check.model_copy(update={"points": check.override.automatic, "override": None})
        restored.append(check)
    return restored


def automatic_only(report: Report, config: Config) -> Report:
    """The report as grading made it: tutors' points, overrides and comments taken out."""
    exercises = [e.model_copy(update={"points": None, "comment": None}) for e in report.exercises]
    update = {"checks": _undo_overrides(report.checks), "exercises": exercises, "comment": None}
    return with_totals(report.model_copy(update=update), config)


def pending_parts(report: Report) -> list[str]:
    """What still keeps the report from being complete, for tutors: parts and checks to review."""
    missing = [e.id for e in report.exercises if e.points is None]
    review = [c.id for c in report.checks if c.status == "needs_review" and not c.override]
    return missing + [f"review {c}" for c in review]


def apply_manual(report: Report, entry: ManualEntry | None, config: Config) -> Report:
    """The report with the sheet's row applied (None: no tutor points). The automatic exercise gets
    its points (automatic, after overrides, plus its manual part) once that part is graded and every
    check that asked for a review has an override; `total.complete` once every exercise has points."""
    sheet = config.sheet_def
    report = automatic_only(report, config)
    if entry is None:
        return report
    checks = []
    for check in report.checks:
        if check.id in entry.overrides:
            new = entry.overrides[check.id]
            check = check.model_copy(update={"points": new, "override": Override(automatic=check.points, tutor=new)})
        checks.append(check)
    auto = auto_points(checks)
    reviewed = all(c.status != "needs_review" or c.override for c in checks)
    exercises: list[ExerciseResult] = []
    for exercise in report.exercises:
        update: dict = {}
        if exercise.id == sheet.automatic_exercise:
            if sheet.manual_part_id in entry.points and reviewed:
                update["points"] = round(auto + entry.points[sheet.manual_part_id], 4)
        elif exercise.id in entry.points:
            update["points"] = entry.points[exercise.id]
        if exercise.id in entry.exercise_comments:
            update["comment"] = entry.exercise_comments[exercise.id]
        exercises.append(exercise.model_copy(update=update))
    update = {"checks": checks, "exercises": exercises, "comment": entry.comment or None}
    return with_totals(report.model_copy(update=update), config)
