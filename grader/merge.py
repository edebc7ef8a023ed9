"""`grader merge`: join the report folders of several shards into one result."""
from __future__ import annotations

import shutil
from pathlib import Path

from rich.console import Console

from grader.report.render import read_report, write_summary


class MergeError(ValueError):
    pass


def merge_reports(inputs: list[Path], out_dir: Path) -> list[tuple[str, object]]:
    """Copy every shard's reports (and executed notebooks) into out_dir. The same submission in two
    shards is an error: shards must be disjoint."""
    seen: dict[str, Path] = {}
    reports = []
    for folder in inputs:
        if not folder.is_dir():
            raise MergeError(f"{folder}: not a folder of reports")
        files = sorted(p for p in folder.glob("*.json"))
        if not files:
            raise MergeError(f"{folder}: holds no reports (*.json); was this shard graded?")
        for path in files:
            report = read_report(path)
            if report is None:
                raise MergeError(f"{path}: not a valid report")
            stem = path.stem
            if stem in seen:
                raise MergeError(f"{stem} is in two shards: {seen[stem]} and {folder}; shards must not overlap")
            seen[stem] = folder
            reports.append((stem, report))
    out_dir.mkdir(parents=True, exist_ok=True)
    for stem, folder in seen.items():
        if folder.resolve() != out_dir.resolve():
            shutil.copy2(folder / f"{stem}.json", out_dir / f"{stem}.json")
            executed = folder / "executed" / f"{stem}.ipynb"
            if executed.exists():
                (out_dir / "executed").mkdir(exist_ok=True)
                shutil.copy2(executed, out_dir / "executed" / f"{stem}.ipynb")
    reports.sort(key=lambda item: item[0])
    write_summary(reports, out_dir)
    return reports


def merge_command(args, console: Console) -> int:
    try:
        reports = merge_reports([Path(p) for p in args.inputs], Path(args.out))
    except MergeError as exc:
        console.print(f"[red]merge refused:[/] {exc}", highlight=False)
        return 2
    console.print(f"merged {len(reports)} report(s) from {len(args.inputs)} folder(s) into {args.out}")
    return 0
