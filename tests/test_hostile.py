"""Hostile notebooks through the real pipeline (grade_submission): each one is a valid baseline
solution plus hostile cells, and must end in a report with a clear status and no points it did not
earn. Notebooks are written here from source strings; nothing binary is committed.

Four notebooks (plus the honest one they are compared with) keep this to about two minutes:
 - `everything`: environment probes (network, files, other workspaces, the grader's code), a 50 GB
   allocation, a fork loop, 100 MB of output, sys.exit(), then monkeypatches and a forged probe answer.
 - `forward`: a forward that loops forever when the probe calls it, and a batch-norm network whose
   output is a tensor subclass that claims to equal anything.
 - `dies`: an endless cell (interrupted, the run goes on), then os._exit(1).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from pathlib import Path

import nbformat
import pytest

pytest.importorskip("torch")

from conftest import ATTEMPT_HELPERS, fork_loop

from grader.config import config_from_dict
from grader.engine.batch import prepare_context
from grader.pipeline import grade_submission, grade_submission_async
from grader.run.kernels import ForkKernels

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = (ROOT / ".." / "shared" / "data" / "fashion-mnist").resolve()
HAVE_BWRAP = shutil.which("bwrap") is not None
MIME = "application/x-sheet6-grader-probe+json"

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.bwrap,
    pytest.mark.skipif(not HAVE_BWRAP, reason="bubblewrap (bwrap) is not installed"),
    # Two CPU-bound processes beside these tests (conftest, --busy-processes): the verdicts are
    # those of a quiet machine (time limits count CPU time, not wall-clock time).
    pytest.mark.usefixtures("busy_machine"),
]

SETUP = """\
import torch, torchvision
import torch.nn as nn
import torch.nn.functional as F
import torchvision.transforms as transforms
import matplotlib
train_set = torchvision.datasets.FashionMNIST('data/', train=True, download=True, transform=transforms.ToTensor())
test_set = torchvision.datasets.FashionMNIST('data/', train=False, download=True, transform=transforms.ToTensor())
fashion_train_loader = torch.utils.data.DataLoader(train_set, batch_size=64, shuffle=True)
fashion_test_loader = torch.utils.data.DataLoader(test_set, batch_size=64)
"""

BASELINE = """\
class FashionNetwork(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 64); self.fc2 = nn.Linear(64, 32); self.fc3 = nn.Linear(32, 10)
        self.loss = nn.CrossEntropyLoss()
        self.opt = torch.optim.SGD(self.parameters(), lr=0.001)

    def forward(self, x):
        HOOK_FORWARD
        x = x.view(x.size(0), -1)
        return self.fc3(F.relu(self.fc2(torch.relu(self.fc1(x)))))

    def optimize(self, train_loader, test_loader, epochs=5):
        accs = []
        for e in range(epochs):
            for xb, yb in train_loader:
                self.opt.zero_grad(); l = self.loss(self(xb), yb); l.backward(); self.opt.step()
            accs.append(self.test(test_loader))
        self.test_accuracies = accs
        return accs

    def test(self, loader):
        self.eval(); c = n = 0
        with torch.no_grad():
            for xb, yb in loader:
                c += (self(xb).argmax(1) == yb).sum().item(); n += len(yb)
        self.train()
        return c / n


class FashionNetworkBatchNorm(FashionNetwork):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.BatchNorm1d(64), nn.ReLU(),
                                 nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10))
        del self.fc1, self.fc2, self.fc3
        self.opt = torch.optim.SGD(self.parameters(), lr=0.001)

    def forward(self, x):
        HOOK_BN_FORWARD
        return self.net(x)
"""

TRAIN = [
    "fashion_network = FashionNetwork()\nbase_acc = fashion_network.optimize(fashion_train_loader, fashion_test_loader)",
    "fashion_network_batch_norm = FashionNetworkBatchNorm()\n"
    "bn_acc = fashion_network_batch_norm.optimize(fashion_train_loader, fashion_test_loader)",
]


def solution(hook_forward: str = "pass", hook_bn_forward: str = "pass") -> list[str]:
    classes = BASELINE.replace("HOOK_FORWARD", hook_forward).replace("HOOK_BN_FORWARD", hook_bn_forward)
    return [SETUP, classes, *TRAIN]


# ---- hostile cells ----------------------------------------------------------------------------

ENVIRONMENT = (
    r"""
import json, os, socket, sys
found = {}
"""
    + ATTEMPT_HELPERS
    + r"""ws = os.getcwd()
