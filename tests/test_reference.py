"""The numpy reference (reference/numpy_ref.py) against PyTorch itself.

torch is imported here only; the reference module must not import it.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from reference import numpy_ref as ref  # noqa: E402 - after torch is known to be there

ATOL = 1e-6


def _np(t):
    return t.detach().cpu().numpy()


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _close(a, b, atol=ATOL, rtol=1e-6):
    np.testing.assert_allclose(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), atol=atol, rtol=rtol)


# ----------------------------------------------------------------------------------- module


def test_module_does_not_import_torch():
    code = "import sys; import reference.numpy_ref; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(__import__("pathlib").Path(__file__).parents[1]))


def test_outputs_are_float64():
    x = np.ones((2, 3), dtype=np.float32)
    w = np.ones((4, 3), dtype=np.float32)
    assert ref.linear(x, w, None).dtype == np.float64
    assert ref.relu(x).dtype == np.float64
    assert ref.softmax(x).dtype == np.float64


# ----------------------------------------------------------------------------------- linear, activations


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(1, 784, 64), (7, 64, 32), (64, 32, 10), (3, 5, 1)])
def test_linear_matches_nn_linear(shape, bias):
    n, fin, fout = shape
    torch.manual_seed(n * 1000 + fin + fout)
    layer = nn.Linear(fin, fout, bias=bias).double()
    x = torch.randn(n, fin, dtype=torch.float64)
    expected = _np(layer(x))
    got = ref.linear(_np(x), _np(layer.weight), _np(layer.bias) if bias else None)
    assert got.shape == expected.shape
    _close(got, expected)


def test_linear_shape_error():
    with pytest.raises(ValueError, match="features"):
        ref.linear(np.zeros((2, 3)), np.zeros((4, 5)), None)


@pytest.mark.parametrize("shape", [(5,), (4, 10), (2, 3, 4)])
def test_relu_matches_nn_relu(shape):
    x = torch.from_numpy(_rng(1).normal(size=shape))
    _close(ref.relu(_np(x)), _np(nn.ReLU()(x)))


@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
def test_sigmoid_tanh_match_torch(name):
    x = torch.from_numpy(_rng(2).normal(scale=5, size=(6, 9)))
    x[0, 0], x[0, 1] = 800.0, -800.0  # no overflow
    with np.errstate(over="raise", invalid="raise"):
        got = getattr(ref, name)(_np(x))
    _close(got, _np(getattr(torch, name)(x)))


def test_sigmoid_scalar():
    assert ref.sigmoid(0.0) == pytest.approx(0.5)


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_softmax_and_log_softmax_match_torch(axis):
    x = torch.from_numpy(_rng(3).normal(scale=3, size=(5, 7)))
    _close(ref.softmax(_np(x), axis=axis), _np(torch.softmax(x, dim=axis)))
    _close(ref.log_softmax(_np(x), axis=axis), _np(torch.log_softmax(x, dim=axis)))


def test_softmax_is_stable_for_large_inputs():
    x = np.array([[1000.0, 1001.0, 1002.0], [-1000.0, -1000.0, -1000.0]])
    with np.errstate(over="raise", invalid="raise"):
        s = ref.softmax(x)
        ls = ref.log_softmax(x)
    assert np.all(np.isfinite(s)) and np.all(np.isfinite(ls))
    _close(s.sum(axis=1), [1.0, 1.0])
    _close(s[0], ref.softmax(x[0] - 1000.0))
    _close(s[1], [1 / 3] * 3)


@pytest.mark.parametrize("shape", [(4, 1, 28, 28), (4, 784), (2, 3, 5)])
def test_flatten_keeps_batch(shape):
    x = torch.from_numpy(_rng(4).normal(size=shape))
    got = ref.flatten(_np(x))
    assert got.shape == (shape[0], int(np.prod(shape[1:])))
    _close(got, _np(x.view(x.size(0), -1)))


# ----------------------------------------------------------------------------------- BatchNorm1d


def _bn_module(width, affine, momentum, seed, dtype=torch.float64):
    torch.manual_seed(seed)
    bn = nn.BatchNorm1d(width, affine=affine, momentum=momentum).to(dtype)
    with torch.no_grad():  # non-trivial parameters and running statistics
        if affine:
            bn.weight.copy_(torch.rand(width) + 0.5)
            bn.bias.copy_(torch.randn(width))
        bn.running_mean.copy_(torch.randn(width))
        bn.running_var.copy_(torch.rand(width) + 0.5)
    return bn


def _bn_params(bn):
    g = _np(bn.weight) if bn.affine else None
    b = _np(bn.bias) if bn.affine else None
    return g, b, _np(bn.running_mean).copy(), _np(bn.running_var).copy()


@pytest.mark.parametrize("momentum", [0.1, 0.01, 0.5, 1.0])
@pytest.mark.parametrize("batch", [2, 3, 17, 64])
@pytest.mark.parametrize("affine", [True, False])
def test_batchnorm_train_matches_torch(affine, batch, momentum):
    width = 32
    bn = _bn_module(width, affine, momentum, seed=batch)
    g, b, m, v = _bn_params(bn)
    x = torch.from_numpy(_rng(batch).normal(loc=2.0, scale=3.0, size=(batch, width)))
    bn.train()
    expected = _np(bn(x))
    y, new_m, new_v = ref.batchnorm_train(_np(x), g, b, m, v, eps=bn.eps, momentum=momentum)
    _close(y, expected)
    _close(new_m, _np(bn.running_mean))
    _close(new_v, _np(bn.running_var))
    # the inputs are not changed in place
    _close(m, _bn_params(_bn_module(width, affine, momentum, seed=batch))[2])


@pytest.mark.parametrize("eps", [1e-5, 1e-3])
@pytest.mark.parametrize("affine", [True, False])
def test_batchnorm_eval_matches_torch(affine, eps):
    width = 64
    bn = _bn_module(width, affine, 0.1, seed=7)
    bn.eps = eps
    g, b, m, v = _bn_params(bn)
    x = torch.from_numpy(_rng(7).normal(size=(10, width)))
    bn.eval()
    expected = _np(bn(x))
    _close(ref.batchnorm_eval(_np(x), g, b, m, v, eps=eps), expected)
    # a single sample is fine in eval mode
    _close(ref.batchnorm_eval(_np(x[:1]), g, b, m, v, eps=eps), _np(bn(x[:1])))


def test_batchnorm_train_uses_biased_variance_and_unbiased_running_var():
    x = np.array([[0.0], [2.0]])  # mean 1, biased var 1, unbiased var 2
    y, m, v = ref.batchnorm_train(x, None, None, np.zeros(1), np.ones(1), eps=0.0, momentum=0.1)
    _close(y[:, 0], [-1.0, 1.0])
    _close(m, [0.1])
    _close(v, [0.9 * 1 + 0.1 * 2])


def test_batchnorm_train_on_3d_input():
    bn = _bn_module(4, True, 0.1, seed=3)
    g, b, m, v = _bn_params(bn)
    x = torch.from_numpy(_rng(3).normal(size=(5, 4, 6)))
    expected = _np(bn.train()(x))
    y, new_m, new_v = ref.batchnorm_train(_np(x), g, b, m, v)
    _close(y, expected)
    _close(new_m, _np(bn.running_mean))
    _close(new_v, _np(bn.running_var))


def test_batchnorm_errors():
    with pytest.raises(ValueError, match="more than 1 value"):
        ref.batchnorm_train(np.ones((1, 3)), None, None, np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match="running statistics"):
        ref.batchnorm_eval(np.ones((2, 3)), None, None, None, None)
    y, m, v = ref.batchnorm_train(np.arange(6.0).reshape(3, 2), None, None, None, None)
    assert m is None and v is None and y.shape == (3, 2)


# ----------------------------------------------------------------------------------- whole networks


def _baseline(dtype):
    return nn.Sequential(
        nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)
    ).to(dtype)


def _batchnorm(dtype, momentum=0.1, affine=True):
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 64),
        nn.BatchNorm1d(64, momentum=momentum, affine=affine),
        nn.ReLU(),
        nn.Linear(64, 32),
        nn.BatchNorm1d(32, momentum=momentum, affine=affine),
        nn.ReLU(),
        nn.Linear(32, 10),
    ).to(dtype)


def _layers(model: nn.Sequential) -> list[dict]:
    """The reference's layer descriptions of a Sequential (parameters as they are now)."""
    out = []
    for mod in model:
        if isinstance(mod, nn.Flatten):
            out.append({"op": "flatten"})
        elif isinstance(mod, nn.Linear):
            out.append(
                {
                    "op": "linear",
                    "weight": _np(mod.weight).copy(),
                    "bias": None if mod.bias is None else _np(mod.bias).copy(),
                }
            )
        elif isinstance(mod, nn.ReLU):
            out.append({"op": "relu"})
        elif isinstance(mod, nn.BatchNorm1d):
            out.append(
                {
                    "op": "batch_norm",
                    "eps": mod.eps,
                    "momentum": mod.momentum,
                    "weight": _np(mod.weight).copy() if mod.affine else None,
                    "bias": _np(mod.bias).copy() if mod.affine else None,
                    "running_mean": _np(mod.running_mean).copy(),
                    "running_var": _np(mod.running_var).copy(),
                }
            )
        else:  # pragma: no cover
            raise AssertionError(mod)
    return out


