"""Run a notebook in a fresh kernel with nbclient, and keep the kernel alive for the probe.

`KernelSession` owns one kernel from start to shutdown. `run_notebook` executes the cells one by one
(an error or a timed-out cell does not stop the run), and `run_code` sends the grader's own code
into the same kernel afterwards. Everything here is async; the pipeline drives it with asyncio.run.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty

import nbformat
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

from grader import child
from grader.config import Limits
from grader.models import CellError, ExecutionInfo, TimedOutCell, TimeLimits, cell_label
from grader.run.cputime import ProcessTreeClock
from grader.run.sandbox import KernelCommand
from grader.util.fsclean import remove_tree
from grader.util.notebook_file import MAX_NOTEBOOK_BYTES, MAX_OUTPUTS, NotebookInvalid, parse_notebook_json
from grader.util.textsafe import valid_json, valid_text

# The reply nbclient substitutes for a cell that ran over its time limit (after interrupting it).
_TIMEOUT_REPLY = {"ename": "CellTimeoutError", "evalue": "the cell ran over its time limit", "traceback": []}


# Copies the grader's folder of the workspace into the kernel's own (child/copy_in.py), then
# deletes its function: run before any of the notebook's code, it leaves no names behind.
def _copy_in_code(source: str, target: str) -> str:
    return (
        child.source("copy_in.py")
        + f"try:\n    _grader_copy_in({source!r}, {target!r})\nfinally:\n    del _grader_copy_in\n"
    )


# The limits when grading.toml says "auto" and nothing better is known (no calibration with timings
# of the data): generous, since the notebook's needs are unknown. CPU seconds, as every limit.
FALLBACK_CELL_TIMEOUT_S = 600.0
FALLBACK_NOTEBOOK_TIMEOUT_S = 1800.0

# Time limits count the CPU time of the kernel's processes: a cell that computes needs about the same
# CPU seconds on a busy machine as on a quiet one (its wall-clock time may be many times longer), and
# a `while True: pass` burns them at full rate anywhere. A cell that sleeps or waits uses none: the
# wall-clock backstop stops it, WALL_FACTOR times its CPU limit, at least WALL_FLOOR_S more (room for
# a machine where the kernel gets a fifth of a core).
WALL_FACTOR, WALL_FLOOR_S = 5, 120.0
# A cell interrupted at its limit that goes on for GRACE_CPU_S more CPU seconds or GRACE_WALL_S more
# seconds (it catches KeyboardInterrupt, ignores SIGINT) is not stopping: its kernel is stopped.
GRACE_CPU_S, GRACE_WALL_S = 10.0, 30.0


def wall_backstop(cpu_seconds: float) -> float:
    """The wall-clock limit that goes with a limit of `cpu_seconds` of CPU time."""
    return float(max(WALL_FACTOR * cpu_seconds, cpu_seconds + WALL_FLOOR_S))


def cpu_time_limits(cell_s: float, notebook_s: float, source: str, **extra) -> TimeLimits:
    """Limits in CPU seconds, with their wall-clock backstops."""
    return TimeLimits(
        cell_timeout_s=cell_s,
        notebook_timeout_s=notebook_s,
        clock="cpu",
        cell_wall_s=wall_backstop(cell_s),
        notebook_wall_s=wall_backstop(notebook_s),
        source=f"{source}; counted in CPU time of the kernel's processes, with a wall-clock "
        f"backstop of {WALL_FACTOR} × the limit, at least {WALL_FLOOR_S:g} s more",
        **extra,
    )


def configured_time_limits(limits: Limits, why: str = "no calibration with timings was given") -> TimeLimits:
    """The numbers grading.toml gives, and the conservative fallback where it says "auto"."""
    cell, notebook = limits.cell_timeout_s, limits.notebook_timeout_s
    parts = []
    if cell == "auto" or notebook == "auto":
        parts.append(f'the fallback for "auto" ({why})')
    if cell != "auto" or notebook != "auto":
        parts.append("[limits] in grading.toml")
    return cpu_time_limits(
        FALLBACK_CELL_TIMEOUT_S if cell == "auto" else float(cell),
        FALLBACK_NOTEBOOK_TIMEOUT_S if notebook == "auto" else float(notebook),
        "; ".join(parts),
    )


# What jupyter_client raises when the kernel's messages are not valid protocol messages (a student who
# replaced json.dumps inside the kernel garbles every message it sends).
_GARBLED = (KeyError, ValueError, TypeError)


class KernelStartError(RuntimeError):
    """The kernel did not start or did not answer; the message says why. `isolated` and `sandbox`:
    how it was to run (the report says so even though nothing ran)."""

    def __init__(self, message: str, *, isolated: bool = False, sandbox: str = "none"):
        super().__init__(message)
        self.isolated = isolated
        self.sandbox = sandbox


@dataclass(frozen=True)
class CellProgress:
    """Where a notebook's run is, for whoever shows progress (`KernelSession.run_notebook`)."""

    number: int  # the code cell's number as Jupyter shows it after Run All: In [number]
    total: int  # code cells to run
    finished: bool  # False as the cell starts, True once it has run
    elapsed_s: float  # since the notebook started
    first_line: str  # the cell's first line of code, to say what is running


