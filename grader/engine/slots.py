"""Worker processes that a batch survives: one single-worker executor per slot.

With one `ProcessPoolExecutor` for all workers, the death of one worker (the out-of-memory killer,
say) breaks the whole pool: the job on the healthy worker fails too, and every later job with it.
Here each slot has an executor of its own, so a broken executor names exactly the one job it ran,
and the slot gets a new worker for the next. Workers die with the grader (a parent-death signal on
Linux), so a grader killed with kill -9 leaves no worker, fork server or kernel running.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from typing import Any

__all__ = ["BrokenProcessPool", "Slot", "die_with_parent"]


def die_with_parent(parent_pid: int) -> None:
    """In a child process: be killed when the process that started it ends, however it ends
    (Linux: PR_SET_PDEATHSIG; elsewhere nothing). A parent that is gone already ends us now."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except Exception:  # without it, a killed grader leaves this worker running
            pass
    if os.getppid() != parent_pid:
        os._exit(1)


def exit_description(code: int | None) -> str:
    """How a worker process ended, for a message."""
    if code is None:
        return "it ended without an exit status"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = ", as the out-of-memory killer does" if -code == getattr(signal, "SIGKILL", 9) else ""
        return f"killed by {name}{hint}"
    return f"it exited with status {code}"


class Slot:
    """One worker at a time, made by `make` (a ProcessPoolExecutor with max_workers=1) when needed."""

    def __init__(self, make: Callable[[Callable], ProcessPoolExecutor], recycle_after: int | None = None):
        """`make(on_process)` makes the executor; it calls `on_process` with each worker process it
        starts (`spawn_executor` does), so the slot knows its workers without the executor's insides."""
        self._make = make
        self._recycle_after = recycle_after
        self.executor: ProcessPoolExecutor | None = None
        self.jobs_run = 0
        self._processes: list = []  # the current executor's worker processes
        self.retired: list[tuple[threading.Thread, ProcessPoolExecutor, list]] = []

    def submit(self, fn, *args) -> Future:
        """Run fn(*args) in this slot's worker; a broken or worn-out worker is replaced first."""
        if self.executor is not None and self._recycle_after and self.jobs_run >= self._recycle_after:
            self.retire()
        for attempt in (1, 2):
            if self.executor is None:
                self._processes = []
                self.executor = self._make(self._processes.append)
                self.jobs_run = 0
            try:
                future = self.executor.submit(fn, *args)
                break
            except (BrokenProcessPool, RuntimeError):  # the idle worker died: a new one
                self.replace()
                if attempt == 2:
                    raise
        self.jobs_run += 1
        return future

    def death(self) -> str:
        """How the slot's worker ended (after a BrokenProcessPool)."""
        for process in self._processes:
            process.join(5)
            if process.exitcode is not None:
                return exit_description(process.exitcode)
        return exit_description(None)

    def replace(self) -> None:
        """The executor is broken: drop it; the next submit makes a new one."""
        executor, self.executor = self.executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    def retire(self) -> None:
        """Let the worker finish and stop in the background (its kernels stop meanwhile)."""
        executor, self.executor = self.executor, None
        if executor is not None:
            stopping = threading.Thread(
                target=executor.shutdown, kwargs={"wait": True, "cancel_futures": True}, daemon=True
            )
            stopping.start()
            self.retired.append((stopping, executor, self._processes))
            self._processes = []

    def kill(self) -> None:
        """Stop the worker now (SIGKILL): the grader itself is stopping. Its kernels die with it."""
        executor, self.executor = self.executor, None
        if executor is not None:
            _kill(executor, self._processes)
        for _, retired, processes in self.retired:
            _kill(retired, processes)

    def join(self, timeout: float = 300) -> None:
        """Wait for retired workers to stop; one that takes longer than `timeout` is killed."""
        for stopping, executor, processes in self.retired:
            stopping.join(timeout)
            if stopping.is_alive():
                _kill(executor, processes)


def _kill(executor: ProcessPoolExecutor, processes: list) -> None:
    for process in processes:
        try:
            process.kill()
        except Exception:  # gone already
            pass
    for process in processes:
        process.join(10)
    executor.shutdown(wait=False, cancel_futures=True)


class _Recording:
    """A multiprocessing context that hands every Process it makes to `on_process`: how a slot
    knows its worker (to read its exit code, to kill it) without the executor's private fields."""

    def __init__(self, base: Any, on_process: Callable) -> None:
        self._base = base
        self._on_process = on_process

    def __getattr__(self, name: str):
        return getattr(self._base, name)

    def Process(self, *args, **kwargs):  # multiprocessing's name
        process = self._base.Process(*args, **kwargs)
        self._on_process(process)
        return process


def spawn_executor(initializer, initargs, on_process: Callable = lambda process: None) -> ProcessPoolExecutor:
    """One worker, started with spawn; `on_process` gets the worker process (see `Slot`)."""
    context: Any = _Recording(get_context("spawn"), on_process)
    return ProcessPoolExecutor(max_workers=1, mp_context=context, initializer=initializer, initargs=initargs)
