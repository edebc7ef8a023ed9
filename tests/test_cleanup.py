"""Clean-up that never raises and never leaves student files behind (`grader/util/fsclean.py`): trees
deeper than Python's recursion limit and longer than PATH_MAX, read-only files and folders, links
that point elsewhere, and temporary folders whose grader was killed."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from grader.util.fsclean import LOCK_NAME, owned_dir, release_dir, remove_tree, sweep_stale


def deep_tree(top: Path, depth: int, name: str = "d" * 40) -> None:
    """`depth` folders, each with a file; built through descriptors, so the path may be longer
    than PATH_MAX."""
    top.mkdir()
    fd = os.open(top, os.O_RDONLY)
    for _level in range(depth):
        os.mkdir(name, dir_fd=fd)
        child = os.open(name, os.O_RDONLY, dir_fd=fd)
        os.close(os.open("f.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=child))
        os.close(fd)
        fd = child
    os.close(fd)


def test_a_tree_1500_levels_deep_and_longer_than_path_max_is_removed(tmp_path):
    top = tmp_path / "deep"
    deep_tree(top, 1500)  # 1500 × 41 bytes: 60 KB, PATH_MAX is 4 KB
    with pytest.raises(RecursionError):  # what every clean-up did before
        shutil.rmtree(top)
    assert remove_tree(top) == []
    assert not top.exists()


def test_links_are_removed_not_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("the grader's own file")
    top = tmp_path / "workspace"
    (top / "sub").mkdir(parents=True)
    (top / "sub" / "link-to-folder").symlink_to(outside)
    (top / "link-to-file").symlink_to(outside / "keep.txt")
    assert remove_tree(top) == []
    assert not top.exists() and (outside / "keep.txt").read_text() == "the grader's own file"
    (tmp_path / "link").symlink_to(outside)
    assert remove_tree(tmp_path / "link") == [] and outside.exists()


def _read_only_tree_removed_as(uid: int, top: str, queue) -> None:
    try:
        if uid != os.geteuid():
            os.setgid(uid)
            os.setuid(uid)
        root = Path(top)
        (root / "ro-folder" / "inner").mkdir(parents=True)
        (root / "ro-folder" / "inner" / "file.txt").write_text("x")
        (root / "ro-file.txt").write_text("x")
        os.chmod(root / "ro-file.txt", 0o400)
        os.chmod(root / "ro-folder" / "inner", 0o000)  # can be neither listed nor entered
        os.chmod(root / "ro-folder", 0o500)
        os.chmod(root, 0o500)
        deep_tree(root.parent / "deep-ro", 300)
        os.chmod(root.parent / "deep-ro", 0o500)
        problems = remove_tree(root) + remove_tree(root.parent / "deep-ro")
        queue.put((problems, root.exists(), (root.parent / "deep-ro").exists()))
    except BaseException as exc:  # reported to the test
        queue.put(([repr(exc)], True, True))


@pytest.mark.skipif(sys.platform != "linux", reason="uses fork and setuid")
def test_read_only_files_and_folders_are_removed():
    """As an ordinary user (root may delete anything anyway): folders without write or even read
    permission, and read-only files."""
    base = Path(tempfile.mkdtemp(prefix="readonly-"))  # pytest's own folders are root's only
    os.chmod(base, 0o777)
    uid = 65534 if os.geteuid() == 0 else os.geteuid()  # nobody
    queue = multiprocessing.get_context("fork").Queue()
    child = multiprocessing.get_context("fork").Process(
        target=_read_only_tree_removed_as, args=(uid, str(base / "tree"), queue)
    )
    child.start()
    try:
        problems, tree_left, deep_left = queue.get(timeout=120)
        child.join()
        assert problems == [] and not tree_left and not deep_left
    finally:
        remove_tree(base)


def test_removing_what_is_not_there_or_cannot_go_never_raises(tmp_path):
    assert remove_tree(tmp_path / "missing") == []
    (tmp_path / "file").write_text("x")
    assert remove_tree(tmp_path / "file") == [] and not (tmp_path / "file").exists()


def test_folders_of_a_grader_that_is_gone_are_swept_and_no_others(tmp_path):
    # A folder whose owner process has ended (killed: it never removed it).
    code = (
        "import sys, time; from grader.util.fsclean import owned_dir; "
        "p = owned_dir('grader-work-', sys.argv[1]); (p / 'student.txt').write_text('x'); print(p, flush=True); "
        "time.sleep(float(sys.argv[2]))"
    )
    dead = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path), "0"], capture_output=True, text=True, check=True
    ).stdout.strip()
    alive = subprocess.Popen([sys.executable, "-c", code, str(tmp_path), "60"], stdout=subprocess.PIPE, text=True)
    running = alive.stdout.readline().strip()
    foreign = tmp_path / "grader-work-notours"  # no lock: not made by the grader (or being made now)
    foreign.mkdir()
    mine = owned_dir("g6w-", tmp_path)  # this process's own
    try:
        assert sweep_stale(tmp_path, min_age_s=0) == [Path(dead)]
        assert not Path(dead).exists()
        assert Path(running).exists() and (Path(running) / LOCK_NAME).exists() and foreign.exists() and mine.exists()
        # A folder younger than min_age_s is left alone: it may be a grader's, just being made.
        young = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path), "0"], capture_output=True, text=True, check=True
        ).stdout.strip()
        assert sweep_stale(tmp_path, min_age_s=30) == [] and Path(young).exists()
    finally:
        alive.kill()
        alive.wait()
    time.sleep(0.1)
    assert Path(running) in sweep_stale(tmp_path, min_age_s=0)
    assert release_dir(mine) == [] and not mine.exists()
    assert foreign.exists()


def test_a_killed_checks_folder_is_swept_by_the_next_check(tmp_path):
    """`grader check` made its folder and was killed before removing it (the process ends at once,
    as under kill -9). The next `grader check` removes it, whatever the check was given."""
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    killed = (
        "import os, sys; from pathlib import Path; from rich.console import Console; "
        "import grader.commands.check as check\n"
        "def die(path, work):\n"
        "    (Path(work) / 'student.ipynb').write_text('{}'); print(work, flush=True); os._exit(9)\n"
        "check.resolve_input = die\n"
        "check.check_path(Path('x.ipynb'), config_path=None, as_json=True, full=False, console=Console(), sheet='sheet6')\n"
    )
    died = subprocess.run([sys.executable, "-c", killed], env=env, capture_output=True, text=True, timeout=120)
    assert died.returncode == 9, died.stderr[-2000:]
    left = Path(died.stdout.strip())
    assert left.parent == tmp_path and (left / "student.ipynb").exists()
    os.utime(left, (time.time() - 60, time.time() - 60))  # older than a folder being made right now
    script = tmp_path / "notebook.py"
    script.write_text("print(1)\n")
    later = subprocess.run(
        [sys.executable, "-m", "grader", "check", str(script), "--sheet", "sheet6"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert later.returncode == 2, later.stdout + later.stderr  # a script is refused, not run
    assert not left.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notebook.py"]


def test_a_folder_the_sweep_would_not_know_is_never_made(tmp_path):
    with pytest.raises(ValueError, match="never swept"):
        owned_dir("grader-other-", tmp_path)
    assert list(tmp_path.iterdir()) == []
