"""The checks of 6.6 on observations built by hand (no kernel): each passes on a right network and
fails, with a message naming what was expected and found, on a wrong one. The student's outputs are
computed with torch here, independently of the numpy reference the checks use."""

import numpy as np
import pytest
import torch
import torch.nn as nn
from conftest import sheet_config

from grader.checks.framework import AccuracyRange, run_checks
from grader.observations import (
    AccuracyCandidate,
    InstanceSearch,
    ModelObservation,
    ModuleInfo,
    Observations,
    Op,
    OptimizerStep,
    ProbeError,
    Training,
)
from grader.sheets.sheet6.accuracies import choose_accuracies
from grader.sheets.sheet6.answer import Answer, Network, TemplateFacts, TestMode
from grader.sheets.sheet6.checks import (
    check_baseline_accuracies,
    check_baseline_architecture,
    check_baseline_forward,
    check_baseline_training_setup,
    check_batchnorm_architecture,
    check_batchnorm_behaviour,
)

CONFIG = sheet_config("sheet6")
X = np.random.default_rng(0).random((16, 1, 28, 28)).astype(np.float32)


def observe(layers: list[nn.Module], *, names: list[str] | None = None, flatten_first: bool = True) -> ModelObservation:
    """What the probe would report for nn.Sequential(Flatten, *layers) on X (without the Flatten when
    `flatten_first` is false: `layers` then flatten the images themselves)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), *layers) if flatten_first else nn.Sequential(*layers)
    params = {n: p.detach().double().numpy().copy() for n, p in model.named_parameters()}
    buffers = {n: b.detach().double().numpy().copy() for n, b in model.named_buffers() if b.is_floating_point()}
    ops = [Op(op="reshape", out_shape=[16, 784])] if flatten_first else []
    width = 784 if flatten_first else X.shape[1]
    for index, layer in enumerate(layers, start=1 if flatten_first else 0):
        if isinstance(layer, nn.Linear):
            ops.append(
                Op(
                    op="linear",
                    weight=f"{index}.weight",
                    bias=f"{index}.bias",
                    in_features=layer.in_features,
                    out_features=layer.out_features,
                )
            )
            width = layer.out_features
        elif isinstance(layer, nn.Flatten):
            ops.append(Op(op="reshape", out_shape=[16, 784]))
            width = 784
        elif isinstance(layer, nn.modules.batchnorm._BatchNorm):
            ops.append(
                Op(
                    op="batch_norm",
                    weight=f"{index}.weight",
                    bias=f"{index}.bias",
                    running_mean=f"{index}.running_mean",
                    running_var=f"{index}.running_var",
                    momentum=0.1,
                    eps=1e-5,
                    num_features=width,
                )
            )
        elif isinstance(layer, nn.LayerNorm):
            ops.append(Op(op="layer_norm", torch="layer_norm", params=[f"{index}.weight", f"{index}.bias"]))
        elif isinstance(layer, nn.ReLU):
            ops.append(Op(op="relu"))
        elif isinstance(layer, nn.Softmax):
            ops.append(Op(op="softmax", dim=1))
    x = torch.from_numpy(X)
    with torch.no_grad():
        model.eval()
        out_eval = model(x).double().numpy()
        model.train()
        out_train = model(x).double().numpy()
    after = {n: b.detach().double().numpy().copy() for n, b in model.named_buffers() if b.is_floating_point()}
    train_ops = [op.model_copy(update={"training": True}) if op.op == "batch_norm" else op for op in ops]
    eval_ops = [op.model_copy(update={"training": False}) if op.op == "batch_norm" else op for op in ops]
    modules = [ModuleInfo(name=n, type=type(m).__name__) for n, m in model.named_modules() if n]
    return ModelObservation(
        class_name="Net",
        input_kind="image",
        modules=modules,
        ops_eval=eval_ops,
        ops_train=train_ops,
        calls_eval=[],
        params=params,
        buffers=buffers,
        buffers_after_train=after,
        out_eval=out_eval,
        out_train=out_train,
    )


def baseline_layers(relu2=True, softmax=False):
    layers = [nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 32)]
    layers += [nn.ReLU()] if relu2 else []
    layers += [nn.Linear(32, 10)]
    return layers + ([nn.Softmax(dim=1)] if softmax else [])


def bn_layers(after_relu=False, second=True):
    def block(n_in, n_out, bn):
        parts = (
            [nn.Linear(n_in, n_out), nn.BatchNorm1d(n_out), nn.ReLU()] if bn else [nn.Linear(n_in, n_out), nn.ReLU()]
        )
        if bn and after_relu:
            parts = [parts[0], parts[2], parts[1]]
        return parts

    return block(784, 64, True) + block(64, 32, second) + [nn.Linear(32, 10)]


def net(model=None, *, training=None, test_mode=None, candidates=()):
    return Network(
        class_found=True,
        instance_found=True,
        instance_is_class=True,
        fresh=model,
        trained=model,
        training=training,
        test_mode=test_mode,
        accuracy_candidates=list(candidates),
        errors=[],
    )


def obs(baseline=None, batchnorm=None):
    networks = {k: v for k, v in (("baseline", baseline), ("batchnorm", batchnorm)) if v is not None}
    return Observations(status="ok", answer=Answer(networks=networks), inputs={"x": X.astype(np.float64)})


def test_right_baseline_passes_architecture_and_forward():
    o = obs(net(observe(baseline_layers())))
    assert check_baseline_architecture(o, CONFIG).status == "pass"
    assert check_baseline_forward(o, CONFIG).status == "pass"


def test_missing_relu_fails_architecture_only():
    o = obs(net(observe(baseline_layers(relu2=False))))
    verdict = check_baseline_architecture(o, CONFIG)
    assert verdict.status == "fail"
    assert "Linear(64, 32) → Linear(32, 10)" in verdict.message and "should run" in verdict.message
    assert check_baseline_forward(o, CONFIG).status == "pass"


def test_softmax_in_forward_fails_forward_only():
    o = obs(net(observe(baseline_layers(softmax=True))))
    assert check_baseline_architecture(o, CONFIG).status == "pass"
    verdict = check_baseline_forward(o, CONFIG)
    assert verdict.status == "fail" and "softmax" in verdict.message and "logits" in verdict.message


def test_forward_output_that_is_not_what_the_layers_compute_fails():
    model = observe(baseline_layers())
    forged = model.model_copy(update={"out_eval": model.out_eval + 0.01})
    verdict = check_baseline_forward(obs(net(forged)), CONFIG)
    assert verdict.status == "fail" and "differs" in verdict.message


def test_unknown_operation_needs_review():
    model = observe(baseline_layers())
    ops = model.ops_eval[:2] + [Op(op="gelu", torch="gelu")] + model.ops_eval[3:]
    changed = model.model_copy(update={"ops_eval": ops})
    verdict = check_baseline_forward(obs(net(changed)), CONFIG)
    assert verdict.status == "needs_review" and "gelu" in verdict.message


def training(optimizer="SGD", lr=0.001, losses=("cross_entropy",), own=6):
    return Training(
        steps=[OptimizerStep(optimizer=optimizer, lr=lr, own_params=own, params=own)],
        losses=list(losses),
        loss_modules=["CrossEntropyLoss"],
        model_params=6,
    )


@pytest.mark.parametrize(
    "setup, status, words",
    [
        (training(), "pass", ["SGD", "0.001"]),
        (training(optimizer="Adam"), "fail", ["torch.optim.SGD", "Adam"]),
        (training(lr=0.01), "fail", ["0.001", "0.01"]),
        (training(losses=("mse_loss",)), "fail", ["CrossEntropyLoss", "mse_loss"]),
        (training(own=2), "fail", ["2 of the network's 6"]),
        (Training(steps=[], losses=[], loss_modules=[], model_params=6), "fail", ["optimizer.step()"]),
    ],
)
def test_training_setup(setup, status, words):
    verdict = check_baseline_training_setup(obs(net(observe(baseline_layers()), training=setup)), CONFIG)
    assert verdict.status == status
    for word in words:
        assert word in verdict.message


RANGE = AccuracyRange(low=(0.5, 0.6, 0.65, 0.68, 0.7), high=(0.55, 0.64, 0.69, 0.71, 0.73), source="test")


def candidate(name, values, source="return"):
    return AccuracyCandidate(source=source, name=name, values=values)


@pytest.mark.parametrize(
    "candidates, status, chosen",
    [
        ([candidate("acc", [0.52, 0.61, 0.66, 0.69, 0.71])], "pass", "acc"),
        ([candidate("acc", [52.0, 61.0, 66.0, 69.0, 71.0])], "pass", "acc"),  # percent
        (
            [
                candidate("fashion_network.train_accuracies", [0.52, 0.61, 0.66, 0.69, 0.71], "attribute"),
                candidate("fashion_network.accuracies", [0.5, 0.6, 0.65, 0.7, 0.7], "attribute"),
            ],
            "pass",
            "fashion_network.accuracies",
        ),
        ([candidate("test_acc", [0.95, 0.95, 0.95, 0.95, 0.95])], "fail", "test_acc"),  # more than the solution reaches
        ([candidate("test_acc", [0.1, 0.1, 0.1, 0.1, 0.1])], "pass", "test_acc"),  # less: no lower bound
        ([candidate("losses", [2.3, 2.2, 2.1, 2.0, 1.9])], "fail", None),  # not accuracies
        ([candidate("acc", [0.5, 0.6])], "fail", None),  # not 5 epochs
        ([], "fail", None),
    ],
)
def test_accuracies(candidates, status, chosen):
    network = net(observe(baseline_layers()), candidates=candidates)
    verdict = check_baseline_accuracies(obs(network), CONFIG, RANGE)
    assert verdict.status == status, verdict.message
    picked = choose_accuracies(network, 5)
    assert (picked[0] if picked else None) == chosen  # also when failing: what was (or was not) taken


def test_accuracies_without_calibration_need_review():
    network = net(observe(baseline_layers()), candidates=[candidate("acc", [0.5] * 5)])
    assert check_baseline_accuracies(obs(network), CONFIG, None).status == "needs_review"


EVAL_TEST = TestMode(bn_calls=4, bn_training_calls=0, buffers_changed=[])


@pytest.mark.parametrize("after_relu", [False, True])
def test_batchnorm_either_placement_passes(after_relu):
    o = obs(batchnorm=net(observe(bn_layers(after_relu=after_relu)), test_mode=EVAL_TEST))
    assert check_batchnorm_architecture(o, CONFIG).status == "pass"
    assert check_batchnorm_behaviour(o, CONFIG).status == "pass"


def test_batchnorm_missing_fails_both():
    o = obs(
        batchnorm=net(
            observe(baseline_layers()), test_mode=TestMode(bn_calls=0, bn_training_calls=0, buffers_changed=[])
        )
    )
    assert "no BatchNorm" in check_batchnorm_architecture(o, CONFIG).message
    assert check_batchnorm_behaviour(o, CONFIG).status == "fail"


# ---- BatchNorm where the team puts it (the course's notebook asks for "a batch normalization layer") --

PLACE_WORDS = {
    "input": "before Linear(784, 64)",
    "hidden1": "after Linear(784, 64)",
    "hidden2": "after Linear(64, 32)",
    "output": "after Linear(32, 10)",
}


def with_batchnorm(*places: str, after_relu: tuple[str, ...] = ()) -> list[nn.Module]:
    """The baseline's layers with a BatchNorm1d of the right width at each of `places`: "input" (the
    flattened image), "hidden1" / "hidden2" (after that hidden Linear, before its ReLU unless named in
    `after_relu`), "output" (after the last Linear)."""
    layers: list[nn.Module] = [nn.BatchNorm1d(784)] if "input" in places else []
    for name, (n_in, n_out) in (("hidden1", (784, 64)), ("hidden2", (64, 32))):
        block: list[nn.Module] = [nn.Linear(n_in, n_out), nn.ReLU()]
        if name in places:
            block.insert(2 if name in after_relu else 1, nn.BatchNorm1d(n_out))
        layers += block
    layers.append(nn.Linear(32, 10))
    return layers + ([nn.BatchNorm1d(10)] if "output" in places else [])


@pytest.mark.parametrize(
    "places, after_relu",
    [
        (("input",), ()),
        (("hidden1",), ()),
        (("hidden2",), ()),
        (("output",), ()),
        (("hidden1",), ("hidden1",)),
        (("hidden2",), ("hidden2",)),
        (("hidden1", "hidden2"), ()),
        (("input", "hidden2"), ()),
        (("hidden1", "hidden2"), ("hidden1", "hidden2")),
        (("input", "hidden1", "hidden2"), ("hidden2",)),
        (("input", "hidden1", "hidden2", "output"), ()),
    ],
    ids=lambda v: "+".join(v) or "-",
)
def test_batchnorm_wherever_the_team_puts_it_passes_both_checks(places, after_relu):
    o = obs(batchnorm=net(observe(with_batchnorm(*places, after_relu=after_relu)), test_mode=EVAL_TEST))
    architecture = check_batchnorm_architecture(o, CONFIG)
    assert architecture.status == "pass", architecture.message
    for place in places:
        assert PLACE_WORDS[place] in architecture.message, architecture.message
    behaviour = check_batchnorm_behaviour(o, CONFIG)
    assert behaviour.status == "pass", behaviour.message


def test_batchnorm_of_the_wrong_width_fails_architecture_saying_where():
    model = observe(with_batchnorm("hidden1"))
    ops = [op.model_copy(update={"num_features": 32}) if op.op == "batch_norm" else op for op in model.ops_eval]
    o = obs(batchnorm=net(model.model_copy(update={"ops_eval": ops}), test_mode=EVAL_TEST))
    verdict = check_batchnorm_architecture(o, CONFIG)
    assert verdict.status == "fail"
    assert "BatchNorm1d(32) after Linear(784, 64), where the features are 64 wide" in verdict.message, verdict.message
    assert "The sheet asks for" in verdict.message and "where the team chooses" in verdict.message


@pytest.mark.parametrize(
    "error, words",
    [
        (
            "RuntimeError: running_mean should contain 32 elements not 64",
            "a BatchNorm1d(64) stands where the features are 32 wide",
        ),
        ("ValueError: expected 4D input (got 2D input)", "nn.BatchNorm2d expects images"),
        ("ValueError: expected 2D or 3D input (got 4D input)", "nn.BatchNorm1d gets the images (N, 1, 28, 28) before"),
    ],
)
def test_a_normalisation_layer_that_does_not_fit_says_so_in_words(error, words):
    """torch refuses to run such a network: the probe sees the forward's error, the check says what it means."""
    network = Network(
        class_found=True,
        instance_found=True,
        instance_is_class=True,
        fresh=None,
        trained=None,
        training=None,
        test_mode=None,
        accuracy_candidates=[],
        errors=[ProbeError(step="batchnorm: forward of a new FashionNetworkBatchNorm", error=error)],
    )
    for check in (check_batchnorm_architecture, check_batchnorm_behaviour):
        verdict = check(obs(batchnorm=network), CONFIG)
        assert verdict.status == "fail" and words in verdict.message and error in verdict.message, verdict.message


