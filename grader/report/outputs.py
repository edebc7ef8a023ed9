"""What a batch leaves for people, written after every report is in: the tutors' points (and the
roster's checks) merged into the reports, `manual_points.csv`, `cms.csv`, `cms_import.csv` and
`missing.csv`, `feedback/<stem>.html` and `summary.html`.

`write_batch_outputs` is the one entry point (`grader grade` calls it at the end of a batch);
`merge_outputs` is the same for `grader merge`, after it gathers the shards' manual sheets.
"""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import nbformat.v4

from grader.calibration_store import CalibrationError, load_all as load_calibration
from grader.config import Config
from grader.report.cms import CMS_NAME, IMPORT_NAME, CmsError, write_cms_csv
from grader.report.cms_import import remove_import_files, roster_for_outputs, write_import_files
from grader.report.enrolment import apply_roster
from grader.report.feedback import write_feedback
from grader.errors import ManualPointsError
from grader.report.manual import apply_manual, pending_parts
from grader.report.manual_sheet import SHEET_NAME, merge_sheets, read_manual_sheet, write_manual_sheet
from grader.models import Report
from grader.report.overview import OVERVIEW_NAME, write_overview
from grader.report.store import write_report
from grader.report.similarity import SIMILARITY_THRESHOLD, similar_pairs

__all__ = ["write_batch_outputs", "merge_outputs", "ManualPointsError", "CmsError"]


