"""The automatic checks of Exercise 5.4 (parts 5.4.1–5.4.3, 2 points), computed in the grader process.

Each check is declared once, here: its id, points and description in the decorator (the registry
`CHECKS`, which grading.toml's [checks] is validated against), the verdict in the function. Each
looks at the probe's Observations (answer.py), recomputes what the team's code should have done
with the numpy reference (numpy_ref.py) on the team's own weights and batches, and says what was
expected and what was found.

The split follows the sheet: 5.4.1 (0.5) the data set's items and its length; 5.4.2 (0.5) the
network's layers and its forward pass, softmax included; 5.4.3 (1) the training step (zero_grad,
backward, step, with config's learning rate) and what the notebook's own training reached. A
mistake in the step also shows in the trained network's accuracy, as it does in the notebook's own
printout: the training part is lost as a whole then.
"""

from __future__ import annotations

import re

import numpy as np

from grader.checks.compare import close, describe, max_difference, structure
from grader.config import Config
from grader.observations import ModelObservation, Observations, Op
from grader.sheet import AccuracyRange, CheckRegistry, Verdict
from grader.sheets.sheet5.answer import Answer, DatasetObservation, Network
from grader.sheets.sheet5.numpy_ref import LOSSES as REFERENCE_LOSSES
from grader.sheets.sheet5.numpy_ref import OPS as REFERENCE_OPS
from grader.sheets.sheet5.numpy_ref import accuracy, forward, log_softmax, sgd_step

CHECKS = CheckRegistry(exercise="5.4")

DATASET, NETWORK, FUNCTION, TRAINED_NAME = "PointsDataset", "FFNN", "train", "model"
PROBE_DIMS = (2, 16, 3)  # FFNN(2, 16, 3): sizes the notebook does not use (its config has 100 hidden units)
DATASET_POINTS = 97  # PointsDataset is made of this many points (not the notebook's 300)
PROBE_LEARNING_RATE = 0.37  # train(config, ...) runs with this learning rate (no notebook writes it)
# The notebook's config (its device: the grader's machines have no GPU).
CONFIG = {
    "input_dim": 2,
    "hidden_dim": 100,
    "output_dim": 3,
    "device": "cpu",
    "num_epochs": 1000,
    "batch_size": 300,
    "learning_rate": 1.0,
}
_OUTPUT_FUNCTIONS = {"softmax", "log_softmax", "sigmoid"}
MADE = f"{NETWORK}({', '.join(map(str, PROBE_DIMS))})"  # the network the checks of 5.4.2 look at


def _first_error(
    obs: Observations[Answer], prefix: str, what: str, *, only=lambda step: True, method: str = ""
) -> Verdict:
    """The first error of the probe's steps about `prefix` (of those whose step `only` keeps), and
    for a method that still raises the template's NotImplementedError, which one to write (from
    where it was raised, else `method`)."""
    errors = [e for e in obs.errors_of(prefix) if only(e.step)]
    if errors:
        e = errors[0]
        where = f" ({e.where})" if e.where else ""
        error = e.error.rstrip(": ")
        message = f"{e.step.split(': ', 1)[-1]} raised {error}{where}."
        stub = re.search(r" of (\w+)$", e.where or "")
        if error.startswith("NotImplementedError") and (stub or method):
            message += f" {stub.group(1) if stub else method} is still the template's: write it."
        return Verdict("error", message)
    return Verdict("error", f"{what} could not be observed.")


def _not_defined(obs: Observations[Answer], written: str, kind: str) -> Verdict:
    """`written` (`class FFNN(nn.Module)`) is not defined: and what the notebook defines of that
    `kind` (modules, datasets, functions) instead, a class renamed or another sheet's notebook."""
    others = getattr(_answer(obs).defined, kind)
    instead = ""
    if others:
        instead = (
            f" It defines {', '.join(f'`{name}`' for name in others[:5])}: the grader looks for the names the "
            f"template gives ({DATASET}, {NETWORK}, {FUNCTION}), so keep the template's names (or is this "
            f"another sheet's notebook?)."
        )
    return Verdict("fail", f"`{written}` is not defined after the notebook ran.{instead}")