def test_batchnorm2d_on_the_images_is_the_wrong_kind():
    layers = [nn.BatchNorm2d(1), nn.Flatten(), *baseline_layers()]
    o = obs(batchnorm=net(observe(layers, flatten_first=False), test_mode=EVAL_TEST))
    verdict = check_batchnorm_architecture(o, CONFIG)
    assert verdict.status == "fail"
    assert "BatchNorm2d(1) before Linear(784, 64): the sheet asks for nn.BatchNorm1d" in verdict.message, (
        verdict.message
    )
    assert "BatchNorm1d(784) on the (N, 784) features" in verdict.message


def test_layer_norm_is_not_batch_normalisation():
    layers = baseline_layers()
    layers.insert(1, nn.LayerNorm(64))
    o = obs(batchnorm=net(observe(layers), test_mode=EVAL_TEST))
    verdict = check_batchnorm_architecture(o, CONFIG)
    assert verdict.status == "fail" and "runs no BatchNorm layer" in verdict.message
    assert "LayerNorm after Linear(784, 64): nn.LayerNorm is not batch normalisation" in verdict.message, (
        verdict.message
    )
    assert check_batchnorm_behaviour(o, CONFIG).status == "fail"


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda layers: [layer for i, layer in enumerate(layers) if i != 2], "no ReLU after Linear(784, 64)"),
        (lambda layers: layers + [nn.ReLU()], "a ReLU after Linear(32, 10), where the baseline has none"),
        (
            lambda layers: layers[:3] + [nn.ReLU()] + layers[3:],
            "2 ReLUs after Linear(784, 64), where the baseline has one",
        ),
        (lambda layers: [nn.Linear(784, 784)] + layers, "not the baseline's three Linear layers"),
    ],
    ids=["missing ReLU", "ReLU on the logits", "two ReLUs", "another Linear"],
)
def test_relus_and_linear_layers_must_be_the_baselines(edit, words):
    o = obs(batchnorm=net(observe(edit(with_batchnorm("hidden1"))), test_mode=EVAL_TEST))
    verdict = check_batchnorm_architecture(o, CONFIG)
    assert verdict.status == "fail" and words in verdict.message, verdict.message


