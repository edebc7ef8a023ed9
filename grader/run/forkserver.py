"""A fork server per worker: torch and the rest are imported once, and each submission's kernel is
forked from that process in a few milliseconds instead of starting Python and importing torch again
(about 5.5 s of CPU per kernel on this kind of machine).

The server (`forkserver_main.py`) runs in one sandbox per worker, with the same limits, data and
view of the system as a kernel's own sandbox. Every kernel it forks gets namespaces of its own (see
`forkserver_main`): a fresh /tmp, only its own workspace, its own process tree that dies with it,
no capabilities. jupyter_client sees an ordinary kernel: the command it starts is a small proxy that
asks the server for the kernel over a Unix socket outside the sandbox, and lives exactly as long as
the kernel (killing the proxy kills the kernel; the kernel's exit code becomes the proxy's).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import tempfile
from pathlib import Path
from typing import BinaryIO

from grader import child
from grader.run import cputime
from grader.run.context import KernelContext
from grader.run.execute import KernelStartError
from grader.run.sandbox import SUBMISSION_MOUNT, TMPFS_BYTES, KernelCommand, forkserver_command
from grader.util.fsclean import remove_tree

SERVER_SOURCE = child.source("forkserver_main.py")
START_TIMEOUT_S = 180

# Started by jupyter_client in place of the kernel (outside the sandbox; it runs no student code).
PROXY = child.source("forkserver_proxy.py")


class ForkServer:
    """One sandboxed fork server; `kernel_command` gives the command jupyter_client starts."""

    def __init__(self, ctx: KernelContext):
        self.ctx = ctx
        self.process: asyncio.subprocess.Process | None = None
        self.jobs: Path | None = None  # where kernels' workspaces are made
        self.sockets: Path | None = None  # where their runtime folders (connection file, sockets) are
        self._control: Path | None = None  # the server's socket, outside every sandbox
        self._dirs: list[Path] = []
        self._listener: socket.socket | None = None
        self._server_command: KernelCommand | None = None
        self._log: BinaryIO | None = None  # the server's own stderr (what it says when it cannot start)
        self._lock = asyncio.Lock()
        self._gone: dict[str, asyncio.Event] = {}  # set while no process of the tag's kernel runs
        self._seen: set[str] = set()  # tags the server has forked a kernel for
        self._pids: dict[str, int] = {}  # tag -> its kernel's process, as the server numbers it
        self._host_pids: dict[str, int] = {}  # tag -> the same process as the grader numbers it
        self._reader: asyncio.Task | None = None
        self._tags = 0
        self.generation = 0  # counts the servers started: a kernel belongs to the one that forked it

    @property
    def running(self) -> bool:
        return (
            self.process is not None
            and self.process.returncode is None
            and self._reader is not None
            and not self._reader.done()
        )

    def forked(self, tag: str) -> bool:
        """Whether the kernel of `tag` comes from the server running now."""
        return self.running and tag.split("-")[1:2] == [str(self.generation)]

    async def ensure_started(self) -> None:
        async with self._lock:
            if not self.running:
                await self._stop()
                await self._start()

    async def _start(self) -> None:
        ctx = self.ctx
        self.generation += 1
        # Workspaces go on the work folder's file system (the pipeline moves an unpacked submission
        # in); the others are short paths of their own.
        self.jobs = Path(tempfile.mkdtemp(prefix="z-", dir=ctx.work_dir))
        self.sockets = Path(tempfile.mkdtemp(prefix="g6r-"))  # kernels' runtime folders: IPC socket paths stay short
        runtime = Path(tempfile.mkdtemp(prefix="g6z-"))  # passwd, group, matplotlib cache (read-only)
        control = Path(tempfile.mkdtemp(prefix="g6c-"))  # the control socket: never inside a sandbox
        self._dirs = [self.jobs, runtime, control, self.sockets]
        self._control = control / "s"
        self._listener = socket.socket(socket.AF_UNIX)
        self._listener.bind(str(self._control))
        self._listener.listen(64)
        script = runtime / "forkserver_main.py"  # read-only inside the sandbox, at the same path
        script.write_text(SERVER_SOURCE, encoding="utf-8")
        program = [
            ctx.config.kernel_python,
            "-I",
            str(script),
            str(self._listener.fileno()),
            str(ctx.threads),
            "PLACEHOLDER",
            "[]",
            json.dumps(list(ctx.warmup_imports)),
        ]
        command = forkserver_command(
            ctx.config,
            self.jobs,
            program,
            runtime=runtime,
            sockets=self.sockets,
            threads=ctx.threads,
            mpl_cache=ctx.mpl_cache,
            data_dir=ctx.data_root,
        )
        isolate = command.sandbox == "bubblewrap"
        keep = [d for d in command.bound if _under_tmp(d)]
        command.argv[-3:-1] = ["1" if isolate else "0", json.dumps(keep)]
        command.env["JPY_PARENT_PID"] = str(os.getpid())  # the launcher exits if we are gone already
        command.prepare(runtime)
        self._server_command = command
        self._log = open(runtime / "server.log", "wb")
        self.process = await asyncio.create_subprocess_exec(
            *command.argv,
            env=command.env,
            cwd=str(self.jobs),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=self._log,
            pass_fds=(self._listener.fileno(),),
        )
        try:
            assert self.process.stdout is not None  # a pipe, as asked
            line = await asyncio.wait_for(self.process.stdout.readline(), START_TIMEOUT_S)
        except asyncio.TimeoutError:
            line = b""
        if line.strip() != b"ready":
            tail = _tail(runtime / "server.log")
            await self._stop()
            raise KernelStartError(f"the fork server did not start{tail}")
        self._reader = asyncio.ensure_future(self._read_events(self.process))

    async def _read_events(self, process) -> None:
        """ "gone TAG": the kernel and every process it started have ended. When the server itself
        ends, so have all its kernels."""
        while True:
            line = await process.stdout.readline()
            if not line:
                break
            word, _, rest = line.decode("ascii", "replace").strip().partition(" ")
            tag, _, pid = rest.partition(" ")
            if word == "gone":
                self._gone.setdefault(tag, asyncio.Event()).set()
            elif word == "started":  # also a restarted kernel under the same tag
                self._seen.add(tag)
                self._gone.setdefault(tag, asyncio.Event()).clear()
                if pid.isdigit():
                    self._pids[tag] = int(pid)
                    self._host_pids.pop(tag, None)
        # The server is gone, and every kernel with it. Proxies still waiting for a kernel learn it
        # at once (their connection is refused or reset) instead of at the start-up timeout.
        for event in self._gone.values():
            event.set()
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def new_tag(self) -> str:
        self._tags += 1
        tag = f"{os.getpid()}-{self.generation}-{self._tags}"
        self._gone[tag] = asyncio.Event()
        return tag

    async def wait_gone(self, tag: str, timeout: float = 30) -> None:
        """Until the kernel of `tag` and all its processes are gone. If that takes too long, the
        whole server is stopped (and with it every process it ever started)."""
        event = self._gone.get(tag)
        if event is None or not self.running:
            return
        if tag not in self._seen:
            # Its proxy is gone; if its request reached the server, "started" follows within
            # milliseconds, else there never was a kernel to wait for.
            timeout = 2
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except asyncio.TimeoutError:
            if tag in self._seen:
                await self.close()
        self._gone.pop(tag, None)
        self._seen.discard(tag)
        self._pids.pop(tag, None)
        self._host_pids.pop(tag, None)

    def kernel_pid(self, tag: str) -> int | None:
        """The process of `tag`'s kernel (the server's child that holds the kernel's namespaces; the
        kernel and all it starts are below it) as the grader numbers it, for its CPU time; None
        while the server has not said. The server names it in its own PID namespace: that is the
        child of the server whose last NSpid is the server's number, at the server's depth."""
        inner = self._pids.get(tag)
        if inner is None or self.process is None:
            return None
        known = self._host_pids.get(tag)
        if known is not None and cputime.namespace_pids(known)[-1:] == [inner]:
            return known
        # The server is the process started (without bubblewrap) or bubblewrap's child (with it).
        top = self.process.pid
        for server in (top, *cputime.child_pids(top)):
            depth = len(cputime.namespace_pids(server))
            for pid in cputime.child_pids(server):
                numbers = cputime.namespace_pids(pid)
                if len(numbers) == depth and numbers[-1] == inner:
                    self._host_pids[tag] = pid
                    return pid
        return None

    def kernel_command(self, workspace: Path, runtime: Path, tag: str) -> KernelCommand:
        """What jupyter_client runs for one kernel in `workspace` (made in `self.jobs`) with its
        connection file in `runtime` (made in `self.sockets`); `tag` (from `new_tag`) names it in
        `wait_gone`."""
        server = self._server_command
        if server is None:
            raise RuntimeError("the fork server is not running: start it before asking for kernels")
        hidden = json.dumps([str(self.jobs), str(self.sockets)])
        argv = [
            sys.executable,
            "-I",
            "-S",
            "-c",
            PROXY,
            str(self._control),
            "{connection_file}",
            str(workspace),
            str(runtime),
            hidden,
            str(TMPFS_BYTES),
            str(self.ctx.config.limits.disk_mb * 1024 * 1024),
            SUBMISSION_MOUNT,
            tag,
        ]
        env = dict(server.env)
        env["HOME"] = str(workspace)
        notes = server.notes
        if server.isolated:
            notes = (
                notes[0] + "; forked from the worker's fork server, in namespaces of its own "
                "(processes, mounts, a fresh /tmp) with no capabilities",
            ) + notes[1:]
        return KernelCommand(
            argv=argv,
            env=env,
            isolated=server.isolated,
            sandbox=server.sandbox,
            interrupt_mode="message",
            notes=notes,
            forked=True,
            cpu_root=lambda: self.kernel_pid(tag),
            submission_mount=SUBMISSION_MOUNT if server.isolated else None,
        )

    async def _stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            try:
                self.process.kill()
            except ProcessLookupError:
                pass
            await self.process.wait()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
            self._reader = None
        self.process = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._log is not None:
            self._log.close()
            self._log = None
        for folder in self._dirs:
            remove_tree(folder)  # never raises, whatever a kernel left (issue 14)
        self._dirs = []

    async def close(self) -> None:
        async with self._lock:
            await self._stop()


def _under_tmp(path: str) -> bool:
    return path == "/tmp" or path.startswith("/tmp/")


def _tail(path: Path, limit: int = 800) -> str:
    try:
        text = path.read_bytes()[-limit:].decode("utf-8", "replace").strip()
    except OSError:
        return ""
    return f" (its log: …{text})" if text else ""
