"""Sheet 5 (Exercise 5.4) without a kernel: its numpy reference against torch's autograd, and its
probe plan and checks on the notebooks of tools/make_sheet5.py, run in-process (their cells exec'd
into a namespace, with the set-up step's recording of `train`), as the kernel would hold them.

Training here is cut to a few epochs: the steps are what the training check recomputes; the
accuracy the notebook's own 1,000 epochs reach is graded in real kernels (test_sheet5_kernels.py)."""

from __future__ import annotations

import json
import sys

import matplotlib
import numpy as np
import pytest
import torch
import torch.nn as nn
from conftest import ROOT, sheet_config

from grader.checks.framework import run_checks
from grader.child import probe_kernel as k
from grader.child import setup_kernel as setup
from grader.run.probe import parse_payloads
from grader.sheet import AccuracyRange
from grader.sheets.sheet5 import SHEET, kernel_plan, spiral
from grader.sheets.sheet5.answer import Answer
from grader.sheets.sheet5.numpy_ref import accuracy, forward, sgd_step

matplotlib.use("Agg")
sys.path.insert(0, str(ROOT / "tools"))
import make_sheet5

CONFIG = sheet_config("sheet5")
EXPECTED = json.loads((ROOT / "grader" / "sheets" / "sheet5" / "submissions" / "expected.json").read_text())[
    "submissions"
]
EXAMPLES = {ex.zip_name: ex for ex in make_sheet5.EXAMPLES}


# ---- the reference ----------------------------------------------------------------------------


class Net(nn.Module):
    def __init__(self, ends):
        super().__init__()
        self.a, self.b = nn.Linear(2, 7), nn.Linear(7, 3)
        self.ends = ends

    def forward(self, x):
        x = self.b(torch.relu(self.a(x)))
        for end in self.ends:
            x = torch.softmax(x, dim=1) if end == "softmax" else torch.log_softmax(x, dim=1)
        return x


OPS = [
    {"op": "linear", "weight": "a.weight", "bias": "a.bias"},
    {"op": "relu"},
    {"op": "linear", "weight": "b.weight", "bias": "b.bias"},
]


@pytest.mark.parametrize(
    "ends, loss",
    [
        ((), "cross_entropy"),
        (("softmax",), "cross_entropy"),
        (("softmax", "softmax"), "cross_entropy"),
        (("log_softmax",), "nll_loss"),
    ],
)
def test_the_reference_step_is_torchs_sgd_step(ends, loss):
    torch.manual_seed(1)
    net = Net(ends)
    x, y = torch.randn(40, 2), torch.randint(0, 3, (40,))
    params = {n: p.detach().double().numpy().copy() for n, p in net.named_parameters()}
    ops = OPS + [{"op": end} for end in ends]
    output = net(x)
    assert np.allclose(forward(ops, params, x.numpy())[0], output.detach().numpy(), atol=1e-6)
    getattr(nn.functional, loss)(output, y).backward()
    torch.optim.SGD(net.parameters(), lr=0.37).step()
    grads, after = sgd_step(ops, params, x.numpy(), y.numpy(), loss, 0.37)
    for name, p in net.named_parameters():
        assert np.allclose(grads[name], p.grad.double().numpy(), atol=1e-6)
        assert np.allclose(after[name], p.detach().double().numpy(), atol=1e-6)
    with torch.no_grad():
        assert accuracy(ops, after, x.numpy(), y.numpy()) == pytest.approx(
            (net(x).argmax(1) == y).float().mean().item()
        )


def test_the_spiral_is_the_notebooks_data():
    data, labels = spiral()
    ns = {}
    exec(make_sheet5.IMPORTS + "\n" + make_sheet5.DATA.replace("plt.show()", "plt.close()"), ns)
    assert np.array_equal(ns["data"], data) and np.array_equal(ns["labels"], labels)
    assert data.shape == (300, 2) and data.dtype == np.float64 and labels.dtype == np.uint8
    assert np.bincount(labels).tolist() == [100, 100, 100]


