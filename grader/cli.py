"""Command line: thin. Parses arguments, calls the batch runner or the pipeline, prints."""

from __future__ import annotations

import argparse
import signal
import threading
import time
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from grader.config import load_config
from grader.errors import UserError
from grader.report.roster import load_roster
from grader.run.sandbox import choose_sandbox
from grader.util.fsclean import WORK_PREFIX, owned_dir, release_dir, sweep_stale
from grader.util.locks import hold_out_dir
from grader.util.textsafe import plain, terminal


class ProgressReporter:
    """A progress bar with counts, ETA and the current team on a terminal; plain lines elsewhere."""

    def __init__(self, console: Console):
        self.console = console
        self.progress: Progress | None = None
        self.task = TaskID(0)
        self.done = 0
        self.total = 0
        self.running: list[str] = []

    def start(self, total: int, cached: int, skipped: int) -> None:
        self.total = total
        self.console.print(
            f"{total} submission(s) to grade, {cached} unchanged since their last report, "
            f"{skipped} file(s) skipped as not submissions.",
            soft_wrap=True,
        )
        if self.console.is_terminal and total:
            progress = Progress(
                TextColumn("[bold]grading"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                TextColumn("{task.description}"),
                console=self.console,
            )
            progress.start()
            self.progress, self.task = progress, progress.add_task("", total=total)

    def _description(self) -> str:
        # The task's description is rendered as rich markup: students' file names are escaped.
        return ", ".join(terminal(stem) for stem in self.running[-2:])

    def started(self, stem: str) -> None:
        self.running.append(stem)
        if self.progress is not None:
            self.progress.update(self.task, description=self._description())

    def finished(self, outcome) -> None:
        self.done += 1
        if outcome.stem in self.running:
            self.running.remove(outcome.stem)
        line = (
            f"[{self.done}/{self.total}] {plain(outcome.stem)}: {outcome.status}, "
            f"{outcome.points:g}/{outcome.max_points:g} automatic points ({outcome.seconds:.1f} s)"
        )
        if outcome.message:
            line += f" — {plain(outcome.message)}"
        if self.progress is not None:
            self.progress.update(self.task, advance=1, description=self._description())
            self.progress.console.print(line, highlight=False, markup=False)
        else:
            print(line, flush=True)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def _final_table(console: Console, result, out_dir: Path, seconds: float, automatic_exercise: str) -> None:
    statuses = Counter(report.execution.status for _, report in result.reports)
    points = Counter(round(r.auto_points, 2) for _, r in result.reports)
    # Titles above the tables, not in them: a table title wraps to the width of its (narrow) table.
    console.print(
        f"Graded {len(result.reports)} submission(s) in {seconds:.1f} s → {plain(out_dir)}",
        highlight=False,
        soft_wrap=True,
        markup=False,
    )
    table = Table()
    table.add_column("execution")
    table.add_column("count", justify="right")
    for status, count in sorted(statuses.items()):
        table.add_row(status, str(count))
    console.print(table)
    console.print(f"Automatic points ({automatic_exercise}):")
    dist = Table()
    dist.add_column("points", justify="right")
    dist.add_column("submissions", justify="right")
    dist.add_column("")
    most = max(points.values(), default=0)
    for value, count in sorted(points.items()):
        dist.add_row(f"{value:g}", str(count), "█" * max(1, round(40 * count / most)))  # bars of at most 40
    console.print(dist)
    if result.discovery and result.discovery.skipped:
        console.print(
            "Skipped (not submissions): "
            + ", ".join(f"{plain(s.path.name)} ({plain(s.reason)})" for s in result.discovery.skipped[:10]),
            highlight=False,
            soft_wrap=True,
            markup=False,
        )
    for student, files in sorted(result.duplicates.items()):
        console.print(
            f"[yellow]Student {terminal(student)} appears in {len(files)} submissions: "
            f"{', '.join(terminal(f) for f in files)}[/]",
            highlight=False,
        )
    console.print(f"Data: {result.data_description}", highlight=False, soft_wrap=True, markup=False)


def print_preflight(console: Console, found) -> None:
    """The import pre-flight: one row per module, how many teams import it, whether the kernel has it."""
    from rich.text import Text

    console.print(
        f"Imports of {found.notebooks} notebook(s), checked against the kernel's Python ({found.kernel_python}):",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    table = Table()
    table.add_column("module")
    table.add_column("teams", justify="right")
    table.add_column("in the kernel")
    shown = {
        "available": "available",
        "missing": "[bold red]MISSING[/]",
        "outside": "[bold red]NOT PINNED[/]",
        "platform": "[yellow]platform only[/]",
        "submission": "shipped by the team",
        "unknown": "[yellow]not known[/]",
    }
    for row in found.rows:
        table.add_row(
            Text(plain(row.module)),
            str(row.count),
            shown[row.status] + (f" ({terminal(row.detail)})" if row.detail else ""),
        )
    console.print(table)
    # Text() keeps rich markup out, but not terminal escapes: team names come from file names.
    for stem, why in found.unreadable:
        console.print(Text(plain(f"  not read: {stem}: {why}")))
    for line in found.warning_lines():
        console.print(Text(plain(line), style="bold red" if "NOT" in line else "red"), soft_wrap=True)


def cmd_grade(args, console: Console) -> int:
    from grader.engine.batch import Shard, preflight_only, run_batch

    config = load_config(args.config, sheet=args.sheet).with_roster(args.roster)
    root = Path(args.submissions)
    if not root.exists():
        console.print(f"[red]error:[/] {terminal(root)}: no such file or folder", highlight=False)
        return 2
    shard = Shard.parse(args.shard) if args.shard else None
    if args.preflight:
        found = preflight_only(root, config, shard=shard)
        print_preflight(console, found)
        return 1 if found.missing else 0
    load_roster(config)  # a roster that cannot be read stops here, before hours of grading
    choice = choose_sandbox(config)
    if choice.fallback:  # student code is about to run with the tutor's rights: say so, loudly
        console.print(
            f"[bold red]WARNING: the students' notebooks run WITHOUT a sandbox[/] ({escape(choice.why_not)}): "
            "they can read and write what your user can and reach the network. Grade on a machine "
            'where bubblewrap works, or set [run] sandbox = "bubblewrap" to refuse.',
            highlight=False,
            soft_wrap=True,
        )
    reporter = ProgressReporter(console)
    started = time.monotonic()
    try:
        result = run_batch(
            root,
            config,
            Path(args.out),
            workers=args.workers,
            shard=shard,
            force=args.force,
            reporter=reporter,
            allow_clearing=args.allow_clearing,
            progress=lambda text: console.print(text, highlight=False, markup=False, soft_wrap=True),
            show_preflight=lambda found: print_preflight(console, found),
        )
    finally:
        reporter.stop()
    _final_table(console, result, Path(args.out), time.monotonic() - started, config.sheet_def.automatic_exercise)
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {terminal(warning, lines=True)}", highlight=False)
    return 0 if result.all_reported else 1


def cmd_check(args, console: Console) -> int:
    from grader.commands.check import check_path

    return check_path(
        Path(args.path), config_path=args.config, as_json=args.json, full=args.full, console=console, sheet=args.sheet
    )


def cmd_schema(args, console: Console) -> int:
    from grader.report.store import schema_json

    print(schema_json())
    return 0


def cmd_prepare(args, console: Console) -> int:
    from grader.commands.prepare import prepare

    config = load_config(args.config, sheet=args.sheet)
    root, out = Path(args.submissions), Path(args.out)
    if not root.exists():
        console.print(f"[red]error:[/] {terminal(root)}: no such file or folder", highlight=False)
        return 2
    workers = args.workers or config.run.workers or 2

    def say(text: str) -> None:
        console.print(text, highlight=False, markup=False, soft_wrap=True)

    with hold_out_dir(out, "grader prepare"):
        done = prepare(
            root,
            config,
            shards=args.shards,
            workers=workers,
            runs=args.runs,
            progress=say,
            show_preflight=lambda found: print_preflight(console, found),
        )
    say(f"Data: {done.data_description}")
    if done.calibration:
        say(
            f"Calibration: {done.calibration.file}, entry {done.calibration.sha256} for data "
            f"{done.calibration.fingerprint}, made {done.calibration.created}; every shard grades with it"
        )
    say(
        f"Time limits: {done.limits.cell_timeout_s:g} s per cell, {done.limits.notebook_timeout_s:g} s per "
        f"notebook ({done.limits.source})"
    )
    say(
        f"{done.submissions} submission(s) in {len(done.per_shard)} shard(s) of "
        f"{', '.join(str(n) for n in done.per_shard)}."
    )
    res = done.resources
    say(
        f"One shard needs: {res.cores} core(s), {res.memory_mb} MiB, {res.slurm_time} "
        f"({res.why}). A shard that runs out of time keeps its reports: submitting it again grades the rest."
    )
    say("Next (scripts/slurm/submit.sh does all of this):")
    if args.sheet and args.sheet != _sheet_of_the_file(args.config):
        say(
            f"Note: the shards' scripts name no sheet, they read grading.toml's [sheet] name: set it to "
            f'"{args.sheet}" there first (or give each `grader grade --shard K/N` and `grader merge` --sheet {args.sheet}).'
        )
    for line in done.commands(root, out):
        print("  " + line, flush=True)
    if args.options_file:
        Path(args.options_file).write_text(" ".join(res.sbatch_options) + "\n", encoding="utf-8")
    return 0  # modules the kernel lacks cost needs_review, not the run: the table above said so


def _sheet_of_the_file(config_path: str | None) -> str:
    """The sheet grading.toml itself names (without --sheet), "" when none or unreadable."""
    try:
        return load_config(config_path).sheet.name
    except UserError:
        return ""


def cmd_calibrate(args, console: Console) -> int:
    from grader.engine.batch import prepare_context
    from grader.engine.calibrate import calibrate, calibration_file

    config = load_config(args.config, sheet=args.sheet)
    sweep_stale()
    work = owned_dir(WORK_PREFIX)
    try:
        # Threads per kernel as in a batch: the solution's timings set the batch's time limits.
        ctx = prepare_context(config, work, config.worker_count, auto_calibrate=False)
        console.print(
            f"Calibrating on {ctx.data.info.description} ({args.runs} runs of the solution)…",
            highlight=False,
            markup=False,
        )
        target = config.sheet_def.shipped_calibration if args.shipped else calibration_file()
        found = calibrate(
            ctx, runs=args.runs, path=target, progress=lambda text: console.print(text, highlight=False, markup=False)
        )
    finally:
        release_dir(work)
    console.print(f"stored in {target}", highlight=False, markup=False, soft_wrap=True)
    console.print("per-epoch range: " + ", ".join(f"{lo:.3f}–{hi:.3f}" for lo, hi in zip(found.low, found.high)))
    return 0


def cmd_merge(args, console: Console) -> int:
    from grader.commands.merge import merge_command

    with hold_out_dir(Path(args.out), "grader merge"):
        code = merge_command(args, console)
    used = _calibrations_used([Path(folder) for folder in args.inputs])
    if len(used) > 1:  # shards of one course should grade alike: `grader prepare` before them sees to it
        console.print(
            "[yellow]warning:[/] the shards were graded with different calibrations (accuracy range "
            "and time limits): "
            + "; ".join(f"{sha} in {', '.join(terminal(f) for f in folders)}" for sha, folders in sorted(used.items())),
            highlight=False,
        )
    return code


def _calibrations_used(folders: list[Path]) -> dict[str, list[str]]:
    """Which calibration (by its hash) each folder's reports name."""
    from grader.report.store import read_report

    used: dict[str, list[str]] = {}
    for folder in folders:
        for path in sorted(folder.glob("*.json")):
            report = read_report(path) if not path.name.startswith(".") else None
            limits = report.execution.time_limits if report else None
            if limits is not None and limits.calibration is not None:
                where = used.setdefault(limits.calibration.sha256, [])
                if str(folder) not in where:
                    where.append(str(folder))
    return used


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grader", description="Autograder for the NNTI exercise sheets' notebooks.")
    parser.add_argument("--config", default=None, help="configuration file (default: ./grading.toml)")
    sub = parser.add_subparsers(dest="command", required=True)
    # Every command that grades or reads reports may name the sheet instead of grading.toml's [sheet] name.
    sheet = argparse.ArgumentParser(add_help=False)
    sheet.add_argument(
        "--sheet",
        default=None,
        metavar="NAME",
        help="the sheet (a package of grader/sheets/, e.g. sheet5) instead of grading.toml's [sheet] name",
    )

    grade = sub.add_parser("grade", parents=[sheet], help="grade every submission under a folder")
    grade.add_argument("submissions", nargs="?", default="submissions", help="folder or file (default: submissions/)")
    grade.add_argument("--out", default="reports", help="output folder (default: reports/)")
    grade.add_argument("--workers", type=int, default=None, help="parallel kernels (default: from grading.toml)")
    grade.add_argument("--shard", default=None, metavar="K/N", help="grade only the K-th of N disjoint parts")
    grade.add_argument("--force", action="store_true", help="regrade even unchanged submissions")
    grade.add_argument(
        "--preflight",
        action="store_true",
        help="only list the modules the notebooks import and whether the kernel has them",
    )
    grade.add_argument(
        "--roster",
        default=None,
        metavar="FILE",
        help="the course's list of students (CSV export): overrides [cms] roster",
    )
    grade.add_argument(
        "--allow-clearing",
        action="store_true",
        help="let the tutors' sheet take points out of reports (an emptied cell or row); refused otherwise",
    )
    grade.set_defaults(func=cmd_grade)

    check = sub.add_parser(
        "check",
        parents=[sheet],
        help="check one zip, notebook or folder before uploading it",
        description="Check one zip, notebook or folder before uploading it. Exit status: "
        "0 fine, 1 would lose points, 3 tutors may deduct points (name, PDF, "
        "team), 2 nothing could be checked, 130 interrupted.",
    )
    check.add_argument("path")
    check.add_argument("--json", action="store_true", help="print the report as JSON (as a student may see it)")
    check.add_argument("--full", action="store_true", help="run on the graded data size instead of a small subset")
    check.set_defaults(func=cmd_check)

    merge = sub.add_parser("merge", parents=[sheet], help="join shards' reports and tutors' manual points")
    merge.add_argument("inputs", nargs="+", help="report folders of the shards")
    merge.add_argument("--out", default="reports", help="output folder (default: reports/)")
    merge.add_argument(
        "--roster",
        default=None,
        metavar="FILE",
        help="the course's list of students (CSV export): overrides [cms] roster",
    )
    merge.add_argument(
        "--allow-clearing",
        action="store_true",
        help="let the tutors' sheet take points out of reports (an emptied cell or row); refused otherwise",
    )
    merge.add_argument(
        "--partial",
        action="store_true",
        help="merge the shards that are there even when some are missing or still grading; every "
        "output says so, and the course system's files are written as PARTIAL-*",
    )
    merge.add_argument(
        "--restore",
        nargs="?",
        const="",
        default=None,
        metavar="VERSION",
        help="bring back an earlier version of manual_points.csv kept in OUT/manual/ (by its name "
        "or the start of it), then merge; without VERSION, list the versions",
    )
    merge.set_defaults(func=cmd_merge)

    schema = sub.add_parser("schema", help="print the JSON Schema of a report")
    schema.set_defaults(func=cmd_schema)

    prep = sub.add_parser(
        "prepare",
        parents=[sheet],
        help="once before the shards of a course: stage the data, calibrate, and print what one shard needs from Slurm",
    )
    prep.add_argument("submissions", nargs="?", default="submissions", help="folder or file (default: submissions/)")
    prep.add_argument(
        "--out", default="reports", help="the output folder the shards are merged into (default: reports/)"
    )
    prep.add_argument("--shards", type=int, default=8, help="how many shards (array tasks) the course is split into")
    prep.add_argument(
        "--workers", type=int, default=None, help="workers (cores) per shard (default: [run] workers, or 2)"
    )
    prep.add_argument("--runs", type=int, default=3, help="runs of the solution when calibrating (default: 3)")
    prep.add_argument(
        "--options-file",
        default=None,
        metavar="FILE",
        help="also write the sbatch options of one shard (--cpus-per-task, --mem, --time) to FILE",
    )
    prep.set_defaults(func=cmd_prepare)

    cal = sub.add_parser(
        "calibrate", parents=[sheet], help="run the solution to find the plausible accuracy range for the data"
    )
    cal.add_argument("--runs", type=int, default=5)
    cal.add_argument(
        "--shipped",
        action="store_true",
        help="write the entry into the calibration the sheet ships (<its reference folder>/calibration.json; maintainers: commit it) "
        "instead of the cache",
    )
    cal.set_defaults(func=cmd_calibrate)
    return parser


# The errors a user can fix (grader/errors.py), and any other ValueError (a bad argument).
_USER_ERRORS = (UserError, ValueError)


class Terminated(BaseException):
    """The grader was told to stop (SIGTERM: a scheduler's time limit; SIGHUP: the terminal closed).
    Raised in the main thread, so that every `finally` runs: workers are stopped and temporary
    folders removed before the grader exits."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _terminate(signum, frame) -> None:
    raise Terminated(signum)


def _on_stop_signals() -> None:
    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name) and threading.current_thread() is threading.main_thread():
            signal.signal(getattr(signal, name), _terminate)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console(stderr=False)
    _on_stop_signals()
    try:
        return args.func(args, console)
    except _USER_ERRORS as exc:  # bad input, not a crash: one line saying what and where, exit 2
        label, hint = (exc.label, exc.hint) if isinstance(exc, UserError) else ("error", "")
        console.print(f"[red]{label}:[/] {terminal(exc, lines=True)}{hint}", highlight=False)
        return 2
    except KeyboardInterrupt:
        console.print(
            "[yellow]interrupted[/]: workers stopped and temporary folders removed; reports written "
            "so far are whole; run again to continue."
        )
        return 130
    except Terminated as stop:
        name = signal.Signals(stop.signum).name
        if args.command == "check":  # one student's check: no workers, no reports
            console.print(
                f"[yellow]check stopped by {name}[/]: {terminal(args.path)} was not checked to the end, "
                "and nothing was written. Run the same command again to check it.",
                highlight=False,
            )
            return 128 + stop.signum
        console.print(
            f"[yellow]terminated by {name}[/]: workers stopped and temporary folders removed; "
            "reports written so far are whole; run the same command again to grade the rest."
        )
        return 128 + stop.signum


if __name__ == "__main__":
    raise SystemExit(main())