def _ops(ops: list[Op]) -> list[dict]:
    return [{"op": op.op, "weight": op.weight, "bias": op.bias} for op in ops]


def _unreproducible(ops: list[Op]) -> str:
    """Why the reference cannot recompute `ops`; empty when it can. A softmax over the wrong
    dimension is recomputed: the check itself says that it is the team's mistake."""
    other = [op.torch or op.op for op in ops if op.op not in REFERENCE_OPS]
    if other:
        return f"it calls torch's `{other[0]}`, which the reference does not recompute"
    return ""


def _ending(ops: list[Op]) -> tuple[list[Op], list[Op]]:
    """The operations up to the last Linear layer, and those after it."""
    last = max((i for i, op in enumerate(ops) if op.op == "linear"), default=len(ops) - 1)
    return ops[: last + 1], ops[last + 1 :]


def resolved_ops(
    model: ModelObservation, x: np.ndarray, atol: float = 1e-4, rtol: float = 1e-4
) -> tuple[list[Op] | None, str]:
    """The operations of the model's forward as the reference runs them: an ending after the last
    Linear layer that the reference does not run (a softmax written out, exp(z) / exp(z).sum(1)) is
    replaced by what its output equals, computed by the reference on the model's own weights: the
    softmax or log-softmax of that layer's output, or the output itself. (ops, "") or (None, why)."""
    body, tail = _ending(model.ops_eval)
    other = [op.torch or op.op for op in tail if op.op not in REFERENCE_OPS]
    if not other or _unreproducible(body):
        return model.ops_eval, ""
    why = (
        f"after the last Linear layer it calls torch's `{other[0]}`, and its output is neither the softmax nor "
        f"the log-softmax of that layer's output"
    )
    try:
        logits, _ = forward(_ops(body), model.params, x)
    except (KeyError, ValueError):
        return None, why
    for name, values in (
        ("softmax", np.exp(log_softmax(logits))),
        ("log_softmax", log_softmax(logits)),
        ("identity", logits),
    ):
        if close(model.out_eval, values, atol, rtol):
            return body + [Op(op=name, torch=" → ".join(op.torch or op.op for op in tail), dim=1)], ""
    return None, why


def _as_resolved(ops: list[Op], model: ModelObservation, x: np.ndarray) -> list[Op]:
    """`ops` (a forward of the model's class, in training) with the ending `resolved_ops` found for
    the model's own forward, when it is the same ending."""
    body, tail = _ending(ops)
    resolved, _ = resolved_ops(model, x)
    if resolved is None or [op.op for op in tail] != [op.op for op in _ending(model.ops_eval)[1]]:
        return ops
    return body + _ending(resolved)[1]


def _body(shape: list[tuple]) -> tuple[list[tuple], list[str]]:
    """The layers, and the output functions applied at the very end (all of them: a softmax twice)."""
    tail: list[str] = []
    while shape and shape[-1][0] in _OUTPUT_FUNCTIONS:
        tail.insert(0, shape[-1][0])
        shape = shape[:-1]
    return shape, tail


def _points(values) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in np.asarray(values).reshape(-1)) + ")"


# ---- 5.4.1: the data set ----------------------------------------------------------------------


def _answer(obs: Observations[Answer]) -> Answer:
    """What the probe found, or an answer that found nothing (a probe that did not run)."""
    return obs.answer if obs.answer is not None else Answer()


def _dataset(obs: Observations[Answer]) -> Verdict | DatasetObservation:
    """The data set the probe saw, or the verdict that says why there is none."""
    ds = _answer(obs).dataset
    if ds is None or not ds.class_found:
        return _not_defined(obs, f"class {DATASET}(Dataset)", "datasets")
    return ds


