"""Sheet 6 of *Neural Networks: Theory and Implementation* (NNTI, Saarland University, winter
2024/25): feed-forward networks and BatchNorm. Exercise 6.6 is a PyTorch notebook on Fashion-MNIST,
checked automatically (checks.py) except its part 3 (plot and discussion); 6.1–6.5 and the bonus 6.7
are graded by tutors, with the 6.3 key and the PDF's hints as evidence (evidence.py).

Everything that makes this Sheet 6 lives in this package; the grader's core reads it through
`SHEET` (a grader.sheet.Sheet) and names none of it.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, PositiveFloat, PositiveInt

from grader import REFERENCE_DIR
from grader.data.staging import probe_batch
from grader.sheet import DatasetSpec, NetworkSpec, ProbeSpec, Sheet
from grader.sheets.sheet6 import standin
from grader.sheets.sheet6.accuracies import recorded_accuracies
from grader.sheets.sheet6.answer import Answer
from grader.sheets.sheet6.checks import CHECKS
from grader.sheets.sheet6.evidence import STUDENT_EVIDENCE, key_6_3, sheet_evidence

# The reference material: the solution and template notebooks, the calibration, the tutors' key (the
# package `reference`, grader.REFERENCE_DIR).

FASHION_MNIST = DatasetSpec(
    title="Fashion-MNIST",
    folder="FashionMNIST",
    image_shape=(28, 28),
    classes=10,
    full_sizes=(60000, 10000),
    generate=standin.generate_standin,
    generator_fingerprint=standin.FINGERPRINT,
    torchvision_class="FashionMNIST",
    served_hint=(
        "the grader serves Fashion-MNIST only through torchvision, "
        "`torchvision.datasets.FashionMNIST('data/', train=..., download=True, transform=...)` (any root "
        "works), or as its raw files in data/FashionMNIST/raw/ (train-images-idx3-ubyte, "
        "train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, also as .gz)"
    ),
    path_words=("fashion",),
)

NETWORKS = (
    NetworkSpec("baseline", "FashionNetwork", "fashion_network"),
    NetworkSpec("batchnorm", "FashionNetworkBatchNorm", "fashion_network_batch_norm"),
)


class Settings(BaseModel):
    """[sheet.settings] of Sheet 6: what the exercise asks for."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    learning_rate: PositiveFloat = 0.001  # SGD's, in optimize (baseline.training_setup)
    epochs: PositiveInt = 5  # per-epoch test accuracies optimize records (baseline.accuracies)


def probe_inputs(data) -> dict:
    """64 test images of the staged data, class-balanced (x: float32 (64, 1, 28, 28), y: int64)."""
    x, y = probe_batch(data, n=64, seed=0)
    return {"x": x, "y": y}


SHEET = Sheet(
    name="sheet6",
    title="Sheet 6",
    exercises={"6.1": 3.75, "6.2": 1.25, "6.3": 0.75, "6.4": 1.5, "6.5": 1.0, "6.6": 1.75, "6.7": 1.5},
    bonus=("6.7",),
    automatic_exercise="6.6",
    manual_part="part 3",
    manual_part_description="plot and discussion",
    manual_part_short="plot and answer",
    checks=CHECKS,
    networks=NETWORKS,
    dataset=FASHION_MNIST,
    # The probe (kernel_plan.py): each network found by class, its forward traced, `test`'s mode, and
    # `optimize`'s first step on a new instance; the set-up step records every `optimize` call.
    probe=ProbeSpec(
        plan=Path(__file__).with_name("kernel_plan.py"),
        answer=Answer,
        inputs=probe_inputs,
        settings={"networks": [[n.key, n.class_name, n.instance_name] for n in NETWORKS]},
        record_methods=("optimize",),
    ),
    reference_dir=REFERENCE_DIR,
    # What the sheet's notebooks import anyway: a fork server imports it once for all its kernels.
    warmup_imports=("numpy", "torch", "torchvision", "matplotlib", "matplotlib.pyplot"),
    content_markers=("FashionNetwork", "FashionNetworkBatchNorm", "fashion_network", "optimize"),
    written_exercises="6.1-6.5, 6.7",
    evidence=sheet_evidence,
    student_evidence=STUDENT_EVIDENCE,
    key_exercise="6.3",
    tutors_key=key_6_3,
    recorded_accuracies=recorded_accuracies,
    settings=Settings,
    accuracy_networks=("baseline", "batchnorm"),  # the range: the best either of the solution's networks reached
    small_data_note=(
        "on data this small the baseline learns little in 5 epochs (plain SGD, lr 0.001): a test "
        "accuracy around 10 % (a few % to 20 %) is expected, and the accuracy check allows for it"
    ),
)
