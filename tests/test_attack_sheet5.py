"""Sheet 5 (Exercise 5.4) attacked the way students and broken uploads send it.

Two lanes. Without a kernel: the notebook of tools/make_sheet5.py with a few lines changed, its
cells exec'd into a namespace as the kernel would hold them (with the set-up step's recording of
`train`, Jupyter's cell numbers and `In`), then the sheet's probe plan and checks (as in
test_sheet5.py). In real kernels: one `grader grade --sheet sheet5` of a folder of hostile and
messy submissions (one batch, to save kernel starts), each asserted on what its report says.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace

import nbformat
import numpy as np
import pytest
from conftest import ROOT, needs_torch
from test_sheet5 import make_sheet5, observe, verdicts

from grader.checks.environment_faults import environment_faults, fault_violations
from grader.child import setup_kernel as setup
from grader.sheet import AccuracyRange

SOLUTION_NETWORK_FORWARD = "return self.softmax(self.output(x))"
CALIBRATED = AccuracyRange(low=(0.963,), high=(0.963,), source="test")


def cells(parts=None, *changes: tuple[str, str]) -> list[str]:
    """The code cells of the notebook (the solution by default) with each (old, new) replaced;
    every old text must be found."""
    sources = [
        c.source
        for c in make_sheet5.build_notebook(parts or make_sheet5.solution_parts()).cells
        if c.cell_type == "code"
    ]
    for old, new in changes:
        assert any(old in s for s in sources), f"not in the notebook: {old!r}"
        sources = [s.replace(old, new) for s in sources]
    return sources


def run(sources: list[str], epochs: int = 20) -> tuple[dict, setup.Recorder]:
    """The cells run into a namespace as a kernel runs them: In [n] numbered from 1, a cell that
    raises does not stop the next, `train` is wrapped after the cell that defines it, and FFNNs made
    during a recorded call are kept. Fewer epochs than the notebook's 1,000."""
    number = [0]
    recorder = setup.Recorder(cell_number=lambda: number[0])
    ns: dict = {"__name__": "__main__", "In": [""]}
    for source in sources:
        number[0] += 1
        ns["In"].append(source)
        try:
            exec(
                source.replace('"num_epochs": 1000', f'"num_epochs": {epochs}').replace("plt.show()", "plt.close()"), ns
            )
        except Exception:
            pass
        if isinstance(ns.get("FFNN"), type):
            setup.record_made(recorder, ns["FFNN"])
        setup.record_function(recorder, ns, "train")
    return ns, recorder


def graded(sources: list[str], accuracy_range: AccuracyRange | None = CALIBRATED, epochs: int = 20):
    ns, recorder = run(sources, epochs)
    obs = observe(ns, recorder)
    return ns, obs, verdicts(obs, accuracy_range)


# ---- which network is the trained one ---------------------------------------------------------


def test_a_config_rebound_for_an_experiment_does_not_pick_the_experiments_network():
    """Part 4 written as `config = dict(config, learning_rate=100)`: the name `config` now holds the
    experiment's, and the network the exercise asks about is still the one of the first call."""
    ns, obs, found = graded(
        cells(
            None,
            (
                "config_2 = dict(config, learning_rate=100)\ntrain(config_2",
                "config = dict(config, learning_rate=100)\ntrain(config",
            ),
        )
    )
    trained = obs.answer.network.trained.params["hidden.weight"]
    assert np.allclose(trained, ns["model"].hidden.weight.detach().numpy(), atol=1e-6)
    assert obs.answer.network.trained_cell == 7  # model = train(config, data, labels)
    assert found["training.step"][0] == "pass"


def test_train_defined_and_called_in_one_cell_is_left_to_a_tutor_not_taken_from_an_experiment():
    """The course's train returns nothing; in a cell that also defines it, the call is not recorded
    (train is wrapped after its cell). The experiments' calls are recorded: their networks (5 hidden
    units, a learning rate of 100) are not the one 5.4.3 asks about."""
    sources = cells(replace(make_sheet5.solution_parts(), returns=""))
    at = next(i for i, s in enumerate(sources) if s.startswith("def plot_decision_boundary"))
    sources[at : at + 2] = [sources[at] + "\n\n\n" + sources[at + 1]]
    _ns, obs, found = graded(sources)
    status, message = found["training.accuracy"]
    assert status == "needs_review", message
    assert "In [6]" in message and "in the cell that defines it" in message and "separate cells" in message
    assert obs.answer.network.trained is None or obs.answer.network.trained.params["hidden.weight"].shape != (5, 2)


