"""Attacks on issue 21's landing (files from other systems, notebooks at the caps, tutors' data over
a semester): each test failed on the code before its fix. Fast: no kernel runs here."""

from __future__ import annotations

import zipfile
from pathlib import Path

import nbformat
import pytest
from conftest import SHEET6_HINTS, needs_torch
from intake_corpus import solution_notebook

from grader.config import Archive, Naming
from grader.intake import identify, unpack

TEAM = "Ida Roth_7000009_Jan Vogt_7000010"


# ---------------------------------------------------------------- zips as other tools write them


def _zip_with_other_local_names(path: Path, entries: list[tuple[str, str, bytes]]) -> Path:
    """A zip whose central directory names each entry `central` while its local header says `local`
    (same length): what some Windows tools write (backslashes in the directory, `/` in the headers)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for _, local, data in entries:
            zf.writestr(zipfile.ZipInfo(local, date_time=(2024, 12, 1, 12, 0, 0)), data)
    raw = bytearray(path.read_bytes())
    directory = raw.find(b"PK\x01\x02")
    for central, local, _ in entries:
        assert len(central.encode()) == len(local.encode())
        at = raw.find(local.encode(), directory)
        raw[at : at + len(local.encode())] = central.encode()
    path.write_bytes(bytes(raw))
    with zipfile.ZipFile(path) as zf:
        assert [info.orig_filename for info in zf.infolist()] == [central for central, _, _ in entries]
    return path


def test_an_entry_whose_local_header_names_it_otherwise_is_unpacked_by_its_directory_name(tmp_path):
    """Info-ZIP and 7-Zip take the central directory's name ("mismatching local filename, continuing
    with central filename version"); zipfile refused the entry (archive.corrupt), and a complete
    solution got content.no_notebook and 0 points."""
    subs = tmp_path / "subs"
    subs.mkdir()
    notebook = solution_notebook().encode()
    z = _zip_with_other_local_names(
        subs / f"{TEAM}.zip",
        [
            ("Abgabe\\Exercise_6_6.ipynb", "Abgabe/Exercise_6_6.ipynb", notebook),
            ("ok.txt", "../x.t", b"the local name climbs out"),
        ],
    )
    ws = unpack(identify(z, subs, Naming()), tmp_path / "ws", Archive(), SHEET6_HINTS)
    assert not [v for v in ws.violations if v.code == "archive.corrupt"], ws.violations
    assert ws.notebook == tmp_path / "ws" / "Abgabe" / "Exercise_6_6.ipynb"
    nbformat.read(ws.notebook, as_version=4)
    assert (tmp_path / "ws" / "ok.txt").read_bytes() == b"the local name climbs out"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["subs", "ws"]  # nothing written outside


# ---------------------------------------------------------------- merge of shards


def test_a_done_shard_that_lacks_reports_it_lists_is_refused(tmp_path):
    """A shard's marker lists the stems it graded; a folder copied in part (an interrupted scp, a
    report deleted by hand) was merged without a word, and the team was missing from cms.csv."""
    from test_tutors_data import ALICE, BOB, CARL, cms, grader, shard

    one = shard(tmp_path / "shard-1", [ALICE], {"shard": "1/2", "state": "done", "stems": [ALICE[0]]})
    two = shard(tmp_path / "shard-2", [BOB], {"shard": "2/2", "state": "done", "stems": [BOB[0], CARL[0]]})
    out = tmp_path / "merged"
    code, output = grader("merge", str(one), str(two), "--out", str(out), cwd=tmp_path)
    assert code == 2, output
    assert "shard 2/2" in output and CARL[0] in output and "report" in output, output
    assert not (out / "cms.csv").exists()
    code, output = grader("merge", str(one), str(two), "--out", str(out), "--partial", cwd=tmp_path)
    assert code == 0 and "PARTIAL" in output and CARL[0] in output, output
    assert "7000003" in cms(out, "PARTIAL-cms.csv") and not (out / "cms.csv").exists()


# ---------------------------------------------------------------- one team, two spellings, over weeks


def _graded_as(job, report_item, out: Path, sha256: str | None = None):
    """The report a grade of `job` would write (built by hand: no kernel), for the file it grades
    (`sha256`: of the bytes it read; by default the hash the job was found with)."""
    from test_report_outputs import CONFIG

    from grader.report.store import write_report

    _, report = report_item
    report = report.model_copy(
        update={
            "submission": report.submission.model_copy(
                update={"file": job.submission.rel, "sha256": sha256 or job.submission.sha256, "stem": job.stem}
            ),
            "grader": report.grader.model_copy(update={"grader_hash": "g", "config_hash": CONFIG.fingerprint[:16]}),
        }
    )
    write_report(report, out, job.stem)
    return job.stem, report


def test_a_second_spelling_of_a_team_leaves_the_first_ones_report_and_points_where_they_are(tmp_path):
    """Week 1: the team's zip (NFC name) is graded and the tutors give points. Week 2 the same team
    uploads again from a Mac (NFD name). The first file used to lose its stem to `S~hash`: its
    report and points went to removed/ "no longer in the folder" (it still was), it was graded
    again, and cms.csv lost its points. Week 3 the tutors keep the Mac upload, grade it and remove
    the first: the points they gave the Mac upload are the ones in cms.csv."""
    import unicodedata

    from test_report_outputs import ALICE, CONFIG, fill
    from test_tutors_data import cms

    from grader.engine.batch import plan
    from grader.report.outputs import write_batch_outputs
    from grader.report.store import read_report

    name = "Anna Äpfel_7000001_Bernd Brot_0700002"
    subs, out = tmp_path / "subs", tmp_path / "out"
    subs.mkdir()
    first = subs / (unicodedata.normalize("NFC", name) + ".ipynb")
    first.write_text(solution_notebook(), encoding="utf-8")

    def run():
        planned = plan(subs, CONFIG, out, shard=None, force=False, grader_hash="g")
        reports = [*planned.cached, *(_graded_as(job, ALICE, out) for job in planned.jobs)]
        warnings = write_batch_outputs(reports, out, CONFIG, notes=planned.duplicates)
        return planned, warnings

    planned, _ = run()
    (stem,) = [job.stem for job in planned.jobs]
    fill(out / "manual_points.csv", {stem: {"6.1": "3", "6.2": "1"}})
    run()
    assert cms(out)["7000001"]["6.1"] == "3"

    second = subs / (unicodedata.normalize("NFD", name) + ".ipynb")
    second.write_text(solution_notebook() + " ", encoding="utf-8")
    planned, warnings = run()
    assert [s for s, _ in planned.cached] == [stem], "the first upload, unchanged, was graded again"
    (new,) = [job.stem for job in planned.jobs]
    assert new != stem and planned.duplicates
    assert not any("no longer in the folder" in w for w in warnings), warnings
    assert read_report(out / f"{stem}.json").exercises[0].points == 3
    sheet = {r["stem"]: r for r in csv_rows(out / "manual_points.csv")}
    assert sheet[stem]["6.1 (max 3.75)"] == "3" and sheet[new]["6.1 (max 3.75)"] == "", sheet

    fill(out / "manual_points.csv", {new: {"6.1": "2.5"}})
    first.unlink()
    planned, warnings = run()
    assert [s for s, _ in planned.cached] == [new] and not planned.jobs
    assert any("no longer in the folder" in w and stem in w for w in warnings), warnings
    assert cms(out)["7000001"]["6.1"] == "2.5" and cms(out)["7000001"]["team"] == new
    assert (out / "removed" / f"{stem}.json").exists()


def csv_rows(path: Path):
    import csv
    import io

    return csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig")))


# ---------------------------------------------------------------- the outputs' manifest, edited


def test_an_edited_manifest_removes_no_file_that_is_not_a_derived_one_in_any_letter_case(tmp_path):
    """`.grader.outputs` names what the last run wrote; a file it names that this run did not write
    is removed. Edited to name the tutors' sheet or a report in other letter case (one and the same
    file on a Mac's or Windows' disk), a tutor's notes or a path outside, none of them may go."""
    import json

    from test_report_outputs import ALICE, CONFIG

    from grader.report.outputs import MANIFEST, write_batch_outputs
    from grader.report.store import write_report

    out = tmp_path / "out"
    write_report(ALICE[1], out, ALICE[0])
    write_batch_outputs([ALICE], out, CONFIG)
    (tmp_path / "outside.html").write_text("keep")
    names = [
        "MANUAL_POINTS.CSV",
        "Manual_points.csv",
        f"{ALICE[0]}.JSON",
        "notes.txt",
        "Notes.md",
        "../outside.html",
        "feedback/../../outside.html",
        "/etc/hostname",
    ]
    for name in names[:5]:
        (out / name).write_text("a tutor's file")
    manifest = json.loads((out / MANIFEST).read_text())
    (out / MANIFEST).write_text(json.dumps({**manifest, "files": manifest["files"] + names}))
    write_batch_outputs([ALICE], out, CONFIG)
    assert all((out / name).exists() for name in names[:5]), sorted(p.name for p in out.iterdir())
    assert (tmp_path / "outside.html").read_text() == "keep"


