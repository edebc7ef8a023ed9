"""Unpacking: a corpus of crafted submissions, hostile archives, and a zip bomb."""

from __future__ import annotations

import os
import stat
import tracemalloc
import zipfile
from pathlib import Path

import nbformat
import pytest
from conftest import SHEET6_HINTS
from intake_corpus import (
    TEMPLATE_CODE,
    add_cp437_utf8_name,
    add_symlink,
    all_paths,
    corrupt_crc,
    make_lying_bomb,
    make_pdf,
    make_zero_bomb,
    make_zip,
    mark_encrypted,
    notebook_json,
    solution_notebook,
    template_notebook,
    tree_hashes,
)

from grader.config import Archive, Naming
from grader.intake import check_identity, identify, unpack
from grader.intake.archive import entry_name, safe_parts
from grader.intake.content import script_to_notebook

NAMING = Naming()
LIMITS = Archive()
TEAM = [("Max Müller", "1234567"), ("Eva Schmidt", "7654321")]
OK = "Müller_1234567_Schmidt_7654321"


def _pdf(tmp: Path, members=TEAM) -> bytes:
    lines = ["Exercise sheet 6"] + [f"{n}, {i}, {n.split()[0].lower()}@stud.uni-saarland.de" for n, i in members]
    return make_pdf(tmp / "_scratch" / f"p{len(members)}{members[0][1]}.pdf", lines).read_bytes()


def _nb(members=TEAM) -> str:
    return solution_notebook(list(members))


# Each builder writes one submission into `folder` and returns its path. The corpus is graded
# through identify -> unpack -> check_identity and must give EXACTLY the listed violation codes.
def _good_zip(folder, tmp, name=f"{OK}.zip", members=TEAM):
    return make_zip(folder / name, {"solution.ipynb": _nb(members), "sheet6.pdf": _pdf(tmp, members)})


