"""Shared fixtures: a tiny-data configuration and a grading context for end-to-end runs.

End-to-end tests run real notebooks in real kernels (nothing mocked). They use a tiny subset of the
data so that a notebook's own training takes a second or two; kernel start-up and `import torch`
are most of their cost.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

import nbformat
import pytest
from student_env import student_install, student_wheel  # noqa: F401 (session fixtures, defined once for all modules)

# Some tests build folder trees 1,500 levels deep (zips, cells). What one of them leaves behind (a
# failing test, a clean-up that is itself under test) would make pytest's own removal of old temporary
# folders (shutil.rmtree, recursive; at start-up and at exit) end a later session with a RecursionError
# and exit 1 although every test passed. So each session removes, with the grader's iterative remover,
# every folder of its own that holds a tree deeper than Python could remove.
_TOO_DEEP = 400


def _holds_a_deep_tree(top: Path) -> bool:
    stack = [(top, 0)]
    while stack:
        folder, depth = stack.pop()
        if depth > _TOO_DEEP:
            return True
        try:
            with os.scandir(folder) as entries:
                stack += [(Path(e.path), depth + 1) for e in entries if e.is_dir(follow_symlinks=False)]
        except OSError:
            continue
    return False


@pytest.fixture(scope="session", autouse=True)
def _no_deep_trees_left_behind(tmp_path_factory):
    yield
    from grader.util.fsclean import remove_tree

    base = tmp_path_factory.getbasetemp()
    for folder in base.iterdir() if base.is_dir() else ():
        if folder.is_dir() and not folder.is_symlink() and _holds_a_deep_tree(folder):
            remove_tree(folder)


ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = (ROOT / ".." / "shared" / "data" / "fashion-mnist").resolve()

# Code for a notebook cell that tries something a student should not be able to do and records the
# outcome as text (used by the sandbox and hostile-notebook tests).
ATTEMPT_HELPERS = """def attempt(fn):
    try:
        return "ok: " + str(fn())[:300]
    except BaseException as exc:
        return f"{type(exc).__name__}: {exc}"[:300]
def connect(host, port):
    s = socket.socket(); s.settimeout(2)
    try:
        s.connect((host, port)); return "connected"
    finally:
        s.close()
"""


def notebook(*sources: str) -> nbformat.NotebookNode:
    """A notebook of code cells."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    return nb


def recorded(cell) -> dict:
    """What a cell printed as `RESULT {json}` (see ATTEMPT_HELPERS, fork_loop)."""
    for out in cell.get("outputs", []):
        for line in out.get("text", "").splitlines() if out.get("output_type") == "stream" else []:
            if line.startswith("RESULT "):
                return json.loads(line[len("RESULT ") :])
    raise AssertionError(f"no RESULT in {cell.get('outputs')!r}"[:3000])


def fork_loop(attempts: int, child_seconds: float) -> str:
    """A cell that forks until it is refused (at most `attempts` children, each sleeping
    `child_seconds`), then prints RESULT {"forked": n, "error": the refusal or null}."""
    return f"""
import json, os, time
children, error = [], None
for i in range({attempts}):
    try:
        pid = os.fork()
    except OSError as exc:
        error = str(exc); break
    if pid == 0:
        time.sleep({child_seconds}); os._exit(0)
    children.append(pid)
for pid in children:
    os.waitpid(pid, 0)
print("RESULT " + json.dumps({{"forked": len(children), "error": error}}))
"""


needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")


def _sheet6_hints():
    from grader.intake import SheetHints
    from grader.sheets.sheet6 import SHEET

    return SheetHints.of(SHEET)


SHEET6_HINTS = _sheet6_hints()  # what Sheet 6 tells the intake (tests of the intake use Sheet 6's notebooks)


def sheet_config(name: str = "sheet6", **sections):
    """The built-in defaults of the sheet `name` (there is no default sheet), with `sections` of grading.toml."""
    from grader.config import config_from_dict

    return config_from_dict({"sheet": {"name": name}, **sections}, source="<tests>", base_dir=ROOT)


def tiny_config(**overrides):
    from grader.config import config_from_dict

    raw = {
        "sheet": {"name": "sheet6"},
        "data": {
            "source": str(SHARED_DATA) if SHARED_DATA.exists() else "",
            "train_size": 640,
            "test_size": 256,
            "seed": 6,
        },
        "limits": {"cell_timeout_s": 60, "notebook_timeout_s": 300, "probe_timeout_s": 60},
        "run": {"workers": 2},
    }
    for section, values in overrides.items():
        raw.setdefault(section, {}).update(values)
    return config_from_dict(raw, source="<tests>", base_dir=ROOT)


