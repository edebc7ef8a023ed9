"""Turn what the probe observed into layer lists for the numpy reference, and describe them.

Helpers here return plain values or raise `Unreproducible` with a message a student can act on.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np

from grader.observations import ModelObservation, Op

# Operations that do not change values (casts, copies) and are left out of layer lists.
_NEUTRAL = {"identity"}
_OUTPUT_FUNCTIONS = {"softmax", "log_softmax", "sigmoid"}


class Unreproducible(Exception):
    """The forward pass uses something the reference cannot recompute; the message says what."""


def layers_from_ops(
    ops: list[Op],
    model: ModelObservation,
    *,
    reference_ops: Collection[str],
    buffers: dict[str, np.ndarray] | None = None,
    params: dict[str, np.ndarray] | None = None,
) -> list[dict]:
    """The reference's layer descriptions for the operations a forward call ran, with the model's
    own parameters and buffers (as they were before the call; `params` and `buffers` replace them).
    `reference_ops`: the operations the sheet's reference runs (its `OPS`); any other is
    Unreproducible."""
    params = model.params if params is None else params
    buffers = model.buffers if buffers is None else buffers
    layers: list[dict] = []
    for op in ops:
        if op.op in _NEUTRAL:
            continue
        if op.op == "reshape":
            if len(op.out_shape) != 2:
                raise Unreproducible(
                    f"forward reshapes the data to {tuple(op.out_shape)}; only flattening to "
                    f"(N, features) is reproduced"
                )
            layers.append({"op": "flatten"})
        elif op.op == "linear":
            if op.weight not in params or (op.bias is not None and op.bias not in params):
                raise Unreproducible("a linear layer uses weights that are not parameters of the network")
            layers.append({"op": "linear", "weight": params[op.weight], "bias": params[op.bias] if op.bias else None})
        elif op.op == "batch_norm":
            if op.momentum is None and op.training:
                raise Unreproducible("BatchNorm with momentum=None (cumulative average) is not reproduced")
            layer = {
                "op": "batch_norm",
                "eps": op.eps if op.eps is not None else 1e-5,
                "momentum": op.momentum if op.momentum is not None else 0.1,
                "weight": params.get(op.weight) if op.weight else None,
                "bias": params.get(op.bias) if op.bias else None,
                "running_mean": buffers.get(op.running_mean) if op.running_mean else None,
                "running_var": buffers.get(op.running_var) if op.running_var else None,
                "stats_names": (op.running_mean, op.running_var),
            }
            if layer["running_mean"] is None and not op.training:
                raise Unreproducible("a BatchNorm layer runs without running statistics")
            layers.append(layer)
        elif op.op in reference_ops and op.op not in ("flatten", "linear", "batch_norm"):
            if op.op in ("softmax", "log_softmax") and op.dim not in (None, 1, -1):
                raise Unreproducible(f"{op.op} over dim {op.dim} is not reproduced")
            layers.append({"op": op.op})
        else:
            raise Unreproducible(f"forward calls torch's `{op.torch or op.op}`, which the reference does not reproduce")
    return layers


def structure(ops: list[Op]) -> list[tuple]:
    """The shape of a forward pass: ('linear', in, out), ('relu',), ('batch_norm', width), ...;
    casts and reshapes left out."""
    shape: list[tuple] = []
    for op in ops:
        if op.op in _NEUTRAL or op.op == "reshape":
            continue
        if op.op == "linear":
            shape.append(("linear", op.in_features, op.out_features))
        elif op.op == "batch_norm":
            shape.append(("batch_norm", op.num_features))
        else:
            shape.append((op.op,))
    return shape


def describe(shape: list[tuple]) -> str:
    names = {
        "relu": "ReLU",
        "softmax": "Softmax",
        "log_softmax": "LogSoftmax",
        "sigmoid": "Sigmoid",
        "tanh": "Tanh",
        "dropout": "Dropout",
        "layer_norm": "LayerNorm",
        "group_norm": "GroupNorm",
        "instance_norm": "InstanceNorm",
    }
    parts = []
    for item in shape:
        if item[0] == "linear":
            parts.append(f"Linear({item[1]}, {item[2]})")
        elif item[0] == "batch_norm":  # ("batch_norm", width) or ("batch_norm", width, the module's type)
            parts.append(f"{item[2] if len(item) > 2 else 'BatchNorm1d'}({item[1]})")
        else:
            parts.append(names.get(item[0], item[0]))
    return " → ".join(parts) if parts else "nothing"


def without_output_function(shape: list[tuple]) -> tuple[list[tuple], str | None]:
    """Split off a softmax/log-softmax/sigmoid applied at the very end."""
    if shape and shape[-1][0] in _OUTPUT_FUNCTIONS:
        return shape[:-1], shape[-1][0]
    return shape, None


def max_difference(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def close(a: np.ndarray, b: np.ndarray, atol: float, rtol: float) -> bool:
    return a.shape == b.shape and bool(np.all(np.isfinite(a))) and bool(np.allclose(a, b, atol=atol, rtol=rtol))
