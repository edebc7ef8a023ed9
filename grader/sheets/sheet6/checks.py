"""The automatic checks of Exercise 6.6 (docs/spec.md's table), computed in the grader process.

Each check is declared once, here: its id, points and description in the decorator (the registry
`CHECKS`, which grading.toml's [checks] is validated against), the verdict in the function.

Each check looks at the probe's Observations, recomputes what the student's network should output
with the numpy reference on the student's own weights, and says what was expected and what was
found. The checks are independent: one mistake costs the points of the check it breaks.
"""

from __future__ import annotations

import functools
import re

import numpy as np

from grader.checks.compare import (
    Unreproducible,
    close,
    describe,
    layers_from_ops,
    max_difference,
    structure,
    without_output_function,
)
from grader.config import Config
from grader.observations import ModelObservation, Observations
from grader.sheet import AccuracyRange, CheckRegistry, Verdict
from grader.sheets.sheet6.accuracies import choose_accuracy_candidate, described
from grader.sheets.sheet6.answer import Answer, Network, TestMode, network
from reference.numpy_ref import OPS, run_layers

CHECKS = CheckRegistry(exercise="6.6")

EXPECTED_BASELINE = [("linear", 784, 64), ("relu",), ("linear", 64, 32), ("relu",), ("linear", 32, 10)]
CLASS_NAMES = {
    "baseline": ("FashionNetwork", "fashion_network"),
    "batchnorm": ("FashionNetworkBatchNorm", "fashion_network_batch_norm"),
}


def shaped_input(x: np.ndarray, input_kind: str) -> np.ndarray:
    """The probe's images as the network's forward took them: as they are, or flattened."""
    return x if input_kind == "image" else x.reshape(x.shape[0], -1)


def _missing(net: Network | None, key: str, need_instance: bool = False) -> Verdict | None:
    class_name, _instance_name = CLASS_NAMES[key]
    if net is None or not net.class_found:
        return Verdict("fail", f"`class {class_name}(nn.Module)` is not defined after the notebook ran.")
    if need_instance and not net.instance_found:
        return Verdict("fail", no_trained_instance(net, key))
    return None


