"""`grader merge`: join the report folders of several shards into one result."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from rich.console import Console

from grader.config import load_config
from grader.errors import MergeError
from grader.report.cms import CmsError
from grader.errors import ManualPointsError
from grader.report.outputs import merge_outputs
from grader.report.cms_import import remove_import_files
from grader.report.roster import load_roster
from grader.report.store import read_report
from grader.report.summary import write_summary
from grader.textsafe import terminal


# What `grader grade --shard` leaves in its folder. Hidden, so that no submission's report can have
# its name (discovery skips hidden files); `shard.json` is what grader versions before wrote.
SHARD_FILE = ".shard.json"
OLD_SHARD_FILE = "shard.json"


def shard_marker(folder: Path) -> dict | None:
    """The folder's shard marker, or None when it was not graded as a shard. An old `shard.json`
    counts only when it is a marker: it may also be the report of a submission named `shard.zip`."""
    for name in (SHARD_FILE, OLD_SHARD_FILE):
        try:
            info = json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(info, dict) and isinstance(info.get("shard"), str) and "submission" not in info:
            return info
    return None


def _is_marker(path: Path) -> bool:
    return path.name == SHARD_FILE or (path.name == OLD_SHARD_FILE and shard_marker(path.parent) is not None
                                       and not (path.parent / SHARD_FILE).exists())


def check_shards(inputs: list[Path]) -> None:
    """Folders graded with --shard K/N must be all N parts, each once, of the same configuration."""
    parts: dict[int, Path] = {}
    counts, hashes = set(), set()
    for folder in inputs:
        info = shard_marker(folder)
        if info is None:
            continue
        k, n = (int(x) for x in info["shard"].split("/"))
        counts.add(n)
        hashes.add(info.get("config_hash"))
        if k in parts:
            raise MergeError(f"shard {k}/{n} is given twice: {parts[k]} and {folder}")
        parts[k] = folder
    if not parts:
        return
    if len(counts) > 1:
        raise MergeError(f"the folders come from different shardings (N = {sorted(counts)})")
    if len(hashes) > 1:
        raise MergeError("the shards were graded with different grading.toml files")
    n = counts.pop()
    missing = sorted(set(range(1, n + 1)) - set(parts))
    if missing:
        raise MergeError("missing shard(s) " + ", ".join(f"{k}/{n}" for k in missing) +
                         f": grade them with `grader grade --shard K/{n}` and merge all {n} folders")
    if len(parts) != len(inputs):
        unsharded = [str(f) for f in inputs if shard_marker(f) is None]
        raise MergeError(f"{', '.join(unsharded)}: not graded as a shard, but the others were")


def merge_reports(inputs: list[Path], out_dir: Path) -> list[tuple[str, object]]:
    """Copy every shard's reports (and executed notebooks) into out_dir. The same submission in two
    shards is an error: shards must be disjoint, and all of them must be there."""
    check_shards(inputs)
    seen: dict[str, Path] = {}
    reports = []
    for folder in inputs:
        if not folder.is_dir():
            raise MergeError(f"{folder}: not a folder of reports")
        files = sorted(p for p in folder.glob("*.json") if not _is_marker(p))
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
    if any(folder.resolve() != out_dir.resolve() for folder in seen.values()):
        remove_import_files(out_dir)   # it describes the reports about to be replaced
    for stem, folder in seen.items():
        if folder.resolve() != out_dir.resolve():
            shutil.copy2(folder / f"{stem}.json", out_dir / f"{stem}.json")
            executed = folder / "executed" / f"{stem}.ipynb"
            if executed.exists():
                (out_dir / "executed").mkdir(exist_ok=True)
                shutil.copy2(executed, out_dir / "executed" / f"{stem}.ipynb")
    reports.sort(key=lambda item: item[0])
    return reports


def merge_command(args, console: Console) -> int:
    config = load_config(args.config).with_roster(getattr(args, "roster", None))
    load_roster(config)   # a roster that cannot be read stops the merge before anything is copied
    inputs = [Path(p) for p in args.inputs]
    try:
        reports = merge_reports(inputs, Path(args.out))
        write_summary(reports, Path(args.out), config)
        warnings = merge_outputs(inputs, reports, Path(args.out), config)
    except (MergeError, ManualPointsError, CmsError) as exc:
        console.print(f"[red]merge refused:[/] {terminal(exc, lines=True)}", highlight=False)
        return 2
    for warning in warnings:
        console.print(f"[yellow]warning:[/] {terminal(warning, lines=True)}", highlight=False)
    console.print(f"merged {len(reports)} report(s) from {len(inputs)} folder(s) into {terminal(args.out)}",
                  highlight=False)
    return 0
