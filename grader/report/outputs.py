"""What a run leaves for people, written from one final list of reports: the tutors' points (and the
roster's checks) merged into the reports, `manual_points.csv`, `summary.csv`, `cms.csv`,
`cms_import.csv` and `missing.csv`, `feedback/<stem>.html` and `summary.html`.

The rule, kept here and only here: every output of a run describes the same set of reports, or is
not written at all. `write_batch_outputs` is the one entry point (`grader grade` calls it at the end
of a batch, `grader merge` through `merge_outputs`), and it

1. moves the outputs of submissions no longer in the list (report, page, executed notebook) to
   `removed/`, and their rows out of the tutors' sheet into its inactive part;
2. reads the tutors' sheet (refused when it would take points out of the reports, unless
   `allow_clearing`), keeps the version read in `manual/`, applies it, and writes it back; then
   checks the teams' ids against the course's roster, when there is one;
3. renders every derived file into a staging folder and then moves them into place; a derived file
   of an earlier run that this run did not write (it failed, or its submission is gone) is removed,
   never left behind describing other reports (`.grader.outputs` lists what a run wrote).

A new derived file plugs in as one call in `_write_derived` (files for the course system in
`_course_system_files`) that writes into the folder it is given.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import nbformat.v4

from grader.calibration.store import CalibrationError
from grader.calibration.store import load_all as load_calibration
from grader.config import Config
from grader.errors import ClearingRefused, CmsError, ManualPointsError
from grader.models import Report
from grader.report.cms import CMS_NAME, IMPORT_NAME, write_cms_csv
from grader.report.cms_import import MISSING_NAME, remove_import_files, roster_for_outputs, write_import_files
from grader.report.enrolment import apply_roster
from grader.report.feedback import FEEDBACK_DIR, write_feedback
from grader.report.manual import apply_manual, pending_parts
from grader.report.manual_points import (
    HISTORY_DIR,
    MANUAL_POINTS_NAME,
    clearings,
    held_points,
    manual_points_encoding_note,
    merge_manual_points,
    read_manual_points,
    removed_entries,
    render_held,
    write_manual_points,
)
from grader.report.manual_points_history import save_version
from grader.report.overview import OVERVIEW_NAME, write_overview
from grader.report.similarity import SIMILARITY_THRESHOLD, code_only, similar_pairs
from grader.report.store import (
    REMOVED_DIR,
    SHARD_FILE,
    executed_path,
    removed_stems,
    retire,
    stems_on_disk,
    write_report,
)
from grader.report.summary import SUMMARY_NAME, write_summary
from grader.util.atomic import write_atomic
from grader.util.fsclean import remove_tree

__all__ = ["MANIFEST", "PARTIAL_PREFIX", "CmsError", "ManualPointsError", "merge_outputs", "write_batch_outputs"]

MANIFEST = ".grader.outputs"  # what the last run wrote (JSON); hidden and not .json: never a report
_STAGE = ".grader.stage"  # where a run renders its files before they go into place
# Derived files of grader versions that kept no manifest: removed when a run does not write them.
_KNOWN_DERIVED = (SUMMARY_NAME, OVERVIEW_NAME, CMS_NAME, IMPORT_NAME, MISSING_NAME)
# A partial merge (`grader merge --partial`) writes the course system's files under this prefix, so
# that no import takes them for the course.
PARTIAL_PREFIX = "PARTIAL-"


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


def _tutors_points(
    reports: list[tuple[str, Report]],
    out_dir: Path,
    config: Config,
    *,
    held: dict[str, dict] | None,
    allow_clearing: bool,
    leaving: set[str],
) -> tuple[list[tuple[str, Report]], list[str]]:
    """Step 2 of write_batch_outputs: the reports with the tutors' sheet applied, and notes.

    `held`: the points the reports held before this run (by stem; default: what `reports` hold),
    which the sheet must not take out unless `allow_clearing`. `leaving`: stems whose outputs are
    being moved to removed/: their rows are set aside, not errors. Raises ManualPointsError (or
    ClearingRefused) before anything is written."""
    sheet = Path(out_dir) / MANUAL_POINTS_NAME
    notes: list[str] = []
    inactive = frozenset(leaving | removed_stems(out_dir))
    if not sheet.exists():
        try:  # a first sheet, from what the reports hold (and set-aside rows of teams that are back)
            write_manual_points(reports, out_dir, config, set_aside=inactive)
        except Exception as exc:  # the reports keep their points; the other files are written
            return list(reports), [f"{MANUAL_POINTS_NAME} not written: {type(exc).__name__}: {exc}"]
    data = sheet.read_bytes()
    entries = read_manual_points(sheet, reports, config, inactive=inactive)
    entries.update(removed_entries(out_dir, [item for item in reports if item[0] not in entries], config))
    if held is None:
        held = {stem: held_points(report, config) for stem, report in reports}
    current = {stem for stem, _ in reports}
    held = {stem: points for stem, points in held.items() if stem in current and points}
    lost = clearings(held, entries, config)
    if lost and not allow_clearing:
        raise ClearingRefused(sheet, lost)
    # The reports change from here on (tutors' points, then the roster): until the import is written
    # again, an old one would describe other reports, so it goes first. (Refused above: nothing changed.)
    remove_import_files(out_dir)
    save_version(out_dir, data)  # the sheet as the tutors left it, before anything is written
    if lost:
        kept = save_version(out_dir, render_held(held, reports, config), label="held-by-reports")
        assert kept is not None  # a labelled version is always written
        notes.append(
            f"--allow-clearing: tutors' points taken out of {len(lost)} team(s) ({'; '.join(lost)}); "
            f"what the reports held is kept in {HISTORY_DIR}/{kept.name}"
        )
    if note := manual_points_encoding_note(data):
        notes.append(note)
    updated = []
    for stem, report in reports:
        new = apply_manual(report, entries.get(stem), config)
        if new.model_dump() != report.model_dump():
            write_report(new, Path(out_dir), stem)
        updated.append((stem, new))
    try:
        write_manual_points(updated, out_dir, config, set_aside=inactive)
    except Exception as exc:  # the reports carry the points; the sheet stays as the tutors left it
        notes.append(f"{MANUAL_POINTS_NAME} not written: {type(exc).__name__}: {exc}")
    return updated, notes


def write_batch_outputs(
    reports: list[tuple[str, Report]],
    out_dir: Path,
    config: Config,
    *,
    data_description: str | None = None,
    template: Path | None = None,
    solution: Path | None = None,
    similarity_threshold: float = SIMILARITY_THRESHOLD,
    held: dict[str, dict] | None = None,
    allow_clearing: bool = False,
    partial: str | None = None,
    notes: list[str] | tuple[str, ...] = (),
) -> list[str]:
    """Every output of the run, from `reports` (the final list: what the folder holds now). Returns
    warnings to print. Raises ManualPointsError when the sheet is malformed, and ClearingRefused
    when it would take points out of reports (nothing is written then: fix the sheet, or run again
    with `allow_clearing`). Anything else that goes wrong with one file costs that file (or that
    page), with a warning, and an older copy of it is removed, never left stale.

    `held`: the tutors' points the reports held before this run (see _tutors_points). `partial`:
    why the list is not the whole course (`grader merge --partial`): said in summary.html and
    summary.csv, and the course system's files get the PARTIAL- prefix. `notes`: for the tutors,
    printed and shown in summary.html (duplicate submissions, say)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    reports = sorted(reports, key=lambda item: item[0])
    leaving = stems_on_disk(out_dir) - {stem for stem, _ in reports}
    reports, manual_points_notes = _tutors_points(
        reports, out_dir, config, held=held, allow_clearing=allow_clearing, leaving=leaving
    )
    # The course's list of students, checked against the teams' ids as the tutors' points are merged.
    roster = roster_for_outputs(config, out_dir)
    reports = apply_roster(reports, roster, out_dir)
    warnings = [*notes, *manual_points_notes]
    if moved := retire(out_dir, leaving):
        warnings.append(
            f"{len(moved)} submission(s) no longer in the folder: their report and pages moved to "
            f"{REMOVED_DIR}/ and their rows out of {MANUAL_POINTS_NAME} (kept in {HISTORY_DIR}/; both come "
            f"back with the submission): {', '.join(moved)}"
        )
    # A shard, or a partial merge, sees part of the course: nobody is listed as missing from it.
    whole_course = not partial and not (out_dir / SHARD_FILE).exists()
    return warnings + _write_derived(
        reports,
        out_dir,
        config,
        data_description=data_description,
        template=template,
        solution=solution,
        similarity_threshold=similarity_threshold,
        partial=partial,
        page_notes=warnings,
        roster=roster,
        whole_course=whole_course,
    )