def test_test_in_training_mode_fails_behaviour():
    o = obs(
        batchnorm=net(
            observe(bn_layers()),
            test_mode=TestMode(bn_calls=4, bn_training_calls=4, buffers_changed=["1.running_mean"]),
        )
    )
    verdict = check_batchnorm_behaviour(o, CONFIG)
    assert verdict.status == "fail" and "self.eval()" in verdict.message


def test_wrong_running_statistics_fail_behaviour():
    model = observe(bn_layers())
    after = dict(model.buffers_after_train)
    after["2.running_mean"] = after["2.running_mean"] + 1.0
    o = obs(batchnorm=net(model.model_copy(update={"buffers_after_train": after}), test_mode=EVAL_TEST))
    verdict = check_batchnorm_behaviour(o, CONFIG)
    assert verdict.status == "fail" and "running statistics" in verdict.message


def test_no_observations_skip_every_check_with_the_reason():
    results = run_checks(Observations(status="not_run", message="no notebook was found"), CONFIG, RANGE)
    assert [r.status for r in results] == ["skipped"] * 6
    assert all(r.points == 0 and "no notebook" in r.message for r in results)


def test_missing_class_fails_with_its_name():
    o = obs(
        Network(
            class_found=False,
            instance_found=False,
            instance_is_class=False,
            fresh=None,
            trained=None,
            training=None,
            test_mode=None,
            accuracy_candidates=[],
            errors=[],
        )
    )
    results = {r.id: r for r in run_checks(o, CONFIG, RANGE)}
    assert "class FashionNetwork(nn.Module)" in results["baseline.architecture"].message
    assert "class FashionNetworkBatchNorm(nn.Module)" in results["batchnorm.behaviour"].message
    assert sum(r.points for r in results.values()) == 0


