"""Attacks that need a kernel: what a notebook does against the grader's own limits."""

from __future__ import annotations

import dataclasses

import nbformat
import pytest
from conftest import ROOT, needs_torch

from grader.models import TimeLimits

SLOW = "self.test_accuracies.append(accuracy)"


@needs_torch
@pytest.mark.kernel
def test_checks_that_fail_after_the_graders_time_limit_are_left_to_a_tutor(grading_context, tmp_path):
    """A correct but slow training loop interrupted at the per-cell limit (a grader limit: the
    machine may be busy, the limit is a multiple of the solution's time) failed its checks with 0
    points, as if the team's code were wrong."""
    from grader.pipeline import grade_submission

    notebook = nbformat.read(ROOT / "reference" / "solution.ipynb", as_version=4)
    for cell in notebook.cells:
        cell.source = cell.source.replace(
            SLOW,
            SLOW + "\n            if len(self.test_accuracies) == 2:\n                __import__('time').sleep(600)",
        )
    path = tmp_path / "Ida Roth_7000009_Jan Vogt_7000010.ipynb"
    nbformat.write(notebook, path)
    ctx = dataclasses.replace(
        grading_context, time_limits=TimeLimits(cell_timeout_s=8, notebook_timeout_s=200, source="a test's limits")
    )
    report = grade_submission(path, tmp_path, ctx).report
    assert report.execution.status == "timeout", report.execution
    checks = {c.id: c for c in report.checks}
    assert checks["baseline.architecture"].status == "pass"
    accuracies = checks["baseline.accuracies"]
    assert accuracies.status == "needs_review" and accuracies.points == 0, accuracies
    assert "time limit" in accuracies.message, accuracies.message
    assert not [c for c in report.checks if c.status in ("fail", "error")], report.checks
