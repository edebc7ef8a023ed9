"""The import pre-flight: before a batch runs any notebook, which modules do the notebooks import, and
does the course's kernel environment have them?

Each submission is unpacked by the intake into a temporary folder (the same unpacking and choice of
notebook as grading), its notebook's imports are read (`intake.imports`), and the kernel's Python is
asked once, for all top-level names together, which it can import. A module shipped in the submission
itself (a helper .py in the zip, or one written by `%%writefile`) is present; a module that only a
notebook platform provides (`google.colab`, Kaggle's) is listed as such, not as a fault.
"""

from __future__ import annotations

import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import nbformat

from grader.config import Config
from grader.intake import SheetHints, unpack
from grader.intake.imports import PLATFORM_MODULES, NotebookImports, notebook_imports, shipped_modules
from grader.intake.types import Submission
from grader.run.course_packages import DISTRIBUTIONS as COURSE_DISTRIBUTIONS
from grader.run.kernel_packages import (
    KernelEnvironment,
    KernelQueryError,
    kernel_environment,
    module_distributions,
    normalise,
    outside_course,
)
from grader.util.fsclean import remove_tree
from grader.util.notebook_file import NotebookInvalid, parse_notebook_json
from grader.util.notebook_file import configure as configure_notebooks

HOW_TO_ADD = (
    "To add a module to the course environment: put its package into the `kernel` extra of "
    "pyproject.toml, run `make lock` (pins it in requirements/constraints.txt), then `make install`."
)

_PLATFORM_KEYS = sorted(PLATFORM_MODULES, key=len, reverse=True)
Status = Literal["available", "missing", "outside", "platform", "submission", "unknown"]


@dataclass(frozen=True)
class ModuleRow:
    """One line of the pre-flight table."""

    module: str  # a top-level module, `google.colab`, or `pip install NAME`
    teams: tuple[str, ...]  # submission stems, sorted
    status: Status
    detail: str = ""  # the platform, or which teams ship it themselves

    @property
    def count(self) -> int:
        return len(self.teams)


@dataclass
class Preflight:
    rows: list[ModuleRow] = field(default_factory=list)
    notebooks: int = 0  # notebooks read
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (stem, why)
    kernel_python: str = ""
    problem: str = ""  # the kernel's Python could not be asked

    @property
    def missing(self) -> list[ModuleRow]:
        """Modules the notebooks import that will not be there when tutors grade."""
        return [row for row in self.rows if row.status in ("missing", "outside")]

    @property
    def outside_course(self) -> frozenset[str]:
        """Modules the kernel has from packages the course's pinned environment lacks."""
        return frozenset(row.module for row in self.rows if row.status == "outside")

    def warning_lines(self, how_to_add: bool = True) -> list[str]:
        """What must be read before the batch: each module that will not be there when tutors grade,
        with the teams that import it, and (for tutors) how to add one."""
        lines = []
        if self.problem:
            lines.append(f"the import pre-flight could not ask the kernel's Python: {self.problem}")
        if self.missing:
            lines.append(
                f"{len(self.missing)} module(s) that notebooks import are NOT in the course's grading "
                f"environment (the kernel's Python: {self.kernel_python}, and the packages the course "
                f"pins): imports of them fail when tutors grade, and where a notebook fails on one, its "
                f"report asks a tutor to review (needs_review):"
            )
            for row in self.missing:
                shown = ", ".join(row.teams[:8]) + (f" and {row.count - 8} more" if row.count > 8 else "")
                where = f" ({row.detail})" if row.detail else ""
                lines.append(f"  {row.module}{where}: imported by {row.count} team(s): {shown}")
            if how_to_add:
                lines.append(HOW_TO_ADD)
        return lines


def _read(path: Path) -> nbformat.NotebookNode:
    """The notebook as grading reads it (`notebook_file`): a malformed one raises NotebookInvalid
    saying what is wrong, never a RecursionError from deep inside nbformat."""
    return nbformat.from_dict(parse_notebook_json(path))