CORPUS = {
    # --- clean submissions, real-life names -------------------------------------------------
    "clean zip": (lambda f, t: _good_zip(f, t), set()),
    "NFD Müller": (lambda f, t: _good_zip(f, t, "Mu\u0308ller_1234567_Schmidt_7654321.zip"), set()),
    "Anna-Lena": (
        lambda f, t: _good_zip(
            f, t, "Anna-Lena_1234567_Schmidt_7654321.zip", [("Anna-Lena Kurz", "1234567"), ("Eva Schmidt", "7654321")]
        ),
        set(),
    ),
    "van der Berg": (
        lambda f, t: _good_zip(
            f,
            t,
            "van der Berg_1234567_O'Neil_7654321_José_1111111.zip",
            [("Jan van der Berg", "1234567"), ("Sean O'Neil", "7654321"), ("José García", "1111111")],
        ),
        set(),
    ),
    "single notebook": (lambda f, t: _write(f / f"{OK}.ipynb", _nb()), {"content.no_pdf"}),
    "notebook + pdf pair": (
        lambda f, t: (_write(f / f"{OK}.pdf", _pdf(t)), _write(f / f"{OK}.ipynb", _nb()))[1],
        set(),
    ),
    "single pdf": (lambda f, t: _write(f / f"{OK}.pdf", _pdf(t)), {"content.no_notebook"}),
    "single script": (
        lambda f, t: _write(f / f"{OK}.py", "# Max Müller 1234567, Eva Schmidt 7654321\n# %%\n" + TEMPLATE_CODE),
        {"content.no_pdf"},
    ),
    "script in zip": (
        lambda f, t: make_zip(f / f"{OK}.zip", {"sol.py": "# 1234567 7654321\n" + TEMPLATE_CODE, "a.pdf": _pdf(t)}),
        set(),
    ),
    "nested folders in zip": (
        lambda f, t: make_zip(f / f"{OK}.zip", {"Abgabe/code/solution.ipynb": _nb(), "Abgabe/sheet.pdf": _pdf(t)}),
        set(),
    ),
    "macOS junk": (
        lambda f, t: make_zip(
            f / f"{OK}.zip",
            {
                "solution.ipynb": _nb(),
                "sheet.pdf": _pdf(t),
                "__MACOSX/._solution.ipynb": b"\0\5\26\7",
                "._sheet.pdf": b"junk",
                ".DS_Store": b"junk",
                "Thumbs.db": b"junk",
                ".ipynb_checkpoints/solution-checkpoint.ipynb": template_notebook(),
                # A folder with a custom icon, zipped by Finder: 'Icon\r' and its resource fork.
                "Abgabe/Icon\r": b"",
                "__MACOSX/Abgabe/._Icon\r": b"\0\5\26\7",
            },
        ),
        set(),
    ),
    "cp437 name fixed": (lambda f, t: _cp437(f, t), set()),
    # --- naming problems still graded ---------------------------------------------------------
    "browser copy": (lambda f, t: _good_zip(f, t, f"{OK} (1).zip"), {"name.pattern"}),
    "dash separator": (lambda f, t: _good_zip(f, t, "Müller_1234567-Schmidt_7654321.zip"), {"name.pattern"}),
    "six digit id": (
        lambda f, t: _good_zip(
            f, t, "Müller_123456_Schmidt_7654321.zip", [("Max Müller", "123456"), ("Eva Schmidt", "7654321")]
        ),
        {"name.student_id", "identity.mismatch"},
    ),
    "arabic digits": (
        lambda f, t: _good_zip(f, t, "Müller_\u0661\u0662\u0663\u0664\u0665\u0666\u0667_Schmidt_7654321.zip"),
        {"name.student_id"},
    ),
    "alone": (lambda f, t: _good_zip(f, t, "Müller_1234567.zip", [("Max Müller", "1234567")]), {"name.group_size"}),
    "four members": (
        lambda f, t: _good_zip(
            f,
            t,
            "A_1234567_B_2345678_C_3456789_D_4567890.zip",
            [("A", "1234567"), ("B", "2345678"), ("C", "3456789"), ("D", "4567890")],
        ),
        {"name.group_size"},
    ),
    "unparseable": (lambda f, t: _good_zip(f, t, "solution.zip"), {"name.pattern"}),
    "rar": (
        lambda f, t: _write(f / f"{OK}.rar", b"Rar!\x1a\x07\x00junk"),
        {"name.extension", "content.no_notebook", "content.no_pdf", "identity.missing"},
    ),
    "tar.gz": (
        lambda f, t: _write(f / f"{OK}.tar.gz", b"\x1f\x8b\x08junk"),
        {"name.extension", "content.no_notebook", "content.no_pdf", "identity.missing"},
    ),
    "zip renamed .7z": (lambda f, t: _good_zip(f, t, f"{OK}.7z"), {"name.extension"}),
    # --- content -----------------------------------------------------------------------------
    "two notebooks": (
        lambda f, t: make_zip(
            f / f"{OK}.zip", {"template.ipynb": template_notebook(), "work/solution.ipynb": _nb(), "s.pdf": _pdf(t)}
        ),
        {"content.multiple_notebooks"},
    ),
    "no notebook": (
        lambda f, t: make_zip(f / f"{OK}.zip", {"sheet.pdf": _pdf(t), "readme.txt": "hi"}),
        {"content.no_notebook"},
    ),
    "no pdf": (lambda f, t: make_zip(f / f"{OK}.zip", {"solution.ipynb": _nb()}), {"content.no_pdf"}),
    "empty zip": (
        lambda f, t: make_zip(f / f"{OK}.zip", {}),
        {"content.no_notebook", "content.no_pdf", "identity.missing"},
    ),
    # --- identity ---------------------------------------------------------------------------
    "no ids in files": (
        lambda f, t: make_zip(
            f / f"{OK}.zip",
            {
                "solution.ipynb": notebook_json([("code", TEMPLATE_CODE)]),
                "s.pdf": make_pdf(t / "_scratch" / "noid.pdf", ["Exercise 6.3: h = (9, 0)"]).read_bytes(),
            },
        ),
        {"identity.missing"},
    ),
    "other team's ids": (
        lambda f, t: make_zip(
            f / f"{OK}.zip",
            {"solution.ipynb": _nb([("Max Müller", "1234567"), ("Ute Ott", "5555555")]), "s.pdf": _pdf(t)},
        ),
        {"identity.mismatch"},
    ),
    "broken pdf": (
        lambda f, t: make_zip(f / f"{OK}.zip", {"solution.ipynb": _nb(), "s.pdf": b"%PDF-1.4 garbage"}),
        {"content.pdf_unreadable"},
    ),
    # --- hostile and broken archives ----------------------------------------------------------
    "traversal": (
        lambda f, t: make_zip(
            f / f"{OK}.zip",
            {
                "solution.ipynb": _nb(),
                "s.pdf": _pdf(t),
                "../../escaped.txt": "x",
                "..\\..\\escaped2.txt": "x",
                "ok/../../escaped3.txt": "x",
            },
        ),
        {"archive.unsafe_path"},
    ),
    # unpacked inside, their root taken off, as zip tools do
    "absolute paths": (
        lambda f, t: make_zip(
            f / f"{OK}.zip",
            {
                "solution.ipynb": _nb(),
                "s.pdf": _pdf(t),
                "/abs/escaped.txt": "x",
                "C:\\Windows\\escaped.txt": "x",
                "/../../escaped4.txt": "x",
            },
        ),
        {"archive.absolute_path"},
    ),
    "symlink": (
        lambda f, t: _with(_good_zip(f, t), lambda z: add_symlink(z, "passwd", "/etc/passwd")),
        {"archive.symlink"},
    ),
    "symlink then write through it": (
        lambda f, t: _with(
            _good_zip(f, t), lambda z: (add_symlink(z, "linkdir", "/tmp"), _append(z, "linkdir/escaped.txt", b"x"))
        ),
        {"archive.symlink"},
    ),
    "duplicate names": (
        lambda f, t: make_zip(
            f / f"{OK}.zip",
            [
                ("solution.ipynb", _nb()),
                ("s.pdf", _pdf(t)),
                ("Solution.ipynb", "{}"),
                ("Mu\u0308ller.txt", "a"),
                ("Müller.txt", "b"),
            ],
        ),
        {"archive.duplicate_name"},
    ),
    "encrypted entry": (
        lambda f, t: _with(
            make_zip(f / f"{OK}.zip", {"solution.ipynb": _nb(), "s.pdf": _pdf(t), "secret.txt": "x"}),
            lambda z: mark_encrypted(z, "secret.txt"),
        ),
        {"archive.encrypted"},
    ),
    "encrypted notebook": (
        lambda f, t: _with(
            make_zip(f / f"{OK}.zip", {"solution.ipynb": _nb(), "s.pdf": _pdf(t)}),
            lambda z: mark_encrypted(z, "solution.ipynb"),
        ),
        {"archive.encrypted", "content.no_notebook"},
    ),
    "not a zip": (
        lambda f, t: _write(f / f"{OK}.zip", b"this is not a zip file at all"),
        {"archive.corrupt", "content.no_notebook", "content.no_pdf", "identity.missing"},
    ),
    "truncated zip": (
        lambda f, t: _truncate(_good_zip(f, t)),
        {"archive.corrupt", "content.no_notebook", "content.no_pdf", "identity.missing"},
    ),
    "bad crc": (
        lambda f, t: _with(
            make_zip(f / f"{OK}.zip", {"solution.ipynb": _nb(), "s.pdf": _pdf(t), "data.txt": "x" * 5000}),
            lambda z: corrupt_crc(z, "data.txt"),
        ),
        {"archive.corrupt"},
    ),
    "nested zip": (
        lambda f, t: make_zip(
            f / f"{OK}.zip",
            {
                "inner.zip": make_zip(
                    t / "_scratch" / "inner.zip", {"solution.ipynb": _nb(), "s.pdf": _pdf(t)}
                ).read_bytes()
            },
        ),
        set(),
    ),
    "zip in zip in zip": (
        lambda f, t: make_zip(
            f / f"{OK}.zip",
            {
                "s.pdf": _pdf(t),
                "a.zip": make_zip(
                    t / "_scratch" / "a.zip",
                    {"b.zip": make_zip(t / "_scratch" / "b.zip", {"deep.ipynb": _nb()}).read_bytes()},
                ).read_bytes(),
            },
        ),
        {"content.no_notebook"},
    ),
    "nested traversal": (
        lambda f, t: make_zip(
            f / f"{OK}.zip",
            {
                "s.pdf": _pdf(t),
                "solution.ipynb": _nb(),
                "in.zip": make_zip(t / "_scratch" / "evil.zip", {"../../../nested_escape.txt": "x"}).read_bytes(),
            },
        ),
        {"archive.unsafe_path"},
    ),
    "too many entries": (
        lambda f, t: make_zip(
            f / f"{OK}.zip",
            [("solution.ipynb", _nb()), ("s.pdf", _pdf(t))] + [(f"junk/{i}.txt", "") for i in range(1100)],
        ),
        {"archive.too_large"},
    ),
    "small bomb": (
        lambda f, t: _with(_good_zip(f, t), lambda z: _append(z, "zeros.bin", bytes(30 << 20))),
        {"archive.too_large"},
    ),
}