found["net_local"] = attempt(lambda: connect("127.0.0.1", 22))
found["net_outside"] = attempt(lambda: connect("192.0.2.1", 80))
found["passwd"] = attempt(lambda: open("/etc/passwd").read())
found["siblings"] = attempt(lambda: sorted(os.listdir(os.path.dirname(ws))))
found["sibling_secret"] = attempt(lambda: open(SIBLING).read())
found["submissions"] = attempt(lambda: os.listdir(SUBMISSIONS))
found["write_outside"] = attempt(lambda: open(os.path.join(os.path.dirname(ws), "evil.txt"), "w").write("x"))
found["write_system"] = attempt(lambda: open("/usr/lib/evil.txt", "w").write("x"))
found["import_grader"] = attempt(lambda: __import__("grader").__file__)
found["import_reference"] = attempt(lambda: __import__("reference").__file__)
found["reference_dir"] = attempt(lambda: os.listdir(REFERENCE))
print("RESULT " + json.dumps(found))
"""
)

ALLOCATE = r"""
import numpy as np
try:
    big = np.ones(50 * 2**30, dtype=np.uint8)
    print("RESULT " + json.dumps("allocated"))
except MemoryError:
    print("RESULT " + json.dumps("MemoryError"))
"""

FORK = fork_loop(2000, 2)

FLOOD = "for _ in range(1000):\n    print('x' * 100_000)"

EXIT = "import sys\nsys.exit()"
# A __future__ import changes how IPython compiles every later cell, the probe's too (which uses !=).
FUTURE = "from __future__ import barry_as_FLUFL"

PATCHES = r"""
import json, base64, io
import numpy as np
import torch
from IPython.core.interactiveshell import InteractiveShell
np.allclose = lambda *a, **k: True
np.array_equal = lambda *a, **k: True
torch.Tensor.__eq__ = lambda self, other: torch.ones((), dtype=torch.bool)
torch.equal = lambda *a, **k: True
np.save = lambda *a, **k: None
base64.b64encode = lambda *a, **k: b""
InteractiveShell.showtraceback = lambda *a, **k: None
"""

# Replacing json.dumps also breaks the kernel's own messages (jupyter_client packs them with it).
JSON_DUMPS = r"""
import json
_fake = json.dumps({"token": "0" * 32, "networks": {}, "errors": [], "arrays": {}})
json.dumps = lambda *a, **k: _fake
"""

FORGED = r"""
from IPython.display import publish_display_data
publish_display_data({MIME: '{"token": "x", "networks": {}, "errors": [], "arrays": {}}'},
                     metadata={MIME: {"token": "x"}})
