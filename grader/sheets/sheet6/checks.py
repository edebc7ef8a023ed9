"""The automatic checks of Exercise 6.6 (SPEC.md's table), computed in the grader process.

Each check is declared once, here: its id, points and description in the decorator (the registry
`CHECKS`, which grading.toml's [checks] is validated against), the verdict in the function.

Each check looks at the probe's Observations, recomputes what the student's network should output
with the numpy reference on the student's own weights, and says what was expected and what was
found. The checks are independent: one mistake costs the points of the check it breaks.
"""
from __future__ import annotations

import numpy as np

from grader.checks.compare import (Unreproducible, close, describe, layers_from_ops, max_difference,
                                   structure, without_output_function)
from grader.config import Config
from grader.observations import ModelObservation, Observations
from grader.sheet import AccuracyRange, CheckRegistry, Verdict
from grader.sheets.sheet6.accuracies import choose_accuracy_candidate, described
from grader.sheets.sheet6.answer import Answer, Network, network
from reference.numpy_ref import OPS, run_layers

CHECKS = CheckRegistry(exercise="6.6")

EXPECTED_BASELINE = [("linear", 784, 64), ("relu",), ("linear", 64, 32), ("relu",), ("linear", 32, 10)]
CLASS_NAMES = {"baseline": ("FashionNetwork", "fashion_network"),
               "batchnorm": ("FashionNetworkBatchNorm", "fashion_network_batch_norm")}


def shaped_input(x: np.ndarray, input_kind: str) -> np.ndarray:
    """The probe's images as the network's forward took them: as they are, or flattened."""
    return x if input_kind == "image" else x.reshape(x.shape[0], -1)


def _missing(net: Network | None, key: str, need_instance: bool = False) -> Verdict | None:
    class_name, instance_name = CLASS_NAMES[key]
    if net is None or not net.class_found:
        return Verdict("fail", f"`class {class_name}(nn.Module)` is not defined after the notebook ran.")
    if need_instance and not net.instance_found:
        return Verdict("fail", no_trained_instance(net, key))
    return None


def no_trained_instance(net: Network, key: str) -> str:
    """Which class had no trained instance, and everything that was looked at."""
    class_name, canonical = CLASS_NAMES[key]
    expected = (f"expected an instance trained by its optimize, e.g. `{canonical} = {class_name}()` and "
                f"`{canonical}.optimize(fashion_train_loader, fashion_test_loader)`")
    search = net.search
    if search is None:
        return f"No trained {class_name} was found after the notebook ran ({expected})."
    holds = search.canonical_holds
    at_name = ("is not defined" if holds == "nothing" else f"holds a {holds}, not a {class_name}"
               if holds != class_name else f"holds a {class_name}")
    if search.calls:
        optimized = (f"{search.calls} call(s) of {class_name}.optimize were seen, "
                     f"{search.completed} of them completed")
    else:
        optimized = f"{class_name}.optimize was never called"
    if search.found:
        shown = ", ".join(f"`{name}`" for name in search.found[:5])
        scanned = (f"{len(search.found)} {class_name} instances were found ({shown}), none of them trained "
                   f"through optimize, so which one counts cannot be told")
    else:
        scanned = f"no {class_name} instance is kept in a global, list, tuple or dict"
    return (f"No trained {class_name} was found after the notebook ran. Looked for: the name `{canonical}` "
            f"(it {at_name}); instances whose optimize ran ({optimized}); {class_name} instances in the "
            f"notebook's globals and in lists, tuples and dicts ({scanned}). The other checks ran on a new "
            f"{class_name}(); {expected}.")


def _trained_name(net: Network, key: str) -> str:
    """How a message names the trained instance: where it is kept, or where it was trained."""
    if net.instance_name:
        return net.instance_name
    class_name = CLASS_NAMES[key][0]
    if net.optimize_cell is not None:
        return f"the {class_name} trained in In [{net.optimize_cell}]"
    return f"the trained {class_name}"


def _on_fresh(net: Network, key: str) -> str:
    """A note for a verdict reached on a new instance because no trained one was found."""
    if net.instance_found:
        return ""
    class_name = CLASS_NAMES[key][0]
    return f" (checked on a new {class_name}(): no trained instance was found)"


def _probe_error(net: Network, what: str) -> Verdict:
    errors = [e for e in net.errors if what in e.step] or net.errors
    if errors:
        e = errors[0]
        where = f" ({e.where})" if e.where else ""
        return Verdict("error", f"{e.step.split(': ', 1)[-1]} raised {e.error}{where}.")
    return Verdict("error", f"{what} could not be observed.")


