"""Attacks on the Sheet 6 checks' words for a notebook that is partly the course's template: what the
probe saw is built by hand (the kernel side is in test_attack_notebooks.py)."""

from __future__ import annotations

from test_checks import CONFIG, baseline_layers, net, obs, observe

from grader.observations import Training
from grader.sheets.sheet6.answer import TemplateFacts, TestMode
from grader.sheets.sheet6.checks import check_baseline_training_setup


def test_optimize_still_the_stub_but_called_without_loaders_says_the_stub():
    """The team kept `def optimize(self): return NotImplemented` and changed the training cell to
    `optimize()`: the loaders are not the problem, the stub is. (The probe calls optimize as the
    notebook does: it returns at once and steps nothing.)"""
    facts = TemplateFacts(
        stubs={"optimize": "NotImplemented"},
        params={"optimize": 0},
        init_calls_super=True,
        optimize_call="fashion_network.optimize()",
        optimize_call_args=0,
    )
    network = net(
        observe(baseline_layers()), training=Training(steps=[], losses=[], loss_modules=[], model_params=6)
    ).model_copy(update={"template": facts})
    verdict = check_baseline_training_setup(obs(network), CONFIG)
    assert verdict.status == "fail"
    assert verdict.message == "FashionNetwork: `optimize` still returns the template's `NotImplemented`.", (
        verdict.message
    )


def test_one_batchnorm_applied_twice_is_reproduced():
    """forward runs the same BatchNorm1d(64) twice: torch updates its running statistics twice, one
    after the other, and the reference must too (the architecture allows more than one BatchNorm)."""
    import torch.nn as nn

    from grader.sheets.sheet6.checks import check_batchnorm_architecture, check_batchnorm_behaviour

    bn = nn.BatchNorm1d(64)
    model = observe([nn.Linear(784, 64), bn, bn, nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)])

    def same_module(op):  # nn.Sequential names the one module "2" (its second place, "3", holds it too)
        names = {k: getattr(op, k) for k in ("weight", "bias", "running_mean", "running_var")}
        return op.model_copy(update={k: v.replace("3.", "2.", 1) for k, v in names.items() if v and v.startswith("3.")})

    model = model.model_copy(
        update={
            "ops_eval": [same_module(op) for op in model.ops_eval],
            "ops_train": [same_module(op) for op in model.ops_train],
        }
    )
    observed = obs(batchnorm=net(model, test_mode=TestMode(bn_calls=2, bn_training_calls=0, buffers_changed=[])))
    assert check_batchnorm_architecture(observed, CONFIG).status == "pass"
    verdict = check_batchnorm_behaviour(observed, CONFIG)
    assert verdict.status == "pass", verdict.message