@pytest.fixture(scope="session", autouse=True)
def _private_calibration_and_cache(tmp_path_factory):
    """Calibrations made by tests go to a temporary file, never into reference/calibration.json, and
    what the grader caches (staged data, calibrations, matplotlib's fonts) to a cache of the test
    session's own, never into the user's. A test that needs another cache sets GRADER_CACHE itself."""
    folder = tmp_path_factory.mktemp("calibration")
    os.environ["GRADER_CALIBRATION"] = str(folder / "calibration.json")
    if not os.environ.get("GRADER_TEST_KEEP_CACHE"):  # set by hand to reuse the user's cache between runs
        os.environ["GRADER_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield


@pytest.fixture(scope="session")
def grading_context():
    """A context on tiny data, calibrated once with the solution notebook (one run)."""
    from grader.engine.batch import prepare_context
    from grader.engine.calibrate import calibrate

    work = Path(tempfile.mkdtemp(prefix="grader-test-work-"))
    config = tiny_config()
    ctx = prepare_context(config, work, workers=1, auto_calibrate=False)
    # Kernels' runtime folders are made in the temp folder: calibration must leave none behind.
    scratch = Path(tempfile.mkdtemp(prefix="grader-test-tmp-"))
    saved, tempfile.tempdir = tempfile.tempdir, str(scratch)
    try:
        found = calibrate(ctx, runs=1, progress=lambda text: None)
    finally:
        tempfile.tempdir = saved
    assert list(scratch.iterdir()) == [], f"calibration left {list(scratch.iterdir())} behind"
    scratch.rmdir()
    ctx = type(ctx)(**{**ctx.__dict__, "accuracy_range": found})
    yield ctx
    shutil.rmtree(work, ignore_errors=True)


# ----------------------------------------------------------------------------- a busy machine

# A process that burns one core until it is killed, and dies with the test session (PR_SET_PDEATHSIG).
_BURN = "import ctypes\ntry:\n    ctypes.CDLL(None).prctl(1, 9)\nexcept Exception:\n    pass\nwhile True:\n    pass\n"


def pytest_addoption(parser):
    parser.addoption(
        "--busy-processes",
        type=int,
        default=2,
        help="CPU-bound processes the `busy_machine` fixture runs beside the tests that use it "
        "(default 2: verdicts must not depend on how busy the machine is; 0: a quiet machine)",
    )


@pytest.fixture(scope="module")
def busy_machine(request):
    """Two processes (--busy-processes) that each burn a core while the module's tests run: a
    second job beside the test suite, as on a shared server or a slow laptop. Yields their pids."""
    import subprocess
    import sys

    burners = [
        subprocess.Popen([sys.executable, "-c", _BURN], stdin=subprocess.DEVNULL)
        for _ in range(request.config.getoption("--busy-processes"))
    ]
    try:
        yield [p.pid for p in burners]
    finally:
        for process in burners:
            process.kill()
            process.wait()


# ----------------------------------------------------------------------------- markers that hold

_MARKS_THAT_ALLOW = {"kernel": ("ipykernel_launcher", "forkserver_main"), "browser": ("chrom",)}


# A test whose own children only look like kernels (it checks this hook) is exempt.
_EXEMPT_MODULES = {"test_markers"}


def _watch_for_kernels_and_browsers(item):
    """The fast lane (-m "not kernel and not browser and not slow") must start no kernel and no
    browser: a test that does (itself, through a fixture it sets up, or through a `grader` it runs)
    without its marker fails. A thread looks at the test's child processes, all the way down, while
    the test (or its set-up) runs."""
    import threading

    import psutil

    if (
        any(item.get_closest_marker(mark) for mark in (*_MARKS_THAT_ALLOW, "slow"))
        or getattr(item.module, "__name__", "") in _EXEMPT_MODULES
    ):
        yield
        return
    watched = tuple(word for words in _MARKS_THAT_ALLOW.values() for word in words)
    seen: list[str] = []
    done = threading.Event()

    def watch() -> None:
        me = psutil.Process()
        while not done.wait(0.05) and not seen:
            try:
                children = me.children(recursive=True)
            except psutil.Error:
                continue
            for child in children:
                try:
                    line = " ".join(child.cmdline())
                except psutil.Error:
                    continue
                if any(word in line for word in watched):
                    seen.append(line[:300])
                    break

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        outcome = yield
    finally:
        done.set()
        thread.join()
    if seen and outcome.excinfo is None:
        mark = "browser" if "chrom" in seen[0] else "kernel"
        outcome.force_exception(
            pytest.fail.Exception(
                f"this test started a {mark} ({seen[0]}) but is not marked {mark}: mark it, so that the fast "
                "lane stays fast"
            )
        )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    yield from _watch_for_kernels_and_browsers(item)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    yield from _watch_for_kernels_and_browsers(item)
