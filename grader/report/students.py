"""A report as a student may read it (what `grader check` prints goes through here)."""

from __future__ import annotations

from grader.models import Report


def for_students(report: Report, student_evidence: tuple[str, ...]) -> Report:
    """The report as a student may read it before the deadline: without the 6.3 key or the PDF hints
    that compare with it (no tutors' evidence but the notebook's facts), and without tutors' notes
    (comments, the reasons of overrides). It covers one submission, so it names no other team.
    `student_evidence`: the exercises whose evidence is about the notebook (the sheet's `student_evidence`)."""
    exercises = [
        e.model_copy(update={"evidence": list(e.evidence) if e.id in student_evidence else [], "comment": None})
        for e in report.exercises
    ]
    checks = [c.model_copy(update={"override": None}) for c in report.checks]
    return report.model_copy(update={"exercises": exercises, "checks": checks, "comment": None})
