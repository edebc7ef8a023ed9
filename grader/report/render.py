"""Writing what the grader produces. Every file is validated, then written atomically (a temporary
file in the same folder, then a rename), so a killed batch leaves only whole files behind."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import nbformat

from grader.config import CHECK_IDS
from grader.report.csvfile import CsvFormat, render_csv
from grader.report.models import Report
from grader.textsafe import valid_json


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # The temporary name is cut short: the final name may already be close to 255 bytes.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:40]}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def report_path(out_dir: Path, stem: str) -> Path:
    return out_dir / f"{stem}.json"


def write_report(report: Report, out_dir: Path, stem: str) -> Path:
    # What is written must validate, and be valid UTF-8: a lone surrogate from a kernel, a PDF or a
    # file name would make the JSON unwritable (and the team would have no report).
    report = Report.model_validate(valid_json(report.model_dump()))
    path = report_path(out_dir, stem)
    write_atomic(path, report.model_dump_json(indent=2).encode("utf-8"))
    return path


def read_report(path: Path) -> Report | None:
    """A report on disk, or None when it is missing or does not validate (it is then regraded)."""
    try:
        return Report.model_validate_json(path.read_bytes())
    except (OSError, ValueError):
        return None


def write_executed(nb: nbformat.NotebookNode, out_dir: Path, stem: str) -> Path:
    """The notebook as it ran. Its outputs come from the kernel: text that is not valid UTF-8 is
    replaced, and output nested too deep for nbformat's validation is written without it."""
    nb = nbformat.from_dict(valid_json(nb))
    try:
        text = nbformat.writes(nb)
    except RecursionError:
        text = json.dumps(nb, ensure_ascii=False, indent=1, sort_keys=True)
    path = out_dir / "executed" / f"{stem}.ipynb"
    write_atomic(path, text.encode("utf-8"))
    return path


SUMMARY_COLUMNS = ["file", "stem", "team", "student_ids", "execution", "violations", *CHECK_IDS,
                   "auto_points", "auto_max_points", "total_points", "bonus_points", "complete", "data"]


def summary_rows(reports: list[tuple[str, Report]]) -> list[dict]:
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
            "auto_points": round(sum(c.points for c in report.checks), 4),
            "auto_max_points": round(sum(c.max_points for c in report.checks), 4),
            "total_points": report.total.points,
            "bonus_points": report.total.bonus_points,
            "complete": str(report.total.complete).lower(),
            "data": report.execution.data.kind if report.execution.data else "",
        }
        for check_id in CHECK_IDS:
            row[check_id] = checks[check_id].points if check_id in checks else ""
        rows.append(row)
    return rows


def write_summary(reports: list[tuple[str, Report]], out_dir: Path, config=None) -> Path:
    """`summary.csv`, in the CSV format of `[cms]` (the defaults without a configuration)."""
    rows = [[row[column] for column in SUMMARY_COLUMNS] for row in summary_rows(reports)]
    path = out_dir / "summary.csv"
    write_atomic(path, render_csv(SUMMARY_COLUMNS, rows, CsvFormat.of(config)))
    return path


def schema_json() -> str:
    return json.dumps(Report.model_json_schema(), indent=2)
