"""Where kernels come from: started on demand, or started ahead ("warm") while the current
notebook runs, so that a notebook never waits for a kernel to boot and import torch.

A warm kernel is started in its own fresh, empty workspace folder, with the same command, limits
and sandbox as any other; the submission is unpacked into that folder once it is known. Start-up
imports only what every notebook of the sheet imports.
"""
from __future__ import annotations

import asyncio
import shutil
import tempfile
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator

from grader.run.execute import KernelSession
from grader.run.sandbox import kernel_command

# What the sheet's notebooks import anyway; done before the notebook is known.
WARM_UP = """\
import numpy, torch, torchvision, matplotlib
import matplotlib.pyplot
"""


@dataclass
class Kernel:
    session: KernelSession
    workspace: Path


class FreshKernels:
    """A new kernel per submission, started when asked for."""

    def __init__(self, ctx, prefix: str = "ws-"):
        self.ctx = ctx
        self.prefix = prefix
        self._stopping: set[asyncio.Task] = set()

    async def _start(self, warm_up: bool) -> Kernel:
        workspace = Path(tempfile.mkdtemp(prefix=self.prefix, dir=self.ctx.work_dir))
        command = kernel_command(self.ctx.config, workspace, threads=self.ctx.threads, mpl_cache=self.ctx.mpl_cache,
                                 data_dir=self.ctx.data.root)
        session = KernelSession(command, workspace, self.ctx.config.limits)
        started = False
        try:
            await session.__aenter__()
            started = True
            if warm_up:
                await session.warm_up(WARM_UP)
        except BaseException:   # also when cancelled: a kernel nobody will use is stopped at once
            if started:
                await session.__aexit__(None, None, None)
            shutil.rmtree(workspace, ignore_errors=True)
            raise
        return Kernel(session=session, workspace=workspace)

    async def _acquire(self) -> Kernel:
        return await self._start(warm_up=False)

    @asynccontextmanager
    async def kernel(self) -> AsyncIterator[Kernel]:
        """A started kernel in an empty workspace; shut down and removed afterwards."""
        kernel = await self._acquire()
        try:
            yield kernel
        finally:
            # Shutting down takes a moment: let it happen while the grader writes the report.
            task = asyncio.ensure_future(self._stop(kernel))
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)

    @staticmethod
    async def _stop(kernel: Kernel) -> None:
        try:
            await kernel.session.__aexit__(None, None, None)
        finally:
            shutil.rmtree(kernel.workspace, ignore_errors=True)

    async def close(self) -> None:
        if self._stopping:
            await asyncio.gather(*self._stopping, return_exceptions=True)


class WarmKernels(FreshKernels):
    """Keeps one kernel started and warmed up ahead of need."""

    def __init__(self, ctx, prefix: str = "ws-"):
        super().__init__(ctx, prefix)
        self._next: asyncio.Task | None = None

    def _prestart(self) -> None:
        self._next = asyncio.ensure_future(self._start(warm_up=True))

    async def _acquire(self) -> Kernel:
        if self._next is None:
            self._prestart()
        task, self._next = self._next, None
        try:
            kernel = await task
        except Exception:
            kernel = await self._start(warm_up=False)   # the warm one failed: start one as usual
        self._prestart()                                 # the next one boots while this one runs
        return kernel

    async def close(self) -> None:
        """No more work: the kernel warming up for it is stopped, not waited for."""
        if self._next is not None:
            task, self._next = self._next, None
            task.cancel()
            result = (await asyncio.gather(task, return_exceptions=True))[0]
            if isinstance(result, Kernel):   # it was ready before the cancel arrived
                await self._stop(result)
        await super().close()