# ---------------------------------------------------------------- the sheet in Excel over weeks


def _excel_opens(data: bytes) -> str:
    """What Excel (German Windows) reads in a CSV file: UTF-8 when it starts with a BOM, else
    Windows-1252."""
    return data[3:].decode("utf-8") if data.startswith(b"\xef\xbb\xbf") else data.decode("cp1252")


def _excel_saves(text: str) -> bytes:
    """Excel's "CSV (Trennzeichen-getrennt)": Windows-1252, no BOM; '?' for a letter it lacks."""
    return text.encode("cp1252", errors="replace")


def _excel_edit(sheet: Path, values: dict) -> None:
    """A tutor opens the sheet in Excel, fills cells, and saves it as "CSV"."""
    from test_report_outputs import fill

    sheet.write_text(_excel_opens(sheet.read_bytes()), encoding="utf-8")
    fill(sheet, values)
    sheet.write_bytes(_excel_saves(sheet.read_text(encoding="utf-8")))


def test_a_sheet_excel_saved_as_windows_1252_stays_readable_in_excel_when_the_grader_rewrites_it(tmp_path):
    """A tutor saves the sheet from Excel as "CSV" (Windows-1252). A late team arrives and the grader
    writes the sheet again, as UTF-8 without a BOM, which Excel shows as 'Ã„pfel'; the tutor adds a
    comment ("schön") and saves: 'Ã„' becomes the bytes of UTF-8 'Ä', 'ö' a Windows-1252 byte, the
    file is read as Windows-1252 and every team with an umlaut was an unknown team."""
    from test_report_outputs import ALICE, BOB, CONFIG
    from test_tutors_data import CARL, cms, graded

    from grader.report.outputs import write_batch_outputs
    from grader.report.store import write_report

    out = tmp_path / "out"
    for stem, report in (ALICE, BOB):
        write_report(report, out, stem)
    write_batch_outputs([ALICE, BOB], out, CONFIG)
    sheet = out / "manual_points.csv"
    _excel_edit(sheet, {ALICE[0]: {"6.1": "3,5"}, BOB[0]: {"6.2": "1"}})
    assert not sheet.read_bytes().startswith(b"\xef\xbb\xbf")
    write_batch_outputs(graded(out, [ALICE, BOB]), out, CONFIG)
    assert cms(out)["7000001"]["6.1"] == "3.5"

    write_report(CARL[1], out, CARL[0])  # a late team: the grader adds its row
    write_batch_outputs([*graded(out, [ALICE, BOB]), CARL], out, CONFIG)
    assert "Äpfel" in _excel_opens(sheet.read_bytes()), "Excel shows the names garbled"
    _excel_edit(sheet, {CARL[0]: {"comment": "schön"}})
    write_batch_outputs(graded(out), out, CONFIG)
    assert cms(out)["7000001"]["6.1"] == "3.5" and cms(out)["7000003"]["6.2"] == "1"


