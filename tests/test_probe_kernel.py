"""The probe's kernel-side code, in-process, without a kernel: the library (grader/child/probe_kernel.py),
the set-up step's recording (grader/child/setup_kernel.py) and Sheet 6's plan, on namespaces built
here (dicts holding classes these tests define), as the kernel would hold a notebook's globals.
The plan's answer goes through the same validation as a kernel's and the same checks as a report."""

from __future__ import annotations

import io
import json
import re
import sys
import time

import numpy as np
import pytest
import torch
import torch.nn as nn
from conftest import sheet_config

from grader.child import probe_kernel as k
from grader.child import setup_kernel as setup
from grader.errors import SheetError
from grader.run.kernel_code import kernel_module, script
from grader.run.probe import parse_payloads
from grader.sheets.sheet6 import SHEET as SHEET6
from grader.sheets.sheet6 import kernel_plan as plan6
from grader.sheets.sheet6.answer import Answer

sys.path.insert(0, str(__import__("conftest").ROOT / "tools"))
from make_notebooks import SOLUTION_BASELINE, SOLUTION_BATCHNORM

RNG = np.random.default_rng(0)
INPUTS = {"x": RNG.random((64, 1, 28, 28)).astype(np.float32), "y": (np.arange(64) % 10).astype(np.int64)}


def notebook_namespace(*cells: str) -> dict:
    """What the kernel's globals hold after these cells ran (classes defined here, by exec)."""
    ns = {"torch": torch, "nn": nn, "__name__": "__main__"}
    for cell in cells:
        exec(cell, ns)
    return ns


def loaders(n=32):
    x, y = torch.from_numpy(INPUTS["x"][:n].copy()), torch.from_numpy(INPUTS["y"][:n].copy())
    data = torch.utils.data.TensorDataset(x, y)
    return torch.utils.data.DataLoader(data, batch_size=16), torch.utils.data.DataLoader(data, batch_size=16)


def answered(probe: k.Probe, answer: dict):
    """The answer as the grader reads it from a kernel: published JSON and .npy arrays, validated."""
    bundle = {
        "token": "t" * 32,
        "answer": answer,
        "errors": probe.errors,
        "setup_ran": probe.recorder is not None,
        "arrays": {name: k.npy_b64(array) for name, array in probe.arrays.items()},
    }
    payload = {"data": json.dumps(bundle), "metadata": {"token": "t" * 32}}
    return parse_payloads([payload], "t" * 32, {name: a.astype(np.float64) for name, a in probe.inputs.items()}, Answer)


# ---- the library -------------------------------------------------------------------------------