print('{"token": "x", "networks": {"baseline": {"class_found": true}}}')
"""

# forward loops forever once the notebook has run (the probe's calls), never during training
HANG = "if globals().get('PROBING'):\n            while True: pass"
# after training, the batch-norm network answers with zeros dressed up to equal anything
LIE = """if globals().get('PROBING'):
            return Liar(torch.zeros(x.shape[0], 10))"""
LIAR = """
class Liar(torch.Tensor):
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def numpy(self, *a, **k): return __import__('numpy').zeros((self.shape[0], 10))
PROBING = True
"""


# ---- running ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def context():
    work = Path(tempfile.mkdtemp(prefix="g6-hostile-"))
    config = config_from_dict(
        {
            "sheet": {"name": "sheet6"},
            "data": {
                "source": str(SHARED_DATA) if SHARED_DATA.exists() else "",
                "train_size": 600,
                "test_size": 200,
                "seed": 6,
            },
            "limits": {
                "cell_timeout_s": 20,
                "notebook_timeout_s": 240,
                "probe_timeout_s": 40,
                "processes": 256,
                "output_kb": 64,
            },
            "run": {"workers": 1, "sandbox": "bubblewrap"},
        },
        source="<tests>",
        base_dir=ROOT,
    )
    ctx = prepare_context(config, work / "batch", workers=1, auto_calibrate=False)
    (work / "batch").mkdir(exist_ok=True)
    sibling = work / "batch" / "ws-other-team"
    sibling.mkdir()
    (sibling / "secret.txt").write_text("another team's answers")
    yield ctx, work
    shutil.rmtree(work, ignore_errors=True)


def grade(context, name: str, cells: list[str], kernels: str = "fresh", **names):
    """Grade a notebook of `cells` as the pipeline does, in a fresh kernel or (kernels="forked") in
    one forked from a fork server, as a batch worker does."""
    ctx, work = context
    submissions = work / f"submissions-{name}"
    submissions.mkdir()
    nb = nbformat.v4.new_notebook()
    prelude = "".join(f"{k} = {v!r}\n" for k, v in names.items())
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {name}")] + [
        nbformat.v4.new_code_cell(prelude + c if i == 0 and prelude else c) for i, c in enumerate(cells)
    ]
    path = submissions / "Erika_Mustermann_1234567_Max_Meier_7654321.ipynb"
    nbformat.write(nb, path)
    if kernels == "forked":

        async def forked():
            source = ForkKernels(ctx.kernel_context)
            try:
                return await grade_submission_async(path, submissions, ctx, source)
            finally:
                await source.close()

        graded = asyncio.run(forked())
    else:
        graded = grade_submission(path, submissions, ctx)
    return graded, submissions


def checks(report) -> dict[str, tuple[str, float]]:
    return {c.id: (c.status, c.points) for c in report.checks}


def auto_points(report) -> float:
    return round(sum(c.points for c in report.checks), 6)


def recorded(executed, marker_cell_text: str):
    for cell in executed.cells:
        if cell.cell_type == "code" and marker_cell_text in cell.source:
            for out in cell.get("outputs", []):
                for line in out.get("text", "").splitlines() if out.get("output_type") == "stream" else []:
                    if line.startswith("RESULT "):
                        return json.loads(line[len("RESULT ") :])
            raise AssertionError(f"no RESULT in {cell.outputs!r}"[:3000])
    raise AssertionError(f"cell {marker_cell_text!r} not found")


@pytest.fixture(scope="module")
def honest(context):
    graded, _ = grade(context, "honest", solution())
    report = graded.report
    assert report.execution.status == "ok", report.execution
    assert report.execution.isolated and report.execution.sandbox == "bubblewrap"
    passing = {k for k, (status, _) in checks(report).items() if status == "pass"}
    assert {
        "baseline.architecture",
        "baseline.forward",
        "baseline.training_setup",
        "batchnorm.architecture",
        "batchnorm.behaviour",
    } <= passing, checks(report)
    return report


@pytest.mark.parametrize("kernels", ["fresh", "forked"])
def test_everything_hostile_in_one_notebook(context, honest, kernels):
    _ctx, work = context
    repo_names = dict(
        SIBLING=str(work / "batch" / "ws-other-team" / "secret.txt"),
        SUBMISSIONS=str(work / f"submissions-everything-{kernels}"),
        REFERENCE=str(ROOT / "reference"),
        MIME=MIME,
    )
    cells = solution() + [ENVIRONMENT, ALLOCATE, FORK, FLOOD, EXIT, PATCHES, FORGED, FUTURE, "print('the end')"]
    graded, _submissions = grade(context, f"everything-{kernels}", cells, kernels=kernels, **repo_names)
    report, executed = graded.report, graded.executed

    # The run went through to the end, with errors (sys.exit), isolated.
    assert report.execution.status == "errors", report.execution
    assert report.execution.cells_run == report.execution.cells_total
    assert report.execution.isolated

    env = recorded(executed, "found = {}")
    assert not env["net_local"].startswith("ok") and not env["net_outside"].startswith("ok"), env
    assert "student" in env["passwd"], env["passwd"]  # a made-up passwd, not the host's
    assert "ws-other-team" not in env["siblings"] and not env["sibling_secret"].startswith("ok"), env
    assert not env["submissions"].startswith("ok"), env
    assert not env["write_system"].startswith("ok"), env
    assert not (work / "batch" / "evil.txt").exists()
    assert env["import_grader"].startswith("ModuleNotFoundError"), env
    assert env["import_reference"].startswith("ModuleNotFoundError"), env
    assert not env["reference_dir"].startswith("ok"), env

    assert recorded(executed, "50 * 2**30") == "MemoryError"
    forks = recorded(executed, "os.fork()")
    assert forks["error"] and forks["forked"] < 256, forks

    # 100 MB printed: cut, and the report and the executed notebook stay small.
    assert any("output cut" in n for n in report.execution.notes), report.execution.notes
    assert len(report.model_dump_json()) < 200_000
    assert len(nbformat.writes(executed)) < 1_000_000

    # Monkeypatches and forged answers earn nothing more (and nothing less) than the honest part.
    assert checks(report) == checks(honest), (checks(report), checks(honest))
    assert auto_points(report) == auto_points(honest)


def test_forward_that_hangs_or_lies_earns_no_forward_points(context, honest):
    cells = solution(hook_forward=HANG, hook_bn_forward=LIE) + [LIAR]
    graded, _ = grade(context, "forward", cells)
    report = graded.report
    assert report.execution.status == "ok", report.execution
    got = checks(report)
    assert got["baseline.forward"][1] == 0 and got["baseline.forward"][0] in ("fail", "error"), got
    assert got["batchnorm.behaviour"][1] == 0 and got["batchnorm.behaviour"][0] in ("fail", "error"), got
    assert auto_points(report) <= auto_points(honest) - 0.5


def test_endless_cell_then_exit_kills_the_kernel(context):
    cells = solution() + [
        "while True: pass",
        "print('after the endless cell')",
        "import os\nos._exit(1)",
        "print('never')",
    ]
    graded, _ = grade(context, "dies", cells)
    report, executed = graded.report, graded.executed
    assert report.execution.status == "kernel_died", report.execution
    code_cells = [c for c in executed.cells if c.cell_type == "code"]
    exit_cell = next(i for i, c in enumerate(executed.cells) if "os._exit" in c.source) + 1
    assert report.execution.last_cell == exit_cell
    assert any("ran over the limit" in n for n in report.execution.notes), report.execution.notes
    after = next(c for c in code_cells if "after the endless cell" in c.source)
    assert any("after the endless cell" in o.get("text", "") for o in after.outputs)
    assert auto_points(report) == 0
    assert all(c.status != "pass" for c in report.checks)


def test_replaced_json_dumps_breaks_the_kernel_not_the_grader(context):
    graded, _ = grade(context, "json", solution() + [JSON_DUMPS, "print('after')"])
    report = graded.report
    assert report.execution.status in ("errors", "kernel_died"), report.execution
    assert auto_points(report) == 0


NO_IMPORTS = """import builtins
_imp = builtins.__import__
def _no(name, *a, **k):
    if name.split('.')[0] in ('json', 'base64', 'numpy', 'io', 'torch', 'sys', 'os'):
        raise ImportError('nope')
    return _imp(name, *a, **k)