def no_trained_instance(net: Network, key: str) -> str:
    """Which class had no trained instance, and everything that was looked at."""
    class_name, canonical = CLASS_NAMES[key]
    expected = (
        f"expected an instance trained by its optimize, e.g. `{canonical} = {class_name}()` and "
        f"`{canonical}.optimize(fashion_train_loader, fashion_test_loader)`"
    )
    search = net.search
    if search is None:
        return f"No trained {class_name} was found after the notebook ran ({expected})."
    holds = search.canonical_holds
    at_name = (
        "is not defined"
        if holds == "nothing"
        else f"holds a {holds}, not a {class_name}"
        if holds != class_name
        else f"holds a {class_name}"
    )
    if search.calls:
        optimized = f"{search.calls} call(s) of {class_name}.optimize were seen, {search.completed} of them completed"
    else:
        optimized = f"{class_name}.optimize was never called"
    if search.found:
        shown = ", ".join(f"`{name}`" for name in search.found[:5])
        scanned = (
            f"{len(search.found)} {class_name} instances were found ({shown}), none of them trained "
            f"through optimize, so which one counts cannot be told"
        )
    else:
        scanned = f"no {class_name} instance is kept in a global, list, tuple or dict"
    return (
        f"No trained {class_name} was found after the notebook ran. Looked for: the name `{canonical}` "
        f"(it {at_name}); instances whose optimize ran ({optimized}); {class_name} instances in the "
        f"notebook's globals and in lists, tuples and dicts ({scanned}). The other checks ran on a new "
        f"{class_name}(); {expected}."
    )


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
    that says why there is none (in words a student can act on where the class is still the stub)."""
    net = network(obs, key)
    if missing := _missing(net, key):
        return missing
    assert net is not None  # _missing said so
    model = _model(net, prefer_trained)
    if model is None:
        return (
            _stub_verdict(net, key, ("__init__", "forward"))
            or _normalisation_error(net, key)
            or _probe_error(net, "forward")
        )
    return net, model


# torch's words when a normalisation layer does not fit the data where it stands, and what they mean
_NORMALISATION_ERRORS = (
    (
        re.compile(r"running_mean should contain (\d+) elements not (\d+)"),
        "a BatchNorm1d({1}) stands where the features are {0} wide; each BatchNorm must be as wide as the features "
        "where it stands (784 on the flattened input, 64 or 32 after a hidden Linear, 10 after the last)",
    ),
    (
        re.compile(r"expected 4D input \(got 2D input\)"),
        "nn.BatchNorm2d expects images (N, C, H, W) but gets features (N, width); for features use nn.BatchNorm1d",
    ),
    (
        re.compile(r"expected 2D or 3D input \(got 4D input\)"),
        "nn.BatchNorm1d gets the images (N, 1, 28, 28) before they are flattened; flatten first, then BatchNorm1d(784)",
    ),
)


def _normalisation_error(net: Network, key: str) -> Verdict | None:
    """The forward failed because a normalisation layer does not fit the data where it stands."""
    for error in net.errors:
        if "forward" not in error.step:
            continue
        for pattern, meaning in _NORMALISATION_ERRORS:
            if found := pattern.search(error.error):
                return Verdict(
                    "fail",
                    f"{CLASS_NAMES[key][0]}'s forward fails: {meaning.format(*found.groups())} "
                    f"(torch: {error.error[:200]}).",
                )
    return None


# ---- the template's stubs ----------------------------------------------------------------------
# The course's notebook hands out each class with `__init__` (not calling super().__init__()),
# `forward(self, x)`, `optimize(self)` and `test(self)`, each doing nothing but return NotImplemented.

STUB_METHODS = ("__init__", "forward", "optimize", "test")
_STUB_WORDS = {
    "NotImplemented": "`{}` still returns the template's `NotImplemented`",
    "NotImplementedError": "`{}` still raises NotImplementedError",
    "empty": "`{}` is still empty",
}
_COUNT = {1: "one", 2: "two", 3: "three"}


def _template_problems(net: Network | None, methods: tuple[str, ...]) -> list[str]:
    """What of the class is still the template's stub, among `methods`, in words a student can act on."""
    facts = net.template if net is not None else None
    if facts is None:
        return []
    problems = []
    for method in methods:
        if method == "__init__" and facts.init_calls_super is False:
            problems.append("`__init__` does not call `super().__init__()`")
        elif method == "optimize" and facts.params.get("optimize") == 0 and facts.optimize_call_args != 0:
            # (called without loaders, as `optimize(self)` takes it, the stub's body is what is left)
            called = facts.optimize_call_args
            if called:
                problems.append(
                    f"`optimize` takes no loaders but the notebook calls it with {_COUNT.get(called, called)} "
                    f"(`{facts.optimize_call[:200]}`)"
                )
            else:
                problems.append(
                    "`optimize` takes no loaders but the sheet's training cell calls it with two "
                    "(`optimize(fashion_train_loader, fashion_test_loader)`)"
                )
        elif method != "__init__" and (kind := facts.stubs.get(method)) in _STUB_WORDS:
            problems.append(_STUB_WORDS[kind].format(method))
    return problems


def _stub_verdict(net: Network | None, key: str, methods: tuple[str, ...]) -> Verdict | None:
    problems = _template_problems(net, methods)
    return Verdict("fail", f"{CLASS_NAMES[key][0]}: " + "; ".join(problems) + ".") if problems else None


def still_the_template(obs: Observations[Answer]) -> str | None:
    """One line for a notebook whose classes are both still the template's stubs (each defines
    every method of the stub, and none does anything); None for anything more (a partly filled
    notebook is graded check by check)."""
    problems: list[str] = []
    for key in CLASS_NAMES:
        net = network(obs, key)
        facts = net.template if net is not None and net.class_found else None
        if facts is None or set(facts.stubs) != set(STUB_METHODS):
            return None
        problems += [p for p in _template_problems(net, STUB_METHODS[:3]) if p not in problems]
    names = " and ".join(f"`{name}`" for name, _ in CLASS_NAMES.values())
    because = f" ({'; '.join(problems)})" if problems else ""
    return (
        f"The notebook is still the template: {names} do nothing yet{because}. "
        f"Nothing of Parts 1 and 2 could be checked."
    )


def _unless_template(check):
    """The check, or for a notebook that is still the template the one line that says so."""

    @functools.wraps(check)
    def run(obs: Observations[Answer], config: Config, accuracy_range: AccuracyRange | None = None) -> Verdict:
        line = still_the_template(obs)
        return Verdict("fail", line) if line else check(obs, config, accuracy_range)

    return run


