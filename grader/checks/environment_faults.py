"""Faults of the grading environment, not of the team: a notebook that failed on a module the kernel
lacks, on a data file the grader cannot serve, or on a GPU the grader's machines do not have.

They are read from the executed notebook's error outputs. Each becomes a message in the report (which
module or path, in which cell as Jupyter numbers it), and every check that did not pass becomes
`needs_review`: no points taken for the grader's limits, none given, and the team is listed for a
tutor. Checks that passed stay passed. `pip install` lines get a note saying that grading installs
nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

import nbformat

from grader.intake.imports import PLATFORM_MODULES, NotebookImports, notebook_imports
from grader.models import CheckResult, Violation
from grader.util.textsafe import replace_controls

_NO_MODULE = re.compile(r"No module named '([A-Za-z_][\w.]*)'")
_MISSING_FILE = re.compile(r"No such file or directory: '([^'\n]{1,400})'")
# What makes a missing file the data rather than any file: where data lives on the notebook
# platforms, how the MNIST family is named, the formats it comes in (and the words of the sheet's
# data set, `data_words`).
# What torch says when code asks for a GPU (CUDA, or Apple's MPS) on a machine without one.
_NO_GPU = re.compile(
    r"(?i)(no nvidia driver|not compiled with cuda|no cuda gpus are available|"
    r"cuda driver initialization failed|no cuda-capable device|deserialize object on a cuda device|"
    r"not linked with support for mps|mps backend is supported|torch\.cuda\.is_available\(\) is false)"
)
_DATA_HINTS = re.compile(
    r"(?i)(mnist|kaggle|/content/|drive|dataset|ubyte|idx[13]|"
    r"\.(csv|gz|npy|npz|pt|pth|pkl|pickle|h5|hdf5|zip|tar|parquet|json)$)"
)


FaultKind = Literal["module", "platform", "data", "gpu"]


@dataclass(frozen=True)
class EnvironmentFault:
    kind: FaultKind
    what: str  # the module (`wandb`, `google.colab`), the path tried, or "GPU"
    cell: int  # position of the cell in the notebook, from 1
    label: str  # how Jupyter numbers it: "In [3]" ("cell 3" when it has no number)
    error: str  # "ModuleNotFoundError: No module named 'wandb'"

    def summary(self) -> str:
        if self.kind == "module":
            return f"{self.label} failed because the module '{self.what}' is not in the course environment"
        if self.kind == "platform":
            return f"{self.label} failed on '{self.what}', which exists only on {_platform(self.what)}"
        if self.kind == "gpu":
            return f"{self.label} failed because it asks for a GPU, and the grader's machines have none"
        return f"{self.label} failed reading '{self.what}', which the grader cannot serve"


def _plain(text: str, limit: int = 300) -> str:
    """A student's text for a message: no control characters (terminal escapes) nor bidirectional
    overrides, bounded."""
    return replace_controls(text, "", keep="\t\n")[:limit]


def _platform(module: str) -> str:
    return next(
        (p for m, p in PLATFORM_MODULES.items() if module == m or module.startswith(m + ".")), "a notebook platform"
    )


def _label(cell: Mapping, position: int) -> str:
    count = cell.get("execution_count")
    return f"In [{count}]" if isinstance(count, int) else f"cell {position}"


def environment_faults(
    notebook: nbformat.NotebookNode | None, data_words: tuple[str, ...] = ()
) -> list[EnvironmentFault]:
    """The errors in `notebook`'s outputs that the environment caused, first one per module or path.
    `data_words`: words that mark a path as the sheet's data (DatasetSpec.path_words)."""
    faults: list[EnvironmentFault] = []
    seen: set[tuple[str, str]] = set()
    for position, cell in enumerate(notebook.cells if notebook is not None else [], start=1):
        if cell.get("cell_type") != "code":
            continue
        for out in cell.get("outputs", []):
            if out.get("output_type") != "error":
                continue
            ename, evalue = str(out.get("ename", "")), str(out.get("evalue", ""))
            fault = _fault(ename, evalue, data_words)
            if fault is None or fault[:2] in seen:
                continue
            seen.add(fault[:2])
            faults.append(
                EnvironmentFault(
                    kind=fault[0],
                    what=_plain(fault[1]),
                    cell=position,
                    label=_label(cell, position),
                    error=_plain(f"{ename}: {evalue}"),
                )
            )
    return faults


