"""Where kernels come from: started on demand (`FreshKernels`), started ahead and warmed up while
the current notebook runs (`WarmKernels`), or forked from a fork server that imported torch once
(`ForkKernels`, what a batch uses), so that a notebook does not wait for a kernel to boot and
import torch.

Every kernel gets its own fresh, empty workspace folder, with the same limits and sandbox as any
other; the submission is moved into that folder once the kernel is handed out. Warming up imports
only what every notebook of the sheet imports.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from grader.run.context import KernelContext
from grader.run.execute import KernelSession, KernelStartError
from grader.run.forkserver import ForkServer
from grader.run.sandbox import kernel_command
from grader.util.fsclean import remove_tree


@dataclass
class Kernel:
    session: KernelSession
    workspace: Path
    tag: str = ""  # a forked kernel's name at its fork server


class FreshKernels:
    """A new kernel per submission, started when asked for."""

    warm_up: bool = True  # a kernel started ahead imports the sheet's warm-up modules

    def __init__(self, ctx: KernelContext, prefix: str = "ws-"):
        self.ctx = ctx
        self.prefix = prefix
        self._stopping: set[asyncio.Task] = set()

    async def _session(self) -> Kernel:
        """A kernel whose session is not started yet, with its new, empty workspace."""
        workspace = Path(tempfile.mkdtemp(prefix=self.prefix, dir=self.ctx.work_dir))
        command = kernel_command(
            self.ctx.config,
            workspace,
            threads=self.ctx.threads,
            mpl_cache=self.ctx.mpl_cache,
            data_dir=self.ctx.data_root,
        )
        return Kernel(
            session=KernelSession(command, workspace, self.ctx.config.limits, time_limits=self.ctx.time_limits),
            workspace=workspace,
        )

    async def _start(self, warm_up: bool) -> Kernel:
        kernel = await self._session()
        session, workspace = kernel.session, kernel.workspace
        started = False
        try:
            await session.__aenter__()
            started = True
            if warm_up and self.warm_up and self.ctx.warm_up_code:
                await session.warm_up(self.ctx.warm_up_code)
        except BaseException:  # also when cancelled: a kernel nobody will use is stopped at once
            if started:
                await session.__aexit__(None, None, None)
            await self._stopped(kernel)
            remove_tree(workspace)
            raise
        return kernel

    async def _stopped(self, kernel: Kernel) -> None:
        """After the session's end: whatever else stopping a kernel takes."""

    async def _release(self, kernel: Kernel) -> None:
        """The submission is done with `kernel`; its orderly shutdown follows in the background."""

    async def _acquire(self) -> Kernel:
        # Warmed up too: the imports are then never part of a cell's time (the time limits are
        # derived from the solution's cells run the same way).
        return await self._start(warm_up=True)

    @asynccontextmanager
    async def kernel(self) -> AsyncIterator[Kernel]:
        """A started kernel in an empty workspace; shut down and removed afterwards."""
        kernel = await self._acquire()
        try:
            yield kernel
        finally:
            await self._release(kernel)
            # Shutting down takes a moment: let it happen while the grader writes the report.
            task = asyncio.ensure_future(self._stop(kernel))
            self._stopping.add(task)
            task.add_done_callback(self._stopped_in_background)

    def _stopped_in_background(self, task: asyncio.Task) -> None:
        """A background shutdown ended. Its exception is retrieved here: asyncio would otherwise
        print "Task exception was never retrieved" with a traceback on the tutor's terminal. What
        went wrong is kept for the log; the submission's report is written already."""
        self._stopping.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            logging.getLogger(__name__).debug("stopping a kernel failed: %r", exc)

    async def _stop(self, kernel: Kernel) -> None:
        try:
            await kernel.session.__aexit__(None, None, None)
            await self._stopped(kernel)
        finally:
            remove_tree(kernel.workspace)  # whatever the notebook left there (deep, read-only)

    async def close(self) -> None:
        if self._stopping:
            await asyncio.gather(*self._stopping, return_exceptions=True)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info) -> None:
        """Kernels are shut down in the background; leaving the block waits for that (an event
        loop that ended first would leave kernels and their folders behind)."""
        await self.close()