def _model(net: Network, prefer_trained: bool) -> ModelObservation | None:
    first, second = (net.trained, net.fresh) if prefer_trained else (net.fresh, net.trained)
    return first or second


def _observed(obs: Observations[Answer], key: str, prefer_trained: bool) -> Verdict | tuple[Network, ModelObservation]:
    """The network `key` and the model a check reads (trained or fresh, as preferred), or the verdict
    that says why there is none."""
    net = network(obs, key)
    if (missing := _missing(net, key)):
        return missing
    model = _model(net, prefer_trained)
    return _probe_error(net, "forward") if model is None else (net, model)


# ---- baseline ----------------------------------------------------------------------------------

@CHECKS.check("baseline.architecture", points=0.25,
              description="`FashionNetwork()`'s forward runs Linear(784,64), ReLU, Linear(64,32), ReLU, Linear(32,10)")
def check_baseline_architecture(obs: Observations[Answer], config: Config, accuracy_range: AccuracyRange | None = None) -> Verdict:
    seen = _observed(obs, "baseline", prefer_trained=False)
    if isinstance(seen, Verdict):
        return seen
    net, model = seen
    found, _ = without_output_function(structure(model.ops_eval))
    if found == EXPECTED_BASELINE:
        return Verdict("pass", f"FashionNetwork() runs {describe(found)}.")
    return Verdict("fail", f"FashionNetwork() should run {describe(EXPECTED_BASELINE)}; "
                           f"its forward runs {describe(found)}.")


@CHECKS.check("baseline.forward", points=0.25,
              description="its output on a probe batch equals the numpy reference run on its own weights, and is logits (no softmax)")
def check_baseline_forward(obs: Observations[Answer], config: Config, accuracy_range: AccuracyRange | None = None) -> Verdict:
    seen = _observed(obs, "baseline", prefer_trained=True)
    if isinstance(seen, Verdict):
        return seen
    net, model = seen
    verdict = _forward_verdict(model, obs.inputs["x"], config, "FashionNetwork")
    if net.trained is None and net.fresh is not None:
        return Verdict(verdict.status, verdict.message + _on_fresh(net, "baseline"))
    return verdict


def _forward_verdict(model: ModelObservation, probe_x: np.ndarray, config: Config, name: str) -> Verdict:
    x = shaped_input(probe_x, model.input_kind)
    try:
        layers = layers_from_ops(model.ops_eval, model, reference_ops=OPS)
        expected, _ = run_layers(x, layers, train=False)
    except (Unreproducible, ValueError) as exc:
        return Verdict("needs_review", f"{name}'s forward pass could not be recomputed: {exc}.")
    tol = config.tolerance
    if model.out_eval.shape != (x.shape[0], 10):
        return Verdict("fail", f"{name}'s forward should return one row of 10 logits per image, "
                               f"shape ({x.shape[0]}, 10); it returned shape {model.out_eval.shape}.")
    if not close(model.out_eval, expected, tol.atol, tol.rtol):
        return Verdict("fail", f"{name}'s forward output differs from what its own layers compute "
                               f"(largest difference {max_difference(model.out_eval, expected):.3g}); "
                               f"forward should return the output of the last Linear layer.")
    _, output_function = without_output_function(structure(model.ops_eval))
    if output_function:
        shown = {"softmax": "softmax", "log_softmax": "log-softmax", "sigmoid": "a sigmoid"}[output_function]
        return Verdict("fail", f"{name}'s forward applies {shown} to its output. nn.CrossEntropyLoss "
                               f"expects logits (it applies log-softmax itself): return the last Linear "
                               f"layer's output as it is.")
    return Verdict("pass", f"{name}'s forward returns logits equal to the reference forward pass with its "
                           f"weights (largest difference {max_difference(model.out_eval, expected):.1e}).")


@CHECKS.check("baseline.training_setup", points=0.25,
              description="`optimize` steps an SGD optimizer with lr 0.001 over the network's parameters, with cross-entropy loss")
def check_baseline_training_setup(obs: Observations[Answer], config: Config, accuracy_range: AccuracyRange | None = None) -> Verdict:
    net = network(obs, "baseline")
    if (missing := _missing(net, "baseline")):
        return missing
    training = net.training
    if training is None:
        return _probe_error(net, "optimize")
    lr = config.sheet_settings.learning_rate
    problems = []
    if not training.steps:
        return Verdict("fail", "optimize(train_loader, test_loader) never called optimizer.step(): "
                               "the network is not trained.")
    step = training.steps[0]
    if step.optimizer != "SGD":
        problems.append(f"the optimizer should be torch.optim.SGD, found {step.optimizer}")
    if not np.isclose(step.lr, lr, rtol=1e-9, atol=0):
        problems.append(f"the learning rate should be {lr:g}, found {step.lr:g}")
    if step.own_params < training.model_params:
        problems.append(f"the optimizer updates {step.own_params} of the network's {training.model_params} "
                        f"parameter tensors (pass self.parameters())")
    cross_entropy = {"cross_entropy", "nll_loss"}
    if not cross_entropy.intersection(training.losses):
        found = ", ".join(training.losses) if training.losses else "no loss function"
        problems.append(f"the loss should be nn.CrossEntropyLoss, found {found}")
    if problems:
        return Verdict("fail", "Training setup: " + "; ".join(problems) + ".")
    return Verdict("pass", f"optimize uses {step.optimizer} with lr {step.lr:g} and cross-entropy loss.")