def test_names_that_windows_1252_lacks_are_found_again_after_excel_wrote_question_marks(tmp_path):
    """Excel's "CSV" (Windows-1252) has no 'ễ', 'ă', 'Ł' or 'Ż': it saves them as '?'. The team's row
    was an unknown team ("fix the name or delete the row"), and every team of the course with such a
    name stopped the merge. The row is the team's where the name matches but for those letters; the
    sheet is written back with the names as they are."""
    from test_report_outputs import ALICE, CONFIG, make_report
    from test_tutors_data import cms, graded

    from grader.report.outputs import write_batch_outputs
    from grader.report.store import write_report

    nguyen = make_report([("Nguyễn Văn An", "7000008"), ("Łukasz Żak", "7000009")])
    out = tmp_path / "out"
    for stem, report in (ALICE, nguyen):
        write_report(report, out, stem)
    write_batch_outputs([ALICE, nguyen], out, CONFIG)
    sheet = out / "manual_points.csv"
    text = _excel_opens(sheet.read_bytes())
    sheet.write_bytes(text.encode("cp1252", errors="replace"))
    assert b"Nguy?n V?n An_7000008_?ukasz ?ak_7000009" in sheet.read_bytes()
    sheet.write_text(sheet.read_bytes().decode("cp1252"), encoding="utf-8")
    from test_report_outputs import fill

    fill(sheet, {"Nguy?n V?n An_7000008_?ukasz ?ak_7000009": {"6.1": "2"}, ALICE[0]: {"6.2": "1"}})
    sheet.write_bytes(sheet.read_text(encoding="utf-8").encode("cp1252"))

    write_batch_outputs(graded(out, [ALICE, nguyen]), out, CONFIG)
    assert cms(out)["7000008"]["6.1"] == "2" and cms(out)["7000001"]["6.2"] == "1"
    assert nguyen[0] in _excel_opens(sheet.read_bytes())  # the names as they are, again
    assert "?ukasz" not in _excel_opens(sheet.read_bytes())
    write_batch_outputs(graded(out, [ALICE, nguyen]), out, CONFIG)  # and read back as such
    assert cms(out)["7000009"]["6.1"] == "2"


