"""What Sheet 6's probe plan (kernel_plan.py) answers, as the typed model its checks read."""
from __future__ import annotations

from typing import Literal

from grader.observations import AccuracyCandidate, NetworkObservation, Observations, Observed, Training


class TestMode(Observed):
    """What `test` did to a copy of the network in train mode."""
    bn_calls: int                        # BatchNorm layers called
    bn_training_calls: int               # of which in training mode
    buffers_changed: list[str]           # buffers (running statistics) that changed


class Network(NetworkObservation):
    optimize_cell: int | None = None     # In [n] of its latest optimize call, when chosen by that
    printed: str = ""                    # what its latest optimize call printed
    accuracy_candidates: list[AccuracyCandidate] = []
    training: Training | None = None     # a new instance's optimize, stopped after its first step
    test_mode: TestMode | None = None
    test_on: Literal["trained", "fresh", ""] = ""   # test_mode observed on the trained or a new instance


class Answer(Observed):
    networks: dict[str, Network] = {}


def network(obs: Observations[Answer], key: str) -> Network | None:
    """The network `key`, with the probe's errors about it."""
    net = obs.answer.networks.get(key) if obs.answer is not None else None
    return None if net is None else net.model_copy(update={"errors": obs.errors_of(key)})