# ---- baseline ----------------------------------------------------------------------------------


@CHECKS.check(
    "baseline.architecture",
    points=0.25,
    description="`FashionNetwork()`'s forward runs Linear(784,64), ReLU, Linear(64,32), ReLU, Linear(32,10)",
)
@_unless_template
def check_baseline_architecture(
    obs: Observations[Answer], config: Config, accuracy_range: AccuracyRange | None = None
) -> Verdict:
    seen = _observed(obs, "baseline", prefer_trained=False)
    if isinstance(seen, Verdict):
        return seen
    _net, model = seen
    found, _ = without_output_function(structure(model.ops_eval))
    if found == EXPECTED_BASELINE:
        return Verdict("pass", f"FashionNetwork() runs {describe(found)}.")
    return Verdict(
        "fail", f"FashionNetwork() should run {describe(EXPECTED_BASELINE)}; its forward runs {describe(found)}."
    )


@CHECKS.check(
    "baseline.forward",
    points=0.25,
    description="its output on a probe batch equals the numpy reference run on its own weights, and is logits (no softmax)",
)
@_unless_template
def check_baseline_forward(
    obs: Observations[Answer], config: Config, accuracy_range: AccuracyRange | None = None
) -> Verdict:
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
        return Verdict(
            "fail",
            f"{name}'s forward should return one row of 10 logits per image, "
            f"shape ({x.shape[0]}, 10); it returned shape {model.out_eval.shape}.",
        )
    if not close(model.out_eval, expected, tol.atol, tol.rtol):
        return Verdict(
            "fail",
            f"{name}'s forward output differs from what its own layers compute "
            f"(largest difference {max_difference(model.out_eval, expected):.3g}); "
            f"forward should return the output of the last Linear layer.",
        )
    _, output_function = without_output_function(structure(model.ops_eval))
    if output_function:
        shown = {"softmax": "softmax", "log_softmax": "log-softmax", "sigmoid": "a sigmoid"}[output_function]
        return Verdict(
            "fail",
            f"{name}'s forward applies {shown} to its output. nn.CrossEntropyLoss "
            f"expects logits (it applies log-softmax itself): return the last Linear "
            f"layer's output as it is.",
        )
    return Verdict(
        "pass",
        f"{name}'s forward returns logits equal to the reference forward pass with its "
        f"weights (largest difference {max_difference(model.out_eval, expected):.1e}).",
    )


@CHECKS.check(
    "baseline.training_setup",
    points=0.25,
    description="`optimize` steps an SGD optimizer with lr 0.001 over the network's parameters, with cross-entropy loss",
)
@_unless_template
def check_baseline_training_setup(
    obs: Observations[Answer], config: Config, accuracy_range: AccuracyRange | None = None
) -> Verdict:
    net = network(obs, "baseline")
    if missing := _missing(net, "baseline"):
        return missing
    assert net is not None  # _missing said so
    training = net.training
    if training is None:
        return _stub_verdict(net, "baseline", ("__init__", "optimize")) or _probe_error(net, "optimize")
    lr = config.sheet_settings.learning_rate
    problems = []
    if not training.steps:
        return _stub_verdict(net, "baseline", ("optimize",)) or Verdict(
            "fail", "optimize(train_loader, test_loader) never called optimizer.step(): the network is not trained."
        )
    step = training.steps[0]
    if step.optimizer != "SGD":
        problems.append(f"the optimizer should be torch.optim.SGD, found {step.optimizer}")
    if not np.isclose(step.lr, lr, rtol=1e-9, atol=0):
        problems.append(f"the learning rate should be {lr:g}, found {step.lr:g}")
    if step.own_params < training.model_params:
        problems.append(
            f"the optimizer updates {step.own_params} of the network's {training.model_params} "
            f"parameter tensors (pass self.parameters())"
        )
    cross_entropy = {"cross_entropy", "nll_loss"}
    if not cross_entropy.intersection(training.losses):
        found = ", ".join(training.losses) if training.losses else "no loss function"
        problems.append(f"the loss should be nn.CrossEntropyLoss, found {found}")
    if problems:
        return Verdict("fail", "Training setup: " + "; ".join(problems) + ".")
    return Verdict("pass", f"optimize uses {step.optimizer} with lr {step.lr:g} and cross-entropy loss.")