# ---------------------------------------------------------------- a notebook's errors, huge


@pytest.mark.kernel
def test_errors_with_huge_messages_are_kept_but_bounded(tmp_path):
    """Errors are always kept (the verdict reads them), but they were kept whole: 20 cells raising a
    5 MB message made a 200 MB notebook in the worker (707 MB resident; 200 such cells, well within
    the cell cap, would take it past any --mem) and an executed copy too large to write. Each error
    now keeps its type, the start of its message and the end of its traceback within the cell's
    output limit; what is cut says so."""
    import asyncio
    import json

    from grader.config import config_from_dict
    from grader.run.execute import KernelSession
    from grader.run.sandbox import kernel_command

    config = config_from_dict({"limits": {"cell_timeout_s": 60, "notebook_timeout_s": 300}})
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(f"raise ValueError('start{i} ' + 'x' * 5_000_000)") for i in range(20)]
    nb.cells.append(nbformat.v4.new_code_cell("import no_such_module_here"))

    async def run():
        async with KernelSession(kernel_command(config, tmp_path), tmp_path, config.limits) as session:
            return await session.run_notebook(nb)

    execution = asyncio.run(run())
    assert execution.info.status == "errors"
    assert len(execution.info.errors) == 21
    for i, cell in enumerate(execution.notebook.cells[:20]):
        (error,) = [o for o in cell.outputs if o.output_type == "error"]
        assert error.ename == "ValueError" and error.evalue.startswith(f"start{i} xxx")
        assert len(json.dumps(error)) <= config.limits.output_kb * 1024 + 1024
        assert "cut" in error.evalue and any("ValueError" in line for line in error.traceback)
    last = next(o for o in execution.notebook.cells[20].outputs if o.output_type == "error")
    assert last.ename == "ModuleNotFoundError" and last.evalue == "No module named 'no_such_module_here'"
    assert len(json.dumps(execution.notebook)) < 3 * 2**20


def test_a_shard_another_merge_is_reading_is_waited_for(tmp_path):
    """Two tutors merge the same shards into two folders at once: the second was refused, told the
    shard "is still being graded by grader merge (reading)" and to wait until every shard is done.
    Reading a shard twice does no harm: it waits for the other merge, and says so."""
    import os
    import subprocess
    import sys

    from test_tutors_data import ALICE, BOB, ROOT, cms, shard

    one = shard(tmp_path / "shard-1", [ALICE], {"shard": "1/2", "state": "done", "stems": [ALICE[0]]})
    two = shard(tmp_path / "shard-2", [BOB], {"shard": "2/2", "state": "done", "stems": [BOB[0]]})
    # The other merge holds the lock until this one says it waits (at most 2 minutes), not for a fixed
    # time: on a loaded machine the merge can take seconds to start.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import select, sys; from pathlib import Path; from grader.util.locks import hold\n"
                f"with hold(Path({str(one / '.grader.lock')!r}), command='grader merge (reading)', what='x', wait=False):\n"
                "    print('held', flush=True); select.select([sys.stdin], [], [], 120)"
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    lines = []
    try:
        assert holder.stdout.readline().strip() == "held"
        merge = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "grader",
                "--config",
                str(ROOT / "grading.toml"),
                "merge",
                str(one),
                str(two),
                "--out",
                str(tmp_path / "out"),
            ],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "COLUMNS": "250", "PYTHONUNBUFFERED": "1"},
        )
        for line in merge.stdout:
            lines.append(line)
            if "waiting" in line:
                holder.stdin.write("release\n")
                holder.stdin.flush()
        code = merge.wait(timeout=120)
    finally:
        holder.kill()
        holder.wait()
    output = "".join(lines)
    assert code == 0, output
    assert "being graded" not in output and f"in use by grader merge (reading) (pid {holder.pid}" in output, output
    assert "waiting" in output and {"7000001", "7000003"} <= set(cms(tmp_path / "out"))