# ---- plan and checks, in-process ---------------------------------------------------------------


def notebook_namespace(
    parts, epochs: int = 20, experiments: bool = False, merge: bool = False
) -> tuple[dict, setup.Recorder]:
    """The notebook's code cells run into a namespace, as the kernel would (with fewer epochs): the
    set-up step records `train` (after each cell) and the FFNNs made during its calls."""
    recorder = setup.Recorder()
    ns: dict = {"__name__": "__main__"}
    cells = [c.source for c in make_sheet5.build_notebook(parts).cells if c.cell_type == "code"]
    if not experiments:
        cells = [c for c in cells if "config_1" not in c and "config_2" not in c]
    if merge:  # train defined and called in one cell: no call is recorded
        at = next(i for i, c in enumerate(cells) if c.startswith("def plot_decision_boundary"))
        cells[at : at + 2] = [cells[at] + "\n\n" + cells[at + 1]]
    for source in cells:
        try:  # as in a kernel, a cell that raises does not stop the next
            exec(
                source.replace('"num_epochs": 1000', f'"num_epochs": {epochs}').replace("plt.show()", "plt.close()"), ns
            )
        except Exception:
            pass
        if isinstance(ns.get("FFNN"), type):
            setup.record_made(recorder, ns["FFNN"])
        setup.record_function(recorder, ns, "train")
    return ns, recorder


def observe(ns, recorder):
    recorder.paused = True
    probe = k.Probe(
        ns, settings=SHEET.probe.settings, inputs=SHEET.probe.inputs(None), recorder=recorder, step_timeout=120
    )
    answer = kernel_plan.observe(probe)
    bundle = {
        "token": "t" * 32,
        "answer": answer,
        "errors": probe.errors,
        "arrays": {name: k.npy_b64(array) for name, array in probe.arrays.items()},
    }
    return parse_payloads(
        [{"data": json.dumps(bundle), "metadata": {"token": "t" * 32}}], "t" * 32, probe.inputs, Answer
    )


def verdicts(obs, accuracy_range=None) -> dict:
    return {r.id: (r.status, r.message) for r in run_checks(obs, CONFIG, accuracy_range)}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_example_loses_the_checks_of_its_mistake(name):
    """The checks a few epochs can decide: the data set, the network, the training step."""
    obs = observe(*notebook_namespace(EXAMPLES[name].parts))
    found = verdicts(obs)
    lost = sorted(c for c, (status, _) in found.items() if status != "pass" and c != "training.accuracy")
    assert lost == sorted(c for c in EXPECTED[name]["loses"] if c != "training.accuracy"), found
    assert found["training.accuracy"][0] == "needs_review"  # no calibration given here


def test_messages_say_what_was_expected_and_found():
    found = {}
    for _name, example in EXAMPLES.items():
        found.update(
            {
                (example.defect, c): m
                for c, (s, m) in verdicts(observe(*notebook_namespace(example.parts))).items()
                if s != "pass" and c != "training.accuracy"
            }
        )
    messages = "\n".join(found.values())
    for words in (
        "len(PointsDataset(data, labels)) is 96 for 97 points",
        "points are left out",
        "the gradients of the step before were added to this step's: call optimizer.zero_grad()",
        "the optimizer ran with learning rate 0.01, but train was given config['learning_rate'] = 0.37 (a value",
        "applies softmax 2 times",
        "returns the last Linear layer's output (logits)",
        "return torch.softmax(x, dim=1)",
    ):
        assert words in messages, messages


def test_a_train_that_returns_nothing_is_found_by_the_model_it_made():
    example = next(ex for ex in make_sheet5.EXAMPLES if "returns nothing" in ex.defect)
    ns, recorder = notebook_namespace(example.parts, experiments=True)
    assert ns["model"] is None
    obs = observe(ns, recorder)
    net = obs.answer.network
    assert net.instance_found and net.chosen_by == "made" and net.instance_name == ""
    assert net.trained.params["hidden.weight"].shape == (100, 2)  # the config's network, not the experiments'
    assert {c: s for c, (s, _) in verdicts(obs).items()}["training.step"] == "pass"