def _course_system_files(
    reports: list[tuple[str, Report]], folder: Path, config: Config, attempt, *, roster, whole_course: bool
) -> tuple[list, list[str], object]:
    """The files the course system imports, written into `folder`: cms.csv, and cms_import.csv (with
    missing.csv when there is a roster). Returns the students left out of them and the import's
    warnings, for the tutors, and the enrolled students who are missing (or None). Add a new import
    file here: one call that writes into `folder`."""
    left_out = attempt(CMS_NAME, write_cms_csv, reports, folder, config) or []
    imported = attempt(IMPORT_NAME, write_import_files, reports, folder, config, roster, whole_course=whole_course)
    return left_out, (imported.warnings if imported else []), (imported.missing if imported else None)


def _write_derived(
    reports: list[tuple[str, Report]],
    out_dir: Path,
    config: Config,
    *,
    data_description: str | None,
    template: Path | None,
    solution: Path | None,
    similarity_threshold: float,
    partial: str | None,
    page_notes: list[str],
    roster,
    whole_course: bool,
) -> list[str]:
    """Step 3 of write_batch_outputs: summary.csv, the course system's files, the feedback pages and
    summary.html, rendered into a staging folder and then put in place (see `_commit`)."""
    sheet = config.sheet_def
    template = template or sheet.template
    solution = solution or sheet.solution
    warnings: list[str] = []
    page_warnings: list[str] = [*page_notes]  # what summary.html itself should say
    if partial:
        page_warnings.insert(0, f"PARTIAL: {partial}")
    stage = out_dir / _STAGE
    remove_tree(stage)
    stage.mkdir()

    def attempt(what: str, action, *args, **kwargs):
        try:
            return action(*args, **kwargs)
        except Exception as exc:  # one file's failure must not cost the batch's others
            warnings.append(f"{what} not written: {type(exc).__name__}: {exc}")
            page_warnings.append(warnings[-1])
            return None

    attempt(SUMMARY_NAME, write_summary, reports, stage, config, partial=partial)
    before = set(os.listdir(stage))
    left_out, import_warnings, missing = _course_system_files(
        reports, stage, config, attempt, roster=roster, whole_course=whole_course
    )
    course_files = sorted(set(os.listdir(stage)) - before)
    if partial:
        for name in course_files:
            os.replace(stage / name, stage / (PARTIAL_PREFIX + name))
        warnings.append(
            f"partial merge ({partial}): {', '.join(course_files) or 'the course system files'} "
            f"written as {', '.join(PARTIAL_PREFIX + n for n in course_files) or PARTIAL_PREFIX + '*'}; "
            f"merge without --partial once every shard is done"
        )
    for student in left_out:
        warnings.append(student.message())
        page_warnings.append(student.message())
    warnings += import_warnings
    page_warnings += import_warnings

    try:
        calibration = load_calibration(sheet)
    except CalibrationError as exc:
        calibration = {}
        warnings.append(f"feedback pages without the reference curve: {exc}")
        page_warnings.append(warnings[-1])
    for stem, report in reports:
        data = report.execution.data
        attempt(
            f"feedback page of {stem}",
            write_feedback,
            report,
            stage,
            calibration.get(data.fingerprint) if data else None,
            stem=stem,
            sheet=sheet,
        )

    notebooks = {}
    for stem, _ in reports:
        path = executed_path(out_dir, stem)
        if path.exists() and (nb := _read_notebook(path)) is not None:
            notebooks[stem] = code_only(nb)  # not its outputs: every notebook of the batch is held
    template_nb = _read_notebook(template) if template is not None and Path(template).exists() else None
    # The reference solution is the course's code too (tutors' side only; students' packages lack it).
    solution_nb = _read_notebook(solution) if solution is not None and Path(solution).exists() else None
    pairs = (
        attempt(
            "the comparison of similar notebooks",
            similar_pairs,
            notebooks,
            template_nb,
            similarity_threshold,
            course_code=[solution_nb] if solution_nb is not None else [],
        )
        if notebooks
        else None
    )
    if pairs:
        warnings.append(f"{len(pairs)} pair(s) of notebooks are nearly the same: see summary.html")

    incomplete = [(stem, pending_parts(r)) for stem, r in reports if not r.total.complete]
    if incomplete and (out_dir / MANUAL_POINTS_NAME).exists():
        graded_some = len(incomplete) < len(reports) or any(
            e.points is not None for _, r in reports for e in r.exercises
        )
        if graded_some:
            shown = "; ".join(f"{stem}: {', '.join(parts)}" for stem, parts in incomplete[:5])
            more = f" and {len(incomplete) - 5} more" if len(incomplete) > 5 else ""
            warnings.append(f"{len(incomplete)} team(s) not completely graded yet ({shown}{more})")
    attempt(
        OVERVIEW_NAME,
        write_overview,
        reports,
        stage,
        pairs=pairs,
        key=_tutors_key(config),
        data_description=data_description,
        warnings=page_warnings,
        sheet=sheet,
        missing=missing,
    )
    warnings += _commit(stage, out_dir, stems=[stem for stem, _ in reports], partial=partial)
    return warnings


