"""Points: the checks' results and the tutors' part of the sheet, into one Report."""

from __future__ import annotations

from datetime import datetime, timezone

from grader.config import Config
from grader.models import (
    CheckResult,
    ExecutionInfo,
    ExerciseResult,
    GraderInfo,
    Report,
    SubmissionInfo,
    Total,
    Violation,
    auto_max_points,
    auto_points,
)


def build_report(
    *,
    submission: SubmissionInfo,
    violations: list[Violation],
    execution: ExecutionInfo,
    checks: list[CheckResult],
    config: Config,
    grader: GraderInfo,
    evidence: dict[str, list[str]] | None = None,
    accuracies: dict[str, list[float]] | None = None,
) -> Report:
    """Exercises graded by tutors stay pending (points null) until manual points are merged; the
    sheet's automatic exercise carries its automatic points in the evidence and is pending for its
    tutor-graded part."""
    evidence = evidence or {}
    sheet = config.sheet_def
    points = config.exercises.points
    auto = auto_points(checks)
    auto_max = auto_max_points(checks)
    exercises = []
    for exercise in sheet.exercise_ids:
        notes = list(evidence.get(exercise, []))
        graded_by = "tutor"
        if exercise == sheet.automatic_exercise:
            graded_by = "auto+tutor"
            manual = points[exercise] - auto_max
            notes.insert(
                0,
                f"automatic checks: {auto:g} of {auto_max:g} points; {sheet.manual_part} "
                f"({sheet.manual_part_description}, {manual:g} point{'' if manual == 1 else 's'}) "
                f"is graded by tutors",
            )
        exercises.append(
            ExerciseResult(
                id=exercise,
                points=None,
                max_points=points[exercise],
                bonus=exercise in config.exercises.bonus,
                graded_by=graded_by,
                evidence=notes,
            )
        )
    report = Report(
        submission=submission,
        violations=violations,
        execution=execution,
        checks=checks,
        exercises=exercises,
        total=Total(points=0, max_points=0, bonus_points=0, complete=False),
        accuracies=accuracies or {},
        grader=grader,
        graded_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    return with_totals(report, config)


def with_totals(report: Report, config: Config) -> Report:
    """Recompute total.* from the exercises (tutor points where given) and the automatic checks."""
    auto = report.auto_points
    automatic_exercise = config.sheet_def.automatic_exercise
    regular = bonus = 0.0
    complete = True
    for exercise in report.exercises:
        if exercise.points is None:
            complete = False
            if exercise.id == automatic_exercise:
                regular += auto
            continue
        if exercise.bonus:
            bonus += exercise.points
        else:
            regular += exercise.points
    max_points = sum(e.max_points for e in report.exercises if not e.bonus)
    total = Total(
        points=round(regular, 4), max_points=round(max_points, 4), bonus_points=round(bonus, 4), complete=complete
    )
    return report.model_copy(update={"total": total})
