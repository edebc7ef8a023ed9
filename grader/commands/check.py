"""`grader check`: a student's self-check of one zip, notebook or folder before uploading it.

It goes through the same pipeline as the tutors' grading (identify → unpack → execute → probe → check
→ score), in this process, on a small subset of the data by default, and prints a short verdict
with the cells' progress while the notebook runs. What it prints, as text or `--json`, is the
report `report.students.for_students` leaves: no tutors' material (the key of a written exercise, tutors' notes). Nothing is
written but temporary files, removed at the end.

The verdict has three levels, and the exit status follows them:

- 0, fine: every automatic check passes and the notebook runs to its end without errors;
- 1, loses points: a check does not pass, or an error in the notebook stops it;
- 3, tutors may deduct: the checks pass, but something tutors look at is off (the file name, no
  PDF, the team not named in the files, two notebooks) or a check needs a tutor's review, or the
  notebook stopped for the grading environment's reasons (a module it lacks), or a cell did not
  finish within the grader's time limit (never "ready to upload": tutors see it in the report);
- 2: nothing could be checked (no such file, a file that is not a zip, notebook or folder);
- 130: interrupted (Ctrl-C).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import stat
import time
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from grader.config import Config, load_config
from grader.models import Report
from grader.report.feedback import shared_verdict
from grader.sheet import Sheet
from grader.util.fsclean import CHECK_PREFIX, owned_dir, remove_tree, sweep_stale
from grader.util.textsafe import terminal

# The small subset of a default check: enough for every check, a fraction of the training time.
FAST_TRAIN, FAST_TEST = 1000, 500

FINE, TUTORS_MAY_DEDUCT, LOSES_POINTS = "fine", "tutors may deduct", "loses points"
EXIT_STATUS = {FINE: 0, LOSES_POINTS: 1, TUTORS_MAY_DEDUCT: 3}
EXIT_UNCHECKED, EXIT_INTERRUPTED = 2, 130

_MARK = {
    "pass": "[green]✓[/]",
    "fail": "[red]✗[/]",
    "error": "[red]![/]",
    "skipped": "[yellow]-[/]",
    "needs_review": "[yellow]?[/]",
}
# Folders and files a student's folder may hold that are not part of the submission.
_JUNK_DIRS = {"__macosx", ".ipynb_checkpoints", "__pycache__", ".git", "data", "site-packages", "node_modules"}
_PATTERN_ZIP = "Name1_id1_Name2_id2.zip (your team's names and 7-digit student ids)"


class CheckRefused(Exception):
    """What was given cannot be checked; the message says what was expected and found."""


@dataclass(frozen=True)
class CheckInput:
    """What the student named, and the file the pipeline grades for it."""

    given: Path
    kind: str  # "zip" | "notebook" | "folder"
    target: Path  # the zip or notebook to grade
    root: Path  # the folder it is graded relative to
    packed: tuple[str, ...] = ()  # a folder's files that went into the zip, relative to it
    note: str = ""  # said before the run (a folder's only zip, say)


# ----------------------------------------------------------------------------- what was given


def _is_junk(name: str) -> bool:
    return name.startswith(".") or name.lower() in _JUNK_DIRS


def _folder_files(folder: Path, suffixes: tuple[str, ...]) -> list[str]:
    """The folder's files with these suffixes (any depth; checkpoints, hidden folders, data and
    virtual environments left out), relative to it, in '/' form."""
    found = []
    for here, dirs, files in os.walk(folder):
        # Not into hidden or junk folders, links, or a virtual environment (the one docs/students.md
        # makes, `sheet6/`, may well be in the folder checked)
        dirs[:] = sorted(
            d
            for d in dirs
            if not _is_junk(d)
            and not os.path.islink(os.path.join(here, d))
            and not os.path.exists(os.path.join(here, d, "pyvenv.cfg"))
        )
        for name in sorted(files):
            if name.lower().endswith(suffixes) and not name.startswith((".", "~$")):
                found.append(Path(here, name).relative_to(folder).as_posix())
    return found


def _readable(path: Path, shown: Path | None = None) -> None:
    """Refuse what cannot be read as a file: a named pipe or device (reading it would wait forever),
    a broken link, a file without read permission."""
    shown = shown or path
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise CheckRefused(
                f"{shown}: not a regular file (a named pipe, a device or the like); expected "
                "your submission: a .zip, a .ipynb notebook, or a folder holding them. Nothing was run"
            )
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise CheckRefused(
            f"{shown}: cannot be read ({exc.strerror or exc}); expected a file you can open. Nothing was run"
        ) from None


def _packed_name(folder_name: str) -> str:
    """`<folder>.zip`, cut short to fit a file name (255 bytes)."""
    name = folder_name or "submission"
    while len(name.encode("utf-8", "surrogateescape")) > 200:
        name = name[:-1]
    return f"{name}.zip"


def resolve_input(path: Path, work: Path) -> CheckInput:
    """Which file to grade for `path`: a zip or a notebook as it is; a folder packed into the zip
    the student would upload (its notebooks and PDFs), or its only zip. Anything else is refused:
    a script is never run as if it were a notebook."""
    if not path.exists():
        raise CheckRefused(
            f"{path}: no such file or folder (expected your submission: a .zip, a "
            ".ipynb notebook, or a folder holding the notebook and the PDF)"
        )
    if path.is_dir():
        notebooks = _folder_files(path, (".ipynb",))
        if notebooks:
            files = notebooks + _folder_files(path, (".pdf",))
            for rel in files:
                _readable(path / rel)
            name = unicodedata.normalize("NFC", path.resolve().name)
            target = work / "packed" / _packed_name(name)
            target.parent.mkdir(parents=True)
            with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
                for rel in files:
                    archive.write(path / rel, rel)
            return CheckInput(given=path, kind="folder", target=target, root=target.parent, packed=tuple(files))
        zips = [p for p in sorted(path.iterdir()) if p.is_file() and p.suffix.lower() == ".zip"]
        if len(zips) == 1:
            _readable(zips[0])
            return CheckInput(
                given=path,
                kind="zip",
                target=zips[0],
                root=path,
                note=f"checking {zips[0].name}, the only zip in {path}",
            )
        found = f"{len(zips)} zip files ({', '.join(z.name for z in zips[:5])})" if zips else "no notebook and no zip"
        raise CheckRefused(
            f"{path}: expected a folder holding your notebook (.ipynb) and PDF, or a single zip; "
            f"found {found}. Name the one to check: grader check {path / 'NAME.zip'}"
        )
    suffix = path.suffix.lower()
    if suffix in (".zip", ".ipynb"):
        _readable(path)
    if suffix == ".zip":
        return CheckInput(given=path, kind="zip", target=path, root=path)
    if suffix == ".ipynb":
        return CheckInput(given=path, kind="notebook", target=path, root=path)
    what = {
        ".py": "a Python script (grader check runs Jupyter notebooks only: save your notebook as .ipynb)",
        ".pdf": "a PDF alone (check the zip that holds it together with your notebook)",
    }.get(suffix, f"a '{suffix}' file" if suffix else "a file without an extension")
    raise CheckRefused(f"{path}: expected a .zip, a .ipynb notebook or a folder; found {what}. Nothing was run")


# ----------------------------------------------------------------------------- the verdict


def verdict(report: Report, kind: str = "zip") -> str:
    """Loses points (a check not passing, the notebook not running through), tutors may deduct
    (naming, no PDF, identity, a check a tutor reviews), or fine. For a notebook or a folder
    (`kind`), the names of its files do not count: the student is told the zip's name to use."""
    if any(c.status not in ("pass", "needs_review") for c in report.checks):
        return LOSES_POINTS
    if report.execution.status != "ok" and not _stopped_by_grader(report):
        return LOSES_POINTS
    from grader.intake.archive import NOTE_CODES

    counted = [
        v for v in report.violations if (kind == "zip" or not v.code.startswith("name.")) and v.code not in NOTE_CODES
    ]
    if counted or any(c.status == "needs_review" for c in report.checks):
        return TUTORS_MAY_DEDUCT
    if report.execution.status != "ok":  # stopped by the time limit, even after every checked cell had run
        return TUTORS_MAY_DEDUCT
    return FINE


