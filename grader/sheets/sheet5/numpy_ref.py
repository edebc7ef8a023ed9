"""The numpy reference of Exercise 5.4: a feed-forward network's forward pass, its loss, the
gradients of the loss (backpropagation) and one step of plain SGD, run on a team's own weights.

Pure numpy, float64 (inputs are converted). A network is given as the operations its forward ran,
in order (what the probe traced: `{"op": "linear", "weight": name, "bias": name}`, `{"op": "relu"}`,
`{"op": "softmax"}`, ...), and its parameters by name, so the reference computes what the team's
network actually runs: a softmax at the end, or two, or none, as the team wrote it. Conventions are
PyTorch's: linear weights are (out_features, in_features); softmax and log-softmax act on the last
axis (dim=1 of (N, C)); `cross_entropy` applies log-softmax to its input itself (as
nn.CrossEntropyLoss does, also to an input that is a softmax already) and takes the mean over the
batch; relu's gradient at 0 is 0.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

# What the reference runs (and differentiates); anything else cannot be recomputed.
OPS = ("linear", "relu", "softmax", "log_softmax", "sigmoid", "tanh", "reshape", "identity")
LOSSES = ("cross_entropy", "nll_loss")


def linear(x: np.ndarray, weight: Any, bias: Any = None) -> np.ndarray:
    y = x @ np.asarray(weight, dtype=np.float64).T
    return y if bias is None else y + np.asarray(bias, dtype=np.float64)


def log_softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


_ELEMENTWISE: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "relu": lambda x: np.maximum(x, 0.0),
    "softmax": lambda x: np.exp(log_softmax(x)),
    "log_softmax": log_softmax,
    "sigmoid": lambda x: 0.5 * (1.0 + np.tanh(0.5 * x)),
    "tanh": np.tanh,
}


def forward(
    ops: Sequence[Mapping[str, Any]], params: Mapping[str, np.ndarray], x: Any
) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """The network's output on `x`, and per operation its (input, output) for `backward`."""
    out = np.asarray(x, dtype=np.float64)
    tape = []
    for index, op in enumerate(ops):
        name = op["op"]
        before = out
        if name == "linear":
            out = linear(out, params[op["weight"]], params[op["bias"]] if op.get("bias") else None)
        elif name in _ELEMENTWISE:
            out = _ELEMENTWISE[name](out)
        elif name == "reshape":
            out = out.reshape(out.shape[0], -1)
        elif name != "identity":
            raise ValueError(f"operation {index} ({name}) is not one the reference runs ({', '.join(OPS)})")
        tape.append((before, out))
    return out, tape


def loss(name: str, output: np.ndarray, targets: Any) -> tuple[float, np.ndarray]:
    """(mean loss over the batch, its gradient with respect to `output`) for integer class targets."""
    y = np.asarray(targets).astype(np.int64).reshape(-1)
    n = output.shape[0]
    onehot = np.zeros_like(output)
    onehot[np.arange(n), y] = 1.0
    if name == "cross_entropy":
        logp = log_softmax(output)
        return float(-logp[np.arange(n), y].mean()), (np.exp(logp) - onehot) / n
    if name == "nll_loss":
        return float(-output[np.arange(n), y].mean()), -onehot / n
    raise ValueError(f"the loss {name} is not one the reference computes ({', '.join(LOSSES)})")


def backward(
    ops: Sequence[Mapping[str, Any]],
    params: Mapping[str, np.ndarray],
    tape: list[tuple[np.ndarray, np.ndarray]],
    grad: np.ndarray,
) -> dict[str, np.ndarray]:
    """The gradients of every parameter the operations used, from the gradient at the output."""
    grads: dict[str, np.ndarray] = {}
    for op, (before, after) in zip(reversed(ops), reversed(tape)):
        name = op["op"]
        if name == "linear":
            weight = np.asarray(params[op["weight"]], dtype=np.float64)
            grads[op["weight"]] = grads.get(op["weight"], 0) + grad.T @ before
            if op.get("bias"):
                grads[op["bias"]] = grads.get(op["bias"], 0) + grad.sum(axis=0)
            grad = grad @ weight
        elif name == "relu":
            grad = grad * (before > 0)
        elif name == "softmax":
            grad = after * (grad - (grad * after).sum(axis=-1, keepdims=True))
        elif name == "log_softmax":
            grad = grad - np.exp(after) * grad.sum(axis=-1, keepdims=True)
        elif name == "sigmoid":
            grad = grad * after * (1.0 - after)
        elif name == "tanh":
            grad = grad * (1.0 - after**2)
        elif name == "reshape":
            grad = grad.reshape(before.shape)
    return grads


def sgd_step(
    ops: Sequence[Mapping[str, Any]], params: Mapping[str, np.ndarray], x: Any, targets: Any, loss_name: str, lr: float
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """One step of plain SGD (no momentum, no weight decay) on the batch (x, targets):
    (the gradients, the parameters after the step), by parameter name."""
    output, tape = forward(ops, params, x)
    _, grad = loss(loss_name, output, targets)
    grads = backward(ops, params, tape, grad)
    after = {name: np.asarray(value, dtype=np.float64) - lr * grads.get(name, 0.0) for name, value in params.items()}
    return grads, after


def accuracy(ops: Sequence[Mapping[str, Any]], params: Mapping[str, np.ndarray], x: Any, labels: Any) -> float:
    """The share of points whose largest output is their label."""
    output, _ = forward(ops, params, x)
    return float(np.mean(output.argmax(axis=1) == np.asarray(labels).astype(np.int64).reshape(-1)))
