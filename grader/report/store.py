"""Where reports are stored: `<out>/<stem>.json` (validated, then written atomically), the executed
notebooks beside them, and the JSON Schema of a report."""
from __future__ import annotations

import json
from pathlib import Path

import nbformat

from grader.atomic import write_atomic
from grader.models import Report
from grader.notebook_file import MAX_NOTEBOOK_BYTES, NotebookTooLarge
from grader.textsafe import valid_json


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
    replaced, and output nested too deep for nbformat's validation is written without it. It is
    never larger than the grader accepts as a notebook (the pipeline leaves outputs out to fit,
    `notebook_file.fit_outputs`): compact where nbformat's layout is too large, else not written."""
    nb = nbformat.from_dict(valid_json(nb))
    try:
        text = nbformat.writes(nb)
    except RecursionError:
        text = json.dumps(nb, ensure_ascii=False, indent=1, sort_keys=True)
    data = text.encode("utf-8")
    if len(data) > MAX_NOTEBOOK_BYTES:
        data = json.dumps(nb, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    if len(data) > MAX_NOTEBOOK_BYTES:
        raise NotebookTooLarge(f"it would be {len(data) / 1024 / 1024:.1f} MB, more than the "
                               f"{MAX_NOTEBOOK_BYTES // 1024 // 1024} MB the grader accepts as a notebook")
    path = out_dir / "executed" / f"{stem}.ipynb"
    write_atomic(path, data)
    return path


def schema_json() -> str:
    return json.dumps(Report.model_json_schema(), indent=2)
