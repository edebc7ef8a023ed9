"""Nothing a tutor does loses a grade (issue 21), on reports built by hand (no kernels): the sheet's
history, refusal of a sheet that would take points out, restore; removed submissions and stale
outputs; merge of shards that are not done; stems of one name in NFC, NFD and Latin-1 bytes.

`grader merge` runs as tutors run it (a subprocess); the end-to-end week with real kernels is in
test_tutors_week.py.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import unicodedata
from pathlib import Path
from urllib.parse import quote

import pytest
from test_report_outputs import ALICE, BOB, CONFIG, FULL, fill, make_report, row

from grader.errors import ClearingRefused, ManualPointsError
from grader.report.manual_points import MANUAL_POINTS_NAME, manual_points_columns, read_manual_points
from grader.report.outputs import write_batch_outputs
from grader.report.store import read_report, write_report

ROOT = Path(__file__).resolve().parents[1]
CARL = make_report([("Fritz Fink", "7000006"), ("Gina Gans", "7000007")])
ALL = [ALICE, BOB, CARL]


def grader(*args: str, cwd: Path, timeout: float = 120) -> tuple[int, str]:
    run = subprocess.run(
        [sys.executable, "-m", "grader", "--config", str(ROOT / "grading.toml"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "250"},
    )
    return run.returncode, run.stdout + run.stderr


def graded(folder: Path, items=ALL) -> list:
    """The reports as they are on disk (after a merge wrote the tutors' points into them)."""
    return [(stem, read_report(folder / f"{stem}.json")) for stem, _ in items]


def cms(folder: Path, name: str = "cms.csv") -> dict[str, dict[str, str]]:
    return {r["student_id"]: r for r in csv.DictReader(io.StringIO((folder / name).read_text(encoding="utf-8-sig")))}


@pytest.fixture
def merged(tmp_path):
    """A folder whose three reports hold tutors' points: graded, the sheet filled, merged."""
    out = tmp_path / "reports"
    for stem, report in ALL:
        write_report(report, out, stem)
    write_batch_outputs(ALL, out, CONFIG)
    fill(
        out / MANUAL_POINTS_NAME,
        {
            ALICE[0]: FULL,
            BOB[0]: {"6.1": "2", "override baseline.forward": "0,25"},
            CARL[0]: {"6.2": "1", "6.7": "1.5"},
        },
    )
    write_batch_outputs(graded(out), out, CONFIG)
    assert cms(out)["7000001"]["6.1"] == "3.5" and cms(out)["7000006"]["6.7"] == "1.5"
    return out


def sheet_bytes(kind: str) -> bytes:
    header = ",".join(manual_points_columns(CONFIG))
    return {"empty": b"", "header only": ("\ufeff" + header + "\r\n").encode(), "BOM only": b"\xef\xbb\xbf"}[kind]


# ---------------------------------------------------------------- a sheet that would clear points


@pytest.mark.parametrize("kind", ["empty", "header only", "BOM only"])
def test_an_emptied_sheet_is_refused_naming_every_team_and_part_and_nothing_changes(merged, kind):
    before = {p.name: p.read_bytes() for p in merged.glob("*.*")}
    (merged / MANUAL_POINTS_NAME).write_bytes(sheet_bytes(kind))
    with pytest.raises(ClearingRefused) as info:
        write_batch_outputs(graded(merged), merged, CONFIG)
    message = str(info.value) + info.value.hint
    for stem, parts in (
        (ALICE[0], ["6.1 (3.5)", "6.2 (1.25)", "6.7 (0.75)"]),
        (BOB[0], ["6.1 (2)", "override baseline.forward (0.25)"]),
        (CARL[0], ["6.2 (1)", "6.7 (1.5)"]),
    ):
        assert stem in message and all(part in message for part in parts), message
    assert "--allow-clearing" in message and "--restore" in message
    after = {p.name: p.read_bytes() for p in merged.glob("*.*") if p.name != MANUAL_POINTS_NAME}
    assert after == {name: data for name, data in before.items() if name != MANUAL_POINTS_NAME}, "something was written"


def test_a_deleted_row_and_a_cleared_cell_are_refused_naming_team_and_part(merged):
    text = (merged / MANUAL_POINTS_NAME).read_text(encoding="utf-8-sig")
    lines = [line for line in text.splitlines() if not line.startswith(CARL[0])]
    (merged / MANUAL_POINTS_NAME).write_text("\n".join(lines) + "\n", encoding="utf-8")
    fill(merged / MANUAL_POINTS_NAME, {ALICE[0]: {"6.2": ""}})
    with pytest.raises(ClearingRefused) as info:
        write_batch_outputs(graded(merged), merged, CONFIG)
    problems = info.value.problems
    assert len(problems) == 2, problems
    assert any(CARL[0] in p and "row is missing" in p and "6.2 (1)" in p and "6.7 (1.5)" in p for p in problems)
    assert any(ALICE[0] in p and "6.2 (1.25)" in p and "6.1" not in p for p in problems), problems
    # said on purpose, it goes through; the points the reports held are kept in the history
    warnings = write_batch_outputs(graded(merged), merged, CONFIG, allow_clearing=True)
    assert any("--allow-clearing" in w and CARL[0] in w for w in warnings), warnings
    assert CARL[0] not in {row["team"] for row in cms(merged).values() if row["6.7"]}
    held = list((merged / "manual").glob("*-held-by-reports-manual_points.csv"))
    assert len(held) == 1 and "1.5" in held[0].read_text(encoding="utf-8-sig")


def test_a_changed_value_is_not_a_clearing(merged):
    fill(merged / MANUAL_POINTS_NAME, {ALICE[0]: {"6.1": "1"}})
    write_batch_outputs(graded(merged), merged, CONFIG)
    assert cms(merged)["7000001"]["6.1"] == "1"


def test_every_version_is_kept_and_grader_merge_restore_brings_one_back(merged):
    good = (merged / MANUAL_POINTS_NAME).read_bytes()
    (merged / MANUAL_POINTS_NAME).write_bytes(b"")
    code, output = grader("merge", str(merged), "--out", str(merged), cwd=merged)
    assert code == 2 and "refused" in output and ALICE[0] in output, output
    code, output = grader("merge", str(merged), "--out", str(merged), "--allow-clearing", cwd=merged)
    assert code == 0, output
    assert all(row["6.1"] == "" for row in cms(merged).values())
    assert not (merged / (MANUAL_POINTS_NAME + ".bak")).exists()
    versions = sorted((merged / "manual").glob("*-manual_points.csv"))
    kept = [v for v in versions if v.read_bytes() == good]
    assert kept, "the filled sheet is not in the history"
    assert any(v.read_bytes() == b"" for v in versions), "the emptied sheet the tutor saved is not kept"

    code, listing = grader("merge", str(merged), "--out", str(merged), "--restore", cwd=merged)
    assert code == 0 and kept[-1].name in listing and "cell(s) with points" in listing, listing
    code, output = grader("merge", str(merged), "--out", str(merged), "--restore", kept[-1].name[:19], cwd=merged)
    if code == 2 and "several" in output:  # two versions in one second: by the whole name
        code, output = grader("merge", str(merged), "--out", str(merged), "--restore", kept[-1].name, cwd=merged)
    assert code == 0, output
    rows = cms(merged)
    assert rows["7000001"]["6.1"] == "3.5" and rows["7000003"]["6.1"] == "2" and rows["7000006"]["6.7"] == "1.5"
    assert read_report(merged / f"{BOB[0]}.json").checks[1].override is not None
    assert len(list((merged / "manual").glob("*-manual_points.csv"))) > len(versions), "the replaced sheet is not kept"


# ---------------------------------------------------------------- reading the sheet


def test_a_row_shorter_than_the_header_is_an_error_naming_its_line(tmp_path):
    path = tmp_path / MANUAL_POINTS_NAME
    header = manual_points_columns(CONFIG)
    # 6.1 = "2,1" unquoted in a comma-separated sheet, and the trailing empty cells left out
    path.write_text(",".join(header) + "\n" + ",".join(row(ALICE[0])) + "\n" + f"{BOB[0]},,,2,1\n", encoding="utf-8")
    with pytest.raises(ManualPointsError) as info:
        read_manual_points(path, [ALICE, BOB], CONFIG)
    assert len(info.value.problems) == 1
    assert f"line 3 (team '{BOB[0]}')" in info.value.problems[0] and "5 fields" in info.value.problems[0]


def test_a_utf16_sheet_is_read_and_an_unreadable_one_is_one_line(tmp_path):
    header = "\t".join(manual_points_columns(CONFIG))
    cells = row(ALICE[0], **{"6.1": "3,5"})
    path = tmp_path / MANUAL_POINTS_NAME
    path.write_bytes((header + "\r\n" + "\t".join(cells) + "\r\n").encode("utf-16"))  # Excel's "Unicode Text"
    assert read_manual_points(path, [ALICE, BOB], CONFIG)[ALICE[0]].points == {"6.1": 3.5}
    write_report(ALICE[1], tmp_path, ALICE[0])
    write_report(BOB[1], tmp_path, BOB[0])
    warnings = write_batch_outputs([ALICE, BOB], tmp_path, CONFIG)
    assert any("UTF-16" in w for w in warnings), warnings
    assert cms(tmp_path)["7000001"]["6.1"] == "3.5"
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")  # written back as UTF-8 with a BOM

    for data in ((header + "\n").encode("utf-16-le"), b"PK\x03\x04" + b"\0" * 40):  # no BOM; an .xlsx
        path.write_bytes(data)
        with pytest.raises(ManualPointsError) as info:
            read_manual_points(path, [ALICE, BOB], CONFIG)
        assert len(info.value.problems) == 1 and "CSV UTF-8" in info.value.problems[0], info.value.problems


def test_minus_zero_is_never_written(tmp_path):
    for stem, report in (ALICE, BOB):
        write_report(report, tmp_path, stem)
    write_batch_outputs([ALICE, BOB], tmp_path, CONFIG)
    fill(tmp_path / MANUAL_POINTS_NAME, {ALICE[0]: {"6.1": "-0", "6.2": "-0,0"}})
    write_batch_outputs(graded(tmp_path, [ALICE, BOB]), tmp_path, CONFIG)
    (tmp_path / MANUAL_POINTS_NAME).unlink()  # a new sheet is written from what the reports hold
    write_batch_outputs(graded(tmp_path, [ALICE, BOB]), tmp_path, CONFIG)
    for name in ("cms.csv", "summary.csv", MANUAL_POINTS_NAME):
        text = (tmp_path / name).read_text(encoding="utf-8-sig")
        assert "-0" not in text.replace("_0", ""), (name, text)
    assert cms(tmp_path)["7000001"]["6.1"] == "0"


# ---------------------------------------------------------------- submissions that leave and come back


def test_a_removed_submission_leaves_every_output_and_its_points_come_back_with_it(merged):
    (merged / "executed").mkdir()
    (merged / "executed" / f"{CARL[0]}.ipynb").write_text("{}")
    remaining = graded(merged, [ALICE, BOB])
    warnings = write_batch_outputs(remaining, merged, CONFIG)
    assert any("no longer in the folder" in w and CARL[0] in w for w in warnings), warnings
    for rel in (f"{CARL[0]}.json", f"feedback/{CARL[0]}.html", f"executed/{CARL[0]}.ipynb"):
        assert not (merged / rel).exists() and (merged / "removed" / rel).exists(), rel
    assert "7000006" not in cms(merged) and "7000001" in cms(merged)
    assert CARL[0] not in (merged / "summary.csv").read_text(encoding="utf-8-sig")
    page = (merged / "summary.html").read_text(encoding="utf-8")  # it says what moved, and lists no such team
    assert f"feedback/{quote(CARL[0])}.html" not in page and f"feedback/{quote(ALICE[0])}.html" in page
    assert CARL[0] not in (merged / MANUAL_POINTS_NAME).read_text(encoding="utf-8-sig")
    assert CARL[0] in (merged / "manual" / "removed_rows.csv").read_text(encoding="utf-8-sig")
    # a second run is quiet about it
    assert not any("no longer" in w for w in write_batch_outputs(remaining, merged, CONFIG))

    # back (graded again: the new report holds no points), with its row and points
    write_report(CARL[1], merged, CARL[0])
    write_batch_outputs([*graded(merged, [ALICE, BOB]), CARL], merged, CONFIG)
    assert cms(merged)["7000006"]["6.7"] == "1.5" and cms(merged)["7000006"]["6.2"] == "1"
    assert CARL[0] not in (merged / "manual" / "removed_rows.csv").read_text(encoding="utf-8-sig")
    assert read_manual_points(merged / MANUAL_POINTS_NAME, graded(merged), CONFIG)[CARL[0]].points == {
        "6.2": 1,
        "6.7": 1.5,
    }


def test_an_output_that_cannot_be_written_is_not_left_stale(merged, monkeypatch):
    import grader.report.outputs as outputs

    page = merged / "feedback" / f"{BOB[0]}.html"
    assert page.exists()

    def broken(report, out_dir, *args, stem=None, **kwargs):
        if stem == BOB[0]:
            raise OSError("disk full")
        return real(report, out_dir, *args, stem=stem, **kwargs)

    def no_cms(*args, **kwargs):
        raise OSError("disk full")

    real = outputs.write_feedback
    monkeypatch.setattr(outputs, "write_feedback", broken)
    monkeypatch.setattr(outputs, "write_cms_csv", no_cms)
    warnings = write_batch_outputs(graded(merged), merged, CONFIG)
    assert any("feedback page of" in w and BOB[0] in w for w in warnings)
    assert not page.exists(), "an older page would be shown as if it were current"
    assert not (merged / "cms.csv").exists(), "an older cms.csv would be imported as if it were current"
    assert (merged / "feedback" / f"{ALICE[0]}.html").exists() and (merged / "summary.csv").exists()
    assert not list(merged.glob(".grader.stage*"))


def test_a_tutors_typo_in_a_stem_is_still_an_unknown_team(merged):
    fill(merged / MANUAL_POINTS_NAME, {})
    text = (merged / MANUAL_POINTS_NAME).read_text(encoding="utf-8-sig").replace(CARL[0], CARL[0] + "x")
    (merged / MANUAL_POINTS_NAME).write_text(text, encoding="utf-8")
    with pytest.raises(ManualPointsError, match="unknown team"):
        write_batch_outputs(graded(merged), merged, CONFIG)


# ---------------------------------------------------------------- merge of shards that are not done


def shard(folder: Path, items, marker: dict) -> Path:
    for stem, report in items:
        write_report(report, folder, stem)
    write_batch_outputs(items, folder, CONFIG)
    (folder / ".shard.json").write_text(json.dumps({"config_hash": "c", **marker}))
    return folder


def test_merge_refuses_a_shard_in_progress_naming_it_and_its_holder_and_partial_says_so(tmp_path):
    one = shard(tmp_path / "shard-1", [ALICE], {"shard": "1/2", "state": "done", "stems": [ALICE[0]]})
    two = shard(
        tmp_path / "shard-2",
        [BOB],
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
    code, output = grader("merge", str(one), str(two), "--out", str(out), cwd=tmp_path)
    assert code == 2, output
    assert "shard 2/2" in output and "pid 4242 on node7" in output and "did not finish" in output, output
    assert not (out / "cms.csv").exists()

    code, output = grader("merge", str(one), str(two), "--out", str(out), "--partial", cwd=tmp_path)
    assert code == 0, output
    assert "PARTIAL" in output and "shard 2/2" in output, output
    assert not (out / "cms.csv").exists() and "7000001" in cms(out, "PARTIAL-cms.csv")
    summary = list(csv.DictReader(io.StringIO((out / "summary.csv").read_text(encoding="utf-8-sig"))))
    assert summary and all(r["partial"].startswith("PARTIAL") and "2/2" in r["partial"] for r in summary)
    assert "PARTIAL" in (out / "summary.html").read_text(encoding="utf-8")

    # once the shard is done, the merge is whole again and the partial files go
    (two / ".shard.json").write_text(
        json.dumps({"shard": "2/2", "state": "done", "stems": [BOB[0]], "config_hash": "c"})
    )
    code, output = grader("merge", str(one), str(two), "--out", str(out), cwd=tmp_path)
    assert code == 0 and "PARTIAL" not in output, output
    assert set(cms(out)) >= {"7000001", "7000003"} and not (out / "PARTIAL-cms.csv").exists()
    assert "partial" not in (out / "summary.csv").read_text(encoding="utf-8-sig").splitlines()[0]


def test_merge_refuses_a_folder_another_grader_holds(tmp_path):
    one = shard(tmp_path / "shard-1", [ALICE], {"shard": "1/1", "state": "done", "stems": [ALICE[0]]})
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys, time; from pathlib import Path; from grader.util.locks import hold_out_dir\n"
                f"with hold_out_dir(Path({str(one)!r}), 'grader grade'):\n"
                "    print('held', flush=True); time.sleep(60)"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        code, output = grader("merge", str(one), "--out", str(tmp_path / "merged"), cwd=tmp_path)
        assert code == 2 and "shard 1/1" in output and f"pid {holder.pid}" in output, output
    finally:
        holder.kill()
        holder.wait()
    code, output = grader("merge", str(one), "--out", str(tmp_path / "merged"), cwd=tmp_path)
    assert code == 0, output


# ---------------------------------------------------------------- stems by the raw bytes of the path


def test_one_name_in_nfc_nfd_and_latin1_bytes_gets_three_stems_and_is_listed_as_a_duplicate(tmp_path):
    from grader.engine.batch import plan

    if sys.platform == "darwin":
        pytest.skip("macOS file systems normalise names")
    name = "Jürgen Müller_7000001_Anna Schmidt_7000002"
    subs = tmp_path / "subs"
    subs.mkdir()
    for raw in (
        unicodedata.normalize("NFC", name).encode(),
        unicodedata.normalize("NFD", name).encode(),
        name.encode("latin-1"),
    ):
        (subs / os.fsdecode(raw + b".ipynb")).write_text(
            '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'
        )
    planned = plan(subs, CONFIG, tmp_path / "out", shard=None, force=False, grader_hash="g")
    stems = [job.stem for job in planned.jobs]
    assert len(stems) == 3 and len(set(stems)) == 3, stems
    assert len({unicodedata.normalize("NFC", s).casefold() for s in stems}) == 3  # also on a Mac's disk
    assert len(planned.duplicates) == 1, planned.duplicates
    line = planned.duplicates[0]
    assert "3 files" in line and all(stem in line for stem in stems)
    assert "NFC" in line and "NFD" in line and "Latin-1" in line
    # the same files give the same stems next time (reports are found again)
    again = plan(subs, CONFIG, tmp_path / "out", shard=None, force=False, grader_hash="g")
    assert [job.stem for job in again.jobs] == stems


def test_a_partial_merge_lists_nobody_as_missing_and_its_import_file_says_partial(tmp_path):
    """With a roster, a partial merge sees part of the course: the students of the shard still
    grading are not 'missing', and its import file is PARTIAL-cms_import.csv (never the real name).
    Once every shard is done, cms_import.csv and missing.csv describe the whole course."""
    roster = tmp_path / "students.csv"
    roster.write_text(
        "mtknr;Vorname;Name\n7000001;Anna;Äpfel\n0700002;Bernd;Brot\n7000003;Carla;Chen\n"
        "7000004;Dieter;Dörr\n7000005;Eva;Ernst\n7999999;Nina;Niemand\n",
        encoding="utf-8",
    )
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
    args = ("merge", str(one), str(two), "--out", str(out), "--roster", str(roster))
    code, output = grader(*args, "--partial", cwd=tmp_path)
    assert code == 0, output
    assert not (out / "cms_import.csv").exists() and (out / "PARTIAL-cms_import.csv").exists()
    assert not (out / "missing.csv").exists()
    assert not (out / "PARTIAL-missing.csv").exists() or "7000003" not in (out / "PARTIAL-missing.csv").read_text(
        "utf-8-sig"
    )

    shard(two, [BOB], {"shard": "2/2", "state": "done", "stems": [BOB[0]]})
    code, output = grader(*args, cwd=tmp_path)
    assert code == 0, output
    assert (out / "cms_import.csv").read_bytes().startswith(b"mtknr;points\r\n")
    assert not (out / "PARTIAL-cms_import.csv").exists()
    missing = (out / "missing.csv").read_text(encoding="utf-8-sig")
    assert "7999999" in missing and "7000003" not in missing and "7000001" not in missing
