"""Attacks on issue 21's landing (files from other systems, notebooks at the caps, tutors' data over
a semester): each test failed on the code before its fix. Fast: no kernel runs here."""
from __future__ import annotations

import zipfile
from pathlib import Path

import nbformat

from grader.config import Archive, Naming
from grader.intake import identify, unpack
from intake_corpus import solution_notebook

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
        raw[at:at + len(local.encode())] = central.encode()
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
    z = _zip_with_other_local_names(subs / f"{TEAM}.zip", [
        ("Abgabe\\Exercise_6_6.ipynb", "Abgabe/Exercise_6_6.ipynb", notebook),
        ("ok.txt", "../x.t", b"the local name climbs out"),
    ])
    ws = unpack(identify(z, subs, Naming()), tmp_path / "ws", Archive())
    assert not [v for v in ws.violations if v.code == "archive.corrupt"], ws.violations
    assert ws.notebook == tmp_path / "ws" / "Abgabe" / "Exercise_6_6.ipynb"
    nbformat.read(ws.notebook, as_version=4)
    assert (tmp_path / "ws" / "ok.txt").read_bytes() == b"the local name climbs out"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["subs", "ws"]      # nothing written outside


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
