"""What Sheet 6's probe plan (kernel_plan.py) answers, as the typed model its checks read."""

from __future__ import annotations

from typing import Literal

from grader.observations import AccuracyCandidate, NetworkObservation, Observations, Observed, Training


class TestMode(Observed):
    """What `test` did to a copy of the network in train mode."""

    bn_calls: int  # BatchNorm layers called
    bn_training_calls: int  # of which in training mode
    buffers_changed: list[str]  # buffers (running statistics) that changed
    called_as: str = "test(test_loader)"  # or "test(loader=test_loader)", "test()": as the notebook calls it
    loaders_swapped: list[str] = []  # for test(): the DataLoaders it reads, pointed at the probe's for the call


class TemplateFacts(Observed):
    """What of a class is still the sheet's stub: read from its methods' source and a new instance."""

    stubs: dict[str, str] = {}  # method → "NotImplemented" | "NotImplementedError" | "empty" (does nothing)
    params: dict[str, int] = {}  # method → positional parameters after self (-1: *args)
    init_calls_super: bool | None = None  # nn.Module.__init__ ran (None: cannot be told)
    optimize_call: str = ""  # the notebook's first `.optimize(...)` call, as written
    optimize_call_args: int | None = None  # its positional arguments


class Network(NetworkObservation):
    optimize_cell: int | None = None  # In [n] of its latest optimize call, when chosen by that
    printed: str = ""  # what its latest optimize call printed
    accuracy_candidates: list[AccuracyCandidate] = []
    training: Training | None = None  # a new instance's optimize, stopped after its first step
    test_mode: TestMode | None = None
    test_on: Literal["trained", "fresh", ""] = ""  # test_mode observed on the trained or a new instance
    template: TemplateFacts | None = None  # what of the class is still the template's stub


class Answer(Observed):
    networks: dict[str, Network] = {}


def network(obs: Observations[Answer], key: str) -> Network | None:
    """The network `key`, with the probe's errors about it."""
    net = obs.answer.networks.get(key) if obs.answer is not None else None
    return None if net is None else net.model_copy(update={"errors": [*net.errors, *obs.errors_of(key)]})