@CHECKS.check("baseline.accuracies", points=0.25,
              description="5 per-epoch test accuracies were recorded, within the range the solution reaches on the same data")
def check_baseline_accuracies(obs: Observations[Answer], config: Config, accuracy_range: AccuracyRange | None = None) -> Verdict:
    net = network(obs, "baseline")
    if (missing := _missing(net, "baseline", need_instance=True)):
        return missing
    epochs = config.sheet_settings.epochs
    chosen = choose_accuracy_candidate(net, epochs)
    if chosen is None:
        others = [c for c in net.accuracy_candidates if "loss" not in c.name.lower()]
        hint = ""
        if others:
            hint = " Found " + ", ".join(f"`{c.name}` with {len(c.values)} values" for c in others[:3]) + "."
        return Verdict("fail", f"No {epochs} per-epoch test accuracies were found for "
                               f"{_trained_name(net, 'baseline')}: optimize should measure the test accuracy "
                               f"after every epoch and return the list or keep it on the network "
                               f"(e.g. self.test_accuracies).{hint}")
    candidate, values = chosen
    name = described(candidate)
    shown = ", ".join(f"{v:.3f}" for v in values)
    if any(not (0.0 <= v <= 1.0) for v in values):
        return Verdict("fail", f"{name} holds {shown}: accuracies are fractions in [0, 1] or percent in [0, 100].")
    if accuracy_range is None:
        return Verdict("needs_review", f"{name} holds {shown}, but no reference range exists for this data "
                                       f"(run `grader calibrate`).")
    margin = config.tolerance.accuracy_margin
    # No lower bound: a network with another mistake (softmax in forward, a missing ReLU) learns more
    # slowly, that mistake already costs its own check, and how much more slowly depends on the data
    # size. The upper bound catches numbers this recipe does not reach on this data (hard-coded
    # results, accuracies measured on the training set, counts read as fractions).
    outside = [(i + 1, v, 0.0, hi) for i, (v, hi) in enumerate(zip(values, accuracy_range.high))
               if not (0.0 - margin <= v <= hi + margin)]
    if outside:
        detail = "; ".join(f"epoch {e}: {v:.3f} (plausible {max(0, lo - margin):.3f}–{min(1, hi + margin):.3f})"
                           for e, v, lo, hi in outside)
        return Verdict("fail", f"{name} holds {shown}, outside the range the reference solution reaches on the "
                               f"same data: {detail}.")
    return Verdict("pass", f"{epochs} test accuracies recorded in {name}: {shown}.")


# ---- batchnorm ---------------------------------------------------------------------------------

@CHECKS.check("batchnorm.architecture", points=0.25,
              description="`FashionNetworkBatchNorm()` runs the same Linear layers with a BatchNorm1d of matching width on each hidden layer (before or after the ReLU)")
def check_batchnorm_architecture(obs: Observations[Answer], config: Config, accuracy_range: AccuracyRange | None = None) -> Verdict:
    seen = _observed(obs, "batchnorm", prefer_trained=False)
    if isinstance(seen, Verdict):
        return seen
    net, model = seen
    found, _ = without_output_function(structure(model.ops_eval))
    expected_text = ("Linear(784, 64), BatchNorm1d(64), ReLU, Linear(64, 32), BatchNorm1d(32), ReLU, "
                     "Linear(32, 10) (BatchNorm before or after each ReLU)")
    linears = [item for item in found if item[0] == "linear"]
    if linears != [item for item in EXPECTED_BASELINE if item[0] == "linear"]:
        return Verdict("fail", f"FashionNetworkBatchNorm() should run {expected_text}; its forward runs {describe(found)}.")
    if not any(item[0] == "batch_norm" for item in found):
        return Verdict("fail", f"FashionNetworkBatchNorm() runs no BatchNorm layer: {describe(found)}; "
                               f"expected {expected_text}.")
    # Split at the Linear layers: each hidden layer is followed by exactly one ReLU and one BatchNorm1d of its width.
    segments: list[list[tuple]] = [[]]
    for item in found:
        if item[0] == "linear":
            segments.append([])
        else:
            segments[-1].append(item)
    problems = []
    if segments[0]:
        problems.append(f"{describe(segments[0])} before the first Linear layer")
    for width, segment in zip((64, 32), segments[1:3]):
        if sorted(segment) != sorted([("batch_norm", width), ("relu",)]):
            problems.append(f"after Linear(.., {width}) it runs {describe(segment)} instead of BatchNorm1d({width}) and ReLU")
    if segments[3]:
        problems.append(f"{describe(segments[3])} after the last Linear layer")
    if problems:
        return Verdict("fail", "FashionNetworkBatchNorm(): " + "; ".join(problems) + f". Expected {expected_text}.")
    bn_types = {m.type for m in model.modules if "BatchNorm" in m.type}
    if bn_types - {"BatchNorm1d"}:
        return Verdict("fail", f"FashionNetworkBatchNorm() uses {', '.join(sorted(bn_types))}; "
                               f"for (N, features) data use nn.BatchNorm1d.")
    return Verdict("pass", f"FashionNetworkBatchNorm() runs {describe(found)}.")


