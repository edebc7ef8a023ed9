"""A course's week with real `grader grade` and `grader merge` runs (issue 21): the tutors' points
survive reruns, replaced and removed submissions, a cleared sheet and its restore; a zip replaced
while the batch runs is graded again; one team's name in three encodings; merge of a shard that is
still grading. Real kernels run one-cell notebooks on tiny generated data (see test_robustness.Course).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import time
import unicodedata
import zipfile
from pathlib import Path

import nbformat
import pytest
from conftest import needs_torch
from test_robustness import TEAMS, Course, notebook, sleeper

pytestmark = [pytest.mark.kernel, needs_torch]

SHEET = "manual_points.csv"


def team_zip(path: Path, *cells: str) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("Assignment_6.ipynb", nbformat.writes(notebook(*cells)))


def rows(path: Path) -> list[list[str]]:
    text = path.read_text(encoding="utf-8-sig")
    delimiter = ";" if text.split("\n")[0].count(";") > text.split("\n")[0].count(",") else ","
    return list(csv.reader(io.StringIO(text), delimiter=delimiter))


def fill(path: Path, values: dict[str, dict[str, str]]) -> None:
    """What a tutor does in a spreadsheet: type points into cells (by column prefix), save as CSV."""
    table = rows(path)
    for row in table[1:]:
        for prefix, value in values.get(row[0], {}).items():
            row[next(i for i, h in enumerate(table[0]) if h.startswith(prefix))] = value
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(table)
    path.write_text(buffer.getvalue(), encoding="utf-8-sig")


def cms(out: Path) -> dict[str, dict[str, str]]:
    return {r["student_id"]: r for r in csv.DictReader(io.StringIO((out / "cms.csv").read_text(encoding="utf-8-sig")))}


def test_a_week_of_tutors_work_loses_no_point(tmp_path):
    course = Course(tmp_path)
    a, b, c = TEAMS[:3]
    for team in (a, b, c):
        team_zip(course.subs / f"{team}.zip", "answer = 42")
    grade = ("grade", str(course.subs), "--out", str(course.out))
    merge = ("merge", str(course.out), "--out", str(course.out))
    code, output = course.run(*grade)
    assert code == 0, output

    # Monday: the tutors fill in the sheet
    entered = {a: {"6.1": "3,5", "6.2": "1.25", "6.7": "1"}, b: {"6.1": "2", "6.4": "1.5"}, c: {"6.3": "0.5"}}
    fill(course.out / SHEET, entered)

    # Tuesday: team b uploads again, team c's zip is withdrawn (a student in two teams); run again
    team_zip(course.subs / f"{b}.zip", "answer = 43")
    (course.subs / f"{c}.zip").rename(tmp_path / f"{c}.zip")
    code, output = course.run(*grade)
    assert code == 0, output
    assert "1 submission(s) to grade, 1 unchanged" in output, output
    assert "no longer in the folder" in output and c in output, output
    assert (course.out / "removed" / f"{c}.json").exists() and not (course.out / f"{c}.json").exists()
    code, output = course.run(*merge)
    assert code == 0, output

    # Wednesday: a tutor saves the sheet empty by mistake; refused, then forced
    (course.out / SHEET).write_bytes(b"\xef\xbb\xbf")
    code, output = course.run(*merge)
    assert code == 2 and a in output and b in output and "--allow-clearing" in output, output
    assert cms(course.out)["7000001"]["6.1"] == "3.5", "a refused sheet changed cms.csv"
    code, output = course.run(*merge, "--allow-clearing")
    assert code == 0, output
    assert cms(course.out)["7000001"]["6.1"] == ""

    # Thursday: the version before the mistake comes back
    code, listing = course.run(*merge, "--restore")
    assert code == 0, listing
    with_points = re.findall(
        r"^\s+(\S+-manual_points\.csv)\s+(\d+) team\(s\), (\d+) cell\(s\) with points", listing, re.M
    )
    assert with_points, listing
    chosen = [name for name, _, points in with_points if int(points) > 0][-1]
    code, output = course.run(*merge, "--restore", chosen)
    assert code == 0, output

    table = cms(course.out)
    for team, values in entered.items():
        ids = re.findall(r"\d{7}", team)
        if team == c:  # withdrawn: none of its students is in cms.csv
            assert not set(ids) & set(table), table
            continue
        for sid in ids:
            for part, value in values.items():
                assert table[sid][part] == value.replace(",", "."), (team, part, table[sid])
    reports = course.reports()
    assert sorted(reports) == sorted([a, b])
    assert reports[a].exercises[0].points == 3.5 and reports[b].exercises[3].points == 1.5

    # Friday: team c's zip is back, unchanged: its report and its tutor's points come back with it
    (tmp_path / f"{c}.zip").rename(course.subs / f"{c}.zip")
    code, output = course.run(*grade)
    assert code == 0, output
    assert "0 submission(s) to grade, 3 unchanged" in output, output
    assert cms(course.out)["7000005"]["6.3"] == "0.5"


def test_a_zip_replaced_while_the_batch_runs_is_graded_again(tmp_path):
    course = Course(tmp_path, workers=1)
    first, second = TEAMS[0], TEAMS[1]  # graded in this order, one after the other
    nbformat.write(sleeper(5), course.subs / f"{first}.ipynb")
    whole = course.subs / f"{second}.zip"
    team_zip(whole, "answer = 42")
    data = whole.read_bytes()
    process = course.start()
    lines = []
    for raw in process.stdout:  # the batch has found (and hashed) both files when it says this
        lines.append(raw.decode(errors="replace"))
        if "submission(s) to grade" in lines[-1]:
            break
    else:
        pytest.fail("".join(lines))
    whole.write_bytes(data[: len(data) // 2])  # a copy over it, half done, while the first one runs
    output = "".join(lines) + process.communicate(timeout=300)[0].decode(errors="replace")
    assert process.returncode == 0, output
    assert [v.code for v in course.reports()[second].violations if v.code == "archive.corrupt"], output
    whole.write_bytes(data)  # the copy is finished
    code, output = course.run()
    assert code == 0, output
    assert "1 submission(s) to grade, 1 unchanged" in output, output
    report = course.reports()[second]
    assert report.execution.status == "ok" and not [v for v in report.violations if v.code == "archive.corrupt"]


def test_one_teams_name_in_nfc_nfd_and_latin1_bytes_gives_three_reports(tmp_path):
    course = Course(tmp_path, workers=1)
    name = "Jürgen Müller_7000001_Anna Schmidt_7000002"
    for raw in (
        unicodedata.normalize("NFC", name).encode(),
        unicodedata.normalize("NFD", name).encode(),
        name.encode("latin-1"),
    ):
        nbformat.write(notebook("answer = 42"), course.subs / os.fsdecode(raw + b".ipynb"))
    code, output = course.run()
    assert code == 0, output
    reports = course.reports()
    assert len(reports) == 3, sorted(reports)
    summary = (course.out / "summary.csv").read_text(encoding="utf-8-sig").splitlines()
    assert len(summary) == 4 and len(set(summary)) == 4, summary
    assert "duplicate submission: 3 files" in output and "NFD" in output and "Latin-1" in output, output
    page = (course.out / "summary.html").read_text(encoding="utf-8")
    assert "duplicate submission: 3 files" in page and all(stem in page for stem in reports)


def test_merge_refuses_a_shard_that_is_still_grading(tmp_path):
    course = Course(tmp_path, workers=1)
    for team in TEAMS[:4]:
        nbformat.write(sleeper(3), course.subs / f"{team}.ipynb")
    shards = [tmp_path / "shard-1", tmp_path / "shard-2"]
    code, output = course.run("grade", str(course.subs), "--out", str(shards[1]), "--shard", "2/2")
    assert code == 0, output
    process = course.start("grade", str(course.subs), "--out", str(shards[0]), "--shard", "1/2")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if json.loads((shards[0] / ".shard.json").read_text())["state"] == "in progress":
                    break
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.05)
        merged = tmp_path / "merged"
        code, output = course.run("merge", *map(str, shards), "--out", str(merged))
        flat = " ".join(output.split())  # rich wraps lines to the terminal's width
        assert code == 2, output
        assert "shard 1/2" in flat and f"pid {process.pid}" in flat and "still being graded" in flat, output
        code, output = course.run("merge", *map(str, shards), "--out", str(merged), "--partial")
        assert code == 0 and "PARTIAL" in output, output
        assert (merged / "PARTIAL-cms.csv").exists() and not (merged / "cms.csv").exists()
        assert process.wait(timeout=300) == 0
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    code, output = course.run("merge", *map(str, shards), "--out", str(merged))
    assert code == 0 and "PARTIAL" not in output, output
    assert (merged / "cms.csv").exists() and not (merged / "PARTIAL-cms.csv").exists()
    assert len(cms(merged)) == 8