def _perturb_bn(model):
    with torch.no_grad():
        for mod in model:
            if isinstance(mod, nn.BatchNorm1d):
                mod.running_mean.normal_()
                mod.running_var.uniform_(0.5, 2.0)
                if mod.affine:
                    mod.weight.uniform_(0.5, 1.5)
                    mod.bias.normal_()


@pytest.mark.parametrize("train", [False, True])
def test_baseline_network_matches_torch(train):
    torch.manual_seed(0)
    model = _baseline(torch.float64).train(train)
    x = torch.from_numpy(_rng(0).random((16, 1, 28, 28)))
    expected = _np(model(x))
    got, stats = ref.run_layers(_np(x), _layers(model), train=train)
    assert got.shape == (16, 10) and stats == []
    _close(got, expected)


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("momentum", [0.1, 0.3])
@pytest.mark.parametrize("batch", [2, 64])
def test_batchnorm_network_matches_torch(batch, momentum, affine):
    torch.manual_seed(batch)
    model = _batchnorm(torch.float64, momentum, affine)
    _perturb_bn(model)
    x = torch.from_numpy(_rng(batch).random((batch, 1, 28, 28)))
    # eval mode: running statistics, unchanged
    layers = _layers(model)
    expected_eval = _np(model.eval()(x))
    got_eval, stats_eval = ref.run_layers(_np(x), layers, train=False)
    _close(got_eval, expected_eval)
    assert len(stats_eval) == 2
    # train mode: batch statistics, running statistics updated
    expected_train = _np(model.train()(x))
    got_train, stats = ref.run_layers(_np(x), layers, train=True)
    _close(got_train, expected_train)
    bns = [m for m in model if isinstance(m, nn.BatchNorm1d)]
    assert len(stats) == len(bns) == 2
    for (mean, var), bn in zip(stats, bns):
        _close(mean, _np(bn.running_mean))
        _close(var, _np(bn.running_var))