# ---- networks found by class; accuracies only printed --------------------------------------------


@pytest.mark.parametrize(
    "printed, expected",
    [
        (
            "Epoch 1: test accuracy 71.2%\nEpoch 2: test accuracy 72.0%\nEpoch 3: test accuracy 73.5%\n"
            "Epoch 4: test accuracy 74.1%\nEpoch 5: test accuracy 75.0%\nFinal accuracy: 75.0%",
            [0.712, 0.72, 0.735, 0.741, 0.75],
        ),
        ("Epoch [1/5], Loss: 2.1, Train Acc: 0.51, Test Acc: 0.41\n" * 5, [0.41] * 5),
        ("Accuracy of the network on the 10000 test images: 45 %\n" * 5, [0.45] * 5),
        ("epoch 1/5 - val_accuracy: 0.23 - accuracy: 0.5\n" * 5, [0.23] * 5),
        ("[1/5] test acc = 0.100\n" * 5, [0.1] * 5),
        ("\rbatch 3/10 acc 0.1" * 40 + "\n", None),  # per batch, no epoch lines: not 5 values
        ("Epoch 1: train accuracy 0.5\n" * 5, None),  # training accuracies only
    ],
)
def test_printed_accuracies(printed, expected):
    from grader.sheets.sheet6.accuracies import printed_accuracies

    found = printed_accuracies(printed, 5)
    assert found == (pytest.approx(expected) if expected else None)