def _files_under(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def _derived_name(rel: str) -> bool:
    """A name a run may have written: a CSV or page of the folder or a feedback page, not hidden, not
    a report, not the tutors' sheet, in any letter case (on a Mac's or Windows' disk `Manual_Points.CSV`
    is the sheet): an edited manifest removes nothing else."""
    parts = rel.split("/") if isinstance(rel, str) else []
    if not parts or len(parts) > 2 or (len(parts) == 2 and parts[0] != FEEDBACK_DIR):
        return False
    name = parts[-1]
    return (
        (name.endswith(".html") or (len(parts) == 1 and name.endswith(".csv")))
        and not name.startswith(".")
        and name.casefold() != MANUAL_POINTS_NAME.casefold()
    )


def _commit(stage: Path, out_dir: Path, *, stems: list[str], partial: str | None) -> list[str]:
    """Move what `stage` holds into out_dir, then remove every derived file of an earlier run that
    this run did not write; record what was written. Returns warnings."""
    warnings = []
    written = _files_under(stage)
    earlier = set(_KNOWN_DERIVED) | {PARTIAL_PREFIX + name for name in _KNOWN_DERIVED}
    try:
        earlier |= set(json.loads((out_dir / MANIFEST).read_text(encoding="utf-8")).get("files", []))
    except (OSError, ValueError, AttributeError, TypeError, RecursionError):  # edited, corrupted: the known names
        pass
    if (out_dir / FEEDBACK_DIR).is_dir():
        earlier |= {f"{FEEDBACK_DIR}/{p.name}" for p in (out_dir / FEEDBACK_DIR).glob("*.html")}
    for rel in written:
        target = out_dir / rel
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(stage / rel, target)
        except OSError as exc:
            warnings.append(f"{rel} could not be put in place ({exc.strerror or exc}): it is not current")
    for rel in sorted(earlier - set(written)):
        if not _derived_name(rel):
            continue  # never a report or the tutors' sheet, whatever an (edited) manifest says
        try:
            (out_dir / rel).unlink(missing_ok=True)
        except OSError as exc:
            warnings.append(
                f"{rel} is left from an earlier run and could not be removed ({exc.strerror or exc}): do not use it"
            )
    write_atomic(
        out_dir / MANIFEST, json.dumps({"files": written, "stems": stems, "partial": partial}, indent=1).encode("utf-8")
    )
    remove_tree(stage)
    return warnings


def partial_before(out_dir: Path) -> str | None:
    """Why the outputs in out_dir describe part of the course (a `grader merge --partial` wrote them),
    or None: a merge of the folder's own reports stays partial until every shard is merged."""
    try:
        note = json.loads((Path(out_dir) / MANIFEST).read_text(encoding="utf-8")).get("partial")
    except (OSError, ValueError, AttributeError, RecursionError):
        return None
    return note if isinstance(note, str) and note else None


def merge_outputs(
    inputs: list[Path], reports: list[tuple[str, Report]], out_dir: Path, config: Config, **kwargs
) -> list[str]:
    """For `grader merge`, after the reports are copied into out_dir: join the shards' manual sheets
    (and the one already in out_dir) into out_dir/manual_points.csv, then write_batch_outputs. Two
    shards' sheets giving different values for one cell is a ManualPointsError naming both. The
    sheet in out_dir is kept in the history first."""
    out_dir = Path(out_dir)
    sources = [Path(folder) / MANUAL_POINTS_NAME for folder in inputs if Path(folder).resolve() != out_dir.resolve()]
    sources = [s for s in sources if s.exists()]
    if sources:
        save_version(out_dir)
    notes = merge_manual_points(sources, out_dir / MANUAL_POINTS_NAME, config)
    return notes + write_batch_outputs(reports, out_dir, config, **kwargs)
