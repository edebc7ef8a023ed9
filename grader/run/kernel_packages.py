"""What the kernel's Python has installed, asked of that Python itself (never imported here).

Two questions, each one subprocess of the kernel's interpreter (`[run] kernel_python`, by default
the grader's own):

- `kernel_environment`: its installed distributions (name==version). Their hash goes into every
  report's `grader.kernel_env`, so that an upgraded torch (or any other package) regrades.
- `module_distributions`: which top-level module names it can import, by `importlib.util.find_spec`,
  which locates a module without running it, and from which distributions.

A module the kernel has from a distribution that is not in the course's pinned environment
(`grader/run/course_packages.py`, from requirements/constraints.txt) will not be there when tutors
grade: a student's own laptop, or a package a tutor installed by hand.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import subprocess
from dataclasses import dataclass, field

from grader import child

# The packages a report names by version (the rest are in the hash).
REPORTED_PACKAGES = ("torch", "torchvision", "numpy")

# Each a program the kernel's Python runs as `python -I -c <text>` (grader/child/).
_ENVIRONMENT_CODE = child.source("installed_distributions.py")
_FIND_CODE = child.source("find_modules.py")


class KernelQueryError(RuntimeError):
    """The kernel's Python could not be asked; the message says which and why."""


def normalise(name: str) -> str:
    """A distribution's name as PEP 503 compares them: `Scikit_Learn` and `scikit-learn` are one."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class KernelEnvironment:
    python: str  # the interpreter asked
    python_version: str
    packages: dict[str, str] = field(default_factory=dict)  # normalised name -> version

    @property
    def fingerprint(self) -> str:
        lines = [f"python=={self.python_version}"] + [f"{n}=={v}" for n, v in sorted(self.packages.items())]
        return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]

    @property
    def reported(self) -> dict[str, str]:
        return {name: self.packages[name] for name in REPORTED_PACKAGES if name in self.packages}

    def has_distribution(self, name: str) -> bool:
        return normalise(name) in self.packages


def _ask(python: str, code: str, stdin: str = "") -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    try:
        done = subprocess.run(
            [python, "-I", "-c", code], input=stdin, capture_output=True, text=True, timeout=120, check=True, env=env
        )
        return json.loads(done.stdout)
    except subprocess.CalledProcessError as exc:
        raise KernelQueryError(f"the kernel's Python {python!r} failed: {(exc.stderr or '').strip()[-300:]}") from exc
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise KernelQueryError(f"cannot ask the kernel's Python {python!r}: {exc}") from exc


@functools.lru_cache(maxsize=4)
def kernel_environment(python: str) -> KernelEnvironment:
    """The kernel's installed distributions (asked once per process and interpreter)."""
    answer = _ask(python, _ENVIRONMENT_CODE)
    packages = {normalise(n): str(v) for n, v in answer.get("distributions", {}).items()}
    return KernelEnvironment(python=python, python_version=str(answer.get("python", "")), packages=packages)


def module_distributions(python: str, names: list[str] | set[str]) -> dict[str, tuple[str, ...] | None]:
    """For each top-level module name: None when the kernel's Python cannot import it (found without
    importing it), else the distributions that provide it (normalised; empty when none says so)."""
    names = sorted({n for n in names if n.isidentifier()})
    if not names:
        return {}
    answer = _ask(python, _FIND_CODE, json.dumps(names))
    found = {}
    for name in names:
        value = answer.get(name)
        found[name] = None if value is None else tuple(normalise(str(d)) for d in value)
    return found


def find_modules(python: str, names: list[str] | set[str]) -> dict[str, bool]:
    """Which of the top-level module `names` the kernel's Python can import (without importing them)."""
    return {name: dists is not None for name, dists in module_distributions(python, names).items()}


def outside_course(distributions: tuple[str, ...], course: dict[str, str]) -> bool:
    """A module the kernel has from distributions none of which is in the course's pinned environment
    (`grader.run.course_packages`): installed here, but not there when tutors grade."""
    return bool(distributions) and not any(d in course or d in _BOOTSTRAP for d in distributions)


# What every environment has without a pin (`pip freeze` leaves them out).
_BOOTSTRAP = {"pip", "setuptools", "wheel"}