@CHECKS.check(
    "baseline.accuracies",
    points=0.25,
    description="5 per-epoch test accuracies were recorded, within the range the solution reaches on the same data",
)
@_unless_template
def check_baseline_accuracies(
    obs: Observations[Answer], config: Config, accuracy_range: AccuracyRange | None = None
) -> Verdict:
    net = network(obs, "baseline")
    if missing := _missing(net, "baseline", need_instance=True):
        return missing
    assert net is not None  # _missing said so
    epochs = config.sheet_settings.epochs
    chosen = choose_accuracy_candidate(net, epochs)
    if chosen is None:
        if stub := _template_problems(net, ("optimize",)):
            return Verdict(
                "fail",
                f"No {epochs} per-epoch test accuracies were found for "
                f"{_trained_name(net, 'baseline')}: " + "; ".join(stub) + ".",
            )
        others = [c for c in net.accuracy_candidates if "loss" not in c.name.lower()]
        hint = ""
        if others:
            hint = " Found " + ", ".join(f"`{c.name}` with {len(c.values)} values" for c in others[:3]) + "."
        return Verdict(
            "fail",
            f"No {epochs} per-epoch test accuracies were found for "
            f"{_trained_name(net, 'baseline')}: optimize should measure the test accuracy "
            f"after every epoch and return the list or keep it on the network "
            f"(e.g. self.test_accuracies).{hint}",
        )
    candidate, values = chosen
    name = described(candidate)
    shown = ", ".join(f"{v:.3f}" for v in values)
    if any(not (0.0 <= v <= 1.0) for v in values):
        return Verdict("fail", f"{name} holds {shown}: accuracies are fractions in [0, 1] or percent in [0, 100].")
    if accuracy_range is None:
        return Verdict(
            "needs_review",
            f"{name} holds {shown}, but no reference range exists for this data (run `grader calibrate`).",
        )
    margin = config.tolerance.accuracy_margin
    # No lower bound: a network with another mistake (softmax in forward, a missing ReLU) learns more
    # slowly, that mistake already costs its own check, and how much more slowly depends on the data
    # size. The upper bound catches numbers this recipe does not reach on this data (hard-coded
    # results, accuracies measured on the training set, counts read as fractions).
    outside = [
        (i + 1, v, 0.0, hi)
        for i, (v, hi) in enumerate(zip(values, accuracy_range.high))
        if not (0.0 - margin <= v <= hi + margin)
    ]
    if outside:
        detail = "; ".join(
            f"epoch {e}: {v:.3f} (plausible {max(0, lo - margin):.3f}–{min(1, hi + margin):.3f})"
            for e, v, lo, hi in outside
        )
        return Verdict(
            "fail",
            f"{name} holds {shown}, outside the range the reference solution reaches on the same data: {detail}.",
        )
    return Verdict("pass", f"{epochs} test accuracies recorded in {name}: {shown}.")


# ---- batchnorm ---------------------------------------------------------------------------------

# Where a BatchNorm1d may stand, and how wide the features are there: before the first Linear (the
# flattened image), after each Linear (a hidden one: before or after its ReLU).
BN_PLACES = (
    (784, "before Linear(784, 64)"),
    (64, "after Linear(784, 64)"),
    (32, "after Linear(64, 32)"),
    (10, "after Linear(32, 10)"),
)
BATCHNORM_ASKED = (
    "the baseline's Linear(784, 64), ReLU, Linear(64, 32), ReLU, Linear(32, 10) with one or more "
    "nn.BatchNorm1d added where the team chooses, each as wide as the features where it stands: "
    "BatchNorm1d(784) on the flattened input, BatchNorm1d(64) after Linear(784, 64) or BatchNorm1d(32) "
    "after Linear(64, 32) (before or after its ReLU), BatchNorm1d(10) after Linear(32, 10)"
)
_BATCHNORM_KINDS = {"BatchNorm1d", "LazyBatchNorm1d"}
_OTHER_NORMS = {"layer_norm": "nn.LayerNorm", "group_norm": "nn.GroupNorm", "instance_norm": "nn.InstanceNorm1d"}