@CHECKS.check(
    "dataset.getitem", points=0.25, description="`PointsDataset(data, labels)[i]` returns the pair (data[i], labels[i])"
)
def check_dataset_getitem(
    obs: Observations[Answer], config: Config, accuracy_range: AccuracyRange | None = None
) -> Verdict:
    ds = _dataset(obs)
    if isinstance(ds, Verdict):
        return ds
    if not ds.items:
        return _first_error(
            obs, "dataset", f"{DATASET}(data, labels)[0]", only=lambda step: "len(" not in step, method="__getitem__"
        )
    x, y = obs.inputs["x"], obs.inputs["y"]
    tol = config.tolerance
    problems = []
    for item in ds.items:
        at = f"[{item.index}]"
        if item.parts != 2:
            shape = f" of {item.parts}" if item.parts is not None else ""
            problems.append(f"{at} returned a {item.type}{shape}, not a pair (point, label)")
        elif item.point is None or item.point.shape != x[item.index].shape:
            size = "nothing readable" if item.point is None else f"{item.point.size} number(s)"
            problems.append(
                f"{at}'s point is a {item.point_type} of {size}, expected data[{item.index}] = {_points(x[item.index])}"
            )
        elif not close(item.point, x[item.index], tol.atol, tol.rtol):
            problems.append(
                f"{at} returned the point {_points(item.point)}, expected data[{item.index}] = {_points(x[item.index])}"
            )
        elif item.label is None:
            problems.append(
                f"{at}'s label is a {item.label_type}, expected one number, labels[{item.index}] = {int(y[item.index])}"
            )
        elif item.label != y[item.index]:
            problems.append(
                f"{at} returned the label {item.label:g}, expected labels[{item.index}] = {int(y[item.index])}"
            )
    missing = [f"[{e.step.rsplit('[', 1)[-1]}" for e in obs.errors_of("dataset") if e.step.endswith("]")]
    if missing:
        problems.append(f"{', '.join(missing)} raised {obs.errors_of('dataset')[-1].error}")
    indices = ", ".join(str(item.index) for item in ds.items)
    if problems:
        return Verdict(
            "fail",
            f"{DATASET}(data, labels) of {ds.points} points: "
            + "; ".join(problems[:3])
            + ". __getitem__(index) should return (self.data[index], self.labels[index]).",
        )
    return Verdict("pass", f"{DATASET}(data, labels)[i] returns (data[i], labels[i]) (checked at i = {indices}).")


@CHECKS.check("dataset.len", points=0.25, description="`len(PointsDataset(data, labels))` is the number of points")
def check_dataset_len(
    obs: Observations[Answer], config: Config, accuracy_range: AccuracyRange | None = None
) -> Verdict:
    ds = _dataset(obs)
    if isinstance(ds, Verdict):
        return ds
    if ds.length is None:
        return _first_error(
            obs, "dataset", f"len({DATASET}(data, labels))", only=lambda step: not step.endswith("]"), method="__len__"
        )
    if ds.length != ds.points:
        return Verdict(
            "fail",
            f"len({DATASET}(data, labels)) is {ds.length} for {ds.points} points: __len__ should "
            f"return the number of points (len(self.data)); the DataLoader draws its indices "
            f"from it, so {'points are left out' if ds.length < ds.points else 'it asks for points that do not exist'}.",
        )
    return Verdict("pass", f"len({DATASET}(data, labels)) is {ds.length}, the number of points.")


# ---- 5.4.2: the network -----------------------------------------------------------------------


def _fresh(obs: Observations[Answer]) -> Verdict | ModelObservation:
    """The new FFNN(2, 16, 3) as the probe saw it, or the verdict that says why there is none."""
    net = _answer(obs).network
    if net is None or not net.class_found:
        return _not_defined(obs, f"class {NETWORK}(nn.Module)", "modules")
    if net.fresh is None:
        return _first_error(obs, "network", MADE, method="forward")
    return net.fresh


def _expected_layers(dims=PROBE_DIMS) -> list[tuple]:
    n_in, hidden, n_out = dims
    return [("linear", n_in, hidden), ("relu",), ("linear", hidden, n_out)]


