"""The report: what the grader says about one submission (docs/spec.md, "The report").

These models are the contract with the course staff's tools. Fields may be added; the names of
docs/spec.md stay as they are. Bump SCHEMA_VERSION when a field changes meaning or is removed.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# 1.1: checks[].override is an object (what the check gave, what the tutor gave), no longer a string.
# 1.2: time limits counted in CPU time with wall-clock backstops (execution.time_limits.clock,
#      cell_wall_s, notebook_wall_s), execution.cpu_s and execution.timed_out (added; 1.1 reports load).
SCHEMA_VERSION = "1.2"

Severity = Literal["error", "warning"]
ExecutionStatus = Literal["ok", "errors", "timeout", "kernel_died", "not_run"]
CheckStatus = Literal["pass", "fail", "error", "skipped", "needs_review"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TeamMember(_Model):
    name: str
    student_id: str
    email: str | None = None


class Violation(_Model):
    code: str
    severity: Severity
    message: str


class SubmissionInfo(_Model):
    file: str = Field(description="Path of the submission, relative to the folder graded")
    stem: str
    sha256: str
    kind: Literal["zip", "ipynb", "py", "pdf", "other"]
    team: list[TeamMember] = Field(default_factory=list)
    expected_name: str | None = Field(None, description="The file name the naming rules ask for, when it differs")
    notebook: str | None = Field(None, description="The notebook graded, relative to the unpacked submission")
    pdf: str | None = None


class DataInfo(_Model):
    kind: Literal["real", "real-subset", "generated", "none"]  # none: the sheet stages no data set
    description: str
    train_size: int
    test_size: int
    fingerprint: str


def cell_label(execution_count: object, position: int) -> str:
    """How every message names a cell: as Jupyter shows it after Run All, `In [n]`, or `cell <position>`
    (its place in the notebook, from 1) when it has no number (a notebook's JSON may hold anything there)."""
    if isinstance(execution_count, int) and not isinstance(execution_count, bool) and execution_count > 0:
        return f"In [{execution_count}]"
    return f"cell {position}"


class CellError(_Model):
    cell: int = Field(description="Index of the cell in the notebook, counting from 1 (markdown cells too)")
    execution_count: int | None = Field(
        None,
        description="The cell's number as Jupyter shows it after Run All, In [n]: its place among the "
        "notebook's non-empty code cells (what messages call it)",
    )
    ename: str
    evalue: str

    @property
    def label(self) -> str:
        """`In [n]`, or `cell <n>` without a number (cell_label)."""
        return cell_label(self.execution_count, self.cell)


class CalibrationRef(_Model):
    """The calibration a batch graded with: the solution's runs on the same data set (the accuracy range of
    the sheet's accuracy checks and "auto" time limits). Every shard of one course shows the same one."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    fingerprint: str = Field(description="The data set's fingerprint (execution.data.fingerprint) the entry is for")
    created: str = Field(description="When the entry was made (UTC, ISO 8601)")
    sha256: str = Field(description="Hash of the entry's content (16 hex digits): equal hashes, equal numbers")
    file: str = Field(description="The calibration file the entry was read from")


class TimeLimits(_Model):
    """The time limits a notebook ran under, and where they came from."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    cell_timeout_s: float
    notebook_timeout_s: float
    source: str = Field(
        description="Where the limits came from: grading.toml, the solution's timings on the "
        "same data (the calibration), or the fallback when there are none"
    )
    calibration: CalibrationRef | None = Field(
        None, description='The calibration of the batch (accuracy range and "auto" limits), when there is one'
    )
    clock: Literal["cpu", "wall"] = Field(
        "wall",
        description='What cell_timeout_s and notebook_timeout_s count: "cpu", the CPU time of the kernel\'s '
        "processes (the same on a busy machine as on a quiet one), with the wall-clock backstops cell_wall_s and "
        'notebook_wall_s for cells that sleep or wait; "wall", wall-clock time (reports before schema 1.2, and '
        "where the CPU time of the kernel could not be read)",
    )
    cell_wall_s: float | None = Field(None, description='Wall-clock backstop per cell (clock "cpu")')
    notebook_wall_s: float | None = Field(None, description='Wall-clock backstop per notebook (clock "cpu")')


class TimedOutCell(_Model):
    """A cell the grader's time limit stopped, and which limit it was."""

    cell: int = Field(description="Index of the cell in the notebook, counting from 1 (markdown cells too)")
    execution_count: int = Field(description="The cell's number as Jupyter shows it after Run All, In [n]")
    limit: Literal["cell_cpu", "cell_wall", "notebook_cpu", "notebook_wall"] = Field(
        description="The limit that fired: the cell's own (CPU time, or its wall-clock backstop) or what was "
        "left of the notebook's"
    )
    cpu_s: float | None = Field(None, description="CPU seconds the cell had used when it was interrupted")
    wall_s: float = Field(description="Wall-clock seconds the cell had run when it was interrupted")
    ignored_interrupt: bool = Field(False, description="The cell did not stop when interrupted: the kernel was stopped")


class ExecutionInfo(_Model):
    status: ExecutionStatus
    duration_s: float = 0.0
    cells_run: int = 0
    cells_total: int = 0
    last_cell: int | None = Field(None, description="The last cell that started running (1-based)")
    errors: list[CellError] = Field(default_factory=list)
    isolated: bool = False
    sandbox: str = "none"
    notes: list[str] = Field(default_factory=list)
    data: DataInfo | None = None
    time_limits: TimeLimits | None = None
    cpu_s: float | None = Field(None, description="CPU seconds the kernel's processes used for the notebook's cells")
    timed_out: list[TimedOutCell] = Field(
        default_factory=list, description="Cells the grader's time limit stopped, in order"
    )
    timings: dict[str, float] = Field(
        default_factory=dict,
        description="Seconds the grader spent per phase: intake, kernel_start (waiting for a "
        "kernel), cells (the notebook itself), probe, kernel_stop, checks",
    )


class Override(_Model):
    """A tutor's override of a check: the points the check gave, and the points the tutor gives
    (the check's `points`)."""

    automatic: float
    tutor: float


# How reports of schema 1.0 wrote an override ("tutor: 0.25 → 0"): read into an Override.
_OLD_OVERRIDE = re.compile(r"^tutor: (?P<automatic>[-+0-9.eE]+) → (?P<tutor>[-+0-9.eE]+)")


class CheckResult(_Model):
    id: str
    exercise: str
    status: CheckStatus
    points: float
    max_points: float
    message: str
    override: Override | None = Field(None, description="Set when a tutor overrode the automatic points")

    @field_validator("override", mode="before")
    @classmethod
    def _old_override(cls, value):
        if isinstance(value, str) and (match := _OLD_OVERRIDE.match(value)):
            return {"automatic": float(match["automatic"]), "tutor": float(match["tutor"])}
        return value


def auto_points(checks: list[CheckResult]) -> float:
    """The points of the automatic checks (after tutors' overrides)."""
    return round(sum(c.points for c in checks), 4)


def auto_max_points(checks: list[CheckResult]) -> float:
    return round(sum(c.max_points for c in checks), 4)


class ExerciseResult(_Model):
    id: str
    points: float | None = Field(None, description="null while not graded")
    max_points: float
    bonus: bool = False
    graded_by: Literal["auto", "tutor", "auto+tutor"]
    evidence: list[str] = Field(default_factory=list)
    comment: str | None = None


class Total(_Model):
    points: float
    max_points: float
    bonus_points: float
    complete: bool


class GraderInfo(_Model):
    version: str
    grader_hash: str
    config_hash: str
    kernel_env: str = Field(
        "",
        description="Hash of the kernel's installed distributions (name==version) and "
        "Python version: another environment regrades",
    )
    kernel_packages: dict[str, str] = Field(
        default_factory=dict, description="Versions of torch, torchvision and numpy in the kernel"
    )


class Report(_Model):
    schema_version: str = SCHEMA_VERSION
    submission: SubmissionInfo
    violations: list[Violation] = Field(default_factory=list)
    execution: ExecutionInfo
    checks: list[CheckResult] = Field(default_factory=list)
    exercises: list[ExerciseResult] = Field(default_factory=list)
    total: Total
    accuracies: dict[str, list[float]] = Field(
        default_factory=dict, description="Per-epoch test accuracies found (fractions), by network"
    )
    comment: str | None = Field(None, description="The tutors' comment on the whole submission")
    grader: GraderInfo
    graded_at: str

    @property
    def auto_points(self) -> float:
        """The points of the automatic checks (after tutors' overrides); not stored, computed."""
        return auto_points(self.checks)

    @property
    def auto_max_points(self) -> float:
        return auto_max_points(self.checks)