def test_a_train_that_never_got_defined_is_not_said_to_be_called_where_it_is_defined():
    """A syntax error in train's cell: the later cells' calls of train are not unrecorded calls."""
    _, _, found = graded(cells(None, ("criterion = nn.CrossEntropyLoss()", "criterion = nn.CrossEntropyLoss(")))
    assert found["training.step"][0] == "fail" and "is not defined after the notebook ran" in found["training.step"][1]
    assert "in the cell that defines it" not in found["training.accuracy"][1], found["training.accuracy"]


# ---- a notebook written for a GPU ---------------------------------------------------------------


@pytest.mark.parametrize(
    "ename, evalue",
    [
        (
            "RuntimeError",
            "Found no NVIDIA driver on your system. Please check that you have an NVIDIA GPU and "
            "installed a driver from http://www.nvidia.com/Download/index.aspx",
        ),
        ("AssertionError", "Torch not compiled with CUDA enabled"),
        ("RuntimeError", "No CUDA GPUs are available"),
        (
            "RuntimeError",
            "Attempting to deserialize object on a CUDA device but torch.cuda.is_available() is False. "
            "If you are running on a CPU-only machine, please use torch.load with map_location",
        ),
        ("RuntimeError", "PyTorch is not linked with support for mps devices"),
    ],
)
def test_a_notebook_that_asks_for_a_gpu_is_left_to_a_tutor(ename, evalue):
    """`"device": "cuda"` written into config (Colab's GPU) fails on the grader's machines, which
    have none: a limit of the grading environment, like a module it lacks, not the team's mistake."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import torch"), nbformat.v4.new_code_cell("model = FFNN(2, 100, 3).cuda()")]
    for count, cell in enumerate(nb.cells, start=1):
        cell.execution_count = count
    nb.cells[1].outputs.append(nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=[]))
    faults = environment_faults(nb)
    assert [(f.kind, f.label) for f in faults] == [("gpu", "In [2]")]
    violations = fault_violations(faults, "the grader serves no data for this sheet")
    assert [v.code for v in violations] == ["environment.no_gpu"]
    message = violations[0].message
    assert "In [2]" in message and "no GPU" in message and "needs_review" in message
    assert "'cuda' if torch.cuda.is_available() else 'cpu'" in message


# ---- networks written otherwise ------------------------------------------------------------------

ANY_ACCURACY = AccuracyRange(low=(0.0,), high=(0.0,), source="test")  # passes whatever a recomputed accuracy is


@pytest.mark.parametrize(
    "forward",
    [
        "z = torch.exp(self.output(x))\n        return z / z.sum(dim=1, keepdim=True)",
        "z = self.output(x)\n        z = torch.exp(z - z.max(dim=1, keepdim=True).values)\n        return z / torch.sum(z, 1, keepdim=True)",
    ],
)
def test_a_softmax_written_out_by_hand_gets_every_point(forward):
    """The lecture's formula, exp(z) / Σ exp(z), is the softmax: the grader recognises it by what it
    computes (the softmax of the last Linear layer's output, on the network's own weights), not by
    torch's name for it."""
    _, _, found = graded(cells(None, (SOLUTION_NETWORK_FORWARD, forward)), ANY_ACCURACY)
    assert {c: s for c, (s, _) in found.items()} == {c: "pass" for c in found}, found


def test_an_ending_that_is_no_softmax_is_named_and_left_to_a_tutor():
    _, _, found = graded(cells(None, (SOLUTION_NETWORK_FORWARD, "return torch.exp(self.output(x))")), ANY_ACCURACY)
    assert found["ffnn.architecture"][0] == "pass", found
    assert found["ffnn.forward"] == (
        "needs_review",
        "FFNN(2, 16, 3)'s forward pass could not be recomputed: after "
        "the last Linear layer it calls torch's `exp`, and its output is neither the "
        "softmax nor the log-softmax of that layer's output.",
    )


# ---- the template, and names other than the template's --------------------------------------------