@CHECKS.check("batchnorm.behaviour", points=0.25,
              description="train-mode output and running-statistics update equal the reference with batch statistics, eval-mode output equals it with running statistics, and `test` runs in eval mode")
def check_batchnorm_behaviour(obs: Observations[Answer], config: Config, accuracy_range: AccuracyRange | None = None) -> Verdict:
    seen = _observed(obs, "batchnorm", prefer_trained=True)
    if isinstance(seen, Verdict):
        return seen
    net, model = seen
    if not any(op.op == "batch_norm" for op in model.ops_eval):
        return Verdict("fail", "FashionNetworkBatchNorm's forward runs no BatchNorm layer, so its train- and "
                               "eval-mode behaviour cannot be right.")
    tol = config.tolerance
    x = shaped_input(obs.inputs["x"], model.input_kind)
    problems, good = [], []
    try:
        train_layers = layers_from_ops(model.ops_train, model, reference_ops=OPS)
        expected_train, new_stats = run_layers(x, train_layers, train=True)
        eval_layers = layers_from_ops(model.ops_eval, model, reference_ops=OPS)
        expected_eval, _ = run_layers(x, eval_layers, train=False)
    except (Unreproducible, ValueError) as exc:
        return Verdict("needs_review", f"FashionNetworkBatchNorm's forward pass could not be recomputed: {exc}.")
    if close(model.out_train, expected_train, tol.atol, tol.rtol):
        good.append("train mode normalises with batch statistics")
    else:
        problems.append(f"in train mode the output differs from BatchNorm with batch statistics "
                        f"(largest difference {max_difference(model.out_train, expected_train):.3g})")
    bn_layers = [layer for layer in train_layers if layer["op"] == "batch_norm"]
    for layer, (mean, var) in zip(bn_layers, new_stats):
        mean_name, var_name = layer["stats_names"]
        after_mean = model.buffers_after_train.get(mean_name) if mean_name else None
        after_var = model.buffers_after_train.get(var_name) if var_name else None
        if after_mean is None or after_var is None:
            problems.append("a BatchNorm layer keeps no running statistics (track_running_stats=False)")
        elif not (close(after_mean, mean, tol.atol, tol.rtol) and close(after_var, var, tol.atol, tol.rtol)):
            problems.append(f"the running statistics `{mean_name}`/`{var_name}` are not updated as BatchNorm does")
    if close(model.out_eval, expected_eval, tol.atol, tol.rtol):
        good.append("eval mode uses the running statistics")
    else:
        problems.append(f"in eval mode the output differs from BatchNorm with running statistics "
                        f"(largest difference {max_difference(model.out_eval, expected_eval):.3g})")
    test = net.test_mode
    if test is None:
        verdict = _probe_error(net, ".test")
        problems.append(f"test(test_loader) could not be run: {verdict.message}")
        if not net.instance_found:
            problems.append(no_trained_instance(net, "batchnorm"))
    elif test.bn_calls == 0:
        problems.append("test(test_loader) did not run the network")
    elif test.bn_training_calls:
        problems.append("test(test_loader) runs the network in training mode: BatchNorm then normalises with "
                        "the test batch's statistics and changes its running statistics; call self.eval() "
                        "before testing (and self.train() before training again)")
    else:
        good.append("test() evaluates in eval mode")
    if problems:
        return Verdict("fail", "FashionNetworkBatchNorm: " + "; ".join(problems) + ".")
    return Verdict("pass", "FashionNetworkBatchNorm: " + ", ".join(good) + _on_fresh(net, "batchnorm") + ".")