@pytest.mark.kernel
def test_a_second_spelling_through_grader_grade_keeps_the_first_uploads_points(tmp_path):
    """The same as above with `grader grade` runs (real kernels, one-cell notebooks): the first upload
    is not graded again, keeps its points, and nothing is said to have left the folder."""
    import os
    import unicodedata

    from test_robustness import Course
    from test_tutors_week import fill, rows, team_zip

    course = Course(tmp_path)
    name = "Jürgen Müller_7000001_Anna Schmidt_7000002"
    team_zip(course.subs / (unicodedata.normalize("NFC", name) + ".zip"), "answer = 42")
    grade = ("grade", str(course.subs), "--out", str(course.out))
    code, output = course.run(*grade)
    assert code == 0, output
    fill(course.out / "manual_points.csv", {unicodedata.normalize("NFC", name): {"6.1": "3", "6.7": "1"}})
    code, output = course.run(*grade)
    assert code == 0, output

    nfd = unicodedata.normalize("NFD", name).encode() + b".zip"
    team_zip(course.subs / os.fsdecode(nfd), "answer = 43")
    code, output = course.run(*grade)
    assert code == 0, output
    assert "1 submission(s) to grade, 1 unchanged" in output and "duplicate submission" in output, output
    assert "no longer in the folder" not in output, output
    sheet = {row[0]: row for row in rows(course.out / "manual_points.csv")[1:]}
    assert sheet[unicodedata.normalize("NFC", name)][3] == "3", sheet
    assert len(sheet) == 2


# ---------------------------------------------------------------- the bytes graded: a notebook and its PDF


def test_a_pdf_replaced_beside_its_notebook_is_graded_again(tmp_path):
    """A notebook and a PDF are one submission (same name, or a team's folder). The report's hash
    was the notebook's alone: a team that uploaded a corrected PDF kept the report of the old one
    (its identity checks and 6.3 hints) as "unchanged". Unchanged files still stay unchanged."""
    import types

    from test_intake_archive import _pdf
    from test_report_outputs import ALICE, CONFIG

    from grader.engine.batch import plan
    from grader.pipeline import _unpack_as_read

    subs, out = tmp_path / "subs", tmp_path / "out"
    folder = subs / "Abgabe 7"
    folder.mkdir(parents=True)
    (tmp_path / "_scratch").mkdir()
    (folder / "notebook.ipynb").write_text(solution_notebook(), encoding="utf-8")
    (folder / "answers.pdf").write_bytes(_pdf(tmp_path))
    (subs / f"{TEAM}.ipynb").write_text(solution_notebook(), encoding="utf-8")
    (subs / f"{TEAM}.pdf").write_bytes(_pdf(tmp_path))

    def run():
        planned = plan(subs, CONFIG, out, shard=None, force=False, grader_hash="g")
        for job in planned.jobs:  # what grading records: the hash of the bytes it read
            read, _ = _unpack_as_read(job.submission, tmp_path / "ws" / job.stem, types.SimpleNamespace(config=CONFIG))
            _graded_as(job, ALICE, out, sha256=read.sha256)
        return planned

    assert len(run().jobs) == 2
    assert not run().jobs, "unchanged files were graded again"
    (folder / "answers.pdf").write_bytes(_pdf(tmp_path, [("Ida Roth", "7000009"), ("Jan Vogt", "7000010")]))
    (subs / f"{TEAM}.pdf").write_bytes(_pdf(tmp_path, [("Ida Roth", "7000009")]))
    assert len(run().jobs) == 2, "a replaced PDF left the report of the old one standing"


# ---------------------------------------------------------------- notebooks at the caps


