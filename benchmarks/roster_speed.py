"""How checking the teams against the course's list of students grows with the list (issue 20's roster).

    .venv/bin/python benchmarks/roster_speed.py              # lists of 1,000 and 50,000, about 10 s

300 teams, each with one member whose id is not on the list and one enrolled member, checked as
`grader grade` and `grader merge` do when they write their outputs: the roster's violations
(`apply_roster`, with the closest enrolled students for each id not enrolled), who is missing
(`missing_students`) and the import's plan (`plan_import`). Prints the seconds per list size and
the ratio of the largest to the smallest: about 1 means the work does not grow with the list (each
member is looked up), about 50 that every member is compared with every enrolled student.
Run by hand; never part of the test suite (the machine is shared: only ratios from one run count).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def timed(size: int, folder: Path) -> float:
    from test_report_outputs import CONFIG, make_report

    from grader.report.cms_import import plan_import
    from grader.report.enrolment import apply_roster, missing_students
    from grader.report.roster import read_roster

    path = folder / f"students-{size}.csv"
    path.write_bytes(
        b"mtknr;Vorname;Nachname\r\n" + b"".join(b"%07d;Vor%d;Nach%d\r\n" % (7000000 + i, i, i) for i in range(size))
    )
    roster = read_roster(path)
    reports = [
        make_report([(f"Some One{i}", f"{8000000 + i}"), (f"Vor{i} Nach{i}", f"{7000000 + i}")], stem=f"team{i}")
        for i in range(300)
    ]
    start = time.perf_counter()
    checked = apply_roster(reports, roster, folder)
    missing_students(checked, roster)
    plan_import(checked, CONFIG, roster)
    return time.perf_counter() - start


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        seconds = {size: timed(size, Path(tmp)) for size in (1000, 50000)}
    result = {
        "seconds": seconds,
        "ratio_50000_over_1000": seconds[50000] / seconds[1000],
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
    }
    print(json.dumps(result, indent=2))
    (ROOT / "benchmarks" / "results" / "roster_speed.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
