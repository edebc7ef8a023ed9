"""The values the intake stage hands on: who submitted (Submission) and what they submitted (Workspace)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from grader.models import SubmissionInfo, TeamMember, Violation


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