def _with_norm_kinds(shape: list[tuple], model: ModelObservation) -> list[tuple]:
    """`shape` with each BatchNorm named by the torch class of the module that ran it: ("batch_norm",
    width, "BatchNorm2d"); a subclass of nn.BatchNorm1d is one. A batch_norm whose parameters and
    statistics belong to no submodule, or to the team's own module (F.batch_norm on their own tensors),
    counts as BatchNorm1d."""
    types = {m.name: "BatchNorm1d" if m.kind == "Module" else m.kind or m.type for m in model.modules}
    kinds = []
    for op in model.ops_eval:
        if op.op == "batch_norm":
            owners = [
                name.rsplit(".", 1)[0]
                for name in (op.weight, op.running_mean, op.bias, op.running_var)
                if name and "." in name
            ]
            kinds.append(next((types[o] for o in owners if o in types), "BatchNorm1d"))
    kinds.reverse()
    return [(*item, kinds.pop()) if item[0] == "batch_norm" and kinds else item for item in shape]


def _placement_problems(segments: list[list[tuple]]) -> list[str]:
    """What stands where the sheet has no place for it, per stretch between the Linear layers."""
    problems = []
    for (width, place), segment in zip(BN_PLACES, segments):
        wanted = 1 if width in (64, 32) else 0
        relus = sum(1 for item in segment if item[0] == "relu")
        if relus != wanted:
            problems.append(
                f"no ReLU {place}"
                if relus == 0
                else f"{'a ReLU' if relus == 1 else f'{relus} ReLUs'} {place}, where the baseline has "
                f"{'one' if wanted else 'none'}"
            )
        for item in segment:
            if item[0] == "batch_norm":
                kind = item[2] if len(item) > 2 else "BatchNorm1d"
                if kind not in _BATCHNORM_KINDS:
                    problems.append(
                        f"{kind}({item[1]}) {place}: the sheet asks for nn.BatchNorm1d, here "
                        f"BatchNorm1d({width}) on the (N, {width}) features"
                    )
                elif item[1] != width:
                    problems.append(
                        f"BatchNorm1d({item[1]}) {place}, where the features are {width} wide (BatchNorm1d({width}))"
                    )
            elif item[0] in _OTHER_NORMS:
                problems.append(
                    f"{describe([item])} {place}: {_OTHER_NORMS[item[0]]} is not batch normalisation "
                    f"(it normalises each image over its features; nn.BatchNorm1d({width}) normalises "
                    f"each feature over the batch)"
                )
            elif item[0] != "relu":
                problems.append(f"{describe([item])} {place}, which the sheet does not ask for")
    return problems


@CHECKS.check(
    "batchnorm.architecture",
    points=0.25,
    description="`FashionNetworkBatchNorm()` runs the baseline's Linear layers and ReLUs with one or more BatchNorm1d added where the team chooses, each as wide as the features where it stands (784 on the input, 64 or 32 after a hidden Linear, before or after its ReLU, 10 after the last)",
)
@_unless_template
def check_batchnorm_architecture(
    obs: Observations[Answer], config: Config, accuracy_range: AccuracyRange | None = None
) -> Verdict:
    seen = _observed(obs, "batchnorm", prefer_trained=False)
    if isinstance(seen, Verdict):
        return seen
    _net, model = seen
    found = _with_norm_kinds(without_output_function(structure(model.ops_eval))[0], model)
    runs = f"its forward runs {describe(found)}"
    linears = [item for item in found if item[0] == "linear"]
    if linears != [item for item in EXPECTED_BASELINE if item[0] == "linear"]:
        return Verdict(
            "fail",
            f"FashionNetworkBatchNorm(): {runs}, not the baseline's three Linear layers. "
            f"The sheet asks for {BATCHNORM_ASKED}.",
        )
    # The stretches before the first Linear, between the Linear layers, and after the last one.
    segments: list[list[tuple]] = [[]]
    for item in found:
        if item[0] == "linear":
            segments.append([])
        else:
            segments[-1].append(item)
    problems = _placement_problems(segments)
    if not any(item[0] == "batch_norm" for item in found):
        return Verdict(
            "fail",
            f"FashionNetworkBatchNorm() runs no BatchNorm layer: {runs}"
            + (f" ({'; '.join(problems)})" if problems else "")
            + f". The sheet asks for {BATCHNORM_ASKED}.",
        )
    if problems:
        return Verdict(
            "fail",
            f"FashionNetworkBatchNorm(): {runs}; " + "; ".join(problems) + f". The sheet asks for {BATCHNORM_ASKED}.",
        )
    places = [place for (_, place), segment in zip(BN_PLACES, segments) for item in segment if item[0] == "batch_norm"]
    shown = places[0] if len(places) == 1 else ", ".join(places[:-1]) + " and " + places[-1]
    return Verdict(
        "pass",
        f"FashionNetworkBatchNorm() runs {describe(found)}: BatchNorm1d {shown}, each as wide as the features there.",
    )