def _write(path: Path, content) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def _with(path: Path, action) -> Path:
    action(path)
    return path


def _append(path: Path, name: str, data: bytes) -> None:
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(name, data)


def _truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _cp437(folder: Path, tmp: Path) -> Path:
    z = make_zip(folder / f"{OK}.zip", {"sheet.pdf": _pdf(tmp)})
    add_cp437_utf8_name(z, "Lösung_Übung6.ipynb", _nb().encode())
    return z


def grade_intake(path: Path, root: Path, dest: Path, limits: Archive = LIMITS):
    sub = identify(path, root, NAMING)
    ws = unpack(sub, dest, limits, SHEET6_HINTS)
    ident = check_identity(sub, ws)
    codes = {v.code for v in sub.violations + ws.violations} | {v.code for v in ident}
    return sub, ws, ident, codes


def test_corpus_is_large_enough():
    assert len(CORPUS) >= 40


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_corpus_exact_codes(case: str, tmp_path: Path):
    build, expected = CORPUS[case]
    subs = tmp_path / "subs"
    subs.mkdir()
    (tmp_path / "_scratch").mkdir()
    path = build(subs, tmp_path)
    before = tree_hashes(subs)
    outside_before = all_paths(tmp_path)
    dest = tmp_path / "ws"
    dest.mkdir()
    sub, ws, ident, codes = grade_intake(path, subs, dest)
    messages = [v.message for v in sub.violations + ws.violations] + [v.message for v in ident]
    assert codes == expected, messages
    # the originals are never modified
    assert tree_hashes(subs) == before
    # nothing was written outside the workspace
    assert all_paths(tmp_path) - outside_before <= {"ws/" + p for p in all_paths(dest)} | {"ws"}
    for p in all_paths(dest):
        full = dest / p
        assert not full.is_symlink(), p
        if full.is_file():
            assert not full.stat().st_mode & 0o111, f"{p} is executable"
    # every message names the submission
    for m in messages:
        assert m.startswith(sub.rel + ":"), m
    if "content.no_notebook" not in expected:
        assert ws.notebook is not None and ws.notebook.is_file()
        assert str(ws.notebook.resolve()).startswith(str(dest.resolve()))
        nbformat.read(ws.notebook, as_version=4)
    if "content.no_pdf" not in expected and "content.no_notebook" not in expected:
        assert ws.pdf is not None and ws.pdf.is_file()


