"""A made-up sheet for the tests: it proves that the core grades any sheet, not only Sheet 6.

One exercise graded by hand (1.1), one with two automatic checks (1.2: a tiny network, `TinyNet`,
Linear(16, 8), ReLU, Linear(8, 3), on 4x4 images of three classes) and a part graded by hand. Its
data set ("Toy digits") is generated; the notebooks read its IDX files themselves, without
torchvision. Everything of this sheet is in this file; grading.toml names it with
`[sheet] name = "toy"` and `path = "<the folder holding this one>"`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from grader.checks.compare import Unreproducible, close, describe, layers_from_ops, max_difference, structure
from grader.data.staging import probe_batch
from grader.observations import NetworkObservation, Observed
from grader.sheet import CheckRegistry, DatasetSpec, NetworkSpec, ProbeSpec, Sheet, Verdict
from reference.numpy_ref import OPS, run_layers

EXPECTED = [("linear", 16, 8), ("relu",), ("linear", 8, 3)]
CHECKS = CheckRegistry(exercise="1.2")


class Answer(Observed):
    """What kernel_plan.py answers: TinyNet, a new instance and the only trained one found."""

    networks: dict[str, NetworkObservation] = {}


def _model(obs):
    net = obs.answer.networks.get("tiny")
    if net is None or not net.class_found:
        return None, Verdict("fail", "`class TinyNet(nn.Module)` is not defined after the notebook ran.")
    model = net.trained or net.fresh
    if model is None:
        return None, Verdict("error", "TinyNet's forward could not be observed.")
    return model, None


@CHECKS.check("tiny.architecture", points=0.25, description="`TinyNet()` runs Linear(16, 8), ReLU, Linear(8, 3)")
def check_architecture(obs, config, accuracy_range=None) -> Verdict:
    model, problem = _model(obs)
    if problem:
        return problem
    found = structure(model.ops_eval)
    if found == EXPECTED:
        return Verdict("pass", f"TinyNet() runs {describe(found)}.")
    return Verdict("fail", f"TinyNet() should run {describe(EXPECTED)}; its forward runs {describe(found)}.")


@CHECKS.check(
    "tiny.forward",
    points=0.25,
    description="its output on a probe batch equals the numpy reference run on its own weights",
)
def check_forward(obs, config, accuracy_range=None) -> Verdict:
    model, problem = _model(obs)
    if problem:
        return problem
    x = obs.inputs["x"] if model.input_kind == "image" else obs.inputs["x"].reshape(len(obs.inputs["x"]), -1)
    try:
        expected, _ = run_layers(x, layers_from_ops(model.ops_eval, model, reference_ops=OPS), train=False)
    except (Unreproducible, ValueError) as exc:
        return Verdict("needs_review", f"TinyNet's forward could not be recomputed: {exc}.")
    tol = config.tolerance
    if not close(model.out_eval, expected, tol.atol, tol.rtol):
        return Verdict(
            "fail",
            f"TinyNet's output differs from its layers' (largest difference "
            f"{max_difference(model.out_eval, expected):.3g}).",
        )
    return Verdict("pass", "TinyNet's forward equals the reference on its own weights.")


def generate(n_train: int, n_test: int, seed: int):
    """Class k lights up row k of a 4x4 image (three classes), with noise."""
    rng = np.random.default_rng([seed, 7])

    def part(n):
        labels = (np.arange(n) % 3).astype(np.uint8)
        images = rng.integers(0, 60, size=(n, 4, 4)).astype(np.uint8)
        images[np.arange(n), labels, :] = 200
        return images, labels

    train, test = part(n_train), part(n_test)
    return train[0], train[1], test[0], test[1]


TOY_DIGITS = DatasetSpec(
    title="Toy digits",
    folder="ToyDigits",
    image_shape=(4, 4),
    classes=3,
    full_sizes=(300, 120),
    generate=generate,
    generator_fingerprint=["toy-digits-1"],
    served_hint="the grader serves the toy digits as IDX files in data/ToyDigits/raw/",
    path_words=("toy",),
)

SHEET = Sheet(
    name="toy",
    title="Toy sheet",
    exercises={"1.1": 1.0, "1.2": 1.0},
    bonus=(),
    automatic_exercise="1.2",
    manual_part="part b",
    manual_part_description="the discussion",
    manual_part_short="discussion",
    checks=CHECKS,
    networks=(NetworkSpec("tiny", "TinyNet", "tiny_net"),),
    dataset=TOY_DIGITS,
    probe=ProbeSpec(
        plan=Path(__file__).with_name("kernel_plan.py"),
        answer=Answer,
        inputs=lambda data: dict(zip(("x", "y"), probe_batch(data, n=32))),
    ),
    reference_dir=Path(__file__).resolve().parent / "reference",  # none: no solution, no template
    warmup_imports=("numpy", "torch"),
    content_markers=("TinyNet", "tiny_net"),
    written_exercises="1.1",
)
