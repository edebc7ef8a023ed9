"""`summary.csv`: one row per submission (team, execution status, violations, points per check,
totals, data used), written by the one CSV writer (csvfile.py) in the format of `[cms]`."""

from __future__ import annotations

from pathlib import Path

from grader.config import Config
from grader.models import Report
from grader.report.csvfile import CsvFormat, render_csv
from grader.util.atomic import write_atomic

SUMMARY_NAME = "summary.csv"


def summary_columns(check_ids: tuple[str, ...]) -> list[str]:
    return [
        "file",
        "stem",
        "team",
        "student_ids",
        "execution",
        "violations",
        *check_ids,
        "auto_points",
        "auto_max_points",
        "total_points",
        "bonus_points",
        "complete",
        "data",
    ]


def summary_rows(reports: list[tuple[str, Report]], check_ids: tuple[str, ...]) -> list[dict]:
    rows = []
    for stem, report in reports:
        checks = {c.id: c for c in report.checks}
        row = {
            "file": report.submission.file,
            "stem": stem,
            "team": "; ".join(m.name for m in report.submission.team),
            "student_ids": "; ".join(m.student_id for m in report.submission.team),
            "execution": report.execution.status,
            "violations": " ".join(sorted({v.code for v in report.violations})),
            "auto_points": report.auto_points,
            "auto_max_points": report.auto_max_points,
            "total_points": report.total.points,
            "bonus_points": report.total.bonus_points,
            "complete": str(report.total.complete).lower(),
            "data": report.execution.data.kind if report.execution.data else "",
        }
        for check_id in check_ids:
            row[check_id] = checks[check_id].points if check_id in checks else ""
        rows.append(row)
    return rows


def write_summary(
    reports: list[tuple[str, Report]], out_dir: Path, config: Config, *, partial: str | None = None
) -> Path:
    """`summary.csv`, in the CSV format of `[cms]`, one column per check of the sheet. `partial`:
    why these are not all of the course's submissions (a partial merge), in a last column of every row."""
    check_ids = config.sheet_def.check_ids
    columns = summary_columns(check_ids)
    rows = [[row[column] for column in columns] for row in summary_rows(reports, check_ids)]
    if partial:
        columns = [*columns, "partial"]
        rows = [[*row, f"PARTIAL: {partial}"] for row in rows]
    path = out_dir / SUMMARY_NAME
    write_atomic(path, render_csv(columns, rows, CsvFormat.of(config)))
    return path