def _fault(ename: str, evalue: str, data_words: tuple[str, ...]) -> tuple[FaultKind, str] | None:
    if ename in ("ModuleNotFoundError", "ImportError"):
        match = _NO_MODULE.search(evalue)
        if not match:
            return None  # `cannot import name X from Y`: Y is there; the team's code asks wrongly
        module = match.group(1)
        if any(module == m or module.startswith(m + ".") or m.startswith(module + ".") for m in PLATFORM_MODULES):
            return (
                "platform",
                next(
                    m
                    for m in PLATFORM_MODULES
                    if module == m or module.startswith(m + ".") or m.startswith(module + ".")
                ),
            )
        if "." in module:
            return None  # the package is there without that submodule: not the environment's lack
        return ("module", module)
    if _NO_GPU.search(evalue):
        return ("gpu", "GPU")
    if ename == "FileNotFoundError":
        match = _MISSING_FILE.search(evalue)
        path = match.group(1) if match else ""
        if match and (_DATA_HINTS.search(path) or any(w.lower() in path.lower() for w in data_words)):
            return ("data", match.group(1))
    return None


def fault_violations(faults: list[EnvironmentFault], served_hint: str) -> list[Violation]:
    """What the team and the tutor read about each fault (platform modules are notes, see `fault_notes`).
    `served_hint`: how the sheet's data can be loaded while grading (DatasetSpec.served_hint)."""
    violations = []
    for fault in faults:
        if fault.kind == "module":
            violations.append(
                Violation(
                    code="environment.missing_module",
                    severity="warning",
                    message=(
                        f"{fault.label} failed: the module '{fault.what}' is not in the course's grading environment "
                        f"(nor in the submission), and grading installs nothing, so it fails the same way when tutors "
                        f"grade ({fault.error}). Checks that did not pass are left to a tutor (needs_review). Use only "
                        f"the course's packages (README, \"The kernel's environment\"), or, if '{fault.what}' is your "
                        f"own module, put its .py file into the zip."
                    ),
                )
            )
        elif fault.kind == "gpu":
            violations.append(
                Violation(
                    code="environment.no_gpu",
                    severity="warning",
                    message=(
                        f"{fault.label} failed: it asks for a GPU, and grading runs on machines with no GPU ({fault.error}). "
                        f"Checks that did not pass are left to a tutor (needs_review). Choose the device so that the "
                        f"notebook also runs without one: device = 'cuda' if torch.cuda.is_available() else 'cpu', "
                        f"and .to(device) instead of .cuda()."
                    ),
                )
            )
        elif fault.kind == "data":
            violations.append(
                Violation(
                    code="environment.data_path",
                    severity="warning",
                    message=(
                        f"{fault.label} failed reading '{fault.what}': there is no such file while grading "
                        f"({fault.error}); {served_hint}. Checks that did not pass are left to a tutor (needs_review)."
                    ),
                )
            )
    return violations


def fault_notes(faults: list[EnvironmentFault]) -> list[str]:
    return [
        f"{fault.summary()} ({fault.error}); the rest of the notebook ran on without it"
        for fault in faults
        if fault.kind == "platform"
    ]


def _to_review(checks: list[CheckResult], why: str, keep: tuple[str, ...]) -> list[CheckResult]:
    """Every check whose status is not in `keep` becomes needs_review (no points), saying `why`."""
    return [
        check
        if check.status in keep
        else check.model_copy(
            update={
                "status": "needs_review",
                "points": 0.0,
                "message": (
                    f"A tutor decides: {why}, so this check cannot tell the team's mistakes from the grader's "
                    f"limits. What the check found: {check.message}"
                ),
            }
        )
        for check in checks
    ]


def review_checks(checks: list[CheckResult], faults: list[EnvironmentFault]) -> list[CheckResult]:
    """Every check that did not pass becomes needs_review (no points) when the environment failed the notebook."""
    if not faults:
        return checks
    return _to_review(checks, "; ".join(fault.summary() for fault in faults[:3]), ("pass", "needs_review", "skipped"))


def review_after_time_limit(checks: list[CheckResult], execution) -> list[CheckResult]:
    """Every check that did not pass becomes needs_review (no points) when the grader's time limit
    stopped a cell: the limit is the grader's (a multiple of the solution's time, on a machine that
    may be busy), so a failure after it cannot be told from the team's mistake. `execution`: the
    ExecutionInfo."""
    if execution.status != "timeout":
        return checks
    return _to_review(
        checks, f"the grader's time limit stopped the notebook ({_what_timed_out(execution)})", ("pass", "needs_review")
    )


