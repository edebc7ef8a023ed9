"""A slot's worker process: how it ended is read from the process itself, not the executor's insides."""

from __future__ import annotations

import functools
import os

import pytest

from grader.engine.slots import BrokenProcessPool, Slot, spawn_executor


def _slot() -> Slot:
    return Slot(functools.partial(spawn_executor, None, ()))


def test_a_dead_workers_exit_status_is_reported_and_the_slot_gets_a_new_worker():
    slot = _slot()
    try:
        first = slot.submit(os.getpid).result(timeout=60)
        with pytest.raises(BrokenProcessPool):
            slot.submit(os._exit, 3).result(timeout=60)
        assert slot.death() == "it exited with status 3"
        slot.replace()
        second = slot.submit(os.getpid).result(timeout=60)
        assert second != first
    finally:
        slot.kill()


def test_kill_stops_the_worker_it_started():
    slot = _slot()
    pid = slot.submit(os.getpid).result(timeout=60)
    slot.kill()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