class Flat(nn.Module):
    """Wants (N, 784): the image form fails, the flat one is taken."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(784, 8)
        self.b = nn.Linear(8, 3)

    def forward(self, x):
        return torch.softmax(self.b(torch.relu(self.a(x))), dim=1)


def test_describe_traces_the_forward_with_the_parameters_each_operation_used():
    probe = k.Probe({}, inputs=INPUTS)
    x = torch.from_numpy(INPUTS["x"])
    info = k.describe(probe, "m", Flat(), [("image", x), ("flat", x.reshape(64, -1))])
    assert info["input"] == "flat" and info["class"] == "Flat"
    assert [op["op"] for op in info["ops_eval"]] == ["linear", "relu", "linear", "softmax"]
    first = info["ops_eval"][0]
    assert (first["weight"], first["bias"], first["in_features"], first["out_features"]) == (
        "a.weight",
        "a.bias",
        784,
        8,
    )
    assert info["ops_eval"][-1]["dim"] == 1
    assert probe.arrays[info["params"]["a.weight"]].shape == (8, 784)
    assert probe.arrays[info["out_eval"]].shape == (64, 3)


def test_guarded_records_what_raised_and_stops_what_takes_too_long():
    probe = k.Probe({}, step_timeout=0.3)
    assert k.guarded(probe, "net: adding", lambda a, b: a + b, 1, 2) == (True, 3)

    def forever():
        while True:
            time.sleep(0.01)

    assert k.guarded(probe, "net: a forward that never ends", forever) == (False, None)
    assert k.guarded(probe, "net: exiting", sys.exit, 3) == (False, None)  # sys.exit does not end the probe
    assert [e["step"] for e in probe.errors] == ["net: a forward that never ends", "net: exiting"]
    assert "StepTimeout: took longer than 0 s" in probe.errors[0]["error"]
    assert probe.errors[1]["error"].startswith("SystemExit")


def test_arrays_travel_as_plain_npy_whatever_the_tensor_type():
    class Sneaky(torch.Tensor):  # a subclass that lies about its values
        def numpy(self):
            return np.zeros(3)

    tensor = torch.tensor([1.5, 2.5, 3.5]).as_subclass(Sneaky)
    array = k.to_numpy(tensor)
    assert array.tolist() == [1.5, 2.5, 3.5] and array.dtype == np.float32
    raw = __import__("base64").b64decode(k.npy_b64(np.arange(6, dtype=np.int64).reshape(2, 3)))
    assert np.load(io.BytesIO(raw), allow_pickle=False).tolist() == [[0, 1, 2], [3, 4, 5]]


def test_scan_finds_instances_in_globals_and_containers():
    a, b, c = Flat(), Flat(), Flat()
    probe = k.Probe({"model": a, "models": [b, nn.ReLU()], "nets": {"x": c}, "_hidden": Flat(), "Out": {1: Flat()}})
    found = k.scan(probe, k.of_class(Flat, "Flat"))
    assert found == [("model", a), ("models[0]", b), ("nets['x']", c)]


def record(instance, done=True, cell=3):
    return {"instance": instance, "done": done, "cell": cell, "result": None, "printed": ""}


def test_the_trained_instance_is_chosen_by_name_then_by_the_latest_call_then_alone():
    trained, other = Flat(), Flat()
    probe = k.Probe({"net": trained, "other": other})
    chosen = k.choose_trained(probe, Flat, "Flat", "net", [record(other), record(trained)])
    assert chosen[:3] == (trained, "net", "name")
    probe = k.Probe({"net": Flat(), "other": other})
    instance, label, how, search, cell = k.choose_trained(probe, Flat, "Flat", "net", [record(other, cell=7)])
    assert (instance, label, how, cell) == (other, "other", "called", 7)
    assert search["canonical_holds"] == "Flat" and search["calls"] == 1
    probe = k.Probe({"only": other})
    assert k.choose_trained(probe, Flat, "Flat", "net", [])[:3] == (other, "only", "scan")
    instance, _, _, search, _ = k.choose_trained(k.Probe({"a": Flat(), "b": Flat()}), Flat, "Flat", "net", [])
    assert instance is None and search["found"] == ["a", "b"] and search["canonical_holds"] == "nothing"


def test_candidates_name_what_a_call_returned_by_the_cell_that_assigned_it():
    net = Flat()
    net.test_accuracies = [0.1, 0.2]
    history = ["", "", "", "train_acc, test_acc = net.optimize(a, b)"]
    call = record(net)
    call["result"] = ([0.5, 0.6], [0.3, 0.4])
    found = k.candidates(k.Probe({"net": net, "In": history}), "net", net, [call], "optimize")
    assert [(c["source"], c["name"], c["values"]) for c in found] == [
        ("return", "train_acc", [0.5, 0.6]),
        ("return", "test_acc", [0.3, 0.4]),
        ("attribute", "net.test_accuracies", [0.1, 0.2]),
    ]
    assert found[0]["where"] == "returned by net.optimize in In [3]"


def test_without_recorded_calls_the_cells_that_call_the_method_name_its_values():
    """The class was made before the set-up step could see it: the notebook's cells say what the
    calls' values were assigned to (or their Out[n]), and how the method was called."""
    net = Flat()
    history = ["", "net = Flat()", "acc = net.optimize(train, test)", "net.optimize(train, test)"]
    probe = k.Probe({"net": net, "acc": [0.4, 0.5], "In": history, "Out": {3: [0.6, 0.7]}})
    found = k.candidates(probe, "net", net, [], "optimize")
    assert [(c["name"], c["values"], c["where"]) for c in found] == [
        ("acc", [0.4, 0.5], "assigned in In [2]"),
        ("Out[3]", [0.6, 0.7], "the value of In [3]"),
    ]
    assert k.notebook_call(probe, "optimize") == ("net.optimize(train, test)", 2)
    assert k.notebook_call(probe, "test") == ("", None)