def test_unsafe_entries_are_skipped_and_the_rest_unpacked(tmp_path: Path):
    z = make_zip(
        tmp_path / f"{OK}.zip", {"../evil.txt": "x", "good/file.txt": "y", "sub\\win.txt": "z", "solution.ipynb": _nb()}
    )
    ws = unpack(identify(z, tmp_path, NAMING), tmp_path / "ws", LIMITS, SHEET6_HINTS)
    assert set(ws.files) == {"good/file.txt", "sub/win.txt", "solution.ipynb"}
    assert not (tmp_path / "evil.txt").exists()
    (unsafe,) = [v for v in ws.violations if v.code == "archive.unsafe_path"]
    assert "'../evil.txt'" in unsafe.message


def test_cp437_names_are_repaired(tmp_path: Path):
    (tmp_path / "_scratch").mkdir()
    z = _cp437(tmp_path, tmp_path)
    ws = unpack(identify(z, tmp_path, NAMING), tmp_path / "ws", LIMITS, SHEET6_HINTS)
    assert "Lösung_Übung6.ipynb" in ws.files
    assert ws.notebook.name == "Lösung_Übung6.ipynb"


def test_multiple_notebooks_pick_the_solution(tmp_path: Path):
    z = make_zip(
        tmp_path / f"{OK}.zip",
        {"a_template.ipynb": template_notebook(), "deep/er/solution.ipynb": _nb(), "b.ipynb": notebook_json([])},
    )
    ws = unpack(identify(z, tmp_path, NAMING), tmp_path / "ws", LIMITS, SHEET6_HINTS)
    assert ws.notebook == tmp_path / "ws" / "deep/er/solution.ipynb"
    (v,) = [v for v in ws.violations if v.code == "content.multiple_notebooks"]
    assert "'deep/er/solution.ipynb'" in v.message and v.severity == "warning"


def test_tied_notebooks_prefer_the_shortest_path(tmp_path: Path):
    z = make_zip(tmp_path / f"{OK}.zip", {"x/copy.ipynb": _nb(), "b.ipynb": _nb(), "a/a.ipynb": _nb()})
    ws = unpack(identify(z, tmp_path, NAMING), tmp_path / "ws", LIMITS, SHEET6_HINTS)
    assert ws.notebook.name == "b.ipynb"


def test_duplicate_keeps_the_first(tmp_path: Path):
    z = make_zip(tmp_path / f"{OK}.zip", [("Mu\u0308ller.txt", "first"), ("MÜLLER.TXT", "second")])
    ws = unpack(identify(z, tmp_path, NAMING), tmp_path / "ws", LIMITS, SHEET6_HINTS)
    assert ws.files == ("Müller.txt",)
    assert (tmp_path / "ws" / "Müller.txt").read_text() == "first"


