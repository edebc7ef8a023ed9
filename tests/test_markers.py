"""The fast lane's promise: a test that starts a kernel or a browser carries its marker (conftest.py
fails one that does not). Checked on a test file of its own, run by pytest with the suite's conftest."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

INNER = """
import subprocess, sys
import pytest

LOOKS_LIKE = [sys.executable, "-c", "import time; time.sleep(1)"]


def test_unmarked_starts_a_kernel():
    subprocess.run([*LOOKS_LIKE, "ipykernel_launcher", "-f", "kernel.json"])


def test_unmarked_starts_a_browser():
    subprocess.run([*LOOKS_LIKE, "chromium", "--headless"])


@pytest.mark.kernel
def test_marked_starts_a_kernel():
    subprocess.run([*LOOKS_LIKE, "ipykernel_launcher", "-f", "kernel.json"])


def test_unmarked_starts_something_else():
    subprocess.run(LOOKS_LIKE)
"""


def test_an_unmarked_test_that_starts_a_kernel_or_a_browser_fails(tmp_path):
    (tmp_path / "test_inner.py").write_text(INNER, encoding="utf-8")
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "conftest",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            "-W",
            "ignore::pytest.PytestUnknownMarkWarning",
            str(tmp_path / "test_inner.py"),
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT / "tests")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = run.stdout + run.stderr
    assert "2 failed, 2 passed" in out, out  # the others: marked, or nothing that looks like either
    assert "FAILED test_inner.py::test_unmarked_starts_a_kernel" in out, out
    assert "FAILED test_inner.py::test_unmarked_starts_a_browser" in out, out
    assert "this test started a kernel" in out and "is not marked kernel" in out, out
    assert "this test started a browser" in out and "is not marked browser" in out, out