def _stopped_by_grader(report: Report) -> bool:
    """The notebook stopped for a reason of the grading environment's (a module the course's
    environment does not have, the grader's time limit), not for an error of the team's: no
    automatic points are taken for it (the checks it hides are needs_review), so a tutor decides."""
    return report.execution.status == "timeout" or any(v.code.startswith("environment.") for v in report.violations)


def _zip_name(report: Report, given: CheckInput) -> str | None:
    """The name to upload under, when it can be worked out: the suggested name, or the file's own
    name when that is right, as a .zip."""
    sub = report.submission
    name = sub.expected_name or (given.target.name if not _name_violations(report) else None)
    if name is None:
        return None
    stem = name[: -len(Path(name).suffix)] if Path(name).suffix else name
    return stem + ".zip"


def _name_violations(report: Report) -> list:
    return [v for v in report.violations if v.code.startswith("name.")]


def upload_advice(report: Report, given: CheckInput, sheet: Sheet) -> str | None:
    """What to upload, as one instruction; None when the zip is right as it is."""
    if given.kind == "zip":
        if report.submission.expected_name:
            return f"rename the file to [bold]{terminal(report.submission.expected_name)}[/]"
        if _name_violations(report):
            return f"rename the file to {terminal(_PATTERN_ZIP)}"
        return None
    name = _zip_name(report, given)
    shown = f"[bold]{terminal(name)}[/]" if name else terminal(_PATTERN_ZIP)
    if given.kind == "notebook":
        return (
            f"zip it with your PDF as {shown} (upload the zip, not the notebook alone)"
            if report.submission.pdf
            else f"zip it with your PDF ({terminal(sheet.written_exercises)}) as {shown}"
        )
    files = ", ".join(terminal(f) for f in given.packed)
    return f"zip these files of the folder ({files}) as {shown}, and upload the zip"


