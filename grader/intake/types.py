"""The values the intake stage hands on: who submitted (Submission) and what they submitted (Workspace)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader.models import SubmissionInfo, TeamMember, Violation


@dataclass(frozen=True)
class NameProblem:
    """One thing wrong with a submission's file name, as data: `grader.intake.naming` renders the
    message from it (`render_name_problems`), once, with the expected name known at that time."""

    code: str  # the violation's code: name.pattern, name.extension, name.student_id, name.group_size
    severity: str
    what: str  # which problem of that code, e.g. "id_malformed" (see naming._PROBLEM_TEXT)
    file: str  # the name the message names: the file's, or "x.ipynb (folder 'T')"
    facts: tuple[tuple[str, Any], ...] = ()  # what was found: ("ext", ".rar"), ("id", "123"), ...
    hinted: bool = False  # the message ends with the expected name, when there is one

    def fact(self, name: str) -> Any:
        return dict(self.facts)[name]


@dataclass(frozen=True)
class Submission:
    """A submission file found on disk, with the team its name announces."""

    path: Path  # the original file (read, never written)
    rel: str  # its path relative to the folder graded, with '/' separators
    stem: str  # file name without extension: names every output of this submission
    sha256: str
    kind: str  # "zip" | "ipynb" | "py" | "pdf" | "other"
    team: tuple[TeamMember, ...] = ()
    violations: tuple[Violation, ...] = ()
    expected_name: str | None = None  # what the naming rules ask for, when the name breaks them
    name_problems: tuple[NameProblem, ...] = ()  # what `violations` says about the name, as data

    def info(self) -> SubmissionInfo:
        return SubmissionInfo(
            file=self.rel,
            stem=self.stem,
            sha256=self.sha256,
            kind=self.kind,
            team=list(self.team),
            expected_name=self.expected_name,
        )


@dataclass(frozen=True)
class Workspace:
    """A fresh folder holding the unpacked submission; the notebook runs here."""

    dir: Path
    notebook: Path | None = None  # the notebook to grade (a .py script is converted to one)
    pdf: Path | None = None
    files: tuple[str, ...] = ()  # everything unpacked, relative to dir
    violations: tuple[Violation, ...] = ()


@dataclass(frozen=True)
class Skipped:
    path: Path
    reason: str


@dataclass(frozen=True)
class Discovery:
    submissions: tuple[Path, ...] = ()
    skipped: tuple[Skipped, ...] = field(default_factory=tuple)