ProgressCallback = Callable[[CellProgress], None]


def first_line(source: str, limit: int = 60) -> str:
    """A code cell's first non-empty line (comments included: they often say what the cell does)."""
    line = next((ln.strip() for ln in source.splitlines() if ln.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


@dataclass
class Execution:
    """What running the notebook produced: the report's view, and the executed notebook."""

    info: ExecutionInfo
    notebook: nbformat.NotebookNode
    alive: bool = True  # whether the kernel can still be probed
    # Per code cell that ran, in order (calibration): CPU seconds of the kernel's processes (wall-clock
    # seconds where they could not be read: `clock`), and wall-clock seconds.
    cell_seconds: list[float] = field(default_factory=list)
    cell_wall_seconds: list[float] = field(default_factory=list)
    clock: str = "cpu"


@dataclass
class CodeResult:
    """The outcome of `KernelSession.run_code`."""

    status: str  # "ok" | "error" | "timeout" | "kernel_died"
    payloads: list[dict] = field(default_factory=list)  # display_data bundles of the asked MIME type
    error: str | None = None


ERROR_FLOOR = 2048  # bytes an error keeps once the notebook's outputs are at their limit
IMAGE_LIMIT = 2 * 1024 * 1024  # bytes of images (plots) a cell keeps, beside its [limits] output_kb of the rest


def bounded_error(content: dict, limit: int) -> dict:
    """An error output within about `limit` bytes: its type, the start of its message and the end of
    its traceback (where it was raised), each cut part saying so. A cell that raises a 5 MB message
    is kept as an error (the verdict reads it), not as 10 MB (message and traceback) per cell."""
    if len(json.dumps(content, default=str)) <= limit:
        return content
    ename = str(content.get("ename", ""))[:200]
    evalue_all = str(content.get("evalue", ""))
    lines_all = [str(line) for line in content.get("traceback") or []]
    keep = max(200, limit // 4)
    while True:
        evalue = (
            evalue_all
            if len(evalue_all) <= keep
            else (evalue_all[:keep] + f" … [grader: message cut after {keep:,} of {len(evalue_all):,} characters]")
        )
        room = max(keep, limit - keep - len(ename) - 200)
        lines: list[str] = []
        for line in reversed(lines_all):
            if len(line) > keep:
                line = line[:keep] + f" … [grader: line cut after {keep:,} of {len(line):,} characters]"
            if lines and len(line) > room:
                lines.insert(0, f"[grader: {len(lines_all) - len(lines)} earlier line(s) of the traceback left out]")
                break
            lines.insert(0, line)
            room -= len(line)
        bounded = {**content, "ename": ename, "evalue": evalue, "traceback": lines}
        if len(json.dumps(bounded, default=str)) <= limit or keep <= 100:
            return bounded
        keep //= 2


class _CappedClient(NotebookClient):
    """nbclient, keeping at most `output_limit` bytes of output per cell (a cell that prints
    megabytes would otherwise end up whole in the report and the executed notebook), and at most
    `outputs_limit` outputs and `total_limit` bytes of them in the whole notebook (2,000 cells of 64 KB
    each would be 128 MB in the worker and more than the grader accepts as a notebook). Consecutive
    text on one stream is one output, as Jupyter keeps it. Errors are always kept: the verdict reads them."""

    def __init__(
        self,
        nb,
        km=None,
        *,
        output_limit: int,
        outputs_limit: int = MAX_OUTPUTS,
        total_limit: int = MAX_NOTEBOOK_BYTES,
        **kw,
    ):
        super().__init__(nb, km=km, **kw)
        self.output_limit = output_limit
        self.output_bytes: dict[int, int] = {}
        self.image_bytes: dict[int, int] = {}  # plots, by cell: their own allowance (IMAGE_LIMIT)
        self.truncated: set[int] = set()
        self.outputs_limit, self.total_limit = outputs_limit, total_limit
        self.outputs_kept = self.bytes_kept = 0
        self.notebook_full: int | None = None  # the cell in which the notebook's outputs reached their limit
        self._display_sizes: dict[str, int] = {}  # bytes of each display's data (display_id), as kept

    def process_message(self, msg, cell, cell_index):
        # Where the kernel's output enters the grader: text that is not valid UTF-8 (a lone
        # surrogate) is replaced here, or the executed notebook and the report could not be written.
        msg = {**msg, "content": valid_json(msg.get("content") or {})}
        return super().process_message(msg, cell, cell_index)

    def output(self, outs, msg, display_id, cell_index):
        if msg["msg_type"] == "error":  # kept whatever the limits, so bounded itself
            room = self.output_limit if self.bytes_kept < self.total_limit else ERROR_FLOOR
            msg = {**msg, "content": bounded_error(msg.get("content") or {}, room)}
        size = len(json.dumps(msg.get("content", {}), default=str))
        # A plot has its own allowance per cell: what a cell printed before it must not cost the
        # plot (the tutors grade the plot by hand, from the executed notebook).
        data = (msg.get("content") or {}).get("data")
        image = (
            msg["msg_type"] in ("display_data", "execute_result")
            and isinstance(data, dict)
            and any(str(kind).startswith("image/") for kind in data)
        )
        spent, limit = (self.image_bytes, IMAGE_LIMIT) if image else (self.output_bytes, self.output_limit)
        used = spent.get(cell_index, 0) + size
        spent[cell_index] = used
        if used > limit and msg["msg_type"] != "error":
            if cell_index not in self.truncated:
                self.truncated.add(cell_index)
                note = nbformat.v4.new_output(
                    "stream",
                    name="stderr",
                    text=f"\n[grader: output of this cell cut after {limit // 1024} KB"
                    f"{' of images' if image else ''}]\n",
                )
                outs.append(note)
            return None
        if msg["msg_type"] != "error" and (
            self.outputs_kept >= self.outputs_limit or self.bytes_kept + size > self.total_limit
        ):
            if self.notebook_full is None:
                self.notebook_full = cell_index
                outs.append(
                    nbformat.v4.new_output(
                        "stream",
                        name="stderr",
                        text=(
                            f"\n[grader: the notebook's output reached the grader's limit ({self.outputs_limit:,} outputs "
                            f"or {self.total_limit // 1024 // 1024} MB in all); output from here on is not kept]\n"
                        ),
                    )
                )
            return None
        self.bytes_kept += size
        content = msg.get("content") or {}
        if (
            msg["msg_type"] == "stream"
            and outs
            and outs[-1].get("output_type") == "stream"
            and outs[-1].get("name") == content.get("name")
            and not self.clear_before_next_output
            and not self.output_hook_stack[msg["parent_header"].get("msg_id")]
        ):
            outs[-1]["text"] += str(content.get("text", ""))
            return outs[-1]
        out = super().output(outs, msg, display_id, cell_index)
        if out is not None:
            self.outputs_kept += 1
            if display_id:
                self._display_sizes[display_id] = len(json.dumps(content.get("data", {}), default=str))
        return out

    def _update_display_id(self, display_id, msg):
        """An update of a display (`update_display`, a display handle's `.update`) replaces earlier
        outputs in place, past `output`: held to the same limits. One over the cell's output limit,
        or past the notebook's, is left out with a note in its place; one that fits replaces what
        the display held (a progress line updated 2,000 times stays one line)."""
        places = self._display_id_map.get(display_id)
        if not places:
            return super()._update_display_id(display_id, msg)
        content = msg.get("content") or {}
        size = len(json.dumps(content.get("data", {}), default=str))
        copies = sum(len(indices) for indices in places.values())
        before = self._display_sizes.get(display_id, 0)
        if size > self.output_limit or self.bytes_kept + (size - before) * copies > self.total_limit:
            self.truncated.update(places)
            note = {
                "text/plain": f"[grader: an update of this display ({size / 1024:,.0f} KB) was left out: more "
                f"than the cell's {self.output_limit // 1024} KB of output or the notebook's limit]"
            }
            msg = {**msg, "content": {**content, "data": note, "metadata": {}}}
            size = len(json.dumps(note))
        self.bytes_kept += (size - before) * copies
        self._display_sizes[display_id] = size
        return super()._update_display_id(display_id, msg)


def kernel_transport(runtime_dir: Path) -> tuple[str, str]:
    """(transport, ip) for a kernel whose runtime folder is `runtime_dir`: IPC sockets there (unique
    per kernel, so no port collisions, see docs/kernels.md) where there are Unix sockets; TCP on
    localhost elsewhere (Windows)."""
    if os.name == "posix" and hasattr(socket, "AF_UNIX"):
        return "ipc", str(runtime_dir / "k")
    return "tcp", "127.0.0.1"


class KernelSession:
    """One sandboxed kernel, started in `workspace`, shut down on exit (always, immediately)."""

    def __init__(
        self,
        command: KernelCommand,
        workspace: Path,
        limits: Limits,
        runtime_dir: Path | None = None,
        time_limits: TimeLimits | None = None,
    ):
        """`runtime_dir`: an empty folder for the connection file, IPC sockets and log (default: a
        new one in the system's temporary folder; its path must stay short, as IPC socket names are
        limited to 107 bytes). It is removed with the session. `time_limits`: the per-cell and
        per-notebook limits in force (default: those of `limits`, the fallback where they say "auto")."""
        self.command = command
        self.workspace = workspace
        self.limits = limits
        self.time_limits = time_limits or configured_time_limits(limits)
        self._runtime_dir = Path(runtime_dir) if runtime_dir is not None else Path(tempfile.mkdtemp(prefix="g6k-"))
        transport, ip = kernel_transport(self._runtime_dir)
        self.km = AsyncKernelManager(transport=transport, ip=ip, connection_file=str(self._runtime_dir / "kernel.json"))
        self.km._kernel_spec = KernelSpec(
            argv=command.argv, display_name="grader", language="python", interrupt_mode=command.interrupt_mode, env={}
        )
        self.client = _CappedClient(
            nbformat.v4.new_notebook(),
            km=self.km,
            output_limit=limits.output_kb * 1024,
            timeout=int(self.time_limits.cell_timeout_s),
            interrupt_on_timeout=True,
            error_on_timeout=_TIMEOUT_REPLY,
            allow_errors=True,
            record_timing=False,
            startup_timeout=60,
            shutdown_kernel="immediate",
            iopub_timeout=10,
            raise_on_iopub_timeout=False,
            resources={"metadata": {"path": str(workspace)}},
        )
        self.client.outputs_limit = limits.notebook_outputs  # outputs kept in the whole notebook

    async def __aenter__(self) -> KernelSession:
        self.command.prepare(self._runtime_dir)
        # The kernel's own stdout/stderr (not the notebook's output) go to a log, not the grader's console.
        # Opened once, read back through the same descriptor: the kernel may replace the file in
        # its runtime folder (say, by a link to a file only the grader may read).
        self._log = open(self._runtime_dir / "kernel.log", "w+b")
        try:
            await self.client.async_start_new_kernel(
                cwd=str(self.workspace), env=self.command.env, stdout=self._log, stderr=self._log
            )
            await self.client.async_start_new_kernel_client()
        except BaseException as exc:  # also when cancelled: nothing of a half-started kernel stays
            tail = self._log_tail()
            await self._cleanup()
            if isinstance(exc, Exception):
                raise KernelStartError(
                    f"the kernel did not start: {exc}{tail}",
                    isolated=self.command.isolated,
                    sandbox=self.command.sandbox,
                ) from exc
            raise
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self._cleanup()

    async def _cleanup(self) -> None:
        try:
            await asyncio.wait_for(self.client._async_cleanup_kernel(), timeout=15)
        except Exception:
            if self.km.has_kernel:
                try:
                    await self.km.shutdown_kernel(now=True)  # kills the process
                except Exception:
                    pass
        self._log.close()
        remove_tree(self._runtime_dir)  # the kernel can write there too: deep trees, read-only files

    def _log_tail(self, limit: int = 600) -> str:
        """The end of the kernel's own log: why a kernel did not start or died."""
        try:
            self._log.flush()
            fd = self._log.fileno()
            size = os.fstat(fd).st_size
            text = os.pread(fd, limit, max(0, size - limit)).decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            return ""
        return f" (kernel log: …{text})" if text else ""

    async def restart(self) -> bool:
        """A fresh kernel process in place of a dead one: same command, sandbox and workspace (the
        files the dead one wrote are gone with it; the submission is copied in again)."""
        try:
            await self.km.restart_kernel(now=True)
            client = self.client.kc
            assert isinstance(client, AsyncKernelClient)  # nbclient's client of an AsyncKernelManager
            await client.wait_for_ready(timeout=60)
            await self.copy_in()
            return True
        except Exception:
            return False

    async def copy_in(self, timeout: float = 120) -> None:
        """Before the notebook's first cell: where the kernel's workspace is a file system of its own
        (bubblewrap), copy into it what the grader put in the workspace's folder (the submission, the
        data links). Elsewhere the folder is the workspace, and there is nothing to do."""
        if self.command.submission_mount is None:
            return
        result = await self.run_code(_copy_in_code(self.command.submission_mount, str(self.workspace)), timeout=timeout)
        if result.status != "ok":
            raise KernelStartError(
                f"the submission could not be copied into the kernel's workspace ({result.status}: {result.error})"
            )

    async def replay(self, nb: nbformat.NotebookNode, before_cell: int) -> tuple[int, list[int]]:
        """Run the code cells before cell `before_cell` (1-based index in the notebook) again,
        outputs discarded. Returns how many ran, and the cells that raised or timed out this time,
        both numbered as Jupyter numbers code cells (In [n])."""
        failed: list[int] = []
        number = 0
        for cell in nb.cells[: before_cell - 1]:
            if cell.cell_type == "code" and cell.source.strip():
                number += 1
                # Wall-clock time only here: the cells ran within their limits already; the backstop bounds a rerun.
                result = await self.run_code(
                    cell.source,
                    store_history=True,
                    timeout=self.time_limits.cell_wall_s or self.time_limits.cell_timeout_s,
                )
                if result.status == "kernel_died":
                    return number, failed + [number]
                if result.status != "ok":
                    failed.append(number)
        return number, failed

    def share(self, name: str, data: bytes) -> str:
        """Put a new file where the kernel can read it (the folder of its connection file and
        sockets, which the sandbox binds); returns its path. The kernel can write in that folder too:
        the file is created, never opened if something is there already (a link the kernel planted
        would otherwise make the grader, root perhaps, write wherever it points)."""
        if os.open in os.supports_dir_fd and hasattr(os, "O_DIRECTORY"):
            folder = os.open(self._runtime_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
            try:
                fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=folder)
            finally:
                os.close(folder)
        else:  # Windows: no descriptors for folders; O_EXCL still refuses anything already there
            fd = os.open(self._runtime_dir / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0))
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        return str(self._runtime_dir / name)

    async def kill_now(self) -> None:
        """Kill the kernel's process at once (SIGKILL); `__aexit__` still cleans up afterwards."""
        provisioner = self.km.provisioner
        if provisioner is not None and provisioner.has_process:
            try:
                await provisioner.kill()
            except Exception:
                pass

    async def alive(self) -> bool:
        try:
            return bool(self.km.has_kernel and await self.km.is_alive())
        except Exception:
            return False

    async def warm_up(self, code: str, timeout: float = 120) -> CodeResult:
        """Run set-up code (the heavy imports) before the notebook is known; not in the history."""
        return await self.run_code(code, timeout=timeout)

    def _cpu_root(self) -> int | None:
        """The process whose tree is this kernel: what the command says (a forked kernel), else the
        process jupyter_client started (the launcher, become bubblewrap or the kernel)."""
        if self.command.cpu_root is not None:
            return self.command.cpu_root()
        provisioner = self.km.provisioner
        return getattr(provisioner, "pid", None) if provisioner is not None and provisioner.has_process else None

    async def run_notebook(self, nb: nbformat.NotebookNode, progress: ProgressCallback | None = None) -> Execution:
        """Run every code cell in order. A raising cell is recorded and the run goes on; a cell over
        its limit is interrupted and the run goes on; past the notebook's limit the run stops.

        The limits count the CPU time of the kernel's processes (`limits.clock == "cpu"`), each with a
        wall-clock backstop; where that CPU time cannot be read, wall-clock time (and the report's
        limits say so). A watcher beside each cell reads the CPU time and interrupts the kernel at the
        limit, as Jupyter's interrupt button does; nbclient's own (wall-clock) timeout stays as a last
        resort behind it.

        Messages name a cell as Jupyter shows it after Run All, `In [n]` (the n-th non-empty code
        cell; markdown cells are not counted). `progress` is told as each cell starts and ends."""
        self.client.nb = nb
        limits = self.time_limits
        clock = ProcessTreeClock(self._cpu_root)
        notes: list[str] = []
        if limits.clock == "cpu" and not await _readable(clock):
            # Never the CPU limits as wall-clock ones (that would make the verdict depend on the
            # machine's load again): the backstops become the limits.
            notes.append(
                "the CPU time of the kernel's processes could not be read on this system: the time limits "
                "were its wall-clock backstops"
            )
            limits = limits.model_copy(
                update={
                    "clock": "wall",
                    "cell_timeout_s": limits.cell_wall_s or wall_backstop(limits.cell_timeout_s),
                    "notebook_timeout_s": limits.notebook_wall_s or wall_backstop(limits.notebook_timeout_s),
                    "cell_wall_s": None,
                    "notebook_wall_s": None,
                }
            )
        use_cpu = limits.clock == "cpu"
        cell_wall = (limits.cell_wall_s or wall_backstop(limits.cell_timeout_s)) if use_cpu else limits.cell_timeout_s
        notebook_wall = (
            (limits.notebook_wall_s or wall_backstop(limits.notebook_timeout_s))
            if use_cpu
            else limits.notebook_timeout_s
        )
        started = time.monotonic()
        status, last_cell, cells_run = "ok", None, 0
        timed_out: list[TimedOutCell] = []
        cell_seconds: list[float] = []
        cell_wall_seconds: list[float] = []
        cpu_used = 0.0  # by the notebook's cells so far
        code_cells = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.strip()]
        alive = True

        def tell(number: int, index: int, finished: bool) -> None:
            if progress is not None:
                progress(
                    CellProgress(
                        number=number,
                        total=len(code_cells),
                        finished=finished,
                        elapsed_s=time.monotonic() - started,
                        first_line=first_line(nb.cells[index].source),
                    )
                )

        for number, index in enumerate(code_cells, start=1):
            wall_left = notebook_wall - (time.monotonic() - started)
            cpu_left = limits.notebook_timeout_s - cpu_used if use_cpu else wall_left
            if cpu_left <= 0 or wall_left <= 0:
                status = "timeout"
                if use_cpu and cpu_left <= 0:
                    over = f"its limit of {limits.notebook_timeout_s:g} s of CPU time"
                elif use_cpu:
                    over = f"its wall-clock backstop of {notebook_wall:g} s"
                else:
                    over = f"its limit of {limits.notebook_timeout_s:g} s"
                notes.append(
                    f"the notebook ran over {over}; cells from In [{number}] on did not run "
                    f"(the limits: {limits.source})"
                )
                break
            watch = _CellWatch(
                clock=clock if use_cpu else None,
                cpu_limit=min(limits.cell_timeout_s, cpu_left),
                wall_limit=min(cell_wall, wall_left),
                cpu_by_notebook=use_cpu and cpu_left < limits.cell_timeout_s,
                wall_by_notebook=wall_left < cell_wall,
            )
            # nbclient's own timeout: a last resort, should the watcher not get to interrupt in time.
            self.client.timeout = max(1, int(watch.wall_limit + GRACE_WALL_S + 30))
            self.client.error_on_timeout = {
                **_TIMEOUT_REPLY,
                "evalue": f"the cell ran over its time limit of {self.client.timeout} s",
            }
            last_cell = index + 1
            cell = nb.cells[index]
            tell(number, index, finished=False)
            interrupted = False
            died = None
            watcher = asyncio.ensure_future(watch.run(self))
            try:
                await self.client.async_execute_cell(cell, index, store_history=True)
            except DeadKernelError:
                died = f"the kernel died while cell In [{number}] ran{self._log_tail(300)}"
            except _GARBLED as exc:
                died = (
                    f"the kernel's messages could not be read after cell In [{number}] "
                    f"({type(exc).__name__}: {exc}); the run was stopped"
                )
            except CellTimeoutError:
                interrupted = True
            finally:
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)
            wall = time.monotonic() - watch.t0
            cpu = watch.cpu_now() if use_cpu else None
            if died is not None and not watch.killed:
                status, alive = "kernel_died", False
                notes.append(died)
                break
            cells_run += 1
            tell(number, index, finished=True)
            used = cpu if cpu is not None else (watch.cpu_at_fire if watch.cpu_at_fire is not None else wall)
            cpu_used += used if use_cpu else 0.0
            cell_seconds.append(round(used if use_cpu else wall, 3))
            cell_wall_seconds.append(round(wall, 3))
            if watch.fired is None and (interrupted or wall >= self.client.timeout):
                watch.fired, watch.wall_at_fire = ("notebook_wall" if watch.wall_by_notebook else "cell_wall"), wall
            if watch.fired is None:
                continue
            timed_out.append(
                TimedOutCell(
                    cell=index + 1,
                    execution_count=number,
                    limit=watch.fired,
                    ignored_interrupt=watch.killed,
                    cpu_s=round(watch.cpu_at_fire, 2) if watch.cpu_at_fire is not None else None,
                    wall_s=round(watch.wall_at_fire if watch.wall_at_fire is not None else wall, 2),
                )
            )
            _note_in_cell(cell, watch.said(limits))
            if watch.killed or not await self._responds():
                status, alive = "timeout", False
                notes.append(
                    f"cell In [{number}] ({first_line(cell.source)!r}) ignored the interrupt after its "
                    "time limit; the run was stopped"
                )
                break
        if timed_out:
            status = "timeout" if status in ("ok", "errors") else status
            notes.append(_timeout_note(nb, code_cells, timed_out, limits, cell_wall, notebook_wall))
        if self.client.truncated:
            numbers = {index: number for number, index in enumerate(code_cells, start=1)}
            notes.append(
                "output cut after "
                f"{self.limits.output_kb} KB in cell(s) "
                + ", ".join(f"In [{numbers.get(i, i + 1)}]" for i in sorted(self.client.truncated))
            )
        if self.client.notebook_full is not None:
            notes.append(_notebook_output_note(self.client, code_cells))
        # The KeyboardInterrupt of a cell the grader interrupted is the grader's doing, not an error of the team's.
        stopped = {t.cell for t in timed_out}
        errors = [e for e in _cell_errors(nb) if not (e.cell in stopped and e.ename == "KeyboardInterrupt")]
        if status == "ok" and errors:
            status = "errors"
        info = ExecutionInfo(
            status=status,
            duration_s=round(time.monotonic() - started, 3),
            cells_run=cells_run,
            cells_total=len(code_cells),
            last_cell=last_cell,
            errors=errors,
            isolated=self.command.isolated,
            sandbox=self.command.sandbox,
            notes=list(self.command.notes) + notes,
            time_limits=limits,
            cpu_s=round(cpu_used, 2) if use_cpu else None,
            timed_out=timed_out,
        )
        return Execution(
            info=info,
            notebook=nb,
            alive=alive,
            cell_seconds=cell_seconds,
            cell_wall_seconds=cell_wall_seconds,
            clock=limits.clock,
        )

    async def _responds(self, timeout: float = 10) -> bool:
        result = await self.run_code("pass", timeout=timeout)
        return result.status == "ok"

    async def run_code(
        self, code: str, *, timeout: float, mime: str | None = None, store_history: bool = False
    ) -> CodeResult:
        """Run the grader's code in the kernel (not stored in history); collect the display_data
        bundles of type `mime` it publishes. Everything else the kernel prints is dropped."""
        kc = self.client.kc
        if kc is None or not await self.alive():
            return CodeResult(status="kernel_died", error="the kernel is not running")
        try:
            return await self._run_code(kc, code, timeout=timeout, mime=mime, store_history=store_history)
        except _GARBLED as exc:
            return CodeResult(
                status="kernel_died", error=f"the kernel's messages could not be read ({type(exc).__name__}: {exc})"
            )

    async def _run_code(self, kc, code: str, *, timeout: float, mime: str | None, store_history: bool) -> CodeResult:
        msg_id = kc.execute(code, silent=False, store_history=store_history, allow_stdin=False)
        deadline = time.monotonic() + timeout
        result = CodeResult(status="ok")
        reply_seen = idle_seen = False
        while not (reply_seen and idle_seen):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                result.status, result.error = "timeout", f"no answer within {timeout:.0f} s"
                try:
                    await self.km.interrupt_kernel()
                except Exception:
                    pass
                return result
            if not reply_seen:
                try:
                    reply = await kc.shell_channel.get_msg(timeout=min(0.05, remaining))
                    if reply["parent_header"].get("msg_id") == msg_id:
                        reply_seen = True
                        if reply["content"].get("status") != "ok":
                            result.status = "error"
                            result.error = valid_text(
                                f"{reply['content'].get('ename')}: {reply['content'].get('evalue')}"
                            )
                except Empty:
                    pass
            try:
                msg = await kc.iopub_channel.get_msg(timeout=min(0.05 if not reply_seen else 1.0, remaining))
            except Empty:
                if not await self.alive():
                    result.status, result.error = "kernel_died", "the kernel died"
                    return result
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "status" and content.get("execution_state") == "idle":
                idle_seen = True
            elif kind in ("display_data", "execute_result") and mime and mime in content.get("data", {}):
                result.payloads.append(
                    valid_json({"data": content["data"][mime], "metadata": content.get("metadata", {}).get(mime, {})})
                )
        return result


