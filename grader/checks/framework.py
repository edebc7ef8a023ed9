"""Running a sheet's checks: each registered check looks at the probe's Observations and returns a
Verdict; here verdicts become CheckResults with the points of grading.toml. A check that raises
costs its own points only ("error"), never the batch."""

from __future__ import annotations

from grader.config import Config
from grader.models import CheckResult, CheckStatus
from grader.observations import Observations
from grader.sheet import AccuracyRange, Verdict

__all__ = ["AccuracyRange", "Verdict", "placeholder_checks", "result", "run_checks"]


def result(check_id: str, verdict: Verdict, config: Config) -> CheckResult:
    sheet = config.sheet_def
    max_points = config.checks.points(check_id)
    points = max_points if verdict.status == "pass" else 0.0
    return CheckResult(
        id=check_id,
        exercise=sheet.checks[check_id].exercise,
        status=verdict.status,
        points=points,
        max_points=max_points,
        message=verdict.message,
    )


def run_checks(obs: Observations, config: Config, accuracy_range: AccuracyRange | None) -> list[CheckResult]:
    """Every check of the configured sheet, in its order. Without observations every check is
    skipped (nothing ran) or an error (the probe failed)."""
    results = []
    for check in config.sheet_def.checks:
        if obs.status != "ok":
            verdict = Verdict(
                "skipped" if obs.status == "not_run" else "error", obs.message or "the networks could not be observed"
            )
        else:
            try:
                verdict = check.function(obs, config, accuracy_range)
            except Exception as exc:  # a bug in a check must not end the batch; the report says so
                verdict = Verdict("error", f"the grader failed on this check: {type(exc).__name__}: {exc}")
        results.append(result(check.id, verdict, config))
    return results


def placeholder_checks(config: Config, status: CheckStatus, message: str) -> list[CheckResult]:
    """Every check of the sheet with the same status and message, no points (nothing was graded)."""
    return [
        CheckResult(
            id=c.id,
            exercise=c.exercise,
            status=status,
            points=0.0,
            max_points=config.checks.points(c.id),
            message=message,
        )
        for c in config.sheet_def.checks
    ]