def test_a_notebook_one_byte_over_the_size_cap_says_by_how_much(tmp_path):
    """It said "it is 50 MB, more than the 50 MB a notebook may have": sizes rounded to whole MB."""
    import json

    from grader.util.notebook_file import MAX_NOTEBOOK_BYTES, NotebookTooLarge, decode_notebook, parse_notebook_json

    cell = {"cell_type": "code", "source": "", "metadata": {}, "outputs": [], "execution_count": None}
    raw = json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {"pad": ""}, "cells": [cell]}).encode()
    raw = raw.replace(b'"pad": ""', b'"pad": "' + b"a" * (MAX_NOTEBOOK_BYTES - len(raw)) + b'"')
    assert len(raw) == MAX_NOTEBOOK_BYTES
    decode_notebook(raw)  # at the cap: read
    over = raw[:-1] + b" }"
    path = tmp_path / "over.ipynb"
    path.write_bytes(over)
    for read in (lambda: decode_notebook(over), lambda: parse_notebook_json(path)):
        with pytest.raises(NotebookTooLarge) as info:
            read()
        assert "52,428,801 bytes" in str(info.value) and "52,428,800" in str(info.value), str(info.value)


def test_the_sheet_merged_into_a_partial_merge_keeps_it_partial(tmp_path):
    """After `merge --partial` (a shard still grading), the tutors fill in points and merge the sheet
    as docs/tutors.md says, `grader merge OUT --out OUT`: that wrote a whole cms.csv and cms_import.csv
    for part of the course, as if it were complete (with import_missing_as_zero, the students of the
    unfinished shard would have been imported with 0)."""
    from test_tutors_data import ALICE, BOB, cms, fill, grader, shard

    one = shard(tmp_path / "shard-1", [ALICE], {"shard": "1/2", "state": "done", "stems": [ALICE[0]]})
    two = shard(
        tmp_path / "shard-2",
        [],
        {
            "shard": "2/2",
            "state": "in progress",
            "command": "grader grade",
            "pid": 4242,
            "host": "node7",
            "since": "2025-01-14 10:00:00",
        },
    )
    out = tmp_path / "merged"
    code, output = grader("merge", str(one), str(two), "--out", str(out), "--partial", cwd=tmp_path)
    assert code == 0 and (out / "PARTIAL-cms.csv").exists(), output
    fill(out / "manual_points.csv", {ALICE[0]: {"6.1": "3"}})
    code, output = grader("merge", str(out), "--out", str(out), cwd=tmp_path)
    assert code == 0, output
    assert "PARTIAL" in output and "shard 2/2" in output, output
    assert not (out / "cms.csv").exists() and not (out / "cms_import.csv").exists()
    assert cms(out, "PARTIAL-cms.csv")["7000001"]["6.1"] == "3"
    assert "PARTIAL" in (out / "summary.html").read_text(encoding="utf-8")

    shard(two, [BOB], {"shard": "2/2", "state": "done", "stems": [BOB[0]]})  # the whole course once done
    code, output = grader("merge", str(one), str(two), "--out", str(out), cwd=tmp_path)
    assert code == 0 and "PARTIAL" not in output, output
    assert cms(out)["7000001"]["6.1"] == "3" and "7000003" in cms(out)
    code, output = grader("merge", str(out), "--out", str(out), cwd=tmp_path)
    assert code == 0 and "PARTIAL" not in output and (out / "cms.csv").exists(), output


def test_hidden_files_nested_too_deep_are_read_as_unreadable_not_a_traceback(tmp_path):
    """`.grader.outputs` or `.shard.json` edited (or corrupted) into JSON nested deeper than Python's
    recursion limit: every later run of the folder ended in a RecursionError traceback."""
    from test_report_outputs import CONFIG
    from test_tutors_data import ALICE, grader, write_batch_outputs, write_report

    out = tmp_path / "out"
    write_report(ALICE[1], out, ALICE[0])
    write_batch_outputs([ALICE], out, CONFIG)
    deep = "[" * 100_000 + "]" * 100_000
    (out / ".grader.outputs").write_text(deep)
    code, output = grader("merge", str(out), "--out", str(out), cwd=tmp_path)
    assert code == 0 and "Traceback" not in output, output
    (tmp_path / "shard").mkdir()
    write_report(ALICE[1], tmp_path / "shard", ALICE[0])
    (tmp_path / "shard" / ".shard.json").write_text('{"shard": ' + deep + "}")
    code, output = grader("merge", str(tmp_path / "shard"), "--out", str(tmp_path / "merged"), cwd=tmp_path)
    assert "Traceback" not in output and "RecursionError" not in output, output


