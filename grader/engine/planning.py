"""Which submissions a batch grades: a pure function of the folder, the configuration and the reports
already on disk (no worker, no kernel). `plan` finds the submissions, names their outputs, keeps the
earlier reports that still stand and lists the rest as jobs; `grader.engine.dispatch` runs those.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import stat
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from grader.config import Config
from grader.intake import discover, identify, parse_name
from grader.intake.discover import graded_files
from grader.intake.naming import files_sha256, kind_of
from grader.intake.types import Discovery, Submission
from grader.models import Report, Violation
from grader.report.manual_points import held_points
from grader.report.store import REMOVED_DIR, bring_back, read_report, report_path
from grader.util.textsafe import replace_controls

__all__ = ["GRADER_ERROR", "Job", "Plan", "Shard", "made_by_grader_failure", "plan", "raw_rel"]


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        try:
            k, n = (int(part) for part in text.split("/"))
        except ValueError:
            raise ValueError(f"--shard expects K/N with whole numbers, e.g. 2/8; got {text!r}") from None
        if not (n >= 1 and 1 <= k <= n):
            raise ValueError(f"--shard {text}: K must be between 1 and N")
        return cls(k, n)

    def owns(self, rel: str) -> bool:
        """A fixed, disjoint share: by a hash of the submission's path, so adding files moves nothing."""
        digest = int(hashlib.sha256(rel.encode("utf-8", "surrogateescape")).hexdigest(), 16)
        return digest % self.count == self.index - 1


@dataclass
class Plan:
    discovery: Discovery
    submissions: list[Submission]  # everything found, whichever shard it belongs to
    jobs: list[Job]  # to grade now
    cached: list[tuple[str, Report]]  # earlier reports that still stand
    held: dict[str, dict] = field(default_factory=dict)  # tutors' points the earlier reports hold, by stem
    duplicates: list[str] = field(default_factory=list)  # one team submitted more than once, for the tutors


@dataclass
class Job:
    path: Path
    submission: Submission
    stem: str  # output name; made unique when two submissions share a file name

    @property
    def unreadable(self) -> bool:
        """The file cannot even be read (see `_identify`): reported without a worker."""
        return self.submission.sha256.startswith(UNREADABLE)


GRADER_ERROR = "grader.error"


UNREADABLE = "unreadable-"  # the sha256 field of a submission whose file cannot be read


def made_by_grader_failure(report: Report) -> bool:
    """A report that says the grader failed (a worker died, the report could not be written): never
    taken as the submission's result on a later run."""
    return any(v.code == GRADER_ERROR for v in report.violations)


def _stem_key(stem: str) -> str:
    # Names that differ only in case or Unicode normalisation are one file on macOS and Windows.
    return unicodedata.normalize("NFC", stem).casefold()


def _identify(path: Path, root: Path, config: Config) -> Submission:
    """identify(), for any file: one that cannot be read (no permission, a named pipe that would
    block) is a submission whose report says so, not the end of the batch."""
    problem = None
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            problem = "it is a named pipe or a device, not a regular file"
        else:
            found = identify(path, root, config.naming)
            files = graded_files(path, found.rel)  # a notebook's PDF is graded too: part of its hash
            return found if len(files) == 1 else dataclasses.replace(found, sha256=files_sha256(files))
    except OSError as exc:
        problem = exc.strerror or str(exc)
    rel = path.name if path == root else path.relative_to(root).as_posix()
    name = parse_name(path.name, config.naming)
    return Submission(
        path=path,
        rel=rel,
        stem=name.stem,
        kind=kind_of(path.name),
        team=name.team,
        sha256=UNREADABLE + hashlib.sha256(rel.encode("utf-8", "surrogateescape")).hexdigest()[:16],
        violations=(
            *name.violations,
            Violation(
                code="archive.corrupt",
                severity="error",
                message=f"{rel}: cannot be read ({problem}); expected a readable file",
            ),
        ),
        name_problems=name.problems,
    )


# `<stem>.ipynb` and the like must fit a file system's 255 bytes for a name, with room to spare.
MAX_STEM_BYTES = 200


def _file_name_safe(stem: str) -> str:
    """A stem as an output's name: no control characters or bidirectional overrides (`ls` would send
    them to the terminal, or show the name reordered), no leading '-' (an option to `rm *`)."""
    stem = replace_controls(stem, "_")
    return "_" + stem if stem.startswith("-") else stem


def raw_rel(path: Path, root: Path) -> bytes:
    """A submission's path relative to the folder graded, as the file system holds it: bytes, before
    any decoding or Unicode normalisation (`Submission.rel` is normalised for people to read, so a
    Mac's, a Linux and a Windows upload of one name have the same `rel`, never the same bytes)."""
    try:
        rel = Path(path.name) if path == root or root.is_file() else path.relative_to(root)
    except ValueError:
        rel = Path(path.name)
    return b"/".join(os.fsencode(part) for part in rel.parts)


def _output_stem(sub: Submission, raw: bytes, unique: bool) -> str:
    """The name of a submission's outputs: its stem (`_file_name_safe`); with a hash of its path's
    raw bytes when another submission has the same stem (so two different files never share one),
    or when the stem is too long for a file name (cut short)."""
    stem = _file_name_safe(sub.stem)
    if unique and len(stem.encode("utf-8", "surrogateescape")) <= MAX_STEM_BYTES:
        return stem
    while len(stem.encode("utf-8", "surrogateescape")) > MAX_STEM_BYTES - 9:
        stem = stem[:-1]
    return f"{stem}~{hashlib.sha256(raw).hexdigest()[:8]}"