def test_the_untouched_template_says_what_is_still_to_write():
    _, _, found = graded(cells(make_sheet5.template_parts()))
    assert {s for s, _ in found.values()} <= {"fail", "error"}, found
    getitem, length = found["dataset.getitem"][1], found["dataset.len"][1]
    assert getitem.startswith("PointsDataset(data, labels)[0] raised NotImplementedError"), getitem
    assert "__getitem__ is still the template's" in getitem and "len(" not in getitem
    assert "__len__ is still the template's" in length
    assert "forward is still the template's" in found["ffnn.forward"][1]
    assert ". expected" not in found["training.accuracy"][1]


@pytest.mark.parametrize(
    "renames, named",
    [
        ((("class FFNN(nn.Module)", "class Net(nn.Module)"), ("model = FFNN(", "model = Net(")), "`Net`"),
        (
            (
                ("class PointsDataset(Dataset)", "class SpiralDataset(Dataset)"),
                ("dataset = PointsDataset(", "dataset = SpiralDataset("),
            ),
            "`SpiralDataset`",
        ),
    ],
)
def test_a_class_renamed_is_named_with_the_name_the_grader_looks_for(renames, named):
    """Teams rename the template's classes (or upload another sheet's notebook): the message names
    what the notebook does define, so that the student sees what to change."""
    _, _, found = graded(cells(None, *renames), ANY_ACCURACY)
    lost = {c: m for c, (s, m) in found.items() if s != "pass"}
    assert lost and all(s == "fail" for c, (s, _) in found.items() if c in lost), found
    for message in lost.values():
        assert "is not defined after the notebook ran" in message and named in message, message
        assert "keep the template's names" in message


# ---- what the trained network's accuracy says ------------------------------------------------------


def test_a_network_of_other_layers_loses_its_architecture_not_its_training_too():
    """Sigmoid for ReLU costs ffnn.architecture; such a network also trains to a lower accuracy in
    1,000 epochs, which then says nothing about the training code (training.step passes): a tutor
    decides instead of a second loss for one mistake."""
    _, _, found = graded(cells(None, ("self.relu = nn.ReLU()", "self.relu = nn.Sigmoid()")))
    assert found["ffnn.architecture"][0] == "fail" and found["training.step"][0] == "pass"
    status, message = found["training.accuracy"]
    assert status == "needs_review", message
    assert "Linear(2, 100) → Sigmoid → Linear(100, 3)" in message and "ffnn.architecture" in message


def test_a_low_accuracy_names_the_config_values_that_differ_from_the_exercises():
    _, _, found = graded(cells(None, ('"learning_rate": 1,', '"learning_rate": 0.05,')))
    status, message = found["training.accuracy"]
    assert status == "fail"
    assert "learning_rate 0.05 (the exercise's: 1)" in message and "num_epochs 20 (the exercise's: 1000)" in message


def test_a_training_that_diverged_says_so():
    """NaN losses: the trained weights are not numbers any more, whatever the accuracy says."""
    _ns, obs, found = graded(cells(None, ('"learning_rate": 1,', '"learning_rate": 1e30,')))
    assert not np.all(np.isfinite(obs.answer.network.trained.params["hidden.weight"]))
    status, message = found["training.accuracy"]
    assert status == "fail" and "weights are NaN or infinite: the training diverged" in message, message


# ---- in real kernels: one batch of what teams send ------------------------------------------------


def _zip(members, nb: nbformat.NotebookNode) -> bytes:
    from make_examples import deterministic_zip  # tools/, on the path through test_sheet5

    return deterministic_zip(
        [
            ("sheet05.pdf", make_sheet5.team_pdf(members)),
            ("sheet05.ipynb", (nbformat.writes(nb) + "\n").encode("utf-8")),
        ]
    )


def _notebook(parts, *changes: tuple[str, str], insert: tuple[tuple[int, str], ...] = ()) -> nbformat.NotebookNode:
    nb = make_sheet5.build_notebook(parts)
    for old, new in changes:
        assert any(old in c.source for c in nb.cells), f"not in the notebook: {old!r}"
        for cell in nb.cells:
            cell.source = cell.source.replace(old, new)
    for at, source in insert:
        nb.cells.insert(at, nbformat.v4.new_code_cell(source))
    return nb


