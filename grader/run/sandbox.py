"""How a student's kernel is started: resource limits always, bubblewrap isolation where available.

The kernel command is a small launcher (`python -I -c ...`, no import of the grader) that sets the
resource limits of `grading.toml` and then execs the kernel, wrapped in bubblewrap when it is used.

With bubblewrap (`[run] sandbox = "auto"` and `bwrap` installed, or `"bubblewrap"`), the kernel runs
in new user, PID, network, IPC and UTS namespaces as uid/gid 65534, sees a read-only system (`/usr`,
a few files of `/etc`, the kernel's Python and its packages), an empty `/tmp`, its own workspace
(writable: an in-memory file system of `[limits] disk_mb` at the workspace's path, which goes with
the kernel), the grader's folder of the workspace read-only at `/submission` (the submission and
the data links, which `KernelSession.copy_in` copies into the workspace before the first cell), the
staged data files (read-only) and its runtime folder (connection file and IPC sockets). The
grader's own code is hidden: its `grader` and `reference` packages (where they are installed, say in
site-packages, an empty folder whose `__init__.py` raises ModuleNotFoundError stands in for each)
and, when the grader runs from a source checkout, that whole checkout; the editable-install hooks
that would let `import grader` / `import reference` find it are masked with empty files. Other
workspaces, the submissions and the reports are simply not there. `--die-with-parent` and the PID
namespace make sure nothing the student started outlives the kernel.

Interrupts go over the control channel (`interrupt_mode="message"`): a signal to bubblewrap would not
reach the kernel, which runs in its own session and PID namespace.

Where bubblewrap is installed but cannot start a sandbox (Ubuntu 24.04 restricts unprivileged user
namespaces with AppArmor: "setting up uid map: Permission denied"), `sandbox = "auto"` runs the kernel
without one, as where bubblewrap is missing; `"bubblewrap"` refuses. Without the `resource` module
(Windows) there is no launcher either: the kernel is started as it is, without limits.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from grader import PACKAGE_DIR, REFERENCE_DIR, child
from grader.config import Config
from grader.errors import SandboxError
from grader.run import seccomp


def source_checkout(folder: Path = PACKAGE_DIR.parent) -> Path | None:
    """The source checkout the grader runs from (tests/, tools/, the solution), or None when it
    runs from an installed wheel, whose packages sit in site-packages beside everybody else's."""
    try:
        text = (folder / "pyproject.toml").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return folder if 'name = "sheet6-grader"' in text else None


def grader_code() -> tuple[Path, ...]:
    """What a kernel must never see of the grader: the whole checkout when it runs from one, else its
    two packages (never the folder holding them: that is site-packages, with ipykernel in it)."""
    checkout = source_checkout()
    return (checkout,) if checkout is not None else (PACKAGE_DIR, REFERENCE_DIR)


# What stands in for a hidden package's __init__.py: `import grader` fails inside the sandbox as it
# would where the package is not installed (an empty folder alone would import as a namespace package).
_HIDDEN_PACKAGE = child.source("hidden_package.py")
# The kernel is started through the launcher (rlimits) only where the `resource` module exists.
HAVE_RLIMITS = os.name == "posix" and importlib.util.find_spec("resource") is not None
# The opening words of the notes that say how the kernel was isolated (or not): `grader check` puts
# them in its own words for a student.
ISOLATED_NOTE = "the kernel ran isolated by bubblewrap"
UNISOLATED_NOTE = "the kernel ran without isolation"
SANDBOX_UID = 65534
# The launcher replaces this prefix in the wrapped command with the folder of the connection file.
RUNTIME = "@RUNTIME@"
# Size of the sandbox's /tmp and /dev/shm (tmpfs lives in RAM, outside RLIMIT_AS).
TMPFS_BYTES = 512 * 1024 * 1024
# Where a kernel sees the grader's folder of its workspace, read-only (its workspace itself is a
# tmpfs of [limits] disk_mb: all it can write, in total).
SUBMISSION_MOUNT = "/submission"

# Sets rlimits, then replaces itself with the kernel (or with bubblewrap running the kernel): the
# program child/launcher.py, run as `python -I -c <its text>` (it imports nothing of the grader).
_LAUNCHER = child.source("launcher.py")