def test_a_sheet_excel_saved_with_question_marks_merges_with_the_shards_sheets(tmp_path):
    """The same Excel save in a cluster run: merging the shards again joined the tutors' row
    ('Nguy?n…') and the shard's row ('Nguyễn…') as two rows of one team, and the merge stopped."""
    from test_report_outputs import make_report
    from test_tutors_data import ALICE, cms, grader, shard

    nguyen = make_report([("Nguyễn Văn An", "7000008"), ("Łukasz Żak", "7000009")])
    one = shard(
        tmp_path / "shard-1", [ALICE, nguyen], {"shard": "1/1", "state": "done", "stems": [ALICE[0], nguyen[0]]}
    )
    out = tmp_path / "merged"
    code, output = grader("merge", str(one), "--out", str(out), cwd=tmp_path)
    assert code == 0, output
    sheet = out / "manual_points.csv"
    _excel_edit(sheet, {})
    text = sheet.read_bytes().decode("cp1252")
    lossy = "Nguy?n V?n An_7000008_?ukasz ?ak_7000009"
    assert lossy in text
    sheet.write_text(text, encoding="utf-8")
    from test_report_outputs import fill

    fill(sheet, {lossy: {"6.1": "2"}})
    sheet.write_bytes(sheet.read_text(encoding="utf-8").encode("cp1252"))
    code, output = grader("merge", str(one), "--out", str(out), cwd=tmp_path)
    assert code == 0, output
    assert cms(out)["7000008"]["6.1"] == "2"


@pytest.mark.kernel
def test_updates_of_a_display_are_held_to_the_output_limits(tmp_path):
    """`update_display` (a display handle's `.update`) replaces an earlier output in place, past
    nbclient's output hook and so past every cap: 20 cells updating a display to 5 MB made a 100 MB
    notebook in the worker, without a note. An update over the cell's limit is left out and says so;
    small updates (a live progress line) go on as before."""
    import asyncio
    import json

    from grader.config import config_from_dict
    from grader.run.execute import KernelSession
    from grader.run.sandbox import kernel_command

    config = config_from_dict({"limits": {"cell_timeout_s": 60, "notebook_timeout_s": 300}})
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "from IPython.display import display, update_display\n"
            f"display('start', display_id='d{i}')\nupdate_display('y' * 5_000_000, display_id='d{i}')"
        )
        for i in range(20)
    ]
    nb.cells.append(
        nbformat.v4.new_code_cell(
            "h = display('epoch 0', display_id=True)\nfor epoch in range(1, 2000):\n    h.update(f'epoch {epoch}')"
        )
    )

    async def run():
        async with KernelSession(kernel_command(config, tmp_path), tmp_path, config.limits) as session:
            return await session.run_notebook(nb)

    execution = asyncio.run(run())
    assert execution.info.status == "ok"
    assert len(json.dumps(execution.notebook)) < 2**20
    for cell in execution.notebook.cells[:20]:
        (shown,) = cell.outputs
        assert "left out" in shown.data["text/plain"] and "y" * 100 not in shown.data["text/plain"]
    (progress,) = execution.notebook.cells[20].outputs
    assert progress.data["text/plain"] == "'epoch 1999'"
    assert any("output cut" in note and "In [1]" in note for note in execution.info.notes), execution.info.notes


@pytest.mark.kernel
@needs_torch
def test_a_plot_after_a_verbose_training_loop_is_kept(tmp_path):
    """A cell that prints every batch's loss (100 KB) and then plots the accuracies: the plot came
    after the cell's 64 KB of output and was dropped, so the executed notebook had no plot and the
    tutors' hint for 6.6 part 3 (graded by hand) said "no plot in the executed notebook". The
    grader's limit on what a cell prints must not cost a team its plot."""
    import asyncio

    from grader.config import config_from_dict
    from grader.run.execute import KernelSession
    from grader.run.sandbox import kernel_command
    from grader.sheets.sheet6.evidence import notebook_evidence

    config = config_from_dict({"limits": {"cell_timeout_s": 120, "notebook_timeout_s": 300}})
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import matplotlib.pyplot as plt\n"
            "for epoch in range(5):\n"
            "    for batch in range(700):\n"
            "        print(f'epoch {epoch} batch {batch:4d} loss {1 / (batch + 1):.6f}')\n"
            "plt.plot([0.7, 0.78, 0.81, 0.83, 0.84], label='baseline')\n"
            "plt.plot([0.8, 0.83, 0.85, 0.86, 0.87], label='batch norm')\n"
            "plt.legend()\nplt.show()"
        )
    ]

    async def run():
        async with KernelSession(kernel_command(config, tmp_path), tmp_path, config.limits) as session:
            return await session.run_notebook(nb)

    execution = asyncio.run(run())
    assert execution.info.status == "ok"
    outputs = execution.notebook.cells[0].outputs
    assert any("image/png" in out.get("data", {}) for out in outputs), [o.output_type for o in outputs]
    assert "part 3: 1 plot(s) in the executed notebook" in notebook_evidence(execution.notebook)
    printed = "".join(out.get("text", "") for out in outputs if out.output_type == "stream")
    assert len(printed) <= config.limits.output_kb * 1024 + 200 and "cut after" in printed