def _merged(parts) -> nbformat.NotebookNode:
    nb = make_sheet5.build_notebook(replace(parts, returns=""))
    at = next(i for i, c in enumerate(nb.cells) if c.source.startswith("def plot_decision_boundary"))
    nb.cells[at].source += "\n\n\n" + nb.cells[at + 1].source
    del nb.cells[at + 1]
    return nb


# name -> (a notebook of the solution's team `members`, built from its Parts)
ATTACKS = {
    "rebound": lambda p: _notebook(
        p,
        (
            "config_2 = dict(config, learning_rate=100)\ntrain(config_2",
            "config = dict(config, learning_rate=100)\ntrain(config",
        ),
    ),
    "cuda": lambda p: _notebook(p, ('"device": "cuda" if torch.cuda.is_available() else "cpu",', '"device": "cuda",')),
    "colab": lambda p: _notebook(
        p, insert=((1, "!pip install torch tqdm"), (2, "from google.colab import drive\ndrive.mount('/content/drive')"))
    ),
    "drive_data": lambda p: _notebook(
        p, ("np.random.seed(352)", "np.random.seed(352)\ndata = np.load('/content/drive/MyDrive/nnti/spiral.npy')")
    ),
    "manual_softmax": lambda p: _notebook(
        p, (SOLUTION_NETWORK_FORWARD, "z = torch.exp(self.output(x))\n        return z / z.sum(dim=1, keepdim=True)")
    ),
    "template": lambda p: make_sheet5.build_notebook(replace(make_sheet5.template_parts(), team=p.team)),
    "renamed": lambda p: _notebook(
        p, ("class FFNN(nn.Module)", "class Net(nn.Module)"), ("model = FFNN(", "model = Net(")
    ),
    "snoop": lambda p: _notebook(
        p,
        insert=(
            (
                2,
                "import os, glob, shutil\n"
                "print('SEEN', sorted(os.listdir('..')), glob.glob('/work/*/grader'))\n"
                "for name in os.listdir('.'):\n"
                "    if name.endswith('.pdf'):\n"
                "        os.remove(name)\n"
                "shutil.rmtree('/tmp', ignore_errors=True)",
            ),
        ),
    ),
    "flood": lambda p: _notebook(
        p,
        (
            "loss_sum += loss.item() * len(targets)",
            "loss_sum += loss.item() * len(targets)\n            print('step', loss.item(), 'x' * 200)",
        ),
        insert=((3, "print('A' * 5_000_000)"),),
    ),
    "empty_cells": lambda p: _notebook(p, insert=((2, ""), (5, "# nothing here yet"), (9, "   \n\n"))),
    "merged": _merged,
    "sigmoid": lambda p: _notebook(p, ("self.relu = nn.ReLU()", "self.relu = nn.Sigmoid()")),
    "sheet6": lambda p: nbformat.read(ROOT / "reference" / "solution.ipynb", as_version=4),
}
WRONG_NAME = "sheet5_submission.zip"  # the solution, uploaded under a name without the team


def _members(number: int):
    from make_examples import team

    first = 7410000 + 10 * number
    return team(("Anna Probe", str(first)), ("Bernd Test", str(first + 1)))


@pytest.fixture(scope="module")
def attacked(tmp_path_factory):
    """Every attack in one `grader grade --sheet sheet5` (2 workers), with the calibration the sheet
    ships: {attack: its report}, and the grader's output."""
    from grader.models import Report

    folder = tmp_path_factory.mktemp("attacks")
    submissions = folder / "submissions"
    submissions.mkdir()
    names = {}
    for number, (attack, build) in enumerate(ATTACKS.items()):
        members = _members(number)
        name = "_".join(f"{m.name.replace(' ', '_')}_{m.student_id}" for m in members) + ".zip"
        (submissions / name).write_bytes(_zip(members, build(make_sheet5.solution_parts(members))))
        names[name] = attack
    members = _members(len(ATTACKS))
    (submissions / WRONG_NAME).write_bytes(
        _zip(members, make_sheet5.build_notebook(make_sheet5.solution_parts(members)))
    )
    names[WRONG_NAME] = "wrong_name"
    env = {**os.environ, "GRADER_CACHE": str(folder / "cache")}
    env.pop("GRADER_CALIBRATION", None)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "grader",
            "grade",
            "--sheet",
            "sheet5",
            str(submissions),
            "--out",
            "reports",
            "--workers",
            "2",
        ],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    reports = {}
    for path in (folder / "reports").glob("*.json"):
        if not path.name.startswith("."):
            report = Report.model_validate_json(path.read_bytes())
            reports[names[report.submission.file]] = report
    assert set(reports) == set(names.values())
    return reports, folder / "reports", done.stdout