@CHECKS.check(
    "ffnn.architecture",
    points=0.25,
    description="`FFNN(input_dim, hidden_dim, output_dim)`'s forward runs Linear(input_dim, hidden_dim), "
    "ReLU, Linear(hidden_dim, output_dim)",
)
def check_ffnn_architecture(
    obs: Observations[Answer], config: Config, accuracy_range: AccuracyRange | None = None
) -> Verdict:
    model = _fresh(obs)
    if isinstance(model, Verdict):
        return model
    ops, _ = resolved_ops(model, obs.inputs["x"], config.tolerance.atol, config.tolerance.rtol)
    found, _ = _body(structure(ops if ops is not None else _ending(model.ops_eval)[0]))
    if found == _expected_layers():
        return Verdict("pass", f"{MADE} runs {describe(found)}.")
    hint = ""
    if [item[0] for item in found] == ["linear", "relu", "linear"]:
        hint = " Use the constructor's arguments for the layers' sizes, not fixed numbers."
    return Verdict(
        "fail", f"{MADE} should run {describe(_expected_layers())}; its forward runs {describe(found)}.{hint}"
    )


@CHECKS.check(
    "ffnn.forward",
    points=0.25,
    description="its output on the probe's points equals the numpy reference on its own weights, "
    "and is the class probabilities: one softmax over the classes at the end",
)
def check_ffnn_forward(
    obs: Observations[Answer], config: Config, accuracy_range: AccuracyRange | None = None
) -> Verdict:
    model = _fresh(obs)
    if isinstance(model, Verdict):
        return model
    x = obs.inputs["x"]
    wrong_dim = [op for op in model.ops_eval if op.op in ("softmax", "log_softmax") and op.dim not in (None, 1, -1)]
    if wrong_dim:
        return Verdict(
            "fail",
            f"{MADE}'s forward applies {wrong_dim[0].op} over dim {wrong_dim[0].dim}: that "
            f"normalises over the points of a batch, not over the classes; use dim=1.",
        )
    tol = config.tolerance
    ops, why = resolved_ops(model, x, tol.atol, tol.rtol)
    if ops is None or (why := _unreproducible(ops)):
        return Verdict("needs_review", f"{MADE}'s forward pass could not be recomputed: {why}.")
    try:
        expected, _ = forward(_ops(ops), model.params, x)
    except (KeyError, ValueError) as exc:
        return Verdict("needs_review", f"{MADE}'s forward pass could not be recomputed: {exc}.")
    classes = PROBE_DIMS[2]
    if model.out_eval.shape != (len(x), classes):
        return Verdict(
            "fail",
            f"{MADE}'s forward should return one row of {classes} class probabilities per point, "
            f"shape ({len(x)}, {classes}); it returned shape {model.out_eval.shape}.",
        )
    if not close(model.out_eval, expected, tol.atol, tol.rtol):
        return Verdict(
            "fail",
            f"{MADE}'s forward output differs from what its own layers compute (largest "
            f"difference {max_difference(model.out_eval, expected):.3g}): forward should return "
            f"the softmax of the last Linear layer's output.",
        )
    _, tail = _body(structure(ops))
    if not tail:
        return Verdict(
            "fail",
            f"{MADE}'s forward returns the last Linear layer's output (logits); the network of "
            f"the exercise ends with a softmax over the classes: return torch.softmax(x, dim=1) "
            f"(or apply nn.Softmax(dim=1)).",
        )
    if tail != ["softmax"]:
        if tail.count("softmax") > 1:
            return Verdict(
                "fail",
                f"{MADE}'s forward applies softmax {tail.count('softmax')} times; once, over the "
                f"classes, gives the class probabilities (a softmax of probabilities flattens them "
                f"towards 1/{classes}).",
            )
        shown = {"log_softmax": "log-softmax", "sigmoid": "a sigmoid"}
        return Verdict(
            "fail",
            f"{MADE}'s forward ends with {', then '.join(shown.get(t, t) for t in tail)}; the "
            f"network of the exercise ends with one softmax over the classes.",
        )
    return Verdict(
        "pass",
        f"{MADE}'s forward returns class probabilities equal to the reference forward pass with "
        f"its weights (largest difference {max_difference(model.out_eval, expected):.1e}).",
    )


# ---- 5.4.3: training ---------------------------------------------------------------------------