def _stems(submissions: list[Submission], raws: list[bytes], out_dir: Path) -> list[str]:
    """The output stem of each submission (`_output_stem`), kept from run to run where the folder
    changes around it: a file whose outputs are under its hashed stem keeps it when it is alone with
    its name again, and when a second file with the same name arrives (the team's upload from a Mac
    beside the one from Linux), the file whose report is under the plain stem keeps it. A stem that
    changed would move a submission that is still there to removed/, with the tutors' points."""
    groups: dict[str, list[int]] = {}
    for index, sub in enumerate(submissions):
        groups.setdefault(_stem_key(_file_name_safe(sub.stem)), []).append(index)
    stems = [""] * len(submissions)
    for members in groups.values():
        for index in members:
            stems[index] = _output_stem(submissions[index], raws[index], unique=False)
        if len(members) == 1:
            (index,) = members
            if not _report_on_disk(out_dir, stems[index]):
                stems[index] = _output_stem(submissions[index], raws[index], unique=True)
            continue
        for index in members:
            plain = _output_stem(submissions[index], raws[index], unique=True)
            if not _report_on_disk(out_dir, stems[index]) and _report_of(out_dir, plain, submissions[index]):
                stems[index] = plain  # one keeper at most: a report is of one file
                break
    return stems


def _report_on_disk(out_dir: Path, stem: str) -> bool:
    return report_path(out_dir, stem).is_file() or report_path(out_dir / REMOVED_DIR, stem).is_file()


def _report_of(out_dir: Path, stem: str, sub: Submission) -> bool:
    """Is the report under `stem` (or the one set aside in removed/) of this very file?"""
    for folder in (out_dir, out_dir / REMOVED_DIR):
        if (report := read_report(report_path(folder, stem))) is not None:
            return report.submission.file == sub.rel and report.submission.sha256 == sub.sha256
    return False


def _name_bytes(raw: bytes) -> str:
    """How a file name was written, for tutors who see two names that look the same."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "not UTF-8 (Latin-1/Windows-1252 bytes, as Windows zip tools write)"
    if text.isascii():
        return "ASCII"
    if unicodedata.is_normalized("NFC", text):
        return "UTF-8, composed (NFC)"
    return "UTF-8, decomposed (NFD, as macOS writes)"


def _duplicate_submissions(found: list[tuple[Submission, bytes, str]]) -> list[str]:
    """One line per team name that more than one file carries (the same name from a Mac, a Linux and
    a Windows upload, or the same zip in two folders): each is graded, and the tutors decide."""
    groups: dict[str, list[tuple[Submission, bytes, str]]] = {}
    for item in found:
        groups.setdefault(_stem_key(_file_name_safe(item[0].stem)), []).append(item)
    lines = []
    for items in groups.values():
        if len(items) < 2:
            continue
        files = "; ".join(f"{sub.rel} ({_name_bytes(raw)}) as {stem}" for sub, raw, stem in items)
        lines.append(
            f"duplicate submission: {len(items)} files name the team {items[0][0].stem!r}: {files}. "
            f"Each is graded with its own report; decide which one counts and remove the others "
            f"(their students are left out of cms.csv until then)"
        )
    return lines


def plan(
    root: Path,
    config: Config,
    out_dir: Path,
    *,
    shard: Shard | None,
    force: bool,
    grader_hash: str,
    kernel_env: str | None = None,
    calibration: str | None = None,
    restore_removed: bool = False,
) -> Plan:
    """Which submissions to grade, and which earlier reports still stand (same bytes graded,
    configuration, grader and, when `kernel_env` is given, the same packages in the kernel; when
    `calibration` is given, a report whose notebook ran under another calibration's limits and range
    is graded again). With `restore_removed`, a submission that is back in the folder gets its
    outputs back from `removed/` first (an unchanged file is then not graded again)."""
    discovery = discover(root, config.naming)
    jobs, cached, held = [], [], {}
    submissions = [_identify(path, root, config) for path in discovery.submissions]
    raws = [raw_rel(path, root) for path in discovery.submissions]
    named = []
    for path, sub, raw, stem in zip(discovery.submissions, submissions, raws, _stems(submissions, raws, out_dir)):
        named.append((sub, raw, stem))
        if shard and not shard.owns(sub.rel):
            continue
        if restore_removed:
            bring_back(out_dir, stem)
        earlier = read_report(report_path(out_dir, stem))
        if earlier is not None:
            held[stem] = held_points(earlier, config)
        if (
            not force
            and earlier is not None
            and earlier.submission.sha256 == sub.sha256
            and not made_by_grader_failure(earlier)
            and earlier.grader.config_hash == config.fingerprint[:16]
            and earlier.grader.grader_hash == grader_hash
            and (kernel_env is None or earlier.grader.kernel_env == kernel_env)
            and (calibration is None or _calibration_of(earlier) in (None, calibration))
        ):
            cached.append((stem, earlier))
        else:
            jobs.append(Job(path=path, submission=sub, stem=stem))
    return Plan(
        discovery=discovery,
        submissions=submissions,
        jobs=jobs,
        cached=cached,
        held=held,
        duplicates=_duplicate_submissions(named),
    )


def _calibration_of(report: Report) -> str | None:
    limits = report.execution.time_limits
    if limits is None:  # nothing ran (a naming problem, no notebook): no calibration was used
        return None
    return limits.calibration.sha256 if limits.calibration else ""