_LIMIT_WORDS = {
    "cell_cpu": "the limit of {cpu:g} s per cell, in CPU time,",
    "cell_wall": "the wall-clock backstop of {wall:g} s per cell (it used little CPU time: it slept or waited)",
    "notebook_cpu": "the notebook's limit of {notebook:g} s of CPU time",
    "notebook_wall": "the notebook's wall-clock backstop of {notebook_wall:g} s",
}
_WALL_WORDS = {
    "cell_cpu": "the limit of {cpu:g} s per cell",
    "cell_wall": "the limit of {cpu:g} s per cell",
    "notebook_cpu": "the notebook's limit of {notebook:g} s",
    "notebook_wall": "the notebook's limit of {notebook:g} s",
}


def _limit_words(limit: str, limits: TimeLimits, cell_wall: float, notebook_wall: float) -> str:
    words = _LIMIT_WORDS if limits.clock == "cpu" else _WALL_WORDS
    return words[limit].format(
        cpu=limits.cell_timeout_s, wall=cell_wall, notebook=limits.notebook_timeout_s, notebook_wall=notebook_wall
    )


def _timeout_note(
    nb: nbformat.NotebookNode,
    code_cells: list[int],
    cells: list[TimedOutCell],
    limits: TimeLimits,
    cell_wall: float,
    notebook_wall: float,
) -> str:
    """Which cells were interrupted and by which limit, named as Jupyter shows them (In [n] and the
    cell's first line)."""
    parts = []
    for limit in ("cell_cpu", "cell_wall", "notebook_cpu", "notebook_wall"):
        names = [
            f"In [{c.execution_count}] ({first_line(nb.cells[c.cell - 1].source)!r})" for c in cells if c.limit == limit
        ]
        if names:
            verb = "ran over" if limit.startswith("cell") else "reached"
            parts.append(
                ("cell " if len(names) == 1 else "cells ")
                + ", ".join(names)
                + f" {verb} {_limit_words(limit, limits, cell_wall, notebook_wall)} and "
                + ("was" if len(names) == 1 else "were")
                + " interrupted"
            )
    return "; ".join(parts) + f" (the limits: {limits.source})"