def _grads_problem(step, reference: dict[str, np.ndarray], previous, tol) -> str | None:
    """What is wrong with the gradients a step used, or None."""
    names = sorted(reference)
    if all(name in step.grads and close(step.grads[name], reference[name], tol.atol, tol.rtol) for name in names):
        return None
    if not step.grads:
        return (
            "the parameters had no gradients when optimizer.step() ran: call optimizer.zero_grad(), then "
            "loss.backward(), then optimizer.step() (zero_grad between backward and step throws the gradients away)"
        )
    if all(not np.any(step.grads.get(name, 0)) for name in names):
        return (
            "the gradients were zero when optimizer.step() ran: optimizer.zero_grad() comes before "
            "loss.backward(), not between backward() and step()"
        )
    if previous is not None and all(
        name in step.grads
        and name in previous.grads
        and close(step.grads[name], reference[name] + previous.grads[name], tol.atol, tol.rtol)
        for name in names
    ):
        return (
            "the gradients of the step before were added to this step's: call optimizer.zero_grad() in every "
            "step, before loss.backward()"
        )
    largest = max(max_difference(step.grads.get(name, np.zeros(0)), reference[name]) for name in names)
    return f"the gradients differ from those of the loss of the network's output (largest difference {largest:.3g})"


@CHECKS.check(
    "training.step",
    points=0.5,
    description="`train(config, data, labels)` makes plain SGD steps with config's learning rate, each "
    "equal to the reference's step (zero_grad, backward of the cross-entropy loss, step) on "
    "the network's own weights and the batch it saw",
)
def check_training_step(
    obs: Observations[Answer], config: Config, accuracy_range: AccuracyRange | None = None
) -> Verdict:
    answer = _answer(obs)
    if not answer.function_found:
        return _not_defined(obs, f"def {FUNCTION}(config, data, labels)", "functions")
    if answer.network is None or not answer.network.class_found:
        return _not_defined(obs, f"class {NETWORK}(nn.Module)", "modules")
    run = answer.training
    if run is None:
        return _first_error(obs, "training", f"{FUNCTION}(config, data, labels)")
    called = f"{FUNCTION}(config, data, labels)"
    lr = float(run.config.get("learning_rate", PROBE_LEARNING_RATE))
    if not run.steps:
        return Verdict("fail", f"{called} never called optimizer.step(): the network is not trained.")
    if not run.losses:
        return Verdict(
            "fail",
            f"{called} calls optimizer.step() without computing a loss first: compute "
            f"criterion(outputs, labels) with nn.CrossEntropyLoss and call backward() on it.",
        )
    first = run.steps[0]
    problems = []
    if first.optimizer != "SGD":
        problems.append(f"the optimizer should be torch.optim.SGD, found {first.optimizer}")
    if not np.isclose(first.lr, lr, rtol=1e-9, atol=0):
        problems.append(
            f"the optimizer ran with learning rate {first.lr:g}, but {FUNCTION} was given "
            f"config['learning_rate'] = {lr:g} (a value of the grader's, to see that train uses it): "
            f"pass lr=config['learning_rate'] to the optimizer"
        )
    if first.momentum or first.weight_decay:
        problems.append("plain SGD has no momentum and no weight decay")
    if first.own_params < run.model_params:
        problems.append(
            f"the optimizer updates {first.own_params} of the network's {run.model_params} parameter "
            f"tensors (pass model.parameters())"
        )
    if problems:
        return Verdict("fail", f"{called}: " + "; ".join(problems) + ".")
    if run.ops is None:
        return _first_error(obs, "training", "the forward of the network train made")
    fresh = answer.network.fresh if answer.network is not None else None
    ops = run.ops if fresh is None else _as_resolved(run.ops, fresh, obs.inputs["x"])
    if why := _unreproducible(ops):
        return Verdict("needs_review", f"The training step could not be recomputed: the network's forward {why}.")
    tol = config.tolerance
    previous = None
    largest = 0.0
    for number, step in enumerate(run.steps[:2], start=1):
        loss = step.losses[-1] if step.losses else None
        if loss is None or step.input is None or loss.target is None:
            return Verdict(
                "needs_review",
                f"Step {number} of {called} could not be recomputed: the batch the "
                f"network saw or the loss's targets were not observed.",
            )
        if loss.name not in REFERENCE_LOSSES:
            return Verdict("fail", f"{called}: the loss should be nn.CrossEntropyLoss, found {loss.name}.")
        if not loss.on_output:
            return Verdict(
                "fail",
                f"{called}: the loss is computed on something other than the network's output; "
                f"compute criterion(outputs, labels) on outputs = model(inputs) as it is.",
            )
        options = loss.options
        if (
            options.get("weight") is not None
            or options.get("label_smoothing", 0.0) != 0.0
            or options.get("reduction", "mean") != "mean"
            or options.get("size_average") not in (None, True)
            or options.get("reduce") not in (None, True)
        ):
            shown = {key: value for key, value in options.items() if value not in (None, 0.0, "mean", -100, True)}
            return Verdict(
                "needs_review",
                f"Step {number} of {called} could not be recomputed: the loss has "
                f"options the reference does not reproduce ({shown}).",
            )
        try:
            grads, after = sgd_step(_ops(ops), step.before, step.input, loss.target, loss.name, step.lr)
        except (KeyError, ValueError) as exc:
            return Verdict("needs_review", f"Step {number} of {called} could not be recomputed: {exc}.")
        if problem := _grads_problem(step, grads, previous, tol):
            return Verdict("fail", f"{called}, step {number}: {problem}.")
        names = sorted(after)
        if not all(name in step.after and close(step.after[name], after[name], tol.atol, tol.rtol) for name in names):
            moved = max(max_difference(step.after.get(name, np.zeros(0)), after[name]) for name in names)
            return Verdict(
                "fail",
                f"{called}, step {number}: the parameters after optimizer.step() differ from "
                f"parameter - lr × gradient (largest difference {moved:.3g}).",
            )
        largest = max(largest, *(max_difference(step.after[name], after[name]) for name in names))
        previous = step
    return Verdict(
        "pass",
        f"{called} makes SGD steps with config's learning rate on the cross-entropy loss of the "
        f"network's output, equal to the reference's ({min(2, len(run.steps))} steps checked, "
        f"largest difference {largest:.1e}).",
    )