def _placed(dtype, places):
    """The baseline with a BatchNorm1d of the features' width at each of `places` ("input": the flattened
    image, "hidden1"/"hidden2": after that hidden Linear, "hidden1-relu": after its ReLU, "output":
    after the last Linear): the course leaves the placement to the team."""
    layers = [nn.Flatten()] + ([nn.BatchNorm1d(784)] if "input" in places else [])
    for name, (n_in, n_out) in (("hidden1", (784, 64)), ("hidden2", (64, 32))):
        layers += [nn.Linear(n_in, n_out)] + ([nn.BatchNorm1d(n_out)] if name in places else []) + [nn.ReLU()]
        layers += [nn.BatchNorm1d(n_out)] if f"{name}-relu" in places else []
    layers += [nn.Linear(32, 10)] + ([nn.BatchNorm1d(10)] if "output" in places else [])
    return nn.Sequential(*layers).to(dtype)


@pytest.mark.parametrize(
    "places",
    [("input",), ("hidden2",), ("hidden1-relu",), ("output",), ("input", "hidden1", "hidden2-relu", "output")],
    ids="+".join,
)
@pytest.mark.parametrize("dtype, atol", [(torch.float64, ATOL), (torch.float32, 1e-4)], ids=["float64", "float32"])
def test_batchnorm_anywhere_matches_torch(places, dtype, atol):
    """Images as Fashion-MNIST's are: the border pixels are 0 in every image, so a BatchNorm on the input
    meets features of variance 0 (and others of a tiny variance)."""
    torch.manual_seed(6)
    model = _placed(dtype, places)
    _perturb_bn(model)
    images = _rng(6).random((64, 1, 28, 28))
    images[:, :, :3, :] = 0.0  # constant features
    images[:, 0, 3, :] = (_rng(7).random((64, 28)) < 0.05) / 255.0  # nearly constant ones
    x = torch.from_numpy(images).to(dtype)
    layers = _layers(model)
    got_eval, _ = ref.run_layers(_np(x), layers, train=False)
    _close(got_eval, _np(model.eval()(x)), atol=atol, rtol=atol)
    got_train, stats = ref.run_layers(_np(x), layers, train=True)
    _close(got_train, _np(model.train()(x)), atol=atol, rtol=atol)
    bns = [m for m in model if isinstance(m, nn.BatchNorm1d)]
    assert len(stats) == len(bns) == len({p.split("-")[0] for p in places})
    for (mean, var), bn in zip(stats, bns):
        _close(mean, _np(bn.running_mean), atol=atol, rtol=atol)
        _close(var, _np(bn.running_var), atol=atol, rtol=atol)