_LIMIT_WORDS = {
    "cell_cpu": "the limit of CPU time per cell",
    "cell_wall": "the wall-clock limit per cell",
    "notebook_cpu": "the notebook's limit of CPU time",
    "notebook_wall": "the notebook's wall-clock limit",
}


def _what_timed_out(execution) -> str:
    """Which cells a time limit stopped, and which limit, from the execution's record of them (not
    from its notes, which say other things about limits too)."""
    cells = list(getattr(execution, "timed_out", None) or [])
    if not cells:
        return "it ran over the grader's time limit for the notebook before its last cells ran"
    shown = "; ".join(f"In [{c.execution_count}] reached {_LIMIT_WORDS.get(c.limit, c.limit)}" for c in cells[:3])
    return shown + (f"; and {len(cells) - 3} more" if len(cells) > 3 else "")


def review_over_limits(checks: list[CheckResult], code: str) -> list[CheckResult]:
    """Every check becomes needs_review (no points) when the notebook was not run for a limit of the
    grader's on what a notebook may hold (the violation `code` says which): a tutor decides, the
    grader takes no points for it."""
    return [
        check
        if check.status in ("pass", "needs_review")
        else check.model_copy(
            update={
                "status": "needs_review",
                "points": 0.0,
                "message": (
                    f"A tutor decides: the notebook was not run, as it is over a limit of the grader's on what a "
                    f"notebook may hold ({code} says which)"
                ),
            }
        )
        for check in checks
    ]


def outside_course_violations(
    notebook: nbformat.NotebookNode | None,
    modules: frozenset[str],
    faults: list[EnvironmentFault],
    imports: NotebookImports | None = None,
) -> list[Violation]:
    """Imports of modules the kernel has but the course's pinned environment lacks (`modules`, from the
    pre-flight): the notebook ran here, and fails there when tutors grade (a student's own laptop)."""
    if notebook is None or not modules:
        return []
    failed = {fault.what for fault in faults if fault.kind == "module"}
    seen: set[str] = set()
    violations = []
    for use in (imports or notebook_imports(notebook)).third_party():
        if use.top not in modules or use.top in failed or use.top in seen:
            continue
        seen.add(use.top)
        label = (
            _label(notebook.cells[use.cell - 1], use.cell)
            if 0 < use.cell <= len(notebook.cells)
            else f"cell {use.cell}"
        )
        violations.append(
            Violation(
                code="environment.outside_course",
                severity="warning",
                message=(
                    f"{label} imports '{use.top}', which is installed where this notebook ran but is not in the course's "
                    f"grading environment: when tutors grade, that import fails (unless the code catches it), and so does "
                    f"what needs it. Use only the course's packages (README, \"The kernel's environment\")."
                ),
            )
        )
    return violations


class Installed(Protocol):
    """What the kernel's Python has installed (run.environment.KernelEnvironment)."""

    def has_distribution(self, name: str) -> bool: ...


def pip_notes(
    notebook: nbformat.NotebookNode | None, kernel: Installed | None, imports: NotebookImports | None = None
) -> list[str]:
    """One note per `%pip install` / `!pip install` line: grading installs nothing."""
    if notebook is None:
        return []
    notes = []
    for line in (imports or notebook_imports(notebook)).pip[:10]:
        cell = notebook.cells[line.cell - 1] if 0 < line.cell <= len(notebook.cells) else {}
        where = _label(cell, line.cell) if cell else f"cell {line.cell}"
        have = [p for p in line.packages if kernel is not None and kernel.has_distribution(p)]
        lack = [p for p in line.packages if kernel is not None and not kernel.has_distribution(p)]
        state = ""
        if have:
            state += f"; {', '.join(have)} {'is' if len(have) == 1 else 'are'} in the course environment"
        if lack:
            state += (
                f"; {', '.join(lack)} {'is' if len(lack) == 1 else 'are'} NOT in the course environment, "
                f"so what needs {'it' if len(lack) == 1 else 'them'} fails"
            )
        notes.append(
            f"{where} runs `{_plain(line.line, 120)}`: grading installs nothing (no network, a fixed environment){state}"
        )
    return notes