def trained_accuracy(obs: Observations[Answer]) -> tuple[float | None, str]:
    """The accuracy of the trained FFNN on the probe's points (the sheet's data), recomputed from
    its weights; or None and why not."""
    net = _answer(obs).network
    if net is None or net.trained is None:
        return None, "no trained network"
    model = net.trained
    ops, why = resolved_ops(model, obs.inputs["x"])
    if ops is None or (why := _unreproducible(ops)):
        return None, f"its forward {why}"
    try:
        return accuracy(_ops(ops), model.params, obs.inputs["x"], obs.inputs["y"]), ""
    except (KeyError, ValueError) as exc:
        return None, str(exc)


def _number(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _trained_layers(obs: Observations[Answer]) -> list[tuple] | None:
    """The layers the trained FFNN runs (its output function left out), or None when not known."""
    net = _answer(obs).network
    model = net.trained if net is not None else None
    ops, _ = resolved_ops(model, obs.inputs["x"]) if model is not None else (None, "")
    return None if ops is None else _body(structure(ops))[0]


def _no_trained(net: Network) -> str:
    search = net.search
    expected = (
        f"expected the {NETWORK} that `{FUNCTION}(config, data, labels)` makes and trains (returned, or left inside it)"
    )
    if search is None:
        return f"No trained {NETWORK} was found after the notebook ran ({expected})."
    calls = (
        f"{search.calls} call(s) of {FUNCTION} were seen, {search.completed} of them completed, none with the "
        f"exercise's config made an {NETWORK}"
        if search.calls
        else f"{FUNCTION} was never called"
    )
    holds = "is not defined" if search.canonical_holds == "nothing" else f"holds a {search.canonical_holds}"
    found = (
        f"{len(search.found)} {NETWORK} instances ({', '.join(f'`{p}`' for p in search.found[:5])}), so which "
        f"one counts cannot be told"
        if search.found
        else f"no {NETWORK} instance in the notebook's globals"
    )
    return (
        f"No trained {NETWORK} was found after the notebook ran. Looked for: the {NETWORK} made by "
        f"{FUNCTION}(config, ...) ({calls}); the name `{TRAINED_NAME}` (it {holds}); {found}. {expected[0].upper()}{expected[1:]}."
    )


@CHECKS.check(
    "training.accuracy",
    points=0.5,
    description="the FFNN trained by `train(config, data, labels)` classifies the points as well as the "
    "solution's does (its accuracy, less the margin, or more)",
)
def check_training_accuracy(
    obs: Observations[Answer], config: Config, accuracy_range: AccuracyRange | None = None
) -> Verdict:
    net = _answer(obs).network
    if net is None or not net.class_found:
        return _not_defined(obs, f"class {NETWORK}(nn.Module)", "modules")
    if not net.instance_found and net.search is not None and net.search.unrecorded:
        cell = net.search.unrecorded[0]
        return Verdict(
            "needs_review",
            f"{FUNCTION}(...) is called in In [{cell}], in the cell that defines it: the "
            f"grader sees the calls of {FUNCTION} from the cell after its definition on, so "
            f"it cannot find the {NETWORK} that call trained. A tutor decides. To be graded "
            f"automatically, define {FUNCTION} and call it in separate cells, as the "
            f"template does.",
        )
    if not net.instance_found:
        return Verdict("fail", _no_trained(net))
    if net.trained is None:
        return _first_error(obs, "network", f"the trained {NETWORK}")
    accuracy, why = trained_accuracy(obs)
    if accuracy is None:
        return Verdict("needs_review", f"The trained {NETWORK}'s accuracy could not be recomputed: {why}.")
    where = (
        f"`{net.instance_name}`"
        if net.instance_name
        else (
            f"the {NETWORK} trained in In [{net.trained_cell}]"
            if net.trained_cell is not None
            else f"the trained {NETWORK}"
        )
    )
    n = len(obs.inputs["y"])
    if accuracy_range is None:
        return Verdict(
            "needs_review",
            f"{where} classifies {accuracy:.3f} of the {n} points correctly, but no "
            f"reference accuracy exists for this data (run `grader calibrate`).",
        )
    solution = accuracy_range.low[-1]
    floor = max(0.0, solution - config.tolerance.accuracy_margin)
    if accuracy >= floor:
        return Verdict(
            "pass",
            f"{where} classifies {accuracy:.3f} of the {n} points correctly (the solution "
            f"{solution:.3f}; {floor:.3f} or more passes).",
        )
    layers = _trained_layers(obs)
    if layers is not None and [item[0] for item in layers] != [item[0] for item in _expected_layers()]:
        return Verdict(
            "needs_review",
            f"{where} classifies {accuracy:.3f} of the {n} points correctly, less than the "
            f"solution's {solution:.3f} ({floor:.3f} or more passes); but it runs "
            f"{describe(layers)}, not the exercise's layers (that costs ffnn.architecture), "
            f"and such a network trains to another accuracy: whether its training is right "
            f"is for a tutor to decide.",
        )
    differ = [
        f"{key} {_number(value)} (the exercise's: {_number(CONFIG[key])})"
        for key, value in (net.search.config if net.search is not None else {}).items()
        if key in ("hidden_dim", "num_epochs", "learning_rate", "batch_size")
        and type(value) in (int, float)
        and value != CONFIG[key]
    ]
    diverged = (
        ""
        if all(np.all(np.isfinite(v)) for v in net.trained.params.values())
        else " Its weights are NaN or infinite: the training diverged (the notebook's printout shows a loss of nan)."
    )
    if differ:
        return Verdict(
            "fail",
            f"{where} classifies only {accuracy:.3f} of the {n} points correctly; the solution "
            f"reaches {solution:.3f} ({floor:.3f} or more passes) with the exercise's config, and "
            f"the notebook trained it with {', '.join(differ)}.{diverged}",
        )
    return Verdict(
        "fail",
        f"{where} classifies only {accuracy:.3f} of the {n} points correctly; trained as "
        f"{FUNCTION}(config, data, labels) asks (config's epochs and learning rate) the solution "
        f"reaches {solution:.3f} ({floor:.3f} or more passes).{diverged} Check the training step "
        f"(zero_grad, backward, step) and that train uses config.",
    )