def _read_notebook(path: Path) -> nbformat.NotebookNode | None:
    """An executed notebook the grader wrote (validated then) or the sheet's template: read without
    validating it again (validation took 6 ms of the 6.4 ms a notebook costs to read)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
        if json.loads(text).get("nbformat") == 4:
            return nbformat.v4.reads(text)
        return nbformat.reads(text, as_version=4)
    except Exception:  # a notebook the grader wrote but cannot read back: left out of the comparison
        return None


def _tutors_key(config: Config) -> str | None:
    try:
        return config.sheet_def.tutors_key()
    except Exception:
        return None


def apply_sheet(reports: list[tuple[str, Report]], out_dir: Path, config: Config) -> list[tuple[str, Report]]:
    """Apply `manual_points.csv` (when there is one) to every report and rewrite the reports that
    change. Raises ManualPointsError listing every problem of the sheet before anything is written.
    Without a sheet the reports stay as they are (points already merged are kept, and
    write_manual_sheet copies them into the new sheet)."""
    sheet = Path(out_dir) / SHEET_NAME
    if not sheet.exists():
        return list(reports)
    entries = read_manual_sheet(sheet, reports, config)
    updated = []
    for stem, report in reports:
        new = apply_manual(report, entries.get(stem), config)
        if new.model_dump() != report.model_dump():
            write_report(new, Path(out_dir), stem)
        updated.append((stem, new))
    return updated


def write_batch_outputs(reports: list[tuple[str, Report]], out_dir: Path, config: Config, *,
                        data_description: str | None = None, template: Path | None = None,
                        solution: Path | None = None,
                        similarity_threshold: float = SIMILARITY_THRESHOLD) -> list[str]:
    """Merge the manual sheet (and the roster's checks) into the reports, then write
    manual_points.csv, cms.csv, cms_import.csv (and missing.csv), the feedback pages and summary.html.
    Returns warnings to print. Raises ManualPointsError when the sheet is malformed, RosterError when
    the roster is unreadable (nothing is written then: fix the file and run `grader merge` again; the
    import files are removed, as they are whenever this stops before writing them). Anything else that goes wrong with one of the files costs that file
    (or that page), with a warning, never the others."""
    out_dir = Path(out_dir)
    sheet = config.sheet_def
    template = template or sheet.template
    solution = solution or sheet.solution
    warnings: list[str] = []
    page_warnings: list[str] = []   # what summary.html itself should say
    # The reports may change from here on (tutors' points, the roster): until the import is written
    # again, an old one would describe other reports, so it goes first.
    remove_import_files(out_dir)
    reports = sorted(apply_sheet(reports, out_dir, config), key=lambda item: item[0])
    # The course's list of students, checked against the teams' ids as the tutors' points are merged.
    roster = roster_for_outputs(config, out_dir)
    reports = apply_roster(reports, roster, out_dir)

    def attempt(what: str, action, *args, **kwargs):
        try:
            return action(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - one file's failure must not cost the batch's others
            warnings.append(f"{what} not written: {type(exc).__name__}: {exc}")
            page_warnings.append(warnings[-1])
            return None

    attempt(SHEET_NAME, write_manual_sheet, reports, out_dir, config)
    left_out = attempt(CMS_NAME, write_cms_csv, reports, out_dir, config)
    if left_out is None and (stale := out_dir / CMS_NAME).exists():
        stale.unlink()  # an older cms.csv would be imported as if it were current
    for student in left_out or []:
        warnings.append(student.message())
        page_warnings.append(student.message())
    imported = attempt(IMPORT_NAME, write_import_files, reports, out_dir, config, roster)
    warnings += imported.warnings if imported else []
    page_warnings += imported.warnings if imported else []

    try:
        calibration = load_calibration()
    except CalibrationError as exc:
        calibration = {}
        warnings.append(f"feedback pages without the reference curve: {exc}")
        page_warnings.append(warnings[-1])
    for stem, report in reports:
        data = report.execution.data
        attempt(f"feedback page of {stem}", write_feedback, report, out_dir,
                calibration.get(data.fingerprint) if data else None, stem=stem, sheet=sheet)

    notebooks = {}
    for stem, _ in reports:
        path = out_dir / "executed" / f"{stem}.ipynb"
        if path.exists() and (nb := _read_notebook(path)) is not None:
            notebooks[stem] = nb
    template_nb = _read_notebook(template) if template is not None and Path(template).exists() else None
    # The reference solution is the course's code too (tutors' side only; students' packages lack it).
    solution_nb = _read_notebook(solution) if solution is not None and Path(solution).exists() else None
    pairs = attempt("the comparison of similar notebooks", similar_pairs, notebooks, template_nb,
                    similarity_threshold, course_code=[solution_nb] if solution_nb is not None else []
                    ) if notebooks else None
    if pairs:
        warnings.append(f"{len(pairs)} pair(s) of notebooks are nearly the same: see summary.html")

    incomplete = [(stem, pending_parts(r)) for stem, r in reports if not r.total.complete]
    if incomplete and (out_dir / SHEET_NAME).exists():
        graded_some = len(incomplete) < len(reports) or any(
            e.points is not None for _, r in reports for e in r.exercises)
        if graded_some:
            shown = "; ".join(f"{stem}: {', '.join(parts)}" for stem, parts in incomplete[:5])
            more = f" and {len(incomplete) - 5} more" if len(incomplete) > 5 else ""
            warnings.append(f"{len(incomplete)} team(s) not completely graded yet ({shown}{more})")
    attempt(OVERVIEW_NAME, write_overview, reports, out_dir, pairs=pairs, key=_tutors_key(config),
            data_description=data_description, warnings=page_warnings, sheet=sheet,
            missing=imported.missing if imported else None)
    return warnings


def merge_outputs(inputs: list[Path], reports: list[tuple[str, Report]], out_dir: Path, config: Config,
                  **kwargs) -> list[str]:
    """For `grader merge`, after the reports are copied into out_dir: join the shards' manual sheets
    (and the one already in out_dir) into out_dir/manual_points.csv, then write_batch_outputs. Two
    shards' sheets giving different values for one cell is a ManualPointsError naming both."""
    out_dir = Path(out_dir)
    sources = [Path(folder) / SHEET_NAME for folder in inputs
               if Path(folder).resolve() != out_dir.resolve()]
    notes = merge_sheets([s for s in sources if s.exists()], out_dir / SHEET_NAME, config)
    return notes + write_batch_outputs(reports, out_dir, config, **kwargs)
