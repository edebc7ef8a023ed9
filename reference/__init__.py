"""Reference material of Exercise Sheet 6: the numpy reference implementation and the notebooks."""

from . import numpy_ref
from .numpy_ref import (
    batchnorm_eval,
    batchnorm_train,
    flatten,
    linear,
    log_softmax,
    relu,
    run_layers,
    sigmoid,
    softmax,
    tanh,
)

__all__ = [
    "batchnorm_eval",
    "batchnorm_train",
    "flatten",
    "linear",
    "log_softmax",
    "numpy_ref",
    "relu",
    "run_layers",
    "sigmoid",
    "softmax",
    "tanh",
]
