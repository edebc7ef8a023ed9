"""The students' wheel, installed as students install it: built once per test session as `make
student-package` builds it, and installed with its kernel packages in a fresh venv made by `nobody`
in a folder of its own outside the repository.

The fixtures are registered in conftest.py, once for every module that uses them: a session fixture
imported into two test modules would be two fixtures, and the 70-second installation made twice.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p.name for p in (ROOT / "submissions").glob("*.zip"))


def can_switch_user() -> bool:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return False
    try:
        import pwd

        pwd.getpwnam("nobody")
        return True
    except (ImportError, KeyError):
        return False


needs_nobody = pytest.mark.skipif(not can_switch_user(), reason="needs root and the user `nobody`")


def pip_environment() -> dict[str, str]:
    """This machine's pip settings (mirrors, local wheels, constraints) as PIP_* variables: the
    user `nobody` cannot read root's pip.conf, but must install from the same places."""
    env = {k: v for k, v in os.environ.items() if k.startswith("PIP_")}
    listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
    for line in listed.splitlines():
        match = re.match(r"^[^.]*\.([a-z-]+)='(.*)'$", line.strip())
        if match:
            env.setdefault("PIP_" + match.group(1).upper().replace("-", "_"), match.group(2))
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def kernel_python_for_nobody() -> str:
    """A Python 3.11 (torch's wheels here are for 3.11) that the user `nobody` may run."""
    for candidate in (Path(sys.base_prefix) / "bin" / "python3", Path("/usr/bin/python3.11"), Path("/usr/bin/python3")):
        try:
            ok = subprocess.run(
                [str(candidate), "-c", "import sys, venv; assert sys.version_info[:2] == (3, 11)"],
                user="nobody",
                group="nogroup",
                extra_groups=[],
                capture_output=True,
                env={},
            )
        except OSError:  # not there, or not for nobody (/root is private)
            continue
        if ok.returncode == 0:
            return str(candidate)
    pytest.skip("no Python 3.11 that the user nobody may run")


@dataclass
class StudentInstall:
    base: Path  # everything of the test: owned by nobody, outside the repository
    wheel: Path
    venv: Path
    home: Path
    pip_env: dict

    @property
    def grader(self) -> str:
        return str(self.venv / "bin" / "grader")

    @property
    def python(self) -> str:
        return str(self.venv / "bin" / "python")

    def env(self, *, bwrap: bool) -> dict[str, str]:
        """A student's environment; `bwrap=False`: a PATH without /usr/bin/bwrap."""
        path = f"{self.venv / 'bin'}:/usr/local/bin:/usr/bin:/bin" if bwrap else str(self.venv / "bin")
        return {"HOME": str(self.home), "PATH": path, "LANG": "C.UTF-8", "COLUMNS": "200"}

    def run(self, argv: list[str], *, bwrap: bool = True, cwd: Path | None = None, timeout: int = 900):
        return subprocess.run(
            argv,
            cwd=cwd or self.base / "work",
            env=self.env(bwrap=bwrap),
            user="nobody",
            group="nogroup",
            extra_groups=[],
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def chown_nobody(path: Path) -> None:
    for here, dirs, files in os.walk(path):
        for name in [here, *(os.path.join(here, n) for n in dirs + files)]:
            os.chown(name, 65534, 65534, follow_symlinks=False)


def build_wheel(dist: Path, sheet: str) -> Path:
    """The students' wheel for `sheet`, built into `dist` as `make student-package` builds it."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(dist),
            str(ROOT),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "GRADER_SHEET": sheet},
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = dist.glob("*.whl")
    return wheel


@pytest.fixture(scope="session")
def student_wheel(tmp_path_factory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("dist"), "sheet6")


@pytest.fixture(scope="session")
def student_install(student_wheel) -> StudentInstall:
    """The wheel with its kernel packages in a fresh venv made by `nobody` in a folder of its own."""
    if not can_switch_user():
        pytest.skip("needs root and the user `nobody`")
    base = Path(tempfile.mkdtemp(prefix="g6-student-", dir="/tmp"))
    try:
        os.chmod(base, 0o755)
        for sub in ("home", "work", "subs"):
            (base / sub).mkdir()
        wheel = base / student_wheel.name
        shutil.copy(student_wheel, wheel)
        for name in EXAMPLES:
            shutil.copy(ROOT / "submissions" / name, base / "subs" / name)
        chown_nobody(base)
        install = StudentInstall(
            base=base, wheel=wheel, venv=base / "sheet6", home=base / "home", pip_env=pip_environment()
        )
        python = kernel_python_for_nobody()
        env = {**install.env(bwrap=True), **install.pip_env}
        for argv in (
            [python, "-m", "venv", str(install.venv)],
            [install.python, "-m", "pip", "install", "--quiet", f"{wheel}[kernel]"],
        ):
            done = subprocess.run(
                argv, env=env, user="nobody", group="nogroup", extra_groups=[], capture_output=True, text=True, cwd=base
            )
            assert done.returncode == 0, f"{argv}: {done.stderr[-3000:]}"
        yield install
    finally:
        shutil.rmtree(base, ignore_errors=True)
