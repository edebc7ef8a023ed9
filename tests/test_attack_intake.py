"""Attacks on the intake as a student (or a broken upload) would make them: each test failed on the
code before its fix. Fast: no kernel runs here."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest
from conftest import SHEET6_HINTS, tiny_config
from intake_corpus import make_zip, solution_notebook

DEEP = 1500
TEAM = "Ida Roth_7000009_Jan Vogt_7000010"


def _deep_zip(path: Path, deep_folder: str = "a/") -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("solution.ipynb", solution_notebook())
        archive.writestr(deep_folder + "a/" * DEEP + "deep.txt", "bottom")
    return path


@pytest.fixture
def tmp_path(tmp_path):
    """pytest's own clean-up of old temporary folders recurses (RecursionError on deep trees): what
    a test here leaves behind, even when it fails, goes with the grader's remover."""
    from grader.util.fsclean import remove_tree

    yield tmp_path
    remove_tree(tmp_path)


def _tree(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir())


def test_the_import_preflight_takes_a_zip_with_a_folder_1500_levels_deep(tmp_path):
    """The pre-flight unpacks every submission before the batch: its clean-up used shutil.rmtree,
    which raised RecursionError, and the whole batch (and `grader check`) ended with a traceback."""
    from grader.engine.preflight import preflight
    from grader.intake import identify

    config = tiny_config()
    subs, work = tmp_path / "subs", tmp_path / "work"
    subs.mkdir(), work.mkdir()
    deep = identify(_deep_zip(subs / f"{TEAM}.zip"), subs, config.naming)
    found = preflight([deep], config, work)
    assert found.notebooks == 1 and found.unreadable == []
    assert _tree(work) == [], "the pre-flight left the unpacked submission behind"


def test_staging_the_data_replaces_a_shipped_processed_folder_however_deep(tmp_path):
    """A team that zips its `data/FashionMNIST/processed` folder (here 1,500 levels deep) must not
    cost the grader: staging removed it with shutil.rmtree (RecursionError, a grader failure)."""
    from grader.data.staging import STAGED_NAMES, link_into, stage_dataset

    config = tiny_config()
    staged = stage_dataset(config.data, config.data_source, tmp_path / "cache", config.sheet_def.dataset)
    workspace = tmp_path / "ws"
    processed = workspace / "data" / "FashionMNIST" / "processed"
    processed.mkdir(parents=True)
    folder = str(processed)
    for _ in range(DEEP):  # os.makedirs recurses too
        folder += "/a"
        os.mkdir(folder)
    (processed / "training.pt").write_bytes(b"not the staged data")
    link_into(staged, workspace)
    raw = workspace / "data" / "FashionMNIST" / "raw"
    assert not processed.exists()
    assert sorted(os.listdir(raw)) == sorted(STAGED_NAMES)


def _unpacked(path: Path, tmp_path: Path):
    from grader.config import Archive, Naming
    from grader.intake import identify, unpack

    submission = identify(path, path.parent, Naming())
    return unpack(submission, tmp_path / "ws", Archive(), SHEET6_HINTS)