def test_training_is_stopped_after_the_steps_asked_for_with_what_each_did():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3))
    x, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    epochs = []

    def train():
        for epoch in range(100):
            epochs.append(epoch)
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()  # no zero_grad: the gradients add up
            optimizer.step()

    probe = k.Probe({})
    info, trained = k.observe_training(
        probe, "t", train, model=model, watch=("cross_entropy",), steps=2, snapshots=True
    )
    assert epochs == [0, 1] and trained is model
    assert info["losses"] == ["cross_entropy"] and info["model_params"] == 2
    first, second = info["steps"]
    assert (first["optimizer"], first["lr"], first["own_params"]) == ("SGD", 0.5, 2)
    assert second["losses"][0]["on_output"] and probe.arrays[second["losses"][0]["target"]].tolist() == y.tolist()
    before, after, grad = (probe.arrays[second[part]["0.weight"]] for part in ("before", "after", "grads"))
    assert np.allclose(after, before - 0.5 * grad, atol=1e-6)
    assert np.allclose(probe.arrays[second["input"]], x.numpy())
    assert np.allclose(probe.arrays[first["after"]["0.weight"]], before)
    assert torch.is_grad_enabled()  # grad mode restored


def test_training_of_a_model_made_inside_the_call_is_found_by_its_class():
    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)

        def forward(self, x):
            return self.fc(x)

    def train():
        model = Tiny()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(5):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(torch.ones(3, 2)), torch.tensor([0, 1, 0])).backward()
            optimizer.step()

    info, trained = k.observe_training(k.Probe({}), "t", train, model_class="Tiny", watch=("cross_entropy",))
    assert isinstance(trained, Tiny) and len(info["steps"]) == 1 and info["steps"][0]["own_params"] == 2


# ---- the set-up step's recording ---------------------------------------------------------------


def test_recorded_methods_keep_instance_value_and_print_and_return_what_the_student_returned(capsys):
    recorder = setup.Recorder(keep=2, cell_number=lambda: 5)

    class Net(nn.Module):
        def optimize(self, epochs=1):
            print("epoch 1: test accuracy 50%")
            return [0.5] * epochs

    assert setup.record_method(recorder, Net, "optimize") and not setup.record_method(recorder, Net, "optimize")
    nets = [Net() for _ in range(3)]
    assert nets[0].optimize(epochs=2) == [0.5, 0.5]
    for net in nets[1:]:
        net.optimize()
    assert [c["instance"] for c in recorder.calls] == nets[1:]  # the last `keep` per class
    call = recorder.calls[-1]
    assert (call["done"], call["cell"], call["result"]) == (True, 5, [0.5])
    assert call["printed"] == "epoch 1: test accuracy 50%\n" and "50%" in capsys.readouterr().out
    recorder.paused = True
    nets[0].optimize()
    assert len(recorder.calls) == 2


def test_recorded_functions_keep_the_models_made_during_the_call():
    recorder = setup.Recorder()

    class FFNN(nn.Module):
        def __init__(self, hidden):
            super().__init__()
            self.fc = nn.Linear(2, hidden)

    setup.record_made(recorder, FFNN)
    ns = notebook_namespace()
    ns["FFNN"] = FFNN
    exec("def train(config):\n    model = FFNN(config['hidden'])\n    return None\n", ns)
    assert setup.record_function(recorder, ns, "train") and not setup.record_function(recorder, ns, "train")
    config = {"hidden": 7}
    assert ns["train"](config) is None
    FFNN(3)  # made outside a recorded call: not kept
    (call,) = recorder.calls
    assert call["args"] == (config,) and call["done"] and [m.fc.out_features for m in call["made"]] == [7]


# ---- Sheet 6's plan, in-process -----------------------------------------------------------------


