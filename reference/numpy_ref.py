"""The numpy reference of Exercise Sheet 6: what the students' PyTorch code must compute.

Pure numpy, float64 throughout (inputs are converted), no torch import: the grader process compares
a student's float32 outputs with these functions run on the student's own weights.

Conventions follow PyTorch:

* `linear` takes the weight in torch layout (out_features, in_features): ``x @ weight.T + bias``.
* `batchnorm_train` normalises with the batch mean and the *biased* batch variance and updates the
  running statistics as ``new = (1 - momentum) * old + momentum * batch_stat`` with the *unbiased*
  batch variance (n / (n - 1)) for ``running_var`` -- exactly what ``nn.BatchNorm1d`` does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

__all__ = [
    "OPS",
    "batchnorm_eval",
    "batchnorm_train",
    "flatten",
    "linear",
    "log_softmax",
    "relu",
    "run_layers",
    "sigmoid",
    "softmax",
    "tanh",
]


def _f64(a: Any) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


def _opt(a: Any) -> np.ndarray | None:
    return None if a is None else _f64(a)


# ---------------------------------------------------------------------------------------------
# Elementary operations
# ---------------------------------------------------------------------------------------------


def linear(x: Any, weight: Any, bias: Any = None) -> np.ndarray:
    """``nn.Linear``: weight has torch layout (out_features, in_features)."""
    x, weight = _f64(x), _f64(weight)
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out, in), got shape {weight.shape}")
    if x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"linear: input has {x.shape[-1]} features, weight expects {weight.shape[1]} "
            f"(weight shape {weight.shape}, torch layout (out, in))"
        )
    y = x @ weight.T
    if bias is not None:
        y = y + _f64(bias)
    return y


def relu(x: Any) -> np.ndarray:
    return np.maximum(_f64(x), 0.0)


def flatten(x: Any) -> np.ndarray:
    """Keep the batch dimension: (N, ...) -> (N, prod(...))."""
    x = _f64(x)
    if x.ndim == 0:
        raise ValueError("flatten: a scalar has no batch dimension")
    return x.reshape(x.shape[0], -1)


def softmax(x: Any, axis: int = -1) -> np.ndarray:
    """Numerically stable: shifts by the maximum (softmax(y + c) = softmax(y))."""
    x = _f64(x)
    z = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(z)
    return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax(x: Any, axis: int = -1) -> np.ndarray:
    x = _f64(x)
    z = x - np.max(x, axis=axis, keepdims=True)
    return z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))


def sigmoid(x: Any) -> np.ndarray:
    """Stable for large |x| (no overflow in exp)."""
    x = _f64(x)
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    e = np.exp(x[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def tanh(x: Any) -> np.ndarray:
    return np.tanh(_f64(x))


# ---------------------------------------------------------------------------------------------
# BatchNorm1d
# ---------------------------------------------------------------------------------------------


def _bn_axes(x: np.ndarray) -> tuple[int, ...]:
    """Axes reduced over: (N,) for (N, C) input, (N, L) for (N, C, L) input as BatchNorm1d does."""
    if x.ndim == 2:
        return (0,)
    if x.ndim == 3:
        return (0, 2)
    raise ValueError(f"batch_norm: expected (N, C) or (N, C, L) input, got shape {x.shape}")


def _bn_shape(x: np.ndarray, v: np.ndarray) -> np.ndarray:
    return v.reshape(1, -1) if x.ndim == 2 else v.reshape(1, -1, 1)


def _bn_affine(x: np.ndarray, y: np.ndarray, gamma: Any, beta: Any) -> np.ndarray:
    if gamma is not None:
        y = y * _bn_shape(x, _f64(gamma))
    if beta is not None:
        y = y + _bn_shape(x, _f64(beta))
    return y


def batchnorm_train(
    x: Any, gamma: Any, beta: Any, running_mean: Any, running_var: Any, eps: float = 1e-5, momentum: float = 0.1
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """``nn.BatchNorm1d`` in training mode.

    Returns ``(y, new_running_mean, new_running_var)``. ``gamma``/``beta`` may be None
    (``affine=False``); ``running_mean``/``running_var`` may be None (``track_running_stats=False``),
    and then the new statistics are None too. The inputs are not modified.
    """
    x = _f64(x)
    axes = _bn_axes(x)
    n = int(np.prod([x.shape[a] for a in axes]))
    if n < 2:
        # PyTorch: "Expected more than 1 value per channel when training".
        raise ValueError(f"batch_norm in training mode needs more than 1 value per channel, got input shape {x.shape}")
    if momentum is None:
        raise ValueError("batch_norm with momentum=None (cumulative moving average) is not reproduced")
    mean = x.mean(axis=axes)
    var_biased = x.var(axis=axes)  # ddof=0
    y = (x - _bn_shape(x, mean)) / np.sqrt(_bn_shape(x, var_biased) + eps)
    y = _bn_affine(x, y, gamma, beta)
    if running_mean is None or running_var is None:
        return y, None, None
    var_unbiased = var_biased * (n / (n - 1))
    new_mean = (1.0 - momentum) * _f64(running_mean) + momentum * mean
    new_var = (1.0 - momentum) * _f64(running_var) + momentum * var_unbiased
    return y, new_mean, new_var


def batchnorm_eval(x: Any, gamma: Any, beta: Any, running_mean: Any, running_var: Any, eps: float = 1e-5) -> np.ndarray:
    """``nn.BatchNorm1d`` in eval mode: normalises with the running statistics."""
    x = _f64(x)
    _bn_axes(x)
    if running_mean is None or running_var is None:
        raise ValueError("batch_norm in eval mode needs running statistics (running_mean/running_var)")
    y = (x - _bn_shape(x, _f64(running_mean))) / np.sqrt(_bn_shape(x, _f64(running_var)) + eps)
    return _bn_affine(x, y, gamma, beta)


# ---------------------------------------------------------------------------------------------
# Layer sequences
# ---------------------------------------------------------------------------------------------

OPS = ("linear", "relu", "flatten", "batch_norm", "softmax", "log_softmax", "sigmoid", "tanh", "dropout")

_ELEMENTWISE = {
    "relu": relu,
    "flatten": flatten,
    "softmax": softmax,
    "log_softmax": log_softmax,
    "sigmoid": sigmoid,
    "tanh": tanh,
}


def run_layers(
    x: Any, layers: Iterable[Mapping[str, Any]], train: bool
) -> tuple[np.ndarray, list[tuple[np.ndarray | None, np.ndarray | None]]]:
    """Run a sequence of layer descriptions (plain dicts, see `OPS`) on ``x``.

    Layer dicts: ``{"op": "linear", "weight": W, "bias": b}``, ``{"op": "relu"}``, ``{"op": "flatten"}``,
    ``{"op": "batch_norm", "weight": g, "bias": b, "running_mean": m, "running_var": v, "eps": 1e-5,
    "momentum": 0.1}``, ``{"op": "softmax"}``, ``{"op": "log_softmax"}``, ``{"op": "sigmoid"}``,
    ``{"op": "tanh"}``, ``{"op": "dropout"}``. Extra keys are ignored. softmax/log_softmax act on the
    last axis (dim=1 for (N, C) data).

    Returns ``(output, stats)``: ``stats`` has one ``(running_mean, running_var)`` per batch_norm layer,
    in order -- the updated statistics in training mode, the unchanged ones in eval mode. Layers with
    the same ``"stats_names"`` (one module run twice) update the statistics one after the other.
    Raises ValueError for an unknown op, and for dropout in training mode (random, not reproducible).
    """
    out = _f64(x)
    stats: list[tuple[np.ndarray | None, np.ndarray | None]] = []
    updated: dict[
        tuple | None, tuple[np.ndarray | None, np.ndarray | None]
    ] = {}  # by "stats_names": one module run twice
    for i, layer in enumerate(layers):
        op = layer.get("op") if isinstance(layer, Mapping) else None
        if op == "linear":
            out = linear(out, layer["weight"], layer.get("bias"))
        elif op in _ELEMENTWISE:
            out = _ELEMENTWISE[op](out)
        elif op == "batch_norm":
            eps = layer.get("eps", 1e-5)
            eps = 1e-5 if eps is None else eps
            gamma, beta = layer.get("weight"), layer.get("bias")
            mean, var = _opt(layer.get("running_mean")), _opt(layer.get("running_var"))
            names = layer.get("stats_names")
            names = tuple(names) if names and all(names) else None
            if train:
                mean, var = updated.get(names, (mean, var))  # the statistics a first run updated
                momentum = layer.get("momentum", 0.1)
                out, mean, var = batchnorm_train(out, gamma, beta, mean, var, eps=eps, momentum=momentum)
                if names is not None and mean is not None:
                    updated[names] = (mean, var)
            else:
                out = batchnorm_eval(out, gamma, beta, mean, var, eps=eps)
            stats.append((mean, var))
        elif op == "dropout":
            if train:
                raise ValueError("dropout in training mode is random and cannot be reproduced")
            # eval mode: identity
        else:
            raise ValueError(f"unknown op {op!r} in layer {i} (known: {', '.join(OPS)})")
    return out, stats
