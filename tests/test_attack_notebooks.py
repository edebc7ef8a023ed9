"""Correct solutions written in ways the course's notebook allows but the reference solution does
not use, graded end to end in real kernels: each is the reference solution with a few lines changed,
and each must get every automatic point. Nothing is mocked."""

from __future__ import annotations

import copy

import nbformat
import pytest
from conftest import ROOT, needs_torch

from grader.sheets.sheet6 import SHEET

pytestmark = [pytest.mark.kernel, needs_torch]

SOLUTION = nbformat.read(ROOT / "reference" / "solution.ipynb", as_version=4)


def variant(*changes: tuple[str, str]) -> nbformat.NotebookNode:
    """The solution with each (old, new) replaced in every cell; every old text must be found."""
    nb = copy.deepcopy(SOLUTION)
    for old, new in changes:
        cells = [cell for cell in nb.cells if old in cell.source]
        assert cells, f"not in the solution: {old!r}"
        for cell in cells:
            cell.source = cell.source.replace(old, new)
    return nb


VARIANTS = {
    # The course's stub is `optimize(self)`; the team kept it, reads the global loaders and changed
    # the training cell to `optimize()`.
    "optimize(self) called as optimize()": (
        variant(
            (
                "def optimize(self, train_loader, test_loader):",
                "def optimize(self):\n        train_loader, test_loader = fashion_train_loader, fashion_test_loader",
            ),
            (".optimize(fashion_train_loader, fashion_test_loader)", ".optimize()"),
        ),
        "baseline.training_setup",
        "",
    ),
    "optimize(self, train_loader) reading the test loader": (
        variant(
            (
                "def optimize(self, train_loader, test_loader):",
                "def optimize(self, train_loader):\n        test_loader = fashion_test_loader",
            ),
            (".optimize(fashion_train_loader, fashion_test_loader)", ".optimize(fashion_train_loader)"),
        ),
        "baseline.training_setup",
        "",
    ),
    "test(self, *, loader)": (
        variant(
            ("def test(self, test_loader):", "def test(self, *, loader):\n        test_loader = loader"),
            ("self.test(test_loader)", "self.test(loader=test_loader)"),
        ),
        "batchnorm.behaviour",
        "test(loader=test_loader) evaluates in eval mode",
    ),
    "a subclass of nn.BatchNorm1d": (
        variant(
            (
                "class FashionNetworkBatchNorm(nn.Module):",
                "class MyBatchNorm(nn.BatchNorm1d):\n    pass\n\n\nclass FashionNetworkBatchNorm(nn.Module):",
            ),
            ("self.bn1 = nn.BatchNorm1d(64)", "self.bn1 = MyBatchNorm(64)"),
            ("self.bn2 = nn.BatchNorm1d(32)", "self.bn2 = MyBatchNorm(32)"),
        ),
        "batchnorm.architecture",
        "BatchNorm1d after Linear(784, 64) and after Linear(64, 32)",
    ),
    "F.batch_norm on the network's own parameters and buffers": (
        variant(
            (
                "self.bn1 = nn.BatchNorm1d(64)",
                "self.gamma = nn.Parameter(torch.ones(64))\n        self.beta = nn.Parameter(torch.zeros(64))\n"
                "        self.register_buffer('mean', torch.zeros(64))\n        self.register_buffer('var', torch.ones(64))",
            ),
            ("        self.bn2 = nn.BatchNorm1d(32)\n", ""),
            (
                "x = self.relu(self.bn1(self.fc1(x)))\n        x = self.relu(self.bn2(self.fc2(x)))",
                "x = nn.functional.batch_norm(self.fc1(x), self.mean, self.var, self.gamma, self.beta, "
                "training=self.training)\n        x = self.relu(x)\n        x = self.relu(self.fc2(x))",
            ),
        ),
        "batchnorm.behaviour",
        "evaluates in eval mode",
    ),
    "a module of the team's own that runs F.batch_norm": (
        variant(
            (
                "class FashionNetworkBatchNorm(nn.Module):",
                "class Norm(nn.Module):\n    def __init__(self, width):\n        super().__init__()\n"
                "        self.weight = nn.Parameter(torch.ones(width))\n        self.bias = nn.Parameter(torch.zeros(width))\n"
                "        self.register_buffer('running_mean', torch.zeros(width))\n"
                "        self.register_buffer('running_var', torch.ones(width))\n\n"
                "    def forward(self, x):\n        return nn.functional.batch_norm(x, self.running_mean, self.running_var, "
                "self.weight, self.bias, self.training)\n\n\nclass FashionNetworkBatchNorm(nn.Module):",
            ),
            ("self.bn1 = nn.BatchNorm1d(64)", "self.bn1 = Norm(64)"),
            ("self.bn2 = nn.BatchNorm1d(32)", "self.bn2 = Norm(32)"),
        ),
        "batchnorm.architecture",
        "BatchNorm1d after Linear(784, 64) and after Linear(64, 32)",
    ),
    "one BatchNorm1d run twice": (
        variant(("x = self.relu(self.bn1(self.fc1(x)))", "x = self.relu(self.bn1(self.bn1(self.fc1(x))))")),
        "batchnorm.behaviour",
        "train mode normalises with batch statistics",
    ),
    "test(self) evaluating the notebook's trained instance": (
        variant(
            (
                "    def test(self, test_loader):",
                "    def test(self, test_loader):\n        self = globals()['fashion_network_batch_norm' if type(self).__name__ "
                "== 'FashionNetworkBatchNorm' else 'fashion_network']",
            )
        ),
        "batchnorm.behaviour",
        "evaluates in eval mode",
    ),
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_a_correct_solution_written_otherwise_gets_every_point(grading_context, tmp_path, name):
    from grader.pipeline import grade_submission

    nb, check, words = VARIANTS[name]
    target = tmp_path / "Erika Mustermann_7012345_Jürgen Müller_7054321.ipynb"
    nbformat.write(nb, target)
    report = grade_submission(target, tmp_path, grading_context).report
    assert report.execution.status == "ok", report.execution
    assert {c.id: c.status for c in report.checks} == {c: "pass" for c in SHEET.check_ids}, {
        c.id: c.message for c in report.checks if c.status != "pass"
    }
    message = next(c.message for c in report.checks if c.id == check)
    assert words in message, message
