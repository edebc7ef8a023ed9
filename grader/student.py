"""`grader check`: a student's self-check of one zip, notebook or folder before uploading it.

It goes through the same batch runner and pipeline as the tutors' grading, on a small subset of the
data by default, and prints a short verdict."""
from __future__ import annotations

import tempfile
from pathlib import Path

from rich.console import Console

from grader.config import Config, load_config
from grader.report.models import Report
from grader.textsafe import terminal

# The small subset of a default check: enough for every check, a fraction of the training time.
FAST_TRAIN, FAST_TEST = 1000, 500

_MARK = {"pass": "[green]✓[/]", "fail": "[red]✗[/]", "error": "[red]![/]", "skipped": "[yellow]-[/]",
         "needs_review": "[yellow]?[/]"}


def would_lose_points(report: Report) -> bool:
    return (bool(report.violations) or report.execution.status != "ok"
            or any(c.status != "pass" for c in report.checks))


def print_verdict(report: Report, console: Console) -> None:
    sub = report.submission
    console.print(f"[bold]{terminal(sub.file)}[/]", highlight=False)
    team = ", ".join(f"{terminal(m.name)} ({terminal(m.student_id)})" for m in sub.team) or "no team could be read from the name"
    console.print(f"  team: {team}", highlight=False)
    if sub.expected_name:
        console.print(f"  [yellow]name:[/] rename the file to [bold]{terminal(sub.expected_name)}[/]", highlight=False)
    for v in report.violations:
        colour = "red" if v.severity == "error" else "yellow"
        console.print(f"  [{colour}]{v.severity}[/] {v.code}: {terminal(v.message)}", highlight=False)
    ex = report.execution
    console.print(f"  notebook: {ex.status} ({ex.cells_run}/{ex.cells_total} cells, {ex.duration_s:.1f} s)"
                  + (f", isolated by {ex.sandbox}" if ex.isolated else ", not isolated"), highlight=False)
    for error in ex.errors:
        console.print(f"    cell {error.cell}: {terminal(error.ename)}: {terminal(error.evalue)}", highlight=False)
    for note in ex.notes:
        console.print(f"    note: {terminal(note)}", highlight=False)
    if ex.data:
        console.print(f"  data: {terminal(ex.data.description)}", highlight=False)
    for check in report.checks:
        console.print(f"  {_MARK[check.status]} {check.id} ({check.points:g}/{check.max_points:g}): {terminal(check.message)}",
                      highlight=False)
    tutor = [e for e in report.exercises if e.points is None]
    if tutor:
        console.print("  graded by tutors: " + ", ".join(e.id for e in tutor), highlight=False)
    verdict = ("[red]would lose points — see above[/]" if would_lose_points(report)
               else "[green]ready to upload: nothing above would lose points[/]")
    console.print(f"  verdict: {verdict}")


def check_config(config: Config, *, full: bool) -> Config:
    """The configuration of a self-check: the graded one, on a small subset unless `full`."""
    if full:
        return config
    data = config.data.model_copy(update={"train_size": FAST_TRAIN, "test_size": FAST_TEST})
    return config.model_copy(update={"data": data})


def check_path(path: Path, *, config_path: str | None, as_json: bool, full: bool, console: Console) -> int:
    from grader.batch import run_batch

    if not path.exists():
        console.print(f"[red]error:[/] {terminal(path)}: no such file or folder", highlight=False)
        return 2
    config = check_config(load_config(config_path), full=full)
    quiet = (lambda text: None) if as_json else (lambda text: console.print(text, highlight=False, markup=False))
    with tempfile.TemporaryDirectory(prefix="grader-check-") as out:
        result = run_batch(path, config, Path(out), workers=1, force=True, progress=quiet)
        if not result.reports:
            console.print(f"[red]error:[/] {terminal(path)}: no submission found (expected a .zip, .ipynb, .py or .pdf)",
                          highlight=False)
            return 2
        if as_json:
            for _, report in result.reports:
                print(report.model_dump_json(indent=2))
        else:
            for _, report in result.reports:
                print_verdict(report, console)
    return 1 if any(would_lose_points(r) for _, r in result.reports) else 0
