"""What Sheet 5's probe plan (kernel_plan.py) answers, as the typed model its checks read."""

from __future__ import annotations

from typing import Any

from grader.observations import Array, InstanceSearch, NetworkObservation, Observed, Op, Training


class DatasetItem(Observed):
    """`PointsDataset(points, labels)[index]`: what came back."""

    index: int
    type: str  # the item's type (tuple, list, Tensor, ...)
    parts: int | None = None  # its length, when a tuple or list
    point_type: str = ""
    point: Array | None = None  # the first part's values, flattened
    label: float | None = None  # the second part, when a single number
    label_type: str = ""


class DatasetObservation(Observed):
    class_found: bool
    points: int = 0  # how many points the data set was made of
    length: int | None = None  # len() of it
    items: list[DatasetItem] = []


class Search(InstanceSearch):
    unrecorded: list[int] = []  # In [n] of cells calling train where no call was recorded (it is defined there)
    config: dict[str, Any] = {}  # the plain values of the config the trained FFNN's call was given


class Network(NetworkObservation):
    trained_cell: int | None = None  # In [n] of the call of train that made (or returned) the trained FFNN
    search: Search | None = None


class TrainingRun(Training):
    """train(config, points, labels) with the probe's learning rate, stopped after two steps."""

    config: dict[str, Any] = {}  # the config it was given (its plain values)
    ops: list[Op] | None = None  # what the network made by train ran, in train mode


class Defined(Observed):
    """The classes and functions the notebook's cells define (by name; at most 10 of each)."""

    modules: list[str] = []  # nn.Module subclasses
    datasets: list[str] = []  # Dataset subclasses
    functions: list[str] = []


class Answer(Observed):
    defined: Defined = Defined()
    dataset: DatasetObservation | None = None
    network: Network | None = None
    function_found: bool = False
    training: TrainingRun | None = None
