"""`grader merge`: join the report folders of several shards into one result, with the tutors'
points. Only finished shards: a shard marks itself "in progress" when it starts (`.shard.json`), and
a folder that is in progress or held by another grader is refused unless `--partial` is asked for.
`--restore` brings back an earlier version of the tutors' sheet."""

from __future__ import annotations

import json
import shutil
from contextlib import ExitStack
from pathlib import Path

from rich.console import Console

from grader.config import load_config
from grader.errors import CmsError, FolderBusy, ManualPointsError, MergeError
from grader.models import Report
from grader.report.cms_import import remove_import_files
from grader.report.manual_points import HISTORY_DIR, MANUAL_POINTS_NAME, held_points
from grader.report.manual_points_history import restore_version, versions
from grader.report.outputs import merge_outputs, partial_before
from grader.report.roster import load_roster
from grader.report.store import SHARD_FILE, bring_back, executed_path, read_report
from grader.util.locks import OUT_DIR_LOCK, describe_holder, hold
from grader.util.textsafe import terminal

# What grader versions before wrote into a shard's folder (now report/store.py's SHARD_FILE).
OLD_SHARD_FILE = "shard.json"


def shard_marker(folder: Path) -> dict | None:
    """The folder's shard marker, or None when it was not graded as a shard. An old `shard.json`
    counts only when it is a marker: it may also be the report of a submission named `shard.zip`."""
    for name in (SHARD_FILE, OLD_SHARD_FILE):
        try:
            info = json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            continue
        if isinstance(info, dict) and isinstance(info.get("shard"), str) and "submission" not in info:
            return info
    return None


def _is_marker(path: Path) -> bool:
    return path.name == SHARD_FILE or (
        path.name == OLD_SHARD_FILE
        and shard_marker(path.parent) is not None
        and not (path.parent / SHARD_FILE).exists()
    )


def _not_done(folder: Path, info: dict, busy: dict[Path, str]) -> str | None:
    """Why a shard's folder is not finished, or None when it is."""
    if folder in busy:
        return f"shard {info['shard']} ({folder}) is still being graded by {busy[folder]}"
    if info.get("state", "done") == "done":  # markers of earlier versions were written at the end
        return _lacking_reports(folder, info)
    who = (
        f"{info.get('command', 'grader grade')} (pid {info.get('pid', '?')} on {info.get('host', '?')}, "
        f"since {info.get('since', '?')})"
    )
    return (
        f"shard {info['shard']} ({folder}) did not finish: it was started by {who}, which holds it no "
        f"longer (stopped, killed or out of time?); run that shard again"
    )


def _lacking_reports(folder: Path, info: dict) -> str | None:
    """Why a done shard's folder is not whole: reports of stems its marker lists are not there (the
    folder was copied in part, or a report was deleted), or None."""
    stems = info.get("stems")
    if not isinstance(stems, list):
        return None
    gone = sorted(s for s in stems if isinstance(s, str) and not (folder / f"{s}.json").is_file())
    if not gone:
        return None
    shown = ", ".join(gone[:5]) + (f" and {len(gone) - 5} more" if len(gone) > 5 else "")
    return (
        f"shard {info['shard']} ({folder}) lacks {len(gone)} of the {len(stems)} report(s) it graded ({shown}): "
        f"was it copied in part? Copy it again, or run that shard again"
    )