def test_printed_accuracies_are_the_last_resort():
    printed = "".join(f"Epoch {e}: test accuracy {a}%\n" for e, a in enumerate([51, 60, 65, 69, 71], start=1))
    network = Network(
        class_found=True,
        instance_found=True,
        instance_is_class=True,
        fresh=None,
        trained=None,
        training=None,
        test_mode=None,
        accuracy_candidates=[],
        errors=[],
        instance_name="model",
        chosen_by="called",
        printed=printed,
    )
    verdict = check_baseline_accuracies(obs(network), CONFIG, RANGE)
    assert verdict.status == "pass" and "printed" in verdict.message, verdict.message
    returned = candidate("acc", [0.52, 0.61, 0.66, 0.69, 0.71])
    both = network.model_copy(update={"accuracy_candidates": [returned]})
    assert choose_accuracies(both, 5)[0] == "acc"


def test_an_instance_name_with_train_in_it_does_not_hide_its_accuracies():
    network = net(
        observe(baseline_layers()),
        candidates=[
            candidate("model_trained.train_accuracies", [0.52, 0.61, 0.66, 0.69, 0.71], "attribute"),
            candidate("model_trained.accuracies", [0.5, 0.6, 0.65, 0.7, 0.7], "attribute"),
        ],
    )
    assert choose_accuracies(network, 5)[0] == "model_trained.accuracies"