@pytest.fixture(scope="module")
def sheet6_notebook():
    """The solution's classes, trained as its cells do (shortened: one epoch on 32 images), with the
    set-up step recording optimize."""
    recorder = setup.Recorder()
    ns = notebook_namespace(SOLUTION_BASELINE, SOLUTION_BATCHNORM)
    for name in ("FashionNetwork", "FashionNetworkBatchNorm"):
        setup.record_method(recorder, ns[name], "optimize")
    train, test = loaders()
    ns["fashion_network"] = ns["FashionNetwork"]()
    ns["fashion_network"].epochs = 1
    ns["models"] = [ns["FashionNetworkBatchNorm"]()]  # kept under another name
    ns["models"][0].epochs = 1
    ns["fashion_network"].optimize(train, test)
    ns["models"][0].optimize(train, test)
    probe = k.Probe(ns, settings=SHEET6.probe.settings, inputs=INPUTS, recorder=recorder, step_timeout=60)
    return probe, plan6.observe(probe)


def test_sheet6_plan_finds_both_networks_and_what_they_recorded(sheet6_notebook):
    probe, answer = sheet6_notebook
    obs = answered(probe, answer)
    assert obs.errors == []
    base, bn = obs.answer.networks["baseline"], obs.answer.networks["batchnorm"]
    assert (base.instance_name, base.chosen_by) == ("fashion_network", "name")
    assert (bn.instance_name, bn.chosen_by) == ("models[0]", "called")
    assert [c.name for c in base.accuracy_candidates][:1] == ["return value"]
    assert base.trained.input_kind == "image" and base.fresh.out_eval.shape == (64, 10)
    assert base.training.steps[0].lr == 0.001 and base.training.losses == ["cross_entropy"]
    assert bn.test_mode.bn_calls > 0 and bn.test_mode.bn_training_calls == 0 and bn.test_on == "trained"


def test_sheet6_plan_answer_passes_the_sheets_checks_except_the_accuracy_range(sheet6_notebook):
    from grader.checks.framework import run_checks

    probe, answer = sheet6_notebook
    results = {r.id: r for r in run_checks(answered(probe, answer), sheet_config("sheet6"), None)}
    assert {i: r.status for i, r in results.items()} == {
        "baseline.architecture": "pass",
        "baseline.forward": "pass",
        "baseline.training_setup": "pass",
        "baseline.accuracies": "fail",
        "batchnorm.architecture": "pass",
        "batchnorm.behaviour": "pass",
    }
    assert "No 5 per-epoch test accuracies" in results["baseline.accuracies"].message  # one epoch, as trained here


def test_sheet6_plan_on_a_notebook_without_its_classes_says_so():
    probe = k.Probe({}, settings=SHEET6.probe.settings, inputs=INPUTS)
    answer = plan6.observe(probe)
    assert answer == {
        "networks": {
            key: {
                "class_found": False,
                "instance_found": False,
                "instance_is_class": False,
                "instance_name": "",
                "chosen_by": "",
                "accuracy_candidates": [],
                "printed": "",
                "search": None,
            }
            for key in ("baseline", "batchnorm")
        }
    }


# ---- sending kernel-side code -------------------------------------------------------------------


def test_a_plan_is_sent_with_the_library_bound_in_place_of_its_import():
    module = kernel_module("__plan__", SHEET6.probe.plan)
    assert module.binds == {"k": ("grader.child.probe_kernel", None)}
    assert "from grader" not in module.source
    assert module.source.count("\n") == SHEET6.probe.plan.read_text().count("\n")  # line numbers kept


def test_the_script_loads_its_modules_without_making_them_importable():
    before = set(sys.modules)
    ns: dict = {}
    exec(
        script(
            [kernel_module("__plan__", SHEET6.probe.plan)],
            "result = loaded['__plan__'].k is loaded['grader.child.probe_kernel']",
        ),
        ns,
    )
    assert ns["result"] is True
    assert not {m for m in set(sys.modules) - before if "grader" in m or "plan" in m}


@pytest.mark.parametrize(
    "line, words",
    [
        ("from grader.checks.compare import structure", "grader.checks.compare.structure, which is not sent"),
        ("import grader.child.probe_kernel", "`import grader...`"),
        ("def f():\n    from grader.child import probe_kernel", "only at the top"),
    ],
)
def test_kernel_side_code_may_import_only_kernel_side_modules(tmp_path, line, words):
    plan = tmp_path / "plan.py"
    plan.write_text(f"{line}\n\ndef observe(probe):\n    return {{}}\n", encoding="utf-8")
    with pytest.raises(SheetError, match=re.escape(words)):
        kernel_module("__plan__", plan)