def _notebook_output_note(client: _CappedClient, code_cells: list[int]) -> str:
    full = client.notebook_full or 0  # set: the note is written for a notebook whose outputs were cut
    number = {index: n for n, index in enumerate(code_cells, start=1)}.get(full)
    where = cell_label(number, full + 1)
    return (
        f"output from cell {where} on was not kept: the notebook's output reached the grader's limit of "
        f"{client.outputs_limit:,} outputs or {client.total_limit // 1024 // 1024} MB in all "
        f"([limits] notebook_outputs)"
    )


async def _readable(clock: ProcessTreeClock, tries: int = 20) -> bool:
    """Whether the kernel's CPU time can be read (a forked kernel's process is known a moment after
    the fork server has said it started it)."""
    for _ in range(tries):
        if clock.read() is not None:
            return True
        await asyncio.sleep(0.1)
    return False


def _note_in_cell(cell: nbformat.NotebookNode, text: str) -> None:
    """Say in the executed notebook's cell that the grader stopped it (after its own outputs)."""
    cell.setdefault("outputs", []).append(nbformat.v4.new_output("stream", name="stderr", text=f"\n[grader: {text}]\n"))


class _CellWatch:
    """Beside one running cell: interrupts the kernel once the cell has used `cpu_limit` seconds of
    CPU time (with `clock`) or run `wall_limit` seconds, and stops the kernel if the cell goes on
    after that (GRACE_CPU_S, GRACE_WALL_S). `*_by_notebook`: that limit is what is left of the
    notebook's, not the cell's own."""

    def __init__(
        self,
        *,
        clock: ProcessTreeClock | None,
        cpu_limit: float,
        wall_limit: float,
        cpu_by_notebook: bool,
        wall_by_notebook: bool,
    ):
        self.clock = clock
        self.cpu_limit, self.wall_limit = cpu_limit, wall_limit
        self.cpu_by_notebook, self.wall_by_notebook = cpu_by_notebook, wall_by_notebook
        self.t0 = time.monotonic()
        self.cpu0 = clock.read() if clock is not None else None
        self.fired: str | None = None  # "cell_cpu", "cell_wall", "notebook_cpu", "notebook_wall"
        self.cpu_at_fire: float | None = None
        self.wall_at_fire: float | None = None
        self.killed = False

    def cpu_now(self) -> float | None:
        if self.clock is None or self.cpu0 is None:
            return None
        now = self.clock.read()
        return max(0.0, now - self.cpu0) if now is not None else None

    async def run(self, session: KernelSession) -> None:
        # Often enough that a short limit is met closely; each reading costs a pass over /proc.
        interval = min(0.5, max(0.05, min(self.cpu_limit, self.wall_limit) / 40))
        while True:
            await asyncio.sleep(interval)
            wall, cpu = time.monotonic() - self.t0, self.cpu_now()
            if self.fired is None:
                if cpu is not None and cpu >= self.cpu_limit:
                    self.fired = "notebook_cpu" if self.cpu_by_notebook else "cell_cpu"
                elif wall >= self.wall_limit:
                    self.fired = "notebook_wall" if self.wall_by_notebook else "cell_wall"
                else:
                    continue
                self.cpu_at_fire, self.wall_at_fire = cpu, wall
                try:
                    await session.km.interrupt_kernel()
                except Exception:  # a kernel gone meanwhile: nbclient sees that
                    pass
                interval = 0.25
            elif wall - (self.wall_at_fire or 0.0) >= GRACE_WALL_S or (
                cpu is not None and self.cpu_at_fire is not None and cpu - self.cpu_at_fire >= GRACE_CPU_S
            ):
                self.killed = True  # nbclient sees the kernel die and ends the cell
                await session.kill_now()
                return

    def said(self, limits: TimeLimits) -> str:
        spent = (
            f"{self.cpu_at_fire:.1f} s of CPU time in {self.wall_at_fire:.1f} s"
            if self.cpu_at_fire is not None
            else f"{self.wall_at_fire or 0:.1f} s"
        )
        what = {
            "cell_cpu": "the grader's limit of CPU time per cell",
            "cell_wall": "the grader's wall-clock limit per cell (the cell used little CPU time: it slept or waited)",
            "notebook_cpu": "the grader's limit for the whole notebook",
            "notebook_wall": "the grader's wall-clock limit for the whole notebook",
        }[self.fired or "cell_wall"]
        if limits.clock != "cpu":
            spent = f"{self.wall_at_fire or 0:.1f} s"
        return f"this cell was interrupted after {spent}: {what}" + (
            "; it did not stop, so the kernel was stopped" if self.killed else ""
        )