def test_no_trained_instance_says_what_was_looked_for():
    model = observe(bn_layers())
    search = InstanceSearch(
        canonical="fashion_network_batch_norm", canonical_holds="nothing", calls=0, found=["nets[0]", "nets[1]"]
    )
    network = Network(
        class_found=True,
        instance_found=False,
        instance_is_class=False,
        fresh=model,
        trained=None,
        training=None,
        test_mode=EVAL_TEST,
        accuracy_candidates=[],
        errors=[],
        search=search,
        test_on="fresh",
    )
    o = obs(
        baseline=network.model_copy(update={"fresh": observe(baseline_layers()), "test_mode": None}), batchnorm=network
    )
    message = check_baseline_accuracies(o, CONFIG, RANGE).message
    for words in (
        "No trained FashionNetwork",
        "`fashion_network`",
        "is not defined",
        "FashionNetwork.optimize was never called",
        "`nets[0]`",
        "none of them trained",
    ):
        assert words in message, message
    # What can be checked on a new instance still is, and says so.
    behaviour = check_batchnorm_behaviour(o, CONFIG)
    assert behaviour.status == "pass" and "checked on a new FashionNetworkBatchNorm()" in behaviour.message
    assert check_baseline_forward(o, CONFIG).status == "pass"


# ---- how the probe called `test` -----------------------------------------------------------------


@pytest.mark.parametrize(
    "test_mode, words",
    [
        (TestMode(bn_calls=4, bn_training_calls=0, buffers_changed=[]), "test(test_loader) evaluates in eval mode"),
        (
            TestMode(
                bn_calls=4,
                bn_training_calls=0,
                buffers_changed=[],
                called_as="test()",
                loaders_swapped=["fashion_test_loader"],
            ),
            "test() (it takes no loader: called as the notebook calls it, with `fashion_test_loader` pointed at the "
            "grader's probe batch) evaluates in eval mode",
        ),
        (
            TestMode(
                bn_calls=4, bn_training_calls=4, buffers_changed=[], called_as="test()", loaders_swapped=["self.loader"]
            ),
            "test() (it takes no loader: called as the notebook calls it, "
            "with `self.loader` pointed at the grader's probe batch) runs the "
            "network in training mode",
        ),
    ],
)
def test_the_behaviour_message_says_how_test_was_called(test_mode, words):
    verdict = check_batchnorm_behaviour(obs(batchnorm=net(observe(bn_layers()), test_mode=test_mode)), CONFIG)
    assert words in verdict.message, verdict.message
    assert verdict.status == ("fail" if test_mode.bn_training_calls else "pass")


# ---- the course's template: classes whose methods still do nothing ----------------------------------

STUBS = TemplateFacts(
    stubs={"__init__": "empty", "forward": "NotImplemented", "optimize": "NotImplemented", "test": "NotImplemented"},
    params={"__init__": 0, "forward": 1, "optimize": 0, "test": 0},
    init_calls_super=False,
    optimize_call="fashion_network.optimize(fashion_train_loader, fashion_test_loader)",
    optimize_call_args=2,
)
THREE_PROBLEMS = (
    "`__init__` does not call `super().__init__()`",
    "`forward` still returns the template's `NotImplemented`",
    "`optimize` takes no loaders but the notebook calls it with two",
)