def test_existing_symlink_in_dest_is_never_followed(tmp_path: Path):
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "ws"
    dest.mkdir()
    os.symlink(outside, dest / "sub")
    os.symlink(outside / "f.txt", dest / "f.txt")
    z = make_zip(tmp_path / f"{OK}.zip", {"sub/x.txt": "x", "f.txt": "y", "solution.ipynb": _nb()})
    ws = unpack(identify(z, tmp_path, NAMING), dest, LIMITS, SHEET6_HINTS)
    assert list(outside.iterdir()) == []
    assert "solution.ipynb" in ws.files and "sub/x.txt" not in ws.files


def test_script_is_converted_in_cells(tmp_path: Path):
    src = (
        "#!/usr/bin/env python\n# coding: utf-8\n# %% [markdown]\n# # Team\n# Max 1234567\n"
        "# %%\nimport torch\n\n# In[3]:\n\nx = 1\n"
    )
    nb = script_to_notebook(src)
    assert [(c.cell_type, c.source) for c in nb.cells] == [
        ("markdown", "# Team\nMax 1234567"),
        ("code", "import torch"),
        ("code", "x = 1"),
    ]
    assert [c.cell_type for c in script_to_notebook("print(1)\nprint(2)\n").cells] == ["code"]
    f = tmp_path / f"{OK}.py"
    f.write_text(src)
    ws = unpack(identify(f, tmp_path, NAMING), tmp_path / "ws", LIMITS, SHEET6_HINTS)
    assert ws.notebook == tmp_path / "ws" / f"{OK}.ipynb"
    assert nbformat.read(ws.notebook, as_version=4).cells[0].cell_type == "markdown"
    assert f.read_text() == src


def test_safe_parts():
    assert safe_parts("a/b.txt") == ("a", "b.txt")
    assert safe_parts("./a//b") == ("a", "b")
    assert safe_parts("a\\b") == ("a", "b")
    for bad in ("../x", "/etc/passwd", "C:\\x", "c:x", "a/../../x", "..\\x", "a\0b", "\\\\server\\share"):
        assert safe_parts(bad) is None, bad


def test_entry_name_utf8_flag(tmp_path: Path):
    z = make_zip(tmp_path / "x.zip", {"Grüße.txt": "x"})
    with zipfile.ZipFile(z) as zf:
        assert entry_name(zf.infolist()[0]) == "Grüße.txt"


def _rss_kb() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


@pytest.fixture
def inflated(monkeypatch) -> list[int]:
    """How many bytes the zip's decompressor handed out, in total: a bomb stopped early stops after
    a few megabytes, whatever the machine's speed or load (no stopwatch)."""
    total = [0]
    read = zipfile.ZipExtFile.read

    def counting_read(self, n=-1):
        data = read(self, n)
        total[0] += len(data)
        return data

    monkeypatch.setattr(zipfile.ZipExtFile, "read", counting_read)
    return total