def _cell_errors(nb: nbformat.NotebookNode) -> list[CellError]:
    errors = []
    number = 0
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and cell.source.strip():
            number += 1
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                errors.append(
                    CellError(
                        cell=index + 1,
                        execution_count=number,
                        ename=str(out.get("ename", "")),
                        evalue=str(out.get("evalue", ""))[:500],
                    )
                )
    return errors


def read_notebook(path: Path) -> nbformat.NotebookNode:
    """Read a notebook of any nbformat 4 minor version (or 3), upgraded to the current one, its
    outputs cleared. A file that is not a readable notebook raises NotebookInvalid saying what is
    wrong (`notebook_file`); text that is not valid UTF-8 (a lone surrogate written as a JSON
    escape) is replaced."""
    data = parse_notebook_json(path)
    for cell in data["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        tags = cell.get("metadata", {}).get("tags")
        if tags is not None and not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
            del cell["metadata"]["tags"]  # nbclient reads them (raises-exception, skip-execution)
    try:
        with warnings.catch_warnings():  # nbformat's warnings about the file would reach the terminal
            warnings.simplefilter("ignore")
            return nbformat.reads(json.dumps(valid_json(data)), as_version=4, capture_validation_error={})
    except Exception as exc:  # nbformat on a structure it does not expect
        raise NotebookInvalid(f"not a notebook nbformat can read ({type(exc).__name__}: {str(exc)[:200]})") from None