def check_shards(inputs: list[Path], *, partial: bool = False, busy: dict[Path, str] | None = None) -> list[str]:
    """Folders graded with --shard K/N must be all N parts, each once, each done, of the same
    configuration. `busy`: folders another grader holds, with who. With `partial`, missing and
    unfinished parts are returned (what the merge lacks) instead of refused."""
    parts: dict[int, Path] = {}
    counts, hashes = set(), set()
    lacking: list[str] = []
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
        if (why := _not_done(folder, info, busy or {})) is not None:
            lacking.append(why)
    if not parts:
        return lacking
    if len(counts) > 1:
        raise MergeError(f"the folders come from different shardings (N = {sorted(counts)})")
    if len(hashes) > 1:
        raise MergeError("the shards were graded with different grading.toml files")
    n = counts.pop()
    missing = sorted(set(range(1, n + 1)) - set(parts))
    if missing:
        lacking.append(
            "missing shard(s) "
            + ", ".join(f"{k}/{n}" for k in missing)
            + f": grade them with `grader grade --shard K/{n}` and merge all {n} folders"
        )
    if len(parts) != len(inputs):
        unsharded = [str(f) for f in inputs if shard_marker(f) is None]
        raise MergeError(f"{', '.join(unsharded)}: not graded as a shard, but the others were")
    if lacking and not partial:
        raise MergeError(
            "; ".join(lacking) + ". Merge once every shard is done, or merge what is there with "
            "--partial (its outputs say that they are partial)"
        )
    return lacking


def _report_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.json") if not p.name.startswith(".") and not _is_marker(p))


def held_in(out_dir: Path, config) -> dict[str, dict]:
    """The tutors' points the reports in out_dir hold now, before a merge replaces them with the
    shards' copies: the sheet must not take them out unless the tutor says so."""
    held = {}
    for path in _report_files(Path(out_dir)) if Path(out_dir).is_dir() else []:
        if (report := read_report(path)) is not None:
            held[path.stem] = held_points(report, config)
    return held


def merge_reports(inputs: list[Path], out_dir: Path, *, partial: bool = False) -> list[tuple[str, Report]]:
    """Copy every shard's reports (and executed notebooks) into out_dir. The same submission in two
    shards is an error: shards must be disjoint, and all of them must be there (with `partial`, a
    folder without reports is left out)."""
    if not partial:
        check_shards(inputs)
    seen: dict[str, Path] = {}
    reports = []
    for folder in inputs:
        if not folder.is_dir():
            raise MergeError(f"{folder}: not a folder of reports")
        files = _report_files(folder)
        if not files and partial:
            continue
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
        remove_import_files(out_dir)  # it describes the reports about to be replaced
    for stem, folder in seen.items():
        if folder.resolve() != out_dir.resolve():
            bring_back(out_dir, stem)  # a team that was missing from an earlier (partial) merge is back
            shutil.copy2(folder / f"{stem}.json", out_dir / f"{stem}.json")
            executed = executed_path(folder, stem)
            if executed.exists():
                executed_path(out_dir, stem).parent.mkdir(exist_ok=True)
                shutil.copy2(executed, executed_path(out_dir, stem))
    reports.sort(key=lambda item: item[0])
    return reports


_READING = "grader merge (reading)"
_STILL_PARTIAL = (
    "; the reports here are those of that partial merge: merge every shard's folder (all done) to complete it"
)


def _hold_inputs(stack: ExitStack, inputs: list[Path], out_dir: Path, partial: bool, say=None) -> dict[Path, str]:
    """Hold every input folder's lock while merging: no shard starts grading into a folder being
    merged. A folder another grader holds is refused (FolderBusy, naming the holder), or with
    `partial` read as it is; returns those folders with their holders. One that another merge is
    reading is waited for (`say` is told): reading it twice does no harm. The locks are taken in one
    order (by path), so two merges of the same folders named in other orders never wait for each other."""
    busy = {}
    held: set[Path] = set()  # a folder named twice is locked once (the merge then says it is given twice)
    for folder in sorted(inputs, key=lambda f: str(f.resolve())):
        if folder.resolve() == out_dir.resolve() or not folder.is_dir() or folder.resolve() in held:
            continue
        held.add(folder.resolve())
        lock = folder / OUT_DIR_LOCK
        try:
            stack.enter_context(hold(lock, command=_READING, what=f"the folder {folder}", wait=False))
        except FolderBusy:
            holder = describe_holder(lock)
            if holder.startswith(_READING + " "):
                stack.enter_context(hold(lock, command=_READING, what=f"the folder {folder}", wait=True, on_wait=say))
                continue
            busy[folder] = holder
            if not partial and shard_marker(folder) is None:
                raise FolderBusy(
                    f"the folder {folder} is being written by {busy[folder]}: merge it once that "
                    "grader is done, or merge what is there with --partial"
                ) from None
        except OSError:  # a folder this user cannot write (read-only shares): read it without its lock
            pass
    return busy