builtins.__import__ = _no"""


def test_a_notebook_that_breaks_imports_gets_no_points_and_a_message_in_words(context):
    """The probe's question then fails in the kernel: no points, and instead of the probe's jargon
    ("expected one answer from the probe, got 0 (of 0 bundles)") what the notebook may have done."""
    graded, _ = grade(context, "imports", solution() + [NO_IMPORTS])
    report = graded.report
    assert auto_points(report) == 0
    messages = " ".join(c.message for c in report.checks)
    assert "builtins.__import__" in messages and "bundles" not in messages, messages


@pytest.mark.parametrize("kernels", ["fresh", "forked"])
def test_dead_kernel_is_restarted_for_the_probe_only_when_configured(context, kernels):
    """With limits.restart_for_probe, a notebook whose last cell kills the kernel is still probed:
    the cells before it run again in a new kernel. The status stays kernel_died."""
    import dataclasses

    ctx, work = context
    limits = ctx.config.limits.model_copy(update={"restart_for_probe": True})
    restarting = dataclasses.replace(ctx, config=ctx.config.model_copy(update={"limits": limits}))
    graded, _ = grade(
        (restarting, work), f"restart-{kernels}", solution() + ["import os\nos._exit(1)"], kernels=kernels
    )
    report = graded.report
    assert report.execution.status == "kernel_died", report.execution
    assert any("restarted for the probe" in note for note in report.execution.notes), report.execution.notes
    passing = {c.id for c in report.checks if c.status == "pass"}
    assert {
        "baseline.architecture",
        "baseline.forward",
        "baseline.training_setup",
        "batchnorm.architecture",
    } <= passing, {c.id: c.message for c in report.checks}


@pytest.mark.parametrize(
    "count, label",
    [
        (5, "In [5]"),
        (None, "cell 7"),
        (0, "cell 7"),
        (-2, "cell 7"),
        (True, "cell 7"),
        ("5]; rm", "cell 7"),
        (2.0, "cell 7"),
    ],
)
def test_a_cell_is_named_in_n_only_for_a_real_number(count, label):
    """A notebook's JSON may hold anything as a cell's execution_count: only a positive int is `In [n]`."""
    from grader.models import CellError, cell_label

    assert cell_label(count, 7) == label
    if count is None or (isinstance(count, int) and not isinstance(count, bool)):
        assert CellError(cell=7, execution_count=count, ename="E", evalue="").label == label