def _data_line(report: Report, sheet: Sheet) -> str | None:
    data = report.execution.data
    if data is None or sheet.dataset is None:
        return None
    title = sheet.dataset.title
    if data.kind == "generated":
        what = (
            f"a generated stand-in of {title} (made on this machine, offline: no download), "
            f"{data.train_size:,} training / {data.test_size:,} test images"
        )
    else:
        what = f"{title}, {data.train_size:,} training / {data.test_size:,} test images"
    if data.train_size and data.train_size <= 6000 and sheet.small_data_note:
        what += "; " + sheet.small_data_note
    return what


def _isolation_line(report: Report) -> str | None:
    ex = report.execution
    if ex.status == "not_run" and not ex.cells_total:
        return None
    if ex.isolated:
        return f"ran in a {ex.sandbox} sandbox (no network, only its own folder visible)"
    return "ran on your own machine without a sandbox, which is fine for a self-check"


def student_report(report: Report, sheet: Sheet) -> Report:
    """The report `grader check` shows: no tutors' material (students.for_students), and the data and
    the sandbox said in a student's words."""
    from grader.report.students import for_students
    from grader.run.sandbox import is_isolation_note

    report = for_students(report, sheet.student_evidence)
    ex = report.execution
    notes = [n for n in ex.notes if not is_isolation_note(n)]
    if line := _isolation_line(report):
        notes.insert(0, f"the notebook {line}")
    update: dict = {"notes": notes}
    if ex.data is not None and (line := _data_line(report, sheet)):
        update["data"] = ex.data.model_copy(update={"description": line})
    return report.model_copy(update={"execution": ex.model_copy(update=update)})


def print_verdict(report: Report, console: Console, given: CheckInput | None, sheet: Sheet) -> None:
    """The report as a student reads it on a terminal. Every string from the submission is escaped."""
    from grader.run.sandbox import is_isolation_note

    given = given or CheckInput(
        given=Path(report.submission.file), kind="zip", target=Path(report.submission.file), root=Path(".")
    )
    sub = report.submission
    out = lambda text: console.print(text, highlight=False)
    out(f"[bold]{terminal(str(given.given))}[/]" + (" (folder)" if given.kind == "folder" else ""))
    team = (
        ", ".join(f"{m.name} ({m.student_id})" for m in sub.team) or "no team could be read from the name or the files"
    )
    out(f"  team: {terminal(team)}")
    if advice := upload_advice(report, given, sheet):
        out(f"  [yellow]upload:[/] {advice}")
    for v in report.violations:
        if given.kind != "zip" and v.code.startswith("name."):
            continue  # about the name of a file the student is told to zip: the advice above replaces it
        colour = "red" if v.severity == "error" else "yellow"
        out(f"  [{colour}]{v.severity}[/] {terminal(v.code)}: {terminal(v.message)}")
    ex = report.execution
    if ex.status == "not_run":
        out("  notebook: [red]not run[/]")
    else:
        status = {
            "ok": "[green]ran without errors[/]",
            "errors": "[red]ran with errors[/]",
            "timeout": "[red]ran over its time limit[/]",
            "kernel_died": "[red]the kernel died[/]",
        }[ex.status]
        out(f"  notebook: {status} ({ex.cells_run} of {ex.cells_total} code cells, {ex.duration_s:.1f} s)")
    for error in ex.errors:
        out(f"    {error.label}: {terminal(error.ename)}: {terminal(error.evalue)}")
    sandbox = _isolation_line(report)
    for note in ex.notes:
        if not is_isolation_note(note) and note != f"the notebook {sandbox}":
            out(f"    note: {terminal(note)}")
    if sandbox:
        out(f"  sandbox: {terminal(sandbox)}")
    if ex.data is not None:
        out(f"  data: {terminal(ex.data.description)}")
    if (shared := shared_verdict(report.checks)) is not None:  # one line, not the same line per check
        out(
            f"  {_MARK[shared.status]} all {len(report.checks)} checks ({sum(c.points for c in report.checks):g}/"
            f"{sum(c.max_points for c in report.checks):g}): {terminal(shared.message)}"
        )
    for check in [] if shared is not None else report.checks:
        out(
            f"  {_MARK[check.status]} {terminal(check.id)} ({check.points:g}/{check.max_points:g}): {terminal(check.message)}"
        )
    tutor = [e for e in report.exercises if e.points is None]
    if tutor:
        out(
            "  graded by tutors: "
            + ", ".join(
                (f"{sheet.manual_part_id} ({sheet.manual_part_short})" if e.id == sheet.automatic_exercise else e.id)
                for e in tutor
            )
        )
    out(f"  verdict: {_verdict_text(report, given.kind)}")


