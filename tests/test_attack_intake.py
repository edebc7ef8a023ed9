"""Attacks on the intake as a student (or a broken upload) would make them: each test failed on the
code before its fix. Fast: no kernel runs here."""
from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from conftest import tiny_config
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
    from grader.fsclean import remove_tree

    yield tmp_path
    remove_tree(tmp_path)


def _tree(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir())


def test_the_import_preflight_takes_a_zip_with_a_folder_1500_levels_deep(tmp_path):
    """The pre-flight unpacks every submission before the batch: its clean-up used shutil.rmtree,
    which raised RecursionError, and the whole batch (and `grader check`) ended with a traceback."""
    from grader.intake import identify
    from grader.preflight import preflight

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
    from grader.run.dataset import STAGED_NAMES, link_into, stage_dataset

    config = tiny_config()
    staged = stage_dataset(config.data, config.data_source, tmp_path / "cache")
    workspace = tmp_path / "ws"
    processed = workspace / "data" / "FashionMNIST" / "processed"
    processed.mkdir(parents=True)
    folder = str(processed)
    for _ in range(DEEP):   # os.makedirs recurses too
        folder += "/a"
        os.mkdir(folder)
    (processed / "training.pt").write_bytes(b"not the staged data")
    link_into(staged, workspace)
    raw = workspace / "data" / "FashionMNIST" / "raw"
    assert not processed.exists()
    assert sorted(os.listdir(raw)) == sorted(STAGED_NAMES)