@dataclass
class KernelCommand:
    argv: list[str]
    env: dict[str, str]
    isolated: bool
    sandbox: str
    interrupt_mode: str = "signal"
    notes: tuple[str, ...] = ()
    mpl_cache: Path | None = None
    python: str = ""  # the kernel's interpreter (warms the matplotlib cache)
    bound: tuple[str, ...] = ()  # folders shown read-only (Python, staged data)
    forked: bool = False  # a proxy asking a fork server for the kernel: nothing to prepare
    # Where the kernel sees the grader's folder of its workspace when the workspace itself is a
    # file system of its own (KernelSession.copy_in copies from there); None: the folder is the workspace.
    submission_mount: str | None = None
    # The process whose tree is the kernel, for its CPU time (run.cputime); None: the process
    # jupyter_client started (a proxy asking a fork server says where its kernel is instead).
    cpu_root: Callable[[], int | None] | None = None

    def prepare(self, runtime_dir: Path) -> None:
        """Called with the folder holding the kernel's connection file and sockets before start.

        Under bubblewrap, writes what the sandbox binds from there: an empty file (masks), a
        minimal passwd/group (the host's users stay hidden) and a private, writable copy of the
        shared matplotlib cache (so the font list is not rebuilt for every notebook)."""
        if self.sandbox != "bubblewrap" or self.forked:
            return
        runtime_dir = Path(runtime_dir)
        (runtime_dir / "empty").write_bytes(b"")
        (runtime_dir / "hidden_package.py").write_text(_HIDDEN_PACKAGE)
        (runtime_dir / "passwd").write_text(
            "root:x:0:0:root:/root:/usr/sbin/nologin\n"
            f"student:x:{SANDBOX_UID}:{SANDBOX_UID}:student:/nonexistent:/usr/sbin/nologin\n"
        )
        (runtime_dir / "group").write_text(f"root:x:0:\nstudent:x:{SANDBOX_UID}:\n")
        mpl = runtime_dir / "mpl"
        mpl.mkdir(exist_ok=True)
        if self.mpl_cache is not None:
            _warm_matplotlib(self.mpl_cache, self.python, self.env)
            for item in Path(self.mpl_cache).glob("fontlist-*.json"):
                try:
                    shutil.copy2(item, mpl / item.name)
                except OSError:
                    pass


