"""Sheet 5 of *Neural Networks: Theory and Implementation* (NNTI, Saarland University, winter
2024/25): feed-forward neural networks. Exercise 5.4 is a PyTorch notebook that classifies points
of a 2-D spiral of three classes, which the notebook makes itself (seeded; nothing to download):
its parts 5.4.1 (a Dataset), 5.4.2 (the network, with a softmax output) and 5.4.3 (the training
step) are checked automatically (checks.py), its part 4 (experiments with two other configs, and
the answers) and the written exercises 5.1–5.3 are graded by tutors.

How sheet 5 was added to the grader, as an example for the next sheet: docs/architecture.md, "How sheet 5 was added".
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import numpy as np
from pydantic import BaseModel, ConfigDict

from grader.observations import Observations
from grader.sheet import NetworkSpec, ProbeSpec, Sheet
from grader.sheets.sheet5.answer import Answer
from grader.sheets.sheet5.checks import (
    CHECKS,
    CONFIG,
    DATASET,
    DATASET_POINTS,
    FUNCTION,
    NETWORK,
    PROBE_DIMS,
    PROBE_LEARNING_RATE,
    TRAINED_NAME,
    trained_accuracy,
)

FOLDER = Path(__file__).resolve().parent
_ANSWER = re.compile(r"your\s+answer\s*:?", re.IGNORECASE)
# What the course's notebook uses: three classes of 100 points, seeded with 352.
SPIRAL_SEED, POINTS_PER_CLASS, CLASSES = 352, 100, 3


def spiral(
    seed: int = SPIRAL_SEED, per_class: int = POINTS_PER_CLASS, classes: int = CLASSES
) -> tuple[np.ndarray, np.ndarray]:
    """The notebook's data: class j has radii from 0 to 1 and angles from 4j to 4(j + 1) plus
    Gaussian noise of 0.2, drawn with numpy's global generator seeded with `seed`, as the notebook
    does (the same points, in the same order): float64 points (N, 2), uint8 labels (N,)."""
    state = np.random.get_state()
    try:
        np.random.seed(seed)
        data = np.zeros((per_class * classes, 2))
        labels = np.zeros(per_class * classes, dtype="uint8")
        for j in range(classes):
            index = range(per_class * j, per_class * (j + 1))
            radius = np.linspace(0.0, 1, per_class)
            angle = np.linspace(j * 4, (j + 1) * 4, per_class) + np.random.randn(per_class) * 0.2
            data[index] = np.c_[radius * np.sin(angle), radius * np.cos(angle)]
            labels[index] = j
    finally:
        np.random.set_state(state)
    return data, labels


def probe_inputs(data) -> dict:
    """The spiral's points and labels (the sheet stages no data set: `data` is None)."""
    x, y = spiral()
    return {"x": x, "y": y}


def recorded_accuracies(observations: Observations[Answer], settings) -> dict[str, list[float]]:
    """The trained FFNN's accuracy on the spiral, recomputed from its weights (report.accuracies)."""
    if observations.status != "ok":
        return {}
    accuracy, _ = trained_accuracy(observations)
    return {} if accuracy is None else {"ffnn": [round(accuracy, 6)]}


def notebook_evidence(nb: nbformat.NotebookNode | None) -> list[str]:
    """Part 4 of 5.4: how many of the two answer cells are filled in, and whether plots were drawn."""
    if nb is None:
        return ["part 4: no notebook ran"]
    plots = sum(
        1
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if "image/png" in out.get("data", {})
    )
    answers = [cell.source for cell in nb.cells if cell.cell_type == "markdown" and _ANSWER.search(cell.source)]
    filled = sum(1 for a in answers if len(_ANSWER.sub("", a).strip(" *_#:\n")) >= 20)
    written = len(answers)
    return [
        f"part 4: {plots} plot(s) in the executed notebook",
        f'part 4: {filled} of {written} "Your answer" cell(s) filled in'
        if written
        else 'part 4: no "Your answer" cell found',
    ]


class Settings(BaseModel):
    """Sheet 5 has no settings of its own ([sheet.settings] stays empty)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


SHEET = Sheet(
    name="sheet5",
    title="Sheet 5",
    exercises={"5.1": 3.0, "5.2": 3.0, "5.3": 1.0, "5.4": 3.0},
    bonus=(),
    automatic_exercise="5.4",
    manual_part="part 4",
    manual_part_description="the experiments with config_1 and config_2, and their answers",
    manual_part_short="experiments and answers",
    checks=CHECKS,
    networks=(NetworkSpec("ffnn", NETWORK, TRAINED_NAME),),
    dataset=None,
    reference_dir=FOLDER / "reference",
    # The probe (kernel_plan.py): the data set's items, a new FFNN(2, 16, 3), the FFNN train(config, ...)
    # trained in the notebook (the set-up step records the calls of `train` and the FFNNs each made),
    # and two steps of train(config, ...) at a learning rate of the probe's.
    probe=ProbeSpec(
        plan=FOLDER / "kernel_plan.py",
        answer=Answer,
        inputs=probe_inputs,
        settings={
            "dataset_class": DATASET,
            "network": [NETWORK, TRAINED_NAME],
            "function": FUNCTION,
            "probe_dims": list(PROBE_DIMS),
            "dataset_points": DATASET_POINTS,
            "probe_learning_rate": PROBE_LEARNING_RATE,
            "config": CONFIG,
        },
        record_functions=(FUNCTION,),
    ),
    warmup_imports=("numpy", "torch", "matplotlib", "matplotlib.pyplot"),
    content_markers=(DATASET, NETWORK, "config_1", "config_2", "num_epochs"),
    written_exercises="5.1-5.3",
    evidence=lambda pdf_text, notebook: {"5.4": notebook_evidence(notebook)},
    student_evidence=("5.4",),
    recorded_accuracies=recorded_accuracies,
    settings=Settings,
    accuracy_networks=("ffnn",),
)