class WarmKernels(FreshKernels):
    """Keeps one kernel started and warmed up ahead of need."""

    def __init__(self, ctx: KernelContext, prefix: str = "ws-"):
        super().__init__(ctx, prefix)
        self._next: asyncio.Task | None = None

    def _prestart(self) -> asyncio.Task:
        self._next = asyncio.ensure_future(self._start(warm_up=True))
        return self._next

    async def _acquire(self) -> Kernel:
        task = self._next if self._next is not None else self._prestart()
        self._next = None
        try:
            kernel = await task
        except Exception:
            kernel = await self._start(warm_up=False)  # the warm one failed: start one as usual
        self._prestart()  # the next one boots while this one runs
        return kernel

    async def close(self) -> None:
        """No more work: the kernel warming up for it is stopped, not waited for."""
        if self._next is not None:
            task, self._next = self._next, None
            task.cancel()
            result = (await asyncio.gather(task, return_exceptions=True))[0]
            if isinstance(result, Kernel):  # it was ready before the cancel arrived
                await self._stop(result)
        await super().close()


class ForkKernels(WarmKernels):
    """Kernels forked from a fork server that imported torch once (see `forkserver`). Each has a
    workspace and namespaces of its own. The next kernel is forked ahead, while the current notebook
    runs, but it stays idle (no student code, no files) until the server has reported that every
    process of the kernel before it has ended; it is not dumpable, so the running kernel cannot read,
    trace or enter it. If the running kernel starved it (a fork bomb, say), that is seen once the
    running kernel is gone, and another is forked."""

    warm_up = False  # the server imported all of it before forking

    def __init__(self, ctx: KernelContext, prefix: str = "ws-"):
        super().__init__(ctx, prefix)
        self.server = ForkServer(ctx)
        self._closing = False
        self._fallback = False
        self._retiring: list[str] = []  # tags of kernels released, perhaps not gone yet

    async def _session(self) -> Kernel:
        if self._fallback:
            return await super()._session()
        try:
            await self.server.ensure_started()
        except Exception as exc:  # e.g. a bubblewrap too old for --as-pid-1: go on without it
            # The server's own KernelStartError says so already; anything else (a folder or socket
            # that could not be made) gets said here.
            reason = str(exc) if isinstance(exc, KernelStartError) else f"the fork server did not start: {exc}"
            print(f"warning: {reason}; this worker starts a new kernel per submission instead", file=sys.stderr)
            self._fallback = True
            self.warm_up = True
            return await super()._session()
        workspace = Path(tempfile.mkdtemp(prefix=self.prefix, dir=self.server.jobs))
        runtime = Path(tempfile.mkdtemp(prefix="k-", dir=self.server.sockets))
        tag = self.server.new_tag()
        command = self.server.kernel_command(workspace, runtime, tag)
        session = KernelSession(
            command, workspace, self.ctx.config.limits, runtime_dir=runtime, time_limits=self.ctx.time_limits
        )
        return Kernel(session=session, workspace=workspace, tag=tag)

    async def _stopped(self, kernel: Kernel) -> None:
        if kernel.tag and not self._closing:  # when closing, the server is stopped anyway, with all it started
            await self.server.wait_gone(kernel.tag)

    async def _release(self, kernel: Kernel) -> None:
        """Killed at once (the server then ends every process of it and says so); jupyter_client's
        own clean-up runs later, off the critical path."""
        if kernel.tag:
            await kernel.session.kill_now()
            self._retiring.append(kernel.tag)

    async def _acquire(self) -> Kernel:
        """The kernel forked ahead, handed out only once every process of the kernels before it has
        ended: no other team's code runs in this server's sandbox while this team's files are in."""
        kernel = await super()._acquire()
        while self._retiring:
            await self.server.wait_gone(self._retiring.pop())
        if kernel.tag and not (self.server.forked(kernel.tag) and await kernel.session.alive()):
            # It died while it waited (its server went, or the kernel before starved it): another one.
            await self._stop(kernel)
            kernel = await self._start(warm_up=False)
        return kernel

    async def close(self) -> None:
        self._closing = True
        await super().close()
        await self.server.close()
