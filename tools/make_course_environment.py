"""Write grader/run/course_packages.py from requirements/constraints.txt: the course's pinned kernel
environment as the grader reads it, also where the repository is not (the students' package, whose
`grader check` compares a notebook's imports with it).

    python tools/make_course_environment.py           # (re)write it (`make lock` does)
    python tools/make_course_environment.py --check   # exit 1 when it differs from what would be written
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_notebooks import ROOT, write_or_check

CONSTRAINTS = ROOT / "requirements" / "constraints.txt"
MODULE = ROOT / "grader" / "run" / "course_packages.py"


def module_text() -> str:
    pins, python = {}, ""
    for line in CONSTRAINTS.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            python = python or next(iter(re.findall(r"on Python ([\d.]+)", line)), "")
            continue
        name, sep, version = line.strip().partition("==")
        if sep:
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    lines = [f"    {name!r}: {version!r}," for name, version in sorted(pins.items())]
    return (
        '"""The course\'s kernel environment as pinned in requirements/constraints.txt (Python '
        f'{python}).\n\nWritten by tools/make_course_environment.py (`make lock` runs it); do not edit."""\n\n'
        f"PYTHON = {python!r}\n"
        "# distribution (normalised name) -> version\n"
        "DISTRIBUTIONS = {\n" + "\n".join(lines) + "\n}\n"
    )


def main(argv: list[str] | None = None) -> int:
    check, stale = write_or_check({MODULE: module_text().encode("utf-8")}, argv, __doc__.splitlines()[0])
    return 1 if (check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