def test_two_merges_of_the_same_shards_named_in_other_orders_do_not_wait_for_each_other(tmp_path):
    """Merges wait for one another's reading of a shard (above): one that held shard 2 while waiting
    for shard 1, beside one that held shard 1 while waiting for shard 2, would wait forever. The
    locks are taken in one order: a merge waiting for shard 1 holds no other shard yet."""
    import subprocess
    import sys
    import time

    from filelock import FileLock, Timeout
    from test_tutors_data import ALICE, BOB, ROOT, shard

    one = shard(tmp_path / "shard-1", [ALICE], {"shard": "1/2", "state": "done", "stems": [ALICE[0]]})
    two = shard(tmp_path / "shard-2", [BOB], {"shard": "2/2", "state": "done", "stems": [BOB[0]]})
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import time; from pathlib import Path; from grader.util.locks import hold\n"
                f"with hold(Path({str(one / '.grader.lock')!r}), command='grader merge (reading)', what='x', wait=False):\n"
                "    print('held', flush=True); time.sleep(8)"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    merge = None
    try:
        assert holder.stdout.readline().strip() == "held"
        merge = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "grader",
                "--config",
                str(ROOT / "grading.toml"),
                "merge",
                str(two),
                str(one),
                "--out",
                str(tmp_path / "out"),
            ],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        time.sleep(4)  # the merge has started and waits for shard 1
        probe = FileLock(str(two / ".grader.lock"))
        try:
            probe.acquire(timeout=0)
            probe.release()
        except Timeout:
            pytest.fail("the merge waiting for shard 1 holds shard 2")
        output = merge.communicate(timeout=120)[0]
        assert merge.returncode == 0, output
    finally:
        holder.kill()
        holder.wait()
        if merge is not None and merge.poll() is None:
            merge.kill()


# ---------------------------------------------------------------- names in the CSV files


def test_file_names_with_terminal_escapes_and_bidi_overrides_are_shown_not_sent_in_the_csvs(tmp_path):
    """summary.csv carried a file's name as it is: `cat summary.csv` sent its ESC sequences to the
    tutor's terminal (colours, titles, hyperlinks), and U+202E made a spreadsheet show
    'x\\u202egpj.ipynb' as 'xbnypi.jpg'. The pages and the terminal show them escaped; so do the CSVs."""
    from test_report_outputs import ALICE, CONFIG

    from grader.engine.batch import plan
    from grader.report.outputs import write_batch_outputs

    subs, out = tmp_path / "subs", tmp_path / "out"
    subs.mkdir()
    name = "Eve\u202egpj.\x1b]0;owned\x07\x1b[31m_7000001_Bob_7000002"
    (subs / f"{name}.ipynb").write_text(solution_notebook(), encoding="utf-8")
    planned = plan(subs, CONFIG, out, shard=None, force=False, grader_hash="g")
    write_batch_outputs([_graded_as(job, ALICE, out) for job in planned.jobs], out, CONFIG)
    for csv_name in ("summary.csv", "manual_points.csv", "cms.csv"):
        text = (out / csv_name).read_text(encoding="utf-8-sig")
        assert not any(ch in text for ch in "\x1b\x07\u202e"), (csv_name, text)
    summary = next(csv_rows(out / "summary.csv"))
    assert summary["file"] == "Eve\\u202egpj.\\x1b]0;owned\\x07\\x1b[31m_7000001_Bob_7000002.ipynb", summary
    from test_report_outputs import fill
    from test_tutors_data import graded

    stem = planned.jobs[0].stem
    fill(out / "manual_points.csv", {stem: {"comment": "Gut gemacht,\r\nnur 6.2\tfehlt"}})
    write_batch_outputs(graded(out, [(stem, None)]), out, CONFIG)
    row = next(csv_rows(out / "manual_points.csv"))
    assert row["comment"].replace("\r\n", "\n") == "Gut gemacht,\nnur 6.2\tfehlt", row["comment"]