def _list_versions(out_dir: Path, config, console: Console) -> int:
    found = versions(out_dir, config)
    if not found:
        console.print(
            f"no versions of {MANUAL_POINTS_NAME} kept in {terminal(out_dir / HISTORY_DIR)} yet", highlight=False
        )
        return 0
    console.print(
        f"versions of {MANUAL_POINTS_NAME} kept in {terminal(out_dir / HISTORY_DIR)} (oldest first):", highlight=False
    )
    for version in found:
        what = version.problem or f"{version.rows} team(s), {version.points} cell(s) with points"
        console.print(f"  {terminal(version.name)}  {terminal(what)}", highlight=False)
    console.print(
        "Bring one back with: grader merge "
        + terminal(out_dir)
        + " --out "
        + terminal(out_dir)
        + " --restore NAME (the sheet it replaces is kept too)",
        highlight=False,
    )
    return 0


def merge_command(args, console: Console) -> int:
    config = load_config(args.config, sheet=getattr(args, "sheet", None)).with_roster(getattr(args, "roster", None))
    load_roster(config)  # a roster that cannot be read stops the merge before anything is copied
    inputs = [Path(p) for p in args.inputs]
    out_dir = Path(args.out)
    partial = getattr(args, "partial", False)
    restore = getattr(args, "restore", None)
    try:
        if restore == "":
            return _list_versions(out_dir, config, console)
        with ExitStack() as stack:
            busy = _hold_inputs(
                stack, inputs, out_dir, partial, say=lambda line: console.print(terminal(line), highlight=False)
            )
            lacking = check_shards(inputs, partial=partial, busy=busy)
            if (
                not lacking
                and all(f.resolve() == out_dir.resolve() for f in inputs)
                and (before := partial_before(out_dir))
            ):  # the tutors' sheet into a partial merge: still partial
                lacking = [before if _STILL_PARTIAL in before else before + _STILL_PARTIAL]
            if restore:
                chosen, replaced = restore_version(out_dir, restore)
                console.print(
                    f"restored {terminal(chosen.name)} as {MANUAL_POINTS_NAME}"
                    + (f" (the sheet it replaces is kept as {terminal(replaced.name)})" if replaced else ""),
                    highlight=False,
                )
            held = held_in(out_dir, config)
            reports = merge_reports(inputs, out_dir, partial=partial)
            note = "; ".join(lacking) if lacking else None
            warnings = merge_outputs(
                inputs,
                reports,
                out_dir,
                config,
                held=held,
                allow_clearing=getattr(args, "allow_clearing", False),
                partial=note,
            )
    except (MergeError, ManualPointsError, CmsError, FolderBusy) as exc:
        label = exc.label if isinstance(exc, ManualPointsError) else "merge refused"
        hint = exc.hint if isinstance(exc, ManualPointsError) else ""
        console.print(f"[red]{label}:[/] {terminal(exc, lines=True)}{hint}", highlight=False)
        return 2
    for warning in warnings:
        console.print(f"[yellow]warning:[/] {terminal(warning, lines=True)}", highlight=False)
    if lacking:
        console.print(
            f"[bold yellow]PARTIAL merge[/] of {len(reports)} report(s): {terminal(note, lines=True)}", highlight=False
        )
    elif partial:
        console.print("--partial: every shard is there and done, so this merge is complete", highlight=False)
    console.print(
        f"merged {len(reports)} report(s) from {len(inputs)} folder(s) into {terminal(args.out)}", highlight=False
    )
    return 0