def _warm_matplotlib(cache: Path, python: str, env: dict[str, str]) -> None:
    """Build the shared font list once, outside the sandbox (the sandbox gets a copy), with no
    student code involved."""
    if any(Path(cache).glob("fontlist-*.json")):
        return
    if not python:
        return
    warm_env = dict(env)
    warm_env["MPLCONFIGDIR"] = str(cache)
    try:
        subprocess.run(
            [python, "-I", "-c", "import matplotlib.font_manager"],
            env=warm_env,
            timeout=120,
            capture_output=True,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        pass


def kernel_env(config: Config, workspace: Path, threads: int, mpl_cache: Path | None) -> dict[str, str]:
    """A small, explicit environment: nothing of the grader's own environment leaks in."""
    # The kernel's own bin folder first, as in an activated environment: `!pip` and `!python` are its own.
    python_bin = os.path.dirname(config.kernel_python)
    env = {
        "PATH": os.pathsep.join(p for p in (python_bin, os.environ.get("PATH", "/usr/bin:/bin")) if p),
        "HOME": str(workspace),
        "LANG": "C.UTF-8",
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",  # plots become PNG outputs, as in Jupyter
        "PYTHONNOUSERSITE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "OPENBLAS_NUM_THREADS": str(threads),
        # Idle OpenMP threads (torch's, MKL's) sleep instead of spinning: spinning threads burn CPU time
        # while they wait for a core, and on a busy machine a notebook's CPU time (which its time
        # limits count) grew tenfold with 2 threads (benchmarks/cpu_time_limits.py).
        "OMP_WAIT_POLICY": "PASSIVE",
        "TQDM_DISABLE": "0",
        "NO_PROXY": "*",
        # Grading installs nothing: `%pip install` / `!pip install` fail at once instead of waiting for
        # a network there is none of, and no pip configuration of the machine points them elsewhere.
        "PIP_NO_INDEX": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INPUT": "1",
        "PIP_CONFIG_FILE": os.devnull,
    }
    keep = ["OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "TZ"]
    if os.name == "nt":  # what Python and its sockets need to start on Windows
        keep += [
            "SYSTEMROOT",
            "SYSTEMDRIVE",
            "WINDIR",
            "COMSPEC",
            "PATHEXT",
            "TEMP",
            "TMP",
            "APPDATA",
            "LOCALAPPDATA",
            "PROGRAMDATA",
        ]
        env["USERPROFILE"] = str(workspace)
    for key in keep:
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


def pids_cgroup() -> Path | None:
    """Where a per-kernel cgroup limiting the number of processes can be made, if anywhere.

    RLIMIT_NPROC counts per real user, and root (also root mapped into a user namespace) is exempt
    from it: when the grader runs as root, a fork bomb is contained by a `pids` cgroup instead."""
    if os.geteuid() != 0:
        return None
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "pids" in controllers.split(","):
            candidate = Path("/sys/fs/cgroup/pids") / path.lstrip("/")
        elif controllers == "" and path == "/" and "pids" in _read("/sys/fs/cgroup/cgroup.subtree_control"):
            candidate = Path("/sys/fs/cgroup")
        else:
            continue
        if (candidate / "cgroup.procs").exists() and os.access(candidate, os.W_OK):
            return candidate
    return None


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def bubblewrap_available() -> str | None:
    return shutil.which("bwrap")


@functools.lru_cache(maxsize=4)
def bubblewrap_problem(bwrap: str) -> str | None:
    """Why `bwrap` cannot start a sandbox on this machine, or None when it can. Tried once per
    process with a trivial sandbox in the namespaces a kernel gets (Ubuntu 24.04's AppArmor, for
    one, refuses unprivileged user namespaces: "setting up uid map: Permission denied")."""
    argv = [
        bwrap,
        "--unshare-user",
        "--uid",
        str(SANDBOX_UID),
        "--gid",
        str(SANDBOX_UID),
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--ro-bind",
        "/",
        "/",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--",
        "true",
    ]
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{bwrap} could not be run ({exc})"
    if done.returncode == 0:
        return None
    said = done.stderr.decode("utf-8", "replace").strip().splitlines()
    return said[-1][:300] if said else f"{bwrap} exited with status {done.returncode}"


@dataclass(frozen=True)
class SandboxChoice:
    """What `[run] sandbox` comes to on this machine: bubblewrap's path, or why there is none."""

    bwrap: str | None
    why_not: str = ""  # set when bwrap is None
    fallback: bool = False  # "auto" wanted a sandbox and goes without one


def choose_sandbox(config: Config) -> SandboxChoice:
    """Raises SandboxError when `sandbox = "bubblewrap"` cannot be had."""
    mode = config.run.sandbox
    if mode == "none":
        return SandboxChoice(None, 'sandbox = "none" in grading.toml')
    bwrap = bubblewrap_available()
    if bwrap is None:
        if mode == "bubblewrap":
            raise SandboxError(
                '[run] sandbox = "bubblewrap" but the `bwrap` program is not installed '
                '(install the bubblewrap package, or set sandbox = "auto" or "none")'
            )
        return SandboxChoice(None, "bubblewrap (bwrap) is not installed", fallback=True)
    problem = bubblewrap_problem(bwrap)
    if problem is not None:
        if mode == "bubblewrap":
            raise SandboxError(
                f'[run] sandbox = "bubblewrap" but {bwrap} cannot start a sandbox on this '
                f"machine ({problem}); allow unprivileged user namespaces, or set "
                'sandbox = "auto" or "none"'
            )
        return SandboxChoice(None, f"bubblewrap is installed but cannot start a sandbox here: {problem}", fallback=True)
    return SandboxChoice(bwrap)


@dataclass(frozen=True)
class PythonLayout:
    """Where a Python installation lives: what the sandbox must show read-only."""

    prefixes: tuple[str, ...]  # sys.prefix, sys.base_prefix, ... (venv and installation)
    executable: str  # realpath of the interpreter
    site_dirs: tuple[str, ...]  # site-packages folders (where .pth files are read)


_LAYOUT_CODE = child.source("python_layout.py")


@functools.lru_cache(maxsize=8)
def python_layout(python: str) -> PythonLayout:
    try:
        done = subprocess.run(
            [python, "-I", "-c", _LAYOUT_CODE], capture_output=True, text=True, timeout=60, check=True
        )
        prefixes, executable, sites = json.loads(done.stdout)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise SandboxError(f"cannot ask the kernel's Python {python!r} where it lives: {exc}") from exc
    return PythonLayout(
        prefixes=tuple(os.path.realpath(p) for p in prefixes),
        executable=executable,
        site_dirs=tuple(os.path.realpath(s) for s in sites),
    )


def _inside(path: Path | str, folder: Path | str) -> bool:
    try:
        Path(path).relative_to(folder)
        return True
    except ValueError:
        return False


def _editable_hooks(site_dirs: tuple[str, ...], hidden: tuple[Path, ...]) -> list[str]:
    """The .pth files and editable-install finders that would put the grader's code on sys.path."""
    hooks = []
    needles = [str(folder) for folder in hidden]
    for site_dir in site_dirs:
        folder = Path(site_dir)
        if not folder.is_dir():
            continue
        for item in sorted(folder.iterdir()):
            if not item.is_file():
                continue
            name = item.name
            if not (name.endswith(".pth") or (name.startswith("__editable__") and name.endswith(".py"))):
                continue
            try:
                text = item.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            if any(needle in text for needle in needles) or (
                name.startswith("__editable__") and "sheet6_grader" in name
            ):
                hooks.append(str(item))
    return hooks


def _data_binds(workspace: Path, data_dir: Path | None) -> list[str]:
    """The staged data the notebook reads, read-only. A kernel may be started before its submission
    (warm kernels) and so before `dataset.link_into` puts symlinks to the staged files into the
    workspace: the folder they point into is bound up front. That is `data_dir` (the staged data's
    root, passed in by the caller); symlinks already in the workspace are added."""
    folders = []
    if data_dir is not None:
        folders.append(Path(os.path.realpath(data_dir)))
    for link in sorted(Path(workspace).glob("**/raw/*")):
        if link.is_symlink():
            target = Path(os.path.realpath(link))
            if target.is_file() and not _inside(target, workspace) and not any(_inside(target, f) for f in folders):
                folders.append(target.parent)
    return [str(f) for f in folders if f.is_dir() and not any(_inside(code, f) for code in grader_code())]


def _system_binds() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    # What programs read from /etc; no passwd/shadow/hosts of the host (see KernelCommand.prepare).
    for name in (
        "ld.so.cache",
        "ld.so.conf",
        "ld.so.conf.d",
        "localtime",
        "fonts",
        "alternatives",
        "mime.types",
        "ssl",
        "ca-certificates",
    ):
        path = Path("/etc") / name
        if path.exists():
            args += ["--ro-bind", str(path), str(path)]
    return args


def bubblewrap_argv(
    bwrap: str,
    *,
    workspace: Path,
    layout: PythonLayout,
    hidden: tuple[Path, ...] | None = None,
    data_dirs: list[str] | None = None,
    fork_server: bool = False,
    writable: tuple[Path, ...] = (),
    seccomp: bool = True,
    disk_bytes: int = 1024 * 1024 * 1024,
) -> tuple[list[str], list[str]]:
    """The bwrap options (before the command) and the folders they expose, for the notes.

    A kernel's workspace is a tmpfs of `disk_bytes` at the workspace's path (what it writes goes
    there, and with it), and the grader's `workspace` folder is shown read-only at SUBMISSION_MOUNT.

    `fork_server`: the sandbox of a worker's fork server (`forkserver_main.py`) rather than of one
    kernel. It keeps CAP_SYS_ADMIN and CAP_SETPCAP inside the sandbox (its own user namespace), so
    that it can give every kernel it forks namespaces of its own before dropping all capabilities,
    and its runtime folder is read-only: kernels come and go, the sandbox stays.

    `hidden`: the grader's code (default `grader_code()`), never shown."""
    workspace = Path(os.path.realpath(workspace))
    hidden = tuple(Path(os.path.realpath(h)) for h in (grader_code() if hidden is None else hidden))
    args = [
        bwrap,
        "--unshare-user",
        "--uid",
        str(SANDBOX_UID),
        "--gid",
        str(SANDBOX_UID),
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--disable-userns",
        "--hostname",
        "sandbox",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        # The fork server is PID 1 itself (non-dumpable): bubblewrap's own init would be a
        # dumpable PID 1 whose /proc/1/root shows every kernel's folder to every kernel.
        *(["--cap-add", "CAP_SYS_ADMIN", "--cap-add", "CAP_SETPCAP", "--as-pid-1"] if fork_server else []),
        *_system_binds(),
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--size",
        str(TMPFS_BYTES),
        "--tmpfs",
        "/dev/shm",
        "--size",
        str(TMPFS_BYTES),
        "--tmpfs",
        "/tmp",
        "--ro-bind",
        f"{RUNTIME}/passwd",
        "/etc/passwd",
        "--ro-bind",
        f"{RUNTIME}/group",
        "/etc/group",
    ]
    shown = []
    python_dirs = []
    for prefix in layout.prefixes:
        if prefix in ("/", "/usr") or _inside(prefix, "/usr"):
            continue
        python_dirs.append(prefix)
    if not any(_inside(layout.executable, d) for d in ["/usr", *python_dirs]):
        python_dirs.append(str(Path(layout.executable).parent))
    for folder in sorted(set(python_dirs)):
        args += ["--ro-bind", folder, folder]
        shown.append(folder)
    # The grader's code is not bound; where a bound folder contains it (a checkout holding the venv,
    # a wheel in the venv's site-packages), it is hidden under an empty tmpfs. A hidden package gets
    # an __init__.py that refuses the import. The editable-install hooks in site-packages are
    # replaced by an empty file.
    exposed = ["/usr", *python_dirs]
    for code in hidden:
        if not any(_inside(code, d) for d in exposed):
            continue
        args += ["--tmpfs", str(code)]
        if (code / "__init__.py").exists():
            args += ["--ro-bind", f"{RUNTIME}/hidden_package.py", str(code / "__init__.py")]
        for folder in python_dirs:  # a venv inside the checkout stays visible, read-only
            if _inside(folder, code):
                args += ["--ro-bind", folder, folder]
    for hook in _editable_hooks(layout.site_dirs, hidden):
        args += ["--ro-bind", f"{RUNTIME}/empty", hook]
    for data in data_dirs or []:
        args += ["--ro-bind", data, data]
    for place in writable:
        real = os.path.realpath(place)
        args += ["--bind", real, real]
    if fork_server:  # the server binds each kernel's workspace itself (forkserver_main._isolate)
        args += ["--bind", str(workspace), str(workspace), "--dir", SUBMISSION_MOUNT]
    else:
        args += [
            "--ro-bind",
            str(workspace),
            SUBMISSION_MOUNT,
            "--size",
            str(disk_bytes),
            "--perms",
            "0755",
            "--tmpfs",
            str(workspace),
        ]
    args += [
        "--ro-bind" if fork_server else "--bind",
        RUNTIME,
        RUNTIME,
        "--bind",
        f"{RUNTIME}/mpl",
        "/tmp/mplconfig",
        # The sandbox's own root and /dev are in-memory folders its user may write to (it is
        # the grader's user, without capabilities): read-only, nothing can be left there, by a
        # kernel for a later one in the same fork server, or to fill the memory.
        "--remount-ro",
        "/dev",
        "--remount-ro",
        "/",
        *(["--seccomp", "@SECCOMP_FD@"] if seccomp else []),
        "--chdir",
        str(workspace),
    ]
    return args, shown


def kernel_command(
    config: Config, workspace: Path, *, threads: int = 1, mpl_cache: Path | None = None, data_dir: Path | None = None
) -> KernelCommand:
    """The command that starts a kernel for `workspace`. `data_dir`: the staged data's folder
    (`StagedData.root`), bound read-only into the sandbox (default: the grader's data cache)."""
    program = [config.kernel_python, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    return _sandboxed(
        config,
        workspace,
        program,
        runtime_of="{connection_file}",
        threads=threads,
        mpl_cache=mpl_cache,
        data_dir=data_dir,
        fork_server=False,
    )


def forkserver_command(
    config: Config,
    jobs: Path,
    program: list[str],
    *,
    runtime: Path,
    sockets: Path,
    threads: int = 1,
    mpl_cache: Path | None = None,
    data_dir: Path | None = None,
) -> KernelCommand:
    """The command that starts a worker's fork server (`program`) in a sandbox whose writable folders
    are `jobs`, where its kernels' workspaces are made, and `sockets` (a short path), where their
    runtime folders are. `runtime` holds what the sandbox binds read-only (KernelCommand.prepare
    writes it)."""
    return _sandboxed(
        config,
        jobs,
        program,
        runtime_of=str(Path(runtime) / "server"),
        threads=threads,
        mpl_cache=mpl_cache,
        data_dir=data_dir,
        fork_server=True,
        writable=(sockets,),
    )


def _sandboxed(
    config: Config,
    workspace: Path,
    program: list[str],
    *,
    runtime_of: str,
    threads: int,
    mpl_cache: Path | None,
    data_dir: Path | None,
    fork_server: bool,
    writable: tuple[Path, ...] = (),
) -> KernelCommand:
    python = config.kernel_python
    env = kernel_env(config, workspace, threads, mpl_cache)
    limits = _rlimits(config)
    choice = choose_sandbox(config)
    bwrap = choice.bwrap
    if bwrap is None:
        if HAVE_RLIMITS:
            argv = [python, "-I", "-c", _LAUNCHER, *limits, "--", *program]
            limited = "with resource limits"
        else:  # Windows: no rlimits, and no exec to hand over to the kernel
            argv = list(program)
            limited = "without resource limits (this system has no `resource` module)"
        notes = (
            f"{UNISOLATED_NOTE} ({choice.why_not}), {limited}: it could read and write what the "
            "grader's user can, and reach the network",
        )
        return KernelCommand(argv=argv, env=env, isolated=False, sandbox="none", notes=notes)

    layout = python_layout(python)
    data_dirs = _data_binds(workspace, data_dir)
    bpf = seccomp.seccomp_program()
    options, shown = bubblewrap_argv(
        bwrap,
        workspace=workspace,
        layout=layout,
        data_dirs=data_dirs,
        fork_server=fork_server,
        writable=writable,
        seccomp=bpf is not None,
        disk_bytes=config.limits.disk_mb * 1024 * 1024,
    )
    env["MPLCONFIGDIR"] = "/tmp/mplconfig"
    # ipykernel's parent polling compares its parent's pid with JPY_PARENT_PID (which jupyter_client
    # sets to the grader's pid); in the new PID namespace the parent is bwrap's init (pid 1), so the
    # kernel would shut itself down. JPY_PARENT_PID=1 turns the polling off (ipykernel treats pid 1
    # as "no parent to watch") without the console banner an unset variable prints. Nothing
    # outlives the grader anyway: --die-with-parent and the PID namespace take care of that.
    cgroup = pids_cgroup()
    fences = ["--pids-cgroup", str(cgroup), str(config.limits.processes)] if cgroup else []
    argv = [
        python,
        "-I",
        "-c",
        _LAUNCHER,
        "--runtime-of",
        runtime_of,
        "--setenv",
        "JPY_PARENT_PID",
        "1",
        *(["--seccomp-hex", bpf.hex()] if bpf else []),
        *fences,
        *limits,
        "--",
        *options,
        "--",
        *program,
    ]
    if cgroup is None and os.geteuid() == 0:
        process_note = (
            "; the number of processes was NOT limited (the grader runs as root, which "
            "RLIMIT_NPROC exempts, and no pids cgroup could be made)"
        )
    else:
        process_note = ""
    notes = (
        f"{ISOLATED_NOTE}: no network, its own process namespace, user "
        f"{SANDBOX_UID}, a read-only view of the system and of Python ({', '.join(shown) or '/usr'}), "
        f"write access to its own workspace only (at most {config.limits.disk_mb} MB in total), no grader "
        "code or other submissions visible" + process_note + seccomp.seccomp_note(bpf),
    )
    return KernelCommand(
        argv=argv,
        env=env,
        isolated=True,
        sandbox="bubblewrap",
        interrupt_mode="message",
        notes=notes,
        mpl_cache=mpl_cache,
        python=python,
        bound=tuple(shown) + tuple(data_dirs),
        submission_mount=None if fork_server else SUBMISSION_MOUNT,
    )


def is_isolation_note(note: str) -> bool:
    """Whether an execution note is the one saying how the kernel was isolated."""
    return note.startswith((ISOLATED_NOTE, UNISOLATED_NOTE))