def stub_network(key: str, facts: TemplateFacts = STUBS) -> Network:
    """What the probe sees of a class left as the template has it: a new instance exists, but neither its
    forward nor its optimize can be run (nn.Module.__init__ never ran)."""
    name = {"baseline": "FashionNetwork", "batchnorm": "FashionNetworkBatchNorm"}[key]
    errors = [
        ProbeError(
            step=f"{key}: forward of a new {name}", error=f"AttributeError: '{name}' object has no attribute 'training'"
        ),
        ProbeError(
            step=f"{key}: {name}().optimize", error=f"AttributeError: '{name}' object has no attribute '_parameters'"
        ),
    ]
    return Network(
        class_found=True,
        instance_found=True,
        instance_is_class=True,
        fresh=None,
        trained=None,
        training=None,
        test_mode=None,
        accuracy_candidates=[],
        errors=errors,
        instance_name=f"fashion_network{'_batch_norm' if key == 'batchnorm' else ''}",
        chosen_by="name",
        template=facts,
    )


def test_the_untouched_template_gets_no_points_and_one_line_naming_its_problems():
    results = run_checks(obs(stub_network("baseline"), stub_network("batchnorm")), CONFIG, RANGE)
    assert [r.status for r in results] == ["fail"] * 6 and sum(r.points for r in results) == 0
    (line,) = {r.message for r in results}
    assert line.startswith("The notebook is still the template: `FashionNetwork` and `FashionNetworkBatchNorm`"), line
    for words in THREE_PROBLEMS + ("(`fashion_network.optimize(fashion_train_loader, fashion_test_loader)`)",):
        assert words in line, line
    assert "AttributeError" not in line and "\n" not in line


@pytest.mark.parametrize("filled", ["__init__", "forward", "optimize", "test"])
def test_a_class_with_one_method_filled_in_is_not_the_template(filled):
    facts = STUBS.model_copy(update={"stubs": {m: k for m, k in STUBS.stubs.items() if m != filled}})
    results = run_checks(obs(stub_network("baseline"), stub_network("batchnorm", facts)), CONFIG, RANGE)
    assert not any("still the template" in r.message for r in results)
    assert all(r.status in ("fail", "error") for r in results)


def test_a_partly_filled_notebook_is_graded_check_by_check_in_plain_words():
    done = TemplateFacts(params={"__init__": 0, "forward": 1, "optimize": 2, "test": 1}, init_calls_super=True)
    baseline = net(
        observe(baseline_layers()),
        training=training(),
        test_mode=EVAL_TEST,
        candidates=[candidate("acc", [0.52, 0.61, 0.66, 0.69, 0.71])],
    ).model_copy(update={"template": done})
    results = {r.id: r for r in run_checks(obs(baseline, stub_network("batchnorm")), CONFIG, RANGE)}
    assert [
        results[c].status
        for c in ("baseline.architecture", "baseline.forward", "baseline.training_setup", "baseline.accuracies")
    ] == ["pass"] * 4
    for check in ("batchnorm.architecture", "batchnorm.behaviour"):
        assert results[check].status == "fail"
        assert results[check].message == (
            "FashionNetworkBatchNorm: `__init__` does not call `super().__init__()`; "
            "`forward` still returns the template's `NotImplemented`."
        ), results[check].message


def test_optimize_without_loaders_is_said_in_the_training_check():
    """forward is done; optimize is still `def optimize(self)` (the notebook's call with two loaders fails)."""
    facts = TemplateFacts(
        stubs={"optimize": "NotImplemented", "test": "NotImplemented"},
        params={"optimize": 0},
        init_calls_super=True,
        optimize_call="model.optimize(fashion_train_loader, fashion_test_loader)",
        optimize_call_args=2,
    )
    network = net(observe(baseline_layers())).model_copy(
        update={
            "template": facts,
            "errors": [
                ProbeError(
                    step="baseline: FashionNetwork().optimize",
                    error="TypeError: FashionNetwork.optimize() takes 1 positional argument but 3 were given",
                )
            ],
        }
    )
    verdict = check_baseline_training_setup(obs(network), CONFIG)
    assert verdict.status == "fail"
    assert verdict.message == (
        "FashionNetwork: `optimize` takes no loaders but the notebook calls it with two "
        "(`model.optimize(fashion_train_loader, fashion_test_loader)`)."
    ), verdict.message
    accuracies = check_baseline_accuracies(obs(network), CONFIG, RANGE)
    assert "`optimize` takes no loaders" in accuracies.message, accuracies.message
