"""What the probe saw in a student's kernel: the typed model every check reads.

After the notebook ran, the probe asks the live kernel about the objects the sheet's exercise asks
for (`grader.run.probe`, with the sheet's plan and the kernel-side library `child/probe_kernel.py`).
The kernel answers with plain JSON; arrays travel beside it as `.npy` and are named in the JSON. The
grader checks that answer (this run's token, arrays of numbers of bounded size, read with
`allow_pickle=False`) and validates it into these models, so a check reads typed values, never raw
JSON, and nothing the kernel computed is taken as a verdict.

What a check gets (`Observations`):

- `status` ("ok", or why there is nothing: "not_run", "error", "timeout", "kernel_died") and `message`;
- `answer`: the sheet's own model of what its plan observed (a subclass of `Observed`, declared as
  `ProbeSpec.answer`), built from the parts below;
- `errors`: steps of the probe that raised (`ProbeError`: which step, the error, where in the
  notebook), and `errors_of(prefix)` for those about one object;
- `inputs`: the arrays the probe fed the student's code (the sheet's `ProbeSpec.inputs`), as the
  grader made them, for the reference to run on;
- `setup_ran`: whether the kernel's set-up step ran before the notebook (it records the calls that
  train the sheet's objects).

The parts a sheet's answer is built from:

- `ModelObservation`: one nn.Module, observed on a copy: its parameters and buffers (arrays by
  name), its modules, the torch operations its forward ran in eval and train mode (`Op`, following
  the data, with the parameters each used), and its outputs on the probe's input;
- `NetworkObservation`: a class the sheet asks for: whether it is defined, a new instance
  (`fresh`), the trained instance (`trained`) and how it was found (`InstanceSearch`);
- `Training` and `OptimizerStep`: what a call that trains did: the optimizer's steps (type,
  learning rate, ...; on request the parameters before and after each step, the gradients, the
  batch the model saw and the loss's targets, `LossCall`), and which loss functions it called;
- `AccuracyCandidate`: numbers the notebook kept for an instance (returned, as an attribute, in a
  global, or printed).

Arrays are float64 numpy arrays; fields typed `Array` hold them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Generic, Literal, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationInfo

ProbeStatus = Literal["ok", "error", "timeout", "kernel_died", "not_run"]


class ArrayMissing(Exception):
    """An answer names an array the kernel did not send (not a ValueError: pydantic passes it on)."""


def _array(value: Any, info: ValidationInfo) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    arrays = (info.context or {}).get("arrays") if info is not None else None
    if isinstance(value, str) and arrays is not None:
        if value not in arrays:
            raise ArrayMissing(f"array {value!r} is missing")
        return arrays[value]
    raise ValueError("expected the name of an array the probe sent")


# A float64 numpy array; in the kernel's answer, the name of one of the arrays sent beside it.
Array = Annotated[np.ndarray, PlainValidator(_array)]


class Observed(BaseModel):
    """A part of the probe's answer: unknown fields are ignored (the kernel may say more), values
    are frozen once read."""

    model_config = ConfigDict(extra="ignore", frozen=True, arbitrary_types_allowed=True, protected_namespaces=())


class Op(Observed):
    """One torch operation on the data path of a forward call, by the reference's name (`op`: linear,
    relu, batch_norm, softmax, reshape, identity, ...; anything else by torch's own name)."""

    op: str
    torch: str = ""  # torch's name of the function (relu_, view, ...)
    out_shape: list[int] = []
    weight: str | None = None  # linear and batch_norm: the parameters used, by name
    bias: str | None = None
    in_features: int | None = None  # linear
    out_features: int | None = None
    running_mean: str | None = None  # batch_norm: buffers by name, and its arguments
    running_var: str | None = None
    training: bool | None = None
    momentum: float | None = None
    eps: float | None = None
    num_features: int | None = None
    dim: int | None = None  # softmax and log_softmax
    params: list[str] = []  # any other operation: the parameters it used


class ModuleCall(Observed):
    module: str
    type: str


class ModuleInfo(Observed):
    name: str
    type: str
    kind: str = ""  # the torch.nn class it is or derives from ("Module": the team's own; "": not known)