def _verdict_text(report: Report, kind: str) -> str:
    level = verdict(report, kind)
    if level == LOSES_POINTS:
        lost = [
            f"{c.id} ({c.max_points - c.points:g})" for c in report.checks if c.status not in ("pass", "needs_review")
        ]
        if shared_verdict(report.checks) is not None and len(lost) > 1:
            lost = [f"all {len(lost)} checks ({sum(c.max_points - c.points for c in report.checks):g})"]
        why = (
            [f"the notebook {'did not run' if report.execution.status == 'not_run' else 'did not run through'}"]
            if report.execution.status != "ok"
            else []
        ) + lost
        return "[red]would lose points[/]: " + terminal("; ".join(why))
    if level == TUTORS_MAY_DEDUCT:
        codes = sorted({v.code for v in report.violations if kind == "zip" or not v.code.startswith("name.")})
        review = [c.id for c in report.checks if c.status == "needs_review"]
        stopped = ["the notebook did not run through"] if report.execution.status not in ("ok", "timeout") else []
        why = stopped + codes + ([f"a tutor reviews {', '.join(review)}"] if review else [])
        if report.execution.status == "timeout":  # not ready to upload: say which cell did not finish
            return (
                "[yellow]tutors may deduct points[/]: "
                + terminal(unfinished_text(report))
                + (f"; see also {terminal(', '.join(why))} above" if why else "")
            )
        return (
            "[yellow]tutors may deduct points[/]: the automatic checks pass, but see "
            + terminal(", ".join(why))
            + " above"
        )
    if kind == "zip":
        return "[green]ready to upload[/]: nothing above loses points"
    return "[green]ready[/]: nothing above loses points; zip it as said above and upload the zip"


_CLOCK_WORDS = {
    "cell_cpu": "{cpu} of CPU time, the grader's limit per cell",
    "cell_wall": "{wall} while using little CPU time (it slept or waited), the grader's wall-clock limit per cell",
    "notebook_cpu": "{cpu} of CPU time, when the notebook reached the grader's limit for the whole notebook",
    "notebook_wall": "{wall}, when the notebook reached the grader's wall-clock limit for the whole notebook",
}


def unfinished_text(report: Report) -> str:
    """Which cell did not finish within the grader's time limit, and which limit: in a student's
    words, saying that tutors see it."""
    ex = report.execution
    tutors = "; tutors will see this in the report"
    if not ex.timed_out:  # the notebook's limit was reached between cells
        return "the notebook did not finish within the grader's time limit" + tutors
    first = ex.timed_out[0]
    spent = _CLOCK_WORDS[first.limit].format(
        cpu=f"{first.cpu_s:g} s" if first.cpu_s is not None else "its limit", wall=f"{first.wall_s:g} s"
    )
    if ex.time_limits is not None and ex.time_limits.clock != "cpu":
        spent = f"{first.wall_s:g} s, the grader's time limit"
    more = f" (and {len(ex.timed_out) - 1} more cell(s))" if len(ex.timed_out) > 1 else ""
    how = "; it did not stop when interrupted" if first.ignored_interrupt else ""
    return f"cell In [{first.execution_count}] did not finish: it was stopped after {spent}{how}{more}" + tutors


# ----------------------------------------------------------------------------- progress