@pytest.mark.parametrize(
    "magic, what",
    [
        (b"Rar!\x1a\x07\x00", "a RAR archive"),
        (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
        (b"\x1f\x8b\x08\x00", "a gzip archive"),
        (b"%PDF-1.7\n", "a PDF"),
        (b'{\n "cells": [],', "JSON"),
        (b"<!DOCTYPE html><html>", "a web page"),
        (b"", "an empty file"),
    ],
)
def test_a_zip_that_is_something_else_says_what_it_is(tmp_path, magic, what):
    """A .rar renamed to .zip (or a PDF, a notebook, a saved error page) said only "File is not a zip
    file": the team could not tell what to do."""
    path = tmp_path / f"{TEAM}.zip"
    path.write_bytes(magic + b"\x00rest of the file" * bool(magic))
    corrupt = [v for v in _unpacked(path, tmp_path).violations if v.code == "archive.corrupt"]
    assert len(corrupt) == 1 and what in corrupt[0].message, corrupt
    assert path.name in corrupt[0].message


def test_entry_names_too_long_for_the_file_system_are_not_called_unsafe_paths(tmp_path):
    """A name part over 255 bytes was reported as "points outside the submission folder", a path
    over PATH_MAX as "cannot be read; expected intact zip data": neither says what is wrong."""
    path = make_zip(
        tmp_path / f"{TEAM}.zip",
        {"solution.ipynb": solution_notebook(), "y" * 300 + ".txt": "x", "abcdefgh/" * 600 + "x.txt": "x"},
    )
    found = _unpacked(path, tmp_path)
    assert found.notebook is not None
    messages = [v.message for v in found.violations if v.code.startswith("archive.")]
    assert len(messages) == 2, messages
    assert not any("outside" in m or "intact zip data" in m for m in messages), messages
    assert all("too long" in m for m in messages), messages


def test_a_clash_of_names_does_not_show_the_graders_folders(tmp_path):
    path = make_zip(tmp_path / f"{TEAM}.zip", [("solution.ipynb", solution_notebook()), ("a/b.txt", "x"), ("a", "x")])
    found = _unpacked(path, tmp_path)
    clash = [v.message for v in found.violations if v.code == "archive.duplicate_name"]
    assert len(clash) == 1 and str(tmp_path) not in clash[0], clash
    assert "'a'" in clash[0]


# ---------------------------------------------------------------- bulk downloads, as tutors get them


def _bulk(tmp_path: Path) -> Path:
    """A course system's download as a tutor has it after a double-click on one zip (macOS's Archive
    Utility unpacks `X.zip` into `X/` beside it) and with a team folder that names no one."""
    from intake_corpus import pdf_bytes

    root = tmp_path / "download"
    root.mkdir()
    team = "Ida_Roth_7000009_Jan_Vogt_7000010"
    files = {
        "solution.ipynb": solution_notebook([("Ida Roth", "7000009"), ("Jan Vogt", "7000010")]),
        "sheet6.pdf": pdf_bytes(["Ida Roth 7000009", "Jan Vogt 7000010"], tmp_path),
    }
    make_zip(root / f"{team}.zip", files)
    (root / team).mkdir()
    for name, content in files.items():
        (root / team / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    folder = root / "Abgabe 7"
    folder.mkdir()
    (folder / "notebook.ipynb").write_text(solution_notebook([("Eva Ernst", "7000011"), ("Carl Fuchs", "7000012")]))
    (folder / "answers.pdf").write_bytes(pdf_bytes(["Eva Ernst 7000011", "Carl Fuchs 7000012"], tmp_path))
    return root


def test_a_zip_unpacked_beside_itself_is_graded_once(tmp_path):
    """`X.zip` and the folder `X/` a double-click makes beside it were two submissions: every member
    was then in two teams and left out of cms.csv."""
    from grader.intake import discover, duplicate_students, identify

    root = _bulk(tmp_path)
    found = discover(root)
    rels = [p.relative_to(root).as_posix() for p in found.submissions]
    assert "Ida_Roth_7000009_Jan_Vogt_7000010.zip" in rels
    assert not any(rel.startswith("Ida_Roth_7000009_Jan_Vogt_7000010/") for rel in rels), rels
    skipped = {s.path.relative_to(root).as_posix(): s.reason for s in found.skipped}
    assert "unpacked copy" in skipped["Ida_Roth_7000009_Jan_Vogt_7000010"], skipped
    config = tiny_config()
    assert duplicate_students([identify(p, root, config.naming) for p in found.submissions]) == {}


def test_a_team_folder_with_one_notebook_and_one_pdf_is_one_submission(tmp_path):
    """`Abgabe 7/notebook.ipynb` and `Abgabe 7/answers.pdf` were two submissions (one without a
    notebook, one without a PDF) unless the folder's name named the team."""
    from grader.config import Archive
    from grader.intake import discover, identify, unpack

    root = _bulk(tmp_path)
    rels = [p.relative_to(root).as_posix() for p in discover(root).submissions]
    assert [r for r in rels if r.startswith("Abgabe 7/")] == ["Abgabe 7/notebook.ipynb"], rels
    submission = identify(root / "Abgabe 7" / "notebook.ipynb", root, tiny_config().naming)
    workspace = unpack(submission, tmp_path / "ws", Archive(), SHEET6_HINTS)
    assert workspace.pdf is not None and workspace.pdf.name == "answers.pdf"
    assert "content.no_pdf" not in [v.code for v in workspace.violations]


# ---------------------------------------------------------------- file names that are not UTF-8


def _latin1_named(folder: Path) -> Path:
    """A zip whose name is Windows-1252 bytes (a Windows zip tool, an old FTP upload)."""
    folder.mkdir(parents=True, exist_ok=True)
    made = make_zip(folder / "tmp.zip", {"solution.ipynb": solution_notebook()})
    target = os.fsencode(folder) + b"/M\xfcller_1234567_Sch\xf6n_7654321.zip"
    os.rename(made, target)
    return Path(os.fsdecode(target))


def test_a_file_name_in_windows_1252_is_read_as_such_and_can_be_written_anywhere(tmp_path):
    """Undecodable bytes became lone surrogates: the team was 'M\\udcfcller', the report's JSON could
    not be printed (`grader check --json` crashed) and `--shard` crashed the whole shard."""
    from grader.engine.batch import Shard, plan
    from grader.intake import identify

    config = tiny_config()
    path = _latin1_named(tmp_path / "subs")
    submission = identify(path, tmp_path / "subs", config.naming)
    assert [m.name for m in submission.team] == ["Müller", "Schön"]
    assert submission.rel == "Müller_1234567_Schön_7654321.zip" and submission.stem == "Müller_1234567_Schön_7654321"
    submission.info().model_dump_json()  # raised PydanticSerializationError
    jobs = [
        job
        for k in (1, 2)
        for job in plan(
            tmp_path / "subs", config, tmp_path / "out", shard=Shard(k, 2), force=True, grader_hash="x"
        ).jobs
    ]
    assert [job.path for job in jobs] == [path]


# ---------------------------------------------------------------- notebooks that Jupyter opens


def test_notebooks_without_optional_keys_are_run_not_refused(tmp_path):
    """Notebooks written by converters and scripts often leave out `metadata` (of the notebook or
    of a cell), a code cell's `outputs` and `execution_count`, or carry attachments in another
    shape: Jupyter opens them, but the grader refused them as invalid (0 points, nothing run)."""
    import json

    from grader.run.execute import read_notebook

    raw = {
        "nbformat": 4,
        "nbformat_minor": 4,
        "cells": [
            {"cell_type": "markdown", "source": "# Ida Roth 7000009"},
            {"cell_type": "markdown", "source": "![x](attachment:x.png)", "metadata": {}, "attachments": "x.png"},
            {"cell_type": "code", "source": "x = 1"},
            {"cell_type": "code", "source": ["y = ", "2"], "metadata": {}, "execution_count": 3},
        ],
    }
    path = tmp_path / "converted.ipynb"
    path.write_text(json.dumps(raw))
    notebook = read_notebook(path)
    assert [cell.source for cell in notebook.cells] == [
        "# Ida Roth 7000009",
        "![x](attachment:x.png)",
        "x = 1",
        "y = 2",
    ]
    assert all(cell.outputs == [] for cell in notebook.cells if cell.cell_type == "code")


def test_a_password_protected_pdf_is_an_error_that_says_so(tmp_path):
    """Tutors cannot open a password-protected PDF to grade the written exercises: it was a warning
    saying "FileNotDecryptedError: File has not been decrypted"."""
    import io

    from intake_corpus import make_pdf
    from pypdf import PdfWriter

    from grader.config import Archive, Naming
    from grader.intake import check_identity, identify, unpack

    plain_pdf = make_pdf(tmp_path / "plain.pdf", ["Ida Roth 7000009", "Jan Vogt 7000010"])
    writer = PdfWriter(clone_from=str(plain_pdf))
    writer.encrypt("secret")
    locked = io.BytesIO()
    writer.write(locked)
    path = make_zip(
        tmp_path / "subs" / f"{TEAM}.zip", {"solution.ipynb": solution_notebook(), "sheet.pdf": locked.getvalue()}
    )
    submission = identify(path, path.parent, Naming())
    found = [
        v
        for v in check_identity(submission, unpack(submission, tmp_path / "ws", Archive(), SHEET6_HINTS))
        if v.code == "content.pdf_unreadable"
    ]
    assert len(found) == 1 and found[0].severity == "error", found
    assert "password" in found[0].message and "sheet.pdf" in found[0].message and "Error:" not in found[0].message


def test_output_names_carry_no_terminal_escapes_or_bidirectional_overrides(tmp_path):
    """Outputs were named by the stem as it is: `ls reports/` sent a file name's escapes to the
    tutor's terminal, and `-rf.json` is an option to `rm *`."""
    from grader.engine.batch import plan

    subs = tmp_path / "subs"
    names = [
        "Karl_7000071_\x1b]8;;https:evil\x07Lena\x1b]8;;\x07_7000072",
        "Rita_7000091_Otto_7000092_\u202efdp",
        "Rita_7000091_Otto_7000092_\u202dfdp",
        "-rf Ida_7000093_Jan_7000094",
    ]
    for name in names:
        make_zip(subs / f"{name}.zip", {"solution.ipynb": solution_notebook()})
    jobs = plan(subs, tiny_config(), tmp_path / "out", shard=None, force=True, grader_hash="x").jobs
    stems = [job.stem for job in jobs]
    assert len(set(stems)) == len(names), stems
    for stem in stems:
        assert stem.isprintable() and not any(ch in stem for ch in "\u202d\u202e"), stem
        assert not stem.startswith("-"), stem
    assert sorted(job.submission.stem for job in jobs) == sorted(names)  # the report keeps the real name


# ---------------------------------------------------------------- limits that cost the notebook


def test_a_zip_with_the_teams_data_folder_is_graded(tmp_path):
    """Teams zip their whole folder, with the `data/FashionMNIST/raw` that torchvision downloaded
    (about 60 MB): over archive.max_compressed_mb, nothing was unpacked, so nothing was graded."""
    import gzip
    import zipfile

    from grader.config import Archive, Naming
    from grader.intake import identify, unpack

    path = tmp_path / f"{TEAM}.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        raw = os.urandom(3 << 20)  # as incompressible as the real images' gzip files
        for name in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte"):
            archive.writestr(f"data/FashionMNIST/raw/{name}.gz", gzip.compress(raw, 1))
            archive.writestr(f"data/FashionMNIST/raw/{name}", raw)
        archive.writestr("data/FashionMNIST/processed/training.pt", raw)
        archive.writestr("NNTI_sheet6.ipynb", solution_notebook())
    assert path.stat().st_size > 10 << 20
    found = unpack(identify(path, tmp_path, Naming()), tmp_path / "ws", Archive(max_compressed_mb=5), SHEET6_HINTS)
    assert found.notebook is not None and found.files == ("NNTI_sheet6.ipynb",), found.files
    assert [v.code for v in found.violations] == ["content.no_pdf"], found.violations


def test_the_notebook_is_unpacked_before_a_limit_is_reached(tmp_path):
    """Entries were unpacked in the archive's order: big files or many files before the notebook
    used up the limits, and the notebook (last in the zip) was never unpacked."""
    from grader.config import Archive, Naming
    from grader.intake import identify, unpack

    entries = [(f"results/run{i}.npy", os.urandom(300 << 10)) for i in range(12)]
    entries += [(f"junk/{i}.txt", "") for i in range(30)]
    path = make_zip(tmp_path / f"{TEAM}.zip", entries + [("solution.ipynb", solution_notebook())])
    found = unpack(
        identify(path, tmp_path, Naming()),
        tmp_path / "ws",
        Archive(max_compressed_mb=2, max_uncompressed_mb=3, max_entries=20),
        SHEET6_HINTS,
    )
    assert found.notebook is not None and found.notebook.name == "solution.ipynb"
    assert {v.code for v in found.violations} == {"archive.too_large", "content.no_pdf"}, found.violations


def test_a_bulk_download_left_zipped_says_to_unpack_it(tmp_path):
    """The course system's whole download (one zip holding every team's zip) put in the folder as it
    is was graded as one submission that picked one team's notebook, with a warning about
    "multiple notebooks"."""
    from grader.config import Archive, Naming
    from grader.intake import identify, unpack

    teams = [
        "Ida_Roth_7000009_Jan_Vogt_7000010",
        "Eva_Ernst_7000011_Carl_Fuchs_7000012",
        "Rita_Otto_7000013_Max_Mai_7000014",
    ]
    inner = {
        f"{team}.zip": make_zip(tmp_path / f"{team}.zip", {"solution.ipynb": solution_notebook()}).read_bytes()
        for team in teams
    }
    path = make_zip(tmp_path / "subs" / "NNTI-WS2425-Sheet6-submissions.zip", inner)
    found = unpack(identify(path, path.parent, Naming()), tmp_path / "ws", Archive(), SHEET6_HINTS)
    bulk = [v for v in found.violations if v.code == "archive.bulk_download"]
    assert len(bulk) == 1 and bulk[0].severity == "error", found.violations
    assert "3 teams' submissions" in bulk[0].message and "unpack" in bulk[0].message


def test_the_import_preflight_says_what_is_wrong_with_a_malformed_notebook(tmp_path):
    """The pre-flight read notebooks with nbformat alone: one nested 600 deep was listed as "cannot
    be read (RecursionError: maximum recursion depth exceeded in __instancecheck__)"."""
    import json

    from grader.engine.preflight import preflight
    from grader.intake import identify

    config = tiny_config()
    path = tmp_path / f"{TEAM}.ipynb"
    path.write_text(
        json.dumps(
            {"nbformat": 4, "nbformat_minor": 5, "cells": [], "metadata": json.loads('{"a":' * 600 + "1" + "}" * 600)}
        )
    )
    found = preflight([identify(path, tmp_path, config.naming)], config, tmp_path)
    assert len(found.unreadable) == 1, found.unreadable
    why = found.unreadable[0][1]
    assert "RecursionError" not in why and "nested more than 100 levels deep" in why, why