class ModelObservation(Observed):
    """One instance of an nn.Module as the probe saw it, on a copy (nothing the student trained changes)."""

    class_name: str = Field("", alias="class")
    input_kind: str = Field("", alias="input")  # which of the plan's inputs its forward took
    modules: list[ModuleInfo] = []
    ops_eval: list[Op] = []
    ops_train: list[Op] = []
    calls_eval: list[ModuleCall] = []
    calls_train: list[ModuleCall] = []
    params: dict[str, Array] = {}
    buffers: dict[str, Array] = {}
    buffers_after_train: dict[str, Array] = {}  # after one forward in train mode
    out_eval: Array
    out_train: Array
    model_config = ConfigDict(
        extra="ignore", frozen=True, arbitrary_types_allowed=True, populate_by_name=True, protected_namespaces=()
    )


class LossCall(Observed):
    """A watched (loss) function called before an optimizer step."""

    name: str
    on_output: bool = False  # its first argument was the model's output itself
    target: Array | None = None
    options: dict[str, Any] = {}  # its plain keyword arguments (reduction, ...)


class OptimizerStep(Observed):
    optimizer: str
    lr: float
    momentum: float = 0.0
    weight_decay: float = 0.0
    own_params: int = 0  # parameter tensors of the model among the optimizer's
    params: int = 0  # parameter tensors the optimizer updates
    # With snapshots: the model's parameters before and after the step, their gradients, the input
    # of the model's last forward before the step, and the losses computed since the step before.
    before: dict[str, Array] = {}
    after: dict[str, Array] = {}
    grads: dict[str, Array] = {}
    input: Array | None = None
    losses: list[LossCall] = []


class Training(Observed):
    """What a call that trains did until the probe stopped it."""

    steps: list[OptimizerStep]
    losses: list[str]  # the watched (loss) functions called, in order
    loss_modules: list[str] = []  # loss modules kept on the model
    model_params: int = 0  # the model's parameter tensors


class AccuracyCandidate(Observed):
    source: Literal["return", "attribute", "global", "printed"]
    name: str
    values: list[float]
    where: str = ""  # e.g. "returned by model.fit in In [5]"


class InstanceSearch(Observed):
    """Where the probe looked for the trained instance of a class, for the message when none is found."""

    canonical: str  # the name the sheet's template gives the instance
    canonical_holds: str = "nothing"  # what that name holds: the class's name, another type, "nothing"
    calls: int = 0  # recorded calls of what trains the class
    completed: int = 0  # of which returned
    found: list[str] = []  # instances in globals and containers (paths such as `models[0]`)


class ProbeError(Observed):
    step: str  # "<about what>: <the step>"
    error: str
    where: str = ""  # where in the notebook it was raised ("line 3 of <cell>")


class NetworkObservation(Observed):
    """A class the sheet asks for, and its instances."""

    class_found: bool
    instance_found: bool = False  # a trained instance was found (see `chosen_by`)
    instance_is_class: bool = False
    instance_name: str = ""  # where it is kept (`model`, `models[0]`), "" when in no global
    chosen_by: str = ""  # "name" | "called" (trained last) | "scan" (the only one) | ...
    search: InstanceSearch | None = None
    fresh: ModelObservation | None = None
    trained: ModelObservation | None = None
    errors: list[ProbeError] = []  # the probe's errors about it (Observations.errors_of)


A = TypeVar("A", bound=Observed)


@dataclass(frozen=True)
class Observations(Generic[A]):
    """What one probe run gives the checks (see the module's docstring)."""

    status: ProbeStatus
    message: str = ""
    answer: A | None = None
    errors: list[ProbeError] = field(default_factory=list)
    inputs: dict[str, np.ndarray] = field(default_factory=dict)
    setup_ran: bool = True

    def errors_of(self, prefix: str) -> list[ProbeError]:
        """The errors of the steps about one object (steps named "<prefix>: ...")."""
        return [e for e in self.errors if e.step.startswith(f"{prefix}:")]


def not_run(message: str) -> Observations:
    return Observations(status="not_run", message=message)