@CHECKS.check(
    "batchnorm.behaviour",
    points=0.25,
    description="train-mode output and running-statistics update equal the reference with batch statistics, eval-mode output equals it with running statistics, and `test` runs in eval mode (called as the notebook calls it)",
)
@_unless_template
def check_batchnorm_behaviour(
    obs: Observations[Answer], config: Config, accuracy_range: AccuracyRange | None = None
) -> Verdict:
    seen = _observed(obs, "batchnorm", prefer_trained=True)
    if isinstance(seen, Verdict):
        return seen
    net, model = seen
    if not any(op.op == "batch_norm" for op in model.ops_eval):
        return Verdict(
            "fail",
            "FashionNetworkBatchNorm's forward runs no BatchNorm layer, so its train- and "
            "eval-mode behaviour cannot be right.",
        )
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
        problems.append(
            f"in train mode the output differs from BatchNorm with batch statistics "
            f"(largest difference {max_difference(model.out_train, expected_train):.3g})"
        )
    bn_layers = [layer for layer in train_layers if layer["op"] == "batch_norm"]
    # Per pair of statistics, what its last update left (one BatchNorm run twice updates them twice).
    last = {layer["stats_names"]: (layer, stats) for layer, stats in zip(bn_layers, new_stats)}
    for layer, (mean, var) in last.values():
        mean_name, var_name = layer["stats_names"]
        after_mean = model.buffers_after_train.get(mean_name) if mean_name else None
        after_var = model.buffers_after_train.get(var_name) if var_name else None
        if after_mean is None or after_var is None or mean is None or var is None:
            problems.append("a BatchNorm layer keeps no running statistics (track_running_stats=False)")
        elif not (close(after_mean, mean, tol.atol, tol.rtol) and close(after_var, var, tol.atol, tol.rtol)):
            problems.append(f"the running statistics `{mean_name}`/`{var_name}` are not updated as BatchNorm does")
    if close(model.out_eval, expected_eval, tol.atol, tol.rtol):
        good.append("eval mode uses the running statistics")
    else:
        problems.append(
            f"in eval mode the output differs from BatchNorm with running statistics "
            f"(largest difference {max_difference(model.out_eval, expected_eval):.3g})"
        )
    test = net.test_mode
    if test is None:
        stub = _template_problems(net, ("test",))
        if stub:
            problems += stub
        else:
            verdict = _probe_error(net, ".test")
            problems.append(f"test could not be run: {verdict.message}")
        if not net.instance_found:
            problems.append(no_trained_instance(net, "batchnorm"))
    elif test.bn_calls == 0:
        problems += _template_problems(net, ("test",)) or [f"{_test_call(test)} did not run the network"]
    elif test.bn_training_calls:
        problems.append(
            f"{_test_call(test)} runs the network in training mode: BatchNorm then normalises with "
            "the test batch's statistics and changes its running statistics; call self.eval() "
            "before testing (and self.train() before training again)"
        )
    else:
        good.append(f"{_test_call(test)} evaluates in eval mode")
    if problems:
        return Verdict("fail", "FashionNetworkBatchNorm: " + "; ".join(problems) + ".")
    return Verdict("pass", "FashionNetworkBatchNorm: " + ", ".join(good) + _on_fresh(net, "batchnorm") + ".")


def _test_call(test: TestMode) -> str:
    """How the probe called `test`: as the notebook's own code does, by its signature."""
    if test.called_as != "test()":  # by position, or by name: `test(self, *, loader)`
        return test.called_as if re.fullmatch(r"test\(\w{1,40}=test_loader\)", test.called_as) else "test(test_loader)"
    if test.loaders_swapped:
        shown = ", ".join(f"`{name}`" for name in test.loaders_swapped[:4])
        return f"test() (it takes no loader: called as the notebook calls it, with {shown} pointed at the grader's probe batch)"
    return "test() (it takes no loader: called as the notebook calls it, on the data it reads itself)"