def read_submission(submission: Submission, config: Config, work_dir: Path) -> tuple[NotebookImports, set[str]] | str:
    """The notebook's imports and the modules the submission ships, or why they cannot be read."""
    folder = Path(tempfile.mkdtemp(prefix="preflight-", dir=work_dir))
    try:
        workspace = unpack(submission, folder, config.archive, SheetHints.of(config.sheet_def))
        if workspace.notebook is None:
            return "no notebook"
        try:
            found = notebook_imports(_read(workspace.notebook))
        except NotebookInvalid as exc:
            return f"the notebook cannot be read ({str(exc)[:200]})"
        except Exception as exc:  # any malformed notebook: the grading run reports it in full
            return f"the notebook cannot be read ({type(exc).__name__}: {str(exc)[:200]})"
        return found, shipped_modules(workspace.files) | found.written_modules
    finally:
        remove_tree(folder)  # never raises: a zip entry may be 1,500 folders deep


def preflight(
    submissions: list[Submission],
    config: Config,
    work_dir: Path,
    kernel: KernelEnvironment | None = None,
    course: dict[str, str] | None = None,
) -> Preflight:
    """Read every submission's imports and ask the kernel's Python which it has, and from which
    packages: one the course's pinned environment (`course`) lacks is "outside" it."""
    course = COURSE_DISTRIBUTIONS if course is None else course
    configure_notebooks(cells=config.limits.notebook_cells)
    python = config.kernel_python
    result = Preflight(kernel_python=python)
    uses: dict[str, set[str]] = defaultdict(set)  # top-level module -> stems
    shipped_by: dict[str, set[str]] = defaultdict(set)  # top-level module -> stems that ship it
    platforms: dict[str, tuple[str, set[str]]] = {}  # google.colab -> (platform, stems)
    pip: dict[str, set[str]] = defaultdict(set)  # distribution -> stems
    for submission in submissions:
        read = read_submission(submission, config, work_dir)
        if isinstance(read, str):
            result.unreadable.append((submission.stem, read))
            continue
        found, shipped = read
        result.notebooks += 1
        for use in found.third_party():
            if use.platform:
                key = next(m for m in _PLATFORM_KEYS if use.module == m or use.module.startswith(m + "."))
                platforms.setdefault(key, (use.platform, set()))[1].add(submission.stem)
            elif use.top in shipped:
                shipped_by[use.top].add(submission.stem)
            else:
                uses[use.top].add(submission.stem)
        for line in found.pip:
            for package in line.packages:
                pip[package].add(submission.stem)
    try:
        located = module_distributions(python, set(uses)) if uses else {}
        kernel = kernel or (kernel_environment(python) if pip else None)
    except KernelQueryError as exc:
        result.problem = str(exc)
        located = {}
    for module, stems in uses.items():
        detail = ""
        where = located.get(module)
        if module not in located:
            status: Status = "unknown"
        elif where is None:
            status = "missing"
        elif outside_course(where, course):
            status = "outside"
            detail = f"installed from {', '.join(where)}, which the course environment does not pin"
        else:
            status = "available"
        result.rows.append(ModuleRow(module=module, teams=tuple(sorted(stems)), status=status, detail=detail))
    for module, stems in shipped_by.items():
        result.rows.append(
            ModuleRow(
                module=module, teams=tuple(sorted(stems)), status="submission", detail="shipped in the submission"
            )
        )
    for module, (platform, stems) in platforms.items():
        result.rows.append(
            ModuleRow(module=module, teams=tuple(sorted(stems)), status="platform", detail=f"exists only on {platform}")
        )
    for package, stems in pip.items():
        if kernel is None:
            status = "unknown"
        elif not kernel.has_distribution(package):
            status = "missing"
        else:
            status = "available" if normalise(package) in course else "outside"
        result.rows.append(
            ModuleRow(
                module=f"pip install {package}",
                teams=tuple(sorted(stems)),
                status=status,
                detail="grading installs nothing",
            )
        )
    order = {"missing": 0, "outside": 1, "unknown": 2, "platform": 3, "submission": 4, "available": 5}
    result.rows.sort(key=lambda row: (order[row.status], -row.count, row.module))
    return result
