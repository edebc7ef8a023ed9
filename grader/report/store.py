"""Where reports are stored: `<out>/<stem>.json` (validated, then written atomically), the executed
notebooks beside them, `removed/` for the outputs of submissions no longer in the folder, and the
JSON Schema of a report."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat

from grader.models import Report
from grader.util.atomic import write_atomic
from grader.util.notebook_file import MAX_NOTEBOOK_BYTES, NotebookTooLarge
from grader.util.textsafe import valid_json


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


# The notebook as it ran, with its outputs: <out>/executed/<stem>.ipynb.
EXECUTED_DIR = "executed"


def executed_path(out_dir: Path, stem: str) -> Path:
    """Where the executed notebook of submission `stem` is kept in the output folder `out_dir`."""
    return Path(out_dir) / EXECUTED_DIR / f"{stem}.ipynb"


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
        raise NotebookTooLarge(
            f"it would be {len(data) / 1024 / 1024:.1f} MB, more than the "
            f"{MAX_NOTEBOOK_BYTES // 1024 // 1024} MB the grader accepts as a notebook"
        )
    path = executed_path(out_dir, stem)
    write_atomic(path, data)
    return path


# What `grader grade --shard` leaves in its folder: it holds part of a course, for `grader merge`.
# Hidden, so that no submission's report can have its name (discovery skips hidden files).
SHARD_FILE = ".shard.json"

# A submission removed from the folder: its report, page and executed notebook go here (same names),
# never deleted; they come back when the submission does.
REMOVED_DIR = "removed"
# What a submission's outputs are, relative to the output folder (the page's folder is feedback.py's).
_PER_STEM = (("", ".json"), ("feedback", ".html"), (EXECUTED_DIR, ".ipynb"))


def _is_report_file(path: Path) -> bool:
    """A `<stem>.json` of the folder: not hidden, and not an older grader's shard marker `shard.json`."""
    if path.name.startswith(".") or not path.is_file():
        return False
    if path.name == "shard.json":
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
            return not (isinstance(info, dict) and "shard" in info and "submission" not in info)
        except (OSError, ValueError):
            return True
    return True


def stems_on_disk(out_dir: Path) -> set[str]:
    """Every stem the folder holds outputs of (a report, a feedback page or an executed notebook)."""
    out_dir = Path(out_dir)
    stems = set()
    for sub, ext in _PER_STEM:
        folder = out_dir / sub if sub else out_dir
        if folder.is_dir():
            stems |= {
                p.name[: -len(ext)]
                for p in folder.glob(f"*{ext}")
                if p.is_file() and not p.name.startswith(".") and (sub or _is_report_file(p))
            }
    return stems


def removed_stems(out_dir: Path) -> set[str]:
    return stems_on_disk(Path(out_dir) / REMOVED_DIR)


def _move_outputs(source: Path, target: Path, stem: str) -> bool:
    moved = False
    for sub, ext in _PER_STEM:
        path = (source / sub if sub else source) / f"{stem}{ext}"
        if path.is_file() and not path.is_symlink():
            dest = (target / sub if sub else target) / path.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, dest)
            moved = True
    return moved


def retire(out_dir: Path, stems: set[str]) -> list[str]:
    """Move the outputs of `stems` (submissions no longer in the folder) into `removed/`."""
    out_dir = Path(out_dir)
    return [stem for stem in sorted(stems) if _move_outputs(out_dir, out_dir / REMOVED_DIR, stem)]


def bring_back(out_dir: Path, stem: str) -> bool:
    """A submission that is in the folder again: its outputs come back from `removed/` (when the
    folder has none of its own), so that an unchanged file is not graded again."""
    out_dir = Path(out_dir)
    if report_path(out_dir, stem).exists() or not report_path(out_dir / REMOVED_DIR, stem).exists():
        return False
    return _move_outputs(out_dir / REMOVED_DIR, out_dir, stem)


def schema_json() -> str:
    return json.dumps(Report.model_json_schema(), indent=2)