def test_float32_network_within_loose_tolerance():
    torch.manual_seed(32)
    model = _batchnorm(torch.float32)
    _perturb_bn(model)
    x = torch.rand(64, 1, 28, 28)
    layers = _layers(model)
    got_eval, _ = ref.run_layers(_np(x), layers, train=False)
    _close(got_eval, _np(model.eval()(x)), atol=1e-4, rtol=1e-4)
    got_train, stats = ref.run_layers(_np(x), layers, train=True)
    _close(got_train, _np(model.train()(x)), atol=1e-4, rtol=1e-4)
    bn = [m for m in model if isinstance(m, nn.BatchNorm1d)]
    for (mean, var), mod in zip(stats, bn):
        _close(mean, _np(mod.running_mean), atol=1e-4, rtol=1e-4)
        _close(var, _np(mod.running_var), atol=1e-4, rtol=1e-4)
    torch.manual_seed(33)
    base = _baseline(torch.float32)
    got, _ = ref.run_layers(_np(x), _layers(base), train=False)
    _close(got, _np(base(x)), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(
    "op,fn",
    [
        ("softmax", lambda t: torch.softmax(t, dim=1)),
        ("log_softmax", lambda t: torch.log_softmax(t, dim=1)),
        ("sigmoid", torch.sigmoid),
        ("tanh", torch.tanh),
    ],
)
def test_output_functions_in_run_layers(op, fn):
    torch.manual_seed(5)
    lin = nn.Linear(8, 4).double()
    x = torch.randn(6, 8, dtype=torch.float64)
    layers = [{"op": "linear", "weight": _np(lin.weight), "bias": _np(lin.bias)}, {"op": op}]
    got, _ = ref.run_layers(_np(x), layers, train=False)
    _close(got, _np(fn(lin(x))))


def test_dropout_identity_in_eval_error_in_train():
    x = _rng(9).normal(size=(3, 4))
    got, _ = ref.run_layers(x, [{"op": "dropout"}, {"op": "relu"}], train=False)
    _close(got, np.maximum(x, 0))
    with pytest.raises(ValueError, match="dropout"):
        ref.run_layers(x, [{"op": "dropout"}], train=True)


@pytest.mark.parametrize("layer", [{"op": "conv2d"}, {"op": "gelu"}, {}, {"op": None}])
@pytest.mark.parametrize("train", [False, True])
def test_unknown_op_raises_value_error_naming_it(layer, train):
    with pytest.raises(ValueError, match="unknown op") as info:
        ref.run_layers(np.ones((2, 3)), [{"op": "relu"}, layer], train=train)
    assert repr(layer.get("op")) in str(info.value)


def test_run_layers_ignores_extra_keys_and_missing_eps():
    x = _rng(11).normal(size=(4, 3))
    layer = {
        "op": "batch_norm",
        "weight": None,
        "bias": None,
        "running_mean": np.zeros(3),
        "running_var": np.ones(3),
        "stats_names": ("a", "b"),
    }
    got, stats = ref.run_layers(x, [layer], train=True)
    _close(got, (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5))
    _close(stats[0][0], 0.1 * x.mean(0))


# ----------------------------------------------------------------------------------- Exercise 6.3


def test_exercise_6_3_key():
    """The tutors' key (reference/tutors_key.json; it moved there from numpy_ref so that the students'
    package does not carry it) is what the numpy reference and torch compute from the sheet's matrices."""
    from grader.sheets.sheet6.evidence import tutors_key

    key = {k: np.asarray(v) if isinstance(v, list) and k != "pdf_hints" else v for k, v in tutors_key().items()}
    _close(key["x"], [3, 1, -1])
    _close(key["W1"], [[2, -1], [1, -3], [-2, 5]])
    _close(key["W2"], [[6, 2], [-1, 8]])
    pre = key["W1"].T @ key["x"]
    _close(key["pre_activation"], pre)
    _close(key["pre_activation"], [9, -11])
    _close(key["h"], ref.relu(pre))
    _close(key["h"], [9, 0])
    _close(key["logits"], key["W2"].T @ key["h"])
    _close(key["logits"], [54, 18])
    _close(key["o"], ref.softmax(key["logits"]), atol=1e-18, rtol=1e-12)
    assert key["o"][1] == pytest.approx(2.3195e-16, rel=1e-3)
    assert key["o"][0] == pytest.approx(1.0) and key["o"][0] < 1.0
    assert key["o"].sum() == pytest.approx(1.0)
    assert key["predicted_class"] == int(np.argmax(key["o"])) + 1 == 1  # 1-based
    # the same as torch computes from the matrices
    t = torch.tensor
    h = torch.relu(t(key["W1"]).T @ t(key["x"]))
    _close(torch.softmax(t(key["W2"]).T @ h, dim=0).numpy(), key["o"], atol=1e-18, rtol=1e-12)