@pytest.fixture(scope="module")
def gigabyte_bomb(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bomb")
    return make_zero_bomb(folder / f"{OK}.zip", 1 << 30)


def test_gigabyte_bomb_stops_early_in_bounded_memory(gigabyte_bomb: Path, tmp_path: Path, inflated):
    assert gigabyte_bomb.stat().st_size < 5 << 20
    rss_before = _rss_kb()
    tracemalloc.start()
    ws = unpack(identify(gigabyte_bomb, gigabyte_bomb.parent, NAMING), tmp_path / "ws", LIMITS, SHEET6_HINTS)
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert "archive.too_large" in {v.code for v in ws.violations}
    assert 0 < inflated[0] < 32 << 20, f"{inflated[0] / 2**20:.1f} MB inflated of the 1024"
    assert peak < 20 << 20, f"peak Python allocations {peak / 2**20:.1f} MB"
    assert _rss_kb() - rss_before < 100 * 1024
    assert sum(f.stat().st_size for f in (tmp_path / "ws").rglob("*") if f.is_file()) == 0


def test_bomb_stops_at_the_size_limit_when_the_ratio_allows_it(gigabyte_bomb: Path, tmp_path: Path, inflated):
    limits = Archive(max_ratio=100000, max_uncompressed_mb=20)
    ws = unpack(identify(gigabyte_bomb, gigabyte_bomb.parent, NAMING), tmp_path / "ws", limits, SHEET6_HINTS)
    assert 20 << 20 < inflated[0] < 22 << 20, f"{inflated[0] / 2**20:.1f} MB inflated"
    (v,) = [v for v in ws.violations if v.code == "archive.too_large"]
    assert "20 MB" in v.message
    assert ws.files == ()
    assert not any(p.is_file() for p in (tmp_path / "ws").rglob("*"))


def test_header_lying_about_size_is_not_trusted(tmp_path: Path, inflated):
    z = make_lying_bomb(tmp_path / f"{OK}.zip", 64 << 20, claimed=100)
    with zipfile.ZipFile(z) as zf:
        assert zf.infolist()[0].file_size == 100
    ws = unpack(identify(z, tmp_path, NAMING), tmp_path / "ws", Archive(max_ratio=100000), SHEET6_HINTS)
    assert inflated[0] < 1 << 20, f"{inflated[0] / 2**20:.1f} MB inflated of the 64"
    assert "archive.corrupt" in {v.code for v in ws.violations}
    assert ws.files == ()


def test_header_lying_small_is_stopped_by_written_bytes(tmp_path: Path):
    # header claims 100 bytes; the stream is 64 MB: even with a huge ratio the size limit holds
    z = make_lying_bomb(tmp_path / f"{OK}.zip", 64 << 20, claimed=100)
    _patch_sizes(z, claimed=(1 << 32) - 1)
    ws = unpack(
        identify(z, tmp_path, NAMING), tmp_path / "ws", Archive(max_ratio=100000, max_uncompressed_mb=8), SHEET6_HINTS
    )
    assert "archive.too_large" in {v.code for v in ws.violations}
    assert not any(p.is_file() for p in (tmp_path / "ws").rglob("*"))


def _patch_sizes(path: Path, claimed: int) -> None:
    """Rewrite the uncompressed size in both headers (a lie in the other direction)."""
    data = bytearray(path.read_bytes())
    for sig, off in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        pos = data.find(sig)
        data[pos + off : pos + off + 4] = claimed.to_bytes(4, "little")
    path.write_bytes(bytes(data))


def test_compressed_size_limit(tmp_path: Path):
    z = make_zip(
        tmp_path / f"{OK}.zip",
        {"random.bin": os.urandom(2 << 20), "solution.ipynb": _nb()},
        compression=zipfile.ZIP_STORED,
    )
    ws = unpack(identify(z, tmp_path, NAMING), tmp_path / "ws", Archive(max_compressed_mb=1), SHEET6_HINTS)
    # What does not fit is left out, and said so; the notebook is unpacked first.
    assert {v.code for v in ws.violations} == {"archive.too_large", "content.no_pdf"}
    assert ws.notebook is not None and ws.files == ("solution.ipynb",)
    assert "'random.bin'" in next(v.message for v in ws.violations if v.code == "archive.too_large")


def test_too_many_violations_are_summed_up(tmp_path: Path):
    z = make_zip(tmp_path / f"{OK}.zip", [(f"../x{i}", "x") for i in range(50)] + [("solution.ipynb", _nb())])
    ws = unpack(identify(z, tmp_path, NAMING), tmp_path / "ws", LIMITS, SHEET6_HINTS)
    unsafe = [v for v in ws.violations if v.code == "archive.unsafe_path"]
    assert len(unsafe) == 6 and "45 more" in unsafe[-1].message


def test_files_are_written_without_exec_bits(tmp_path: Path):
    z = tmp_path / f"{OK}.zip"
    with zipfile.ZipFile(z, "w") as zf:
        info = zipfile.ZipInfo("run.sh")
        info.external_attr = (stat.S_IFREG | 0o4777) << 16
        zf.writestr(info, "#!/bin/sh\n")
    unpack(identify(z, tmp_path, NAMING), tmp_path / "ws", LIMITS, SHEET6_HINTS)
    assert (tmp_path / "ws" / "run.sh").stat().st_mode & 0o7111 == 0


# ----------------------------------------------------------------------------- rooted entry names
# Zips as other systems make them: a Windows tool that stores `C:\Users\…\Abgabe\…` (backslashes, a
# drive letter, MS-DOS as the system that made it), a Linux one that stores `/home/…/abgabe/…`, a UNC
# share. zipfile, Info-ZIP and 7-Zip take the root off and unpack inside the target folder.


def _rooted_zip(path: Path, entries: list[tuple[str, bytes | str]], system: int = 0) -> Path:
    """A zip whose entry names are stored byte for byte as given (zipfile keeps a ZipInfo's name)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in entries:
            info = zipfile.ZipInfo(name, date_time=(2024, 12, 1, 12, 0, 0))
            info.create_system = system
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, content.encode() if isinstance(content, str) else content)
    with zipfile.ZipFile(path) as zf:
        assert [i.filename for i in zf.infolist()] == [n for n, _ in entries]  # stored as given
    return path


def _unpacked(tmp_path: Path, entries, system: int = 0):
    (tmp_path / "_scratch").mkdir(exist_ok=True)
    z = _rooted_zip(tmp_path / "subs" / f"{OK}.zip", entries, system)
    dest = tmp_path / "ws"
    dest.mkdir()
    outside_before = all_paths(tmp_path)
    _sub, ws, _ident, codes = grade_intake(z, tmp_path / "subs", dest)
    assert all_paths(tmp_path) - outside_before <= {"ws/" + p for p in all_paths(dest)}  # nothing outside
    return ws, codes


def _notes(ws) -> list[str]:
    return [v.message for v in ws.violations if v.code == "archive.absolute_path"]


def test_a_windows_zip_with_drive_letters_is_unpacked_without_the_drive(tmp_path: Path):
    ws, codes = _unpacked(
        tmp_path,
        [
            ("C:\\Users\\Erika Mustermann\\Documents\\Abgabe\\Exercise_6_6.ipynb", _nb()),
            ("C:\\Users\\Erika Mustermann\\Documents\\Abgabe\\Sheet6.pdf", _pdf(tmp_path)),
        ],
    )
    assert codes == {"archive.absolute_path"}, ws.violations
    assert ws.notebook == tmp_path / "ws" / "Users/Erika Mustermann/Documents/Abgabe/Exercise_6_6.ipynb"
    assert ws.pdf == tmp_path / "ws" / "Users/Erika Mustermann/Documents/Abgabe/Sheet6.pdf"
    nbformat.read(ws.notebook, as_version=4)
    (note,) = [v for v in ws.violations if v.code == "archive.absolute_path"]
    assert note.severity == "warning"
    # says what was done, to which entries, and that nothing was lost
    assert note.message.startswith(f"{OK}.zip: 2 entries have absolute paths"), note.message
    assert "'C:\\\\Users\\\\Erika Mustermann\\\\Documents\\\\Abgabe\\\\Exercise_6_6.ipynb'" in note.message
    assert "'Users/Erika Mustermann/Documents/Abgabe/Exercise_6_6.ipynb'" in note.message
    assert "'C:'" in note.message


def test_a_linux_zip_with_absolute_paths_is_unpacked_inside(tmp_path: Path):
    ws, codes = _unpacked(
        tmp_path,
        [("/home/erika/abgabe/Exercise_6_6.ipynb", _nb()), ("/home/erika/abgabe/Sheet6.pdf", _pdf(tmp_path))],
        system=3,
    )
    assert codes == {"archive.absolute_path"}
    assert set(ws.files) == {"home/erika/abgabe/Exercise_6_6.ipynb", "home/erika/abgabe/Sheet6.pdf"}
    assert ws.notebook is not None and ws.pdf is not None
    assert "'/'" in _notes(ws)[0]


@pytest.mark.parametrize(
    "name, where",
    [
        ("\\\\server\\share\\Abgabe\\Exercise_6_6.ipynb", "Abgabe/Exercise_6_6.ipynb"),  # UNC share
        ("//server/share/Abgabe/Exercise_6_6.ipynb", "Abgabe/Exercise_6_6.ipynb"),
        ("\\\\?\\C:\\Abgabe\\Exercise_6_6.ipynb", "Abgabe/Exercise_6_6.ipynb"),  # extended path
        ("c:Abgabe/Exercise_6_6.ipynb", "Abgabe/Exercise_6_6.ipynb"),  # drive-relative
        ("C:..\\..\\Exercise_6_6.ipynb", "Exercise_6_6.ipynb"),  # drive and '..'
        ("/../../etc/Exercise_6_6.ipynb", "etc/Exercise_6_6.ipynb"),  # root and '..'
        ("/home/erika/../../../Exercise_6_6.ipynb", "home/erika/Exercise_6_6.ipynb"),  # '..' taken out
        ("\\.\\Abgabe\\.\\Exercise_6_6.ipynb", "Abgabe/Exercise_6_6.ipynb"),
    ],
)
def test_the_root_drive_and_dotdot_parts_are_taken_off_as_zipfile_does(tmp_path: Path, name: str, where: str):
    ws, codes = _unpacked(tmp_path, [(name, _nb()), ("Sheet6.pdf", _pdf(tmp_path))])
    assert codes == {"archive.absolute_path"}, ws.violations
    assert ws.notebook == tmp_path / "ws" / where
    assert f"{where!r}" in _notes(ws)[0]


def test_a_rooted_entry_that_names_no_file_is_refused(tmp_path: Path):
    ws, _codes = _unpacked(
        tmp_path,
        [
            ("C:", "x"),
            ("/..", "y"),
            ("\\\\server\\share", "z"),
            ("C:..\\.\\..", "w"),
            ("Exercise_6_6.ipynb", _nb()),
            ("Sheet6.pdf", _pdf(tmp_path)),
        ],
    )
    unsafe = [v.message for v in ws.violations if v.code == "archive.unsafe_path"]
    assert len(unsafe) == 4 and all("names no file once" in m for m in unsafe), unsafe
    assert ws.files == ("Exercise_6_6.ipynb", "Sheet6.pdf")


def test_a_rooted_entry_never_replaces_a_relative_one(tmp_path: Path):
    """The relative entry is the one the team made; a rooted one that lands on the same path is
    refused, wherever it stands in the archive."""
    ws, codes = _unpacked(
        tmp_path,
        [
            ("C:\\Exercise_6_6.ipynb", "{}"),
            ("/Exercise_6_6.ipynb", "{}"),
            ("Exercise_6_6.ipynb", _nb()),
            ("Sheet6.pdf", _pdf(tmp_path)),
        ],
    )
    assert codes == {"archive.duplicate_name"}  # nothing was unpacked from a rooted name
    assert ws.files == ("Exercise_6_6.ipynb", "Sheet6.pdf")
    nbformat.read(ws.notebook, as_version=4)  # the team's notebook, not "{}"
    dups = [v.message for v in ws.violations if v.code == "archive.duplicate_name"]
    assert len(dups) == 2 and all("'Exercise_6_6.ipynb'" in m for m in dups)


def test_two_rooted_entries_that_map_to_one_path_keep_the_first(tmp_path: Path):
    ws, codes = _unpacked(
        tmp_path,
        [
            ("C:\\Abgabe\\Exercise_6_6.ipynb", _nb()),
            ("D:\\abgabe\\exercise_6_6.ipynb", "{}"),
            ("Sheet6.pdf", _pdf(tmp_path)),
        ],
    )
    assert codes == {"archive.absolute_path", "archive.duplicate_name"}
    assert ws.files == ("Abgabe/Exercise_6_6.ipynb", "Sheet6.pdf")
    nbformat.read(ws.notebook, as_version=4)
    (dup,) = [v.message for v in ws.violations if v.code == "archive.duplicate_name"]
    assert "D:\\\\abgabe\\\\exercise_6_6.ipynb" in dup and "'abgabe/exercise_6_6.ipynb'" in dup


def test_relative_entries_that_climb_out_are_still_refused(tmp_path: Path):
    ws, codes = _unpacked(
        tmp_path,
        [
            ("../../escaped.txt", "x"),
            ("ok/../../escaped.txt", "x"),
            ("..\\escaped.txt", "x"),
            ("Exercise_6_6.ipynb", _nb()),
            ("Sheet6.pdf", _pdf(tmp_path)),
        ],
    )
    assert codes == {"archive.unsafe_path"}
    assert ws.files == ("Exercise_6_6.ipynb", "Sheet6.pdf")


def test_rooted_entries_in_an_inner_zip_stay_in_its_folder(tmp_path: Path):
    inner = _rooted_zip(tmp_path / "_scratch" / "inner.zip", [("C:\\Abgabe\\Exercise_6_6.ipynb", _nb())])
    ws, codes = _unpacked(tmp_path, [("inner.zip", inner.read_bytes()), ("Sheet6.pdf", _pdf(tmp_path))])
    assert codes == {"archive.absolute_path"}
    assert ws.notebook == tmp_path / "ws" / "inner/Abgabe/Exercise_6_6.ipynb"
    assert "the inner archive 'inner.zip'" in _notes(ws)[0]


def test_rooted_names_with_control_characters_or_too_long_parts_are_refused(tmp_path: Path):
    ws, codes = _unpacked(
        tmp_path,
        [
            ("C:\\a\x1b[31m.txt", "x"),
            ("/" + "x" * 300 + "/y.txt", "x"),
            ("Exercise_6_6.ipynb", _nb()),
            ("Sheet6.pdf", _pdf(tmp_path)),
        ],
    )
    assert codes == {"archive.unsafe_path"}
    assert ws.files == ("Exercise_6_6.ipynb", "Sheet6.pdf")


def test_many_rooted_entries_give_one_note(tmp_path: Path):
    ws, _codes = _unpacked(
        tmp_path,
        [(f"C:\\x\\f{i}.txt", "x") for i in range(40)]
        + [("C:\\x\\Exercise_6_6.ipynb", _nb()), ("C:\\x\\Sheet6.pdf", _pdf(tmp_path))],
    )
    (note,) = _notes(ws)
    assert note.startswith(f"{OK}.zip: 42 entries have absolute paths") and "39 more" in note, note
    assert len(ws.files) == 42
