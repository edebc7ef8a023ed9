"""Attacks on the Sheet 6 checks' words for a notebook that is partly the course's template: what the
probe saw is built by hand (the kernel side is in test_attack_notebooks.py)."""
from __future__ import annotations

import pytest

from grader.run.probe import NetworkObservation, TemplateFacts, Training
from grader.sheets.sheet6.checks import check_baseline_training_setup
from test_checks import CONFIG, baseline_layers, net, obs, observe


def test_optimize_still_the_stub_but_called_without_loaders_says_the_stub():
    """The team kept `def optimize(self): return NotImplemented` and changed the training cell to
    `optimize()`: the loaders are not the problem, the stub is. (The probe calls optimize as the
    notebook does: it returns at once and steps nothing.)"""
    facts = TemplateFacts(stubs={"optimize": "NotImplemented"}, params={"optimize": 0}, init_calls_super=True,
                          optimize_call="fashion_network.optimize()", optimize_call_args=0)
    network = NetworkObservation(**{**net(observe(baseline_layers()), training=Training(
        steps=[], losses=[], loss_modules=[], model_params=6)).__dict__, "template": facts})
    verdict = check_baseline_training_setup(obs(network), CONFIG)
    assert verdict.status == "fail"
    assert verdict.message == "FashionNetwork: `optimize` still returns the template's `NotImplemented`.", \
        verdict.message
