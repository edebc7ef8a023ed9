"""How a student's kernel is started: resource limits always, bubblewrap isolation where available.

The kernel command is a small launcher (`python -I -c ...`, no import of the grader) that sets the
resource limits of `grading.toml` and then execs the kernel, wrapped in bubblewrap when it is used.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from grader.config import Config

# Sets rlimits, then replaces itself with the kernel. argv: limits as "NAME=soft" pairs, "--", command.
_LAUNCHER = r"""
import os, resource, sys
args = sys.argv[1:]
split = args.index("--")
for pair in args[:split]:
    name, value = pair.split("=")
    limit = getattr(resource, name)
    value = int(value)
    soft, hard = resource.getrlimit(limit)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    try:
        resource.setrlimit(limit, (value, value))
    except (ValueError, OSError):
        pass
os.execvp(args[split + 1], args[split + 1:])
"""


@dataclass
class KernelCommand:
    argv: list[str]
    env: dict[str, str]
    isolated: bool
    sandbox: str
    interrupt_mode: str = "signal"
    notes: tuple[str, ...] = ()
    runtime_binds: list[str] = field(default_factory=list)

    def prepare(self, runtime_dir: Path) -> None:
        """Called with the folder holding the kernel's connection file and sockets before start."""


def kernel_env(config: Config, workspace: Path, threads: int, mpl_cache: Path | None) -> dict[str, str]:
    """A small, explicit environment: nothing of the grader's own environment leaks in."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workspace),
        "LANG": "C.UTF-8",
        "MPLBACKEND": "Agg",
        "PYTHONNOUSERSITE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "OPENBLAS_NUM_THREADS": str(threads),
        "TQDM_DISABLE": "0",
        "NO_PROXY": "*",
    }
    for key in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "TZ"):
        if key in os.environ:
            env[key] = os.environ[key]
    if mpl_cache is not None:
        env["MPLCONFIGDIR"] = str(mpl_cache)
    return env


def _rlimits(config: Config) -> list[str]:
    lim = config.limits
    mb = 1024 * 1024
    return [
        f"RLIMIT_AS={lim.memory_mb * mb}",
        f"RLIMIT_NPROC={lim.processes}",
        f"RLIMIT_FSIZE={lim.file_size_mb * mb}",
        f"RLIMIT_NOFILE={lim.open_files}",
        "RLIMIT_CORE=0",
    ]


def bubblewrap_available() -> str | None:
    return shutil.which("bwrap")


def kernel_command(config: Config, workspace: Path, *, threads: int = 1, mpl_cache: Path | None = None) -> KernelCommand:
    python = config.kernel_python
    kernel = [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    env = kernel_env(config, workspace, threads, mpl_cache)
    argv = [python, "-I", "-c", _LAUNCHER, *_rlimits(config), "--", *kernel]
    notes = ("the kernel ran with resource limits but without isolation (bubblewrap is not used)",)
    return KernelCommand(argv=argv, env=env, isolated=False, sandbox="none", notes=notes)