def test_the_network_trained_with_config_is_chosen_not_an_experiments():
    ns, recorder = notebook_namespace(make_sheet5.solution_parts(), experiments=True)
    obs = observe(ns, recorder)
    assert obs.answer.network.chosen_by == "returned"
    assert obs.answer.network.trained.params["hidden.weight"].shape == (100, 2)
    assert obs.answer.training.config["learning_rate"] == 0.37 and len(obs.answer.training.steps) == 2


def test_without_a_recorded_call_the_model_at_its_name_is_taken():
    ns, recorder = notebook_namespace(make_sheet5.solution_parts(), merge=True)
    obs = observe(ns, recorder)
    assert obs.answer.network.chosen_by == "name" and obs.answer.network.instance_name == "model"


def test_sizes_written_into_the_class_are_named():
    parts = (
        make_sheet5.solution_parts()
        .edit("network", "nn.Linear(input_dim, hidden_dim)", "nn.Linear(input_dim, 100)")
        .edit("network", "nn.Linear(hidden_dim, output_dim)", "nn.Linear(100, output_dim)")
    )
    found = verdicts(observe(*notebook_namespace(parts, epochs=3)))
    assert found["ffnn.architecture"] == (
        "fail",
        "FFNN(2, 16, 3) should run Linear(2, 16) → ReLU → Linear(16, 3); its "
        "forward runs Linear(2, 100) → ReLU → Linear(100, 3). Use the constructor's "
        "arguments for the layers' sizes, not fixed numbers.",
    )
    assert found["ffnn.forward"][0] == "pass" and found["training.step"][0] == "pass"  # one mistake, one check


def test_the_accuracy_check_compares_with_the_solutions():
    ns, recorder = notebook_namespace(make_sheet5.solution_parts(), epochs=3)
    obs = observe(ns, recorder)
    low = verdicts(obs, AccuracyRange(low=(0.963,), high=(0.963,), source="test"))["training.accuracy"]
    assert low[0] == "fail" and "the solution reaches 0.963 (0.813 or more passes)" in low[1]
    reached = accuracy(
        [
            {"op": "linear", "weight": "hidden.weight", "bias": "hidden.bias"},
            {"op": "relu"},
            {"op": "linear", "weight": "output.weight", "bias": "output.bias"},
        ],
        obs.answer.network.trained.params,
        *spiral(),
    )
    passing = verdicts(obs, AccuracyRange(low=(reached,), high=(reached,), source="test"))["training.accuracy"]
    assert passing[0] == "pass" and "`model` classifies" in passing[1]


@pytest.mark.parametrize(
    "field, old, new, words",
    [
        (
            "step",
            "            loss.backward()\n",
            "",
            "no gradients when optimizer.step() ran: call optimizer.zero_grad(), then "
            "loss.backward(), then optimizer.step()",
        ),
        (
            "step",
            "optimizer.zero_grad()\n            loss.backward()",
            "loss.backward()\n            optimizer.zero_grad()",
            "zero_grad between backward and step throws the gradients away",
        ),
        ("step", "            optimizer.step()\n", "", "never called optimizer.step()"),
        (
            "network",
            "return self.softmax(self.output(x))",
            "return torch.softmax(self.output(x), dim=0)",
            "softmax over dim 0",
        ),
        ("network", "(hidden_dim, output_dim)", "(100, output_dim)", "cannot be multiplied"),
        (
            "dataset_methods",
            "return self.data[index], self.labels[index]",
            "return self.labels[index], self.data[index]",
            "[0]'s point is a Tensor of 1 number(s), expected data[0] = (0, 0)",
        ),
    ],
)
def test_other_mistakes_get_a_message_to_act_on(field, old, new, words):
    parts = make_sheet5.solution_parts().edit(field, old, new)
    obs = observe(*notebook_namespace(parts, epochs=3))
    messages = " | ".join(m for s, m in verdicts(obs).values() if s not in ("pass", "needs_review"))
    assert words in messages, messages