class CheckProgress:
    """The notebook's progress: one live line on a terminal (cell i of N, elapsed time, its first
    line), plain lines otherwise; nothing with --json."""

    def __init__(self, console: Console, enabled: bool):
        self.console = console
        self.enabled = enabled
        self.live = enabled and console.is_terminal
        self.progress: Progress | None = None
        self.task = TaskID(0)
        self.started = time.monotonic()

    def __enter__(self) -> CheckProgress:
        if self.live:
            self.progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self.progress.start()
            self.task = self.progress.add_task("preparing the data and starting Python…", total=None)
        return self

    def __exit__(self, *exc_info) -> None:
        if self.progress is not None:
            self.progress.stop()

    def say(self, text: str) -> None:
        """A message from the preparation (e.g. calibration): printed above the live line."""
        if self.enabled:
            self.console.print(terminal(text), highlight=False)

    def cell(self, step) -> None:  # a run.execute.CellProgress
        if not self.enabled or step.finished:
            return
        text = f"running cell In [{step.number}] of {step.total}: {step.first_line}"
        if self.progress is not None:
            self.progress.update(self.task, description=terminal(text))
        else:
            self.console.print(
                f"\\[{time.monotonic() - self.started:5.1f} s] {terminal(text)}", highlight=False, soft_wrap=True
            )


# ----------------------------------------------------------------------------- the command


@contextlib.contextmanager
def _interrupt_at_once():
    """Ctrl-C stops the check where it is: KeyboardInterrupt at once (asyncio.run would otherwise
    only cancel its task, and the kernel, hit by the same Ctrl-C, would end the run as if the
    notebook had died). Leaving the event loop stops the kernel."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGINT, interrupt)
    except ValueError:  # not the main thread: leave it as it is
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def check_config(config: Config, *, full: bool) -> Config:
    """The configuration of a self-check: the graded one, on a small subset unless `full`."""
    if full:
        return config
    data = config.data.model_copy(update={"train_size": FAST_TRAIN, "test_size": FAST_TEST})
    return config.model_copy(update={"data": data})


def check_path(
    path: Path, *, config_path: str | None, as_json: bool, full: bool, console: Console, sheet: str | None = None
) -> int:
    from grader.engine.batch import prepare_context
    from grader.engine.preflight import preflight
    from grader.intake import identify
    from grader.pipeline import grade_submission
    from grader.run.sandbox import choose_sandbox
    from grader.util.cache import cache_dir

    config = check_config(load_config(config_path, sheet=sheet), full=full)
    cache_dir()  # where the cache goes, said now (one line) if it cannot go to the default folder
    sweep_stale()  # what an earlier check (or grader), killed, left in the temporary folder
    work = owned_dir(CHECK_PREFIX)  # swept by a later run if this one is killed
    try:
        try:
            given = resolve_input(path, work)
        except CheckRefused as refused:
            console.print(f"[red]error:[/] {terminal(str(refused))}", highlight=False)
            return EXIT_UNCHECKED
        choice = choose_sandbox(config)
        if not as_json:
            if given.note:
                console.print(terminal(given.note), highlight=False)
            if choice.fallback and "installed but" in choice.why_not:
                console.print(
                    f"note: {terminal(choice.why_not)}; your notebook runs without a sandbox, which is "
                    "fine for a self-check.",
                    highlight=False,
                )
        with CheckProgress(console, enabled=not as_json) as progress, _interrupt_at_once():
            ctx = prepare_context(config, work, 1, progress=progress.say)
            submission = identify(given.target, given.root, config.naming)
            # Modules the notebook imports that will not be there when tutors grade (the same
            # pre-flight as a batch's, for one submission).
            found = preflight([submission], config, work, ctx.kernel)
            ctx = dataclasses.replace(ctx, outside_course=found.outside_course)
            for line in found.warning_lines(how_to_add=False):
                progress.say(line)
            report = grade_submission(given.target, given.root, ctx, submission, progress=progress.cell).report
        report = student_report(report, config.sheet_def)
        if as_json:
            print(report.model_dump_json(indent=2))
        else:
            print_verdict(report, console, given, config.sheet_def)
        return EXIT_STATUS[verdict(report, given.kind)]
    except KeyboardInterrupt:
        console.print(
            f"[yellow]check interrupted[/]: {terminal(str(path))} was not checked to the end, and nothing "
            "was written. Run the same command again to check it.",
            highlight=False,
        )
        return EXIT_INTERRUPTED
    finally:
        remove_tree(work)  # never raises, also for a tree 1,500 levels deep that a cell made