def statuses(report) -> dict[str, str]:
    return {c.id: c.status for c in report.checks}


def messages(report) -> dict[str, str]:
    return {c.id: c.message for c in report.checks}


ALL_PASS = {
    c: "pass"
    for c in (
        "dataset.getitem",
        "dataset.len",
        "ffnn.architecture",
        "ffnn.forward",
        "training.step",
        "training.accuracy",
    )
}


@pytest.mark.kernel
@needs_torch
@pytest.mark.parametrize(
    "attack", ["rebound", "colab", "manual_softmax", "snoop", "flood", "empty_cells", "wrong_name"]
)
def test_correct_work_sent_messily_gets_every_automatic_point(attacked, attack):
    report = attacked[0][attack]
    assert statuses(report) == ALL_PASS, messages(report)
    assert report.total.points == 2.0


@pytest.mark.kernel
@needs_torch
def test_what_the_messy_uploads_are_told(attacked):
    reports, out, stdout = attacked
    assert "platform only (exists only on Google Colab)" in stdout  # the import pre-flight, before any notebook ran
    notes = " ".join(reports["colab"].execution.notes)
    assert "google.colab" in notes and "Google Colab" in notes and "grading installs nothing" in notes
    assert any("output cut" in n for n in reports["flood"].execution.notes)
    assert [v.code for v in reports["wrong_name"].violations] == ["name.pattern"]
    executed = nbformat.read(out / "executed" / (reports["snoop"].submission.file[:-4] + ".ipynb"), as_version=4)
    seen = next(
        o.text
        for c in executed.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("name") == "stdout" and "SEEN" in o.get("text", "")
    )
    assert "Anna_Probe" not in seen and "/grader" not in seen, seen  # no other team's folder, no grader code


@pytest.mark.kernel
@needs_torch
def test_what_the_grader_cannot_judge_is_left_to_a_tutor(attacked):
    reports = attacked[0]
    cuda = reports["cuda"]
    assert [v.code for v in cuda.violations] == ["environment.no_gpu"]
    assert "no GPU" in cuda.violations[0].message and "In [" in cuda.violations[0].message
    drive = reports["drive_data"]
    assert [v.code for v in drive.violations] == ["environment.data_path"]
    for report in (cuda, drive):
        assert set(statuses(report).values()) <= {"pass", "needs_review"}, messages(report)
        assert statuses(report)["training.accuracy"] == "needs_review"
    merged = reports["merged"]
    assert statuses(merged) == {**ALL_PASS, "training.accuracy": "needs_review"}, messages(merged)
    assert "in the cell that defines it" in messages(merged)["training.accuracy"]
    sigmoid = reports["sigmoid"]
    assert statuses(sigmoid) == {**ALL_PASS, "ffnn.architecture": "fail", "training.accuracy": "needs_review"}, (
        messages(sigmoid)
    )


@pytest.mark.kernel
@needs_torch
def test_work_not_done_or_not_this_sheets_gets_a_message_to_act_on(attacked):
    reports = attacked[0]
    template = reports["template"]
    assert template.total.points == 0
    said = messages(template)
    assert "__getitem__ is still the template's: write it" in said["dataset.getitem"], said
    assert "__len__ is still the template's: write it" in said["dataset.len"], said
    assert "forward is still the template's: write it" in said["ffnn.forward"], said
    renamed = reports["renamed"]
    assert statuses(renamed) == {
        **ALL_PASS,
        "ffnn.architecture": "fail",
        "ffnn.forward": "fail",
        "training.step": "fail",
        "training.accuracy": "fail",
    }
    assert all("It defines `Net`" in m for c, m in messages(renamed).items() if not c.startswith("dataset")), messages(
        renamed
    )
    other_sheet = messages(reports["sheet6"])
    assert (
        "`FashionNetwork`" in other_sheet["ffnn.architecture"]
        and "another sheet's notebook" in other_sheet["ffnn.architecture"]
    )
