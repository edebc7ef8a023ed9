"""Generate Sheet 5's notebooks (Exercise 5.4) and its example submissions.

    python tools/make_sheet5.py           # (re)write the files below
    python tools/make_sheet5.py --check   # exit 1 when a file differs from what would be written

Writes
  grader/sheets/sheet5/reference/template.ipynb   what the students get (the parts to write are TODO)
  grader/sheets/sheet5/reference/solution.ipynb   the full solution (also used by `grader calibrate`)
  grader/sheets/sheet5/submissions/*.zip          example submissions: the solution, and typical
                                                  mistakes, each an edit of the solution
  grader/sheets/sheet5/submissions/expected.json  which automatic checks each example loses

The notebooks are our own, written from the facts of the course's notebook (shared/sheet/
exercise-5.4.md): the data (a seeded spiral of three classes), `PointsDataset` (5.4.1), `FFNN` with a
softmax output (5.4.2), `config` and `train(config, data, labels)` (5.4.3), and the experiments of
part 4 with `config_1` (5 hidden units) and `config_2` (learning rate 100), each followed by a
"Your answer" cell. Output is deterministic: re-running gives identical bytes.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_examples import deterministic_zip, examples_main, make_pdf, team
from make_notebooks import ROOT, Member, notebook_of, src

SHEET5 = ROOT / "grader" / "sheets" / "sheet5"
REFERENCE = SHEET5 / "reference"
SUBMISSIONS = SHEET5 / "submissions"
CHECKS = ("dataset.getitem", "dataset.len", "ffnn.architecture", "ffnn.forward", "training.step", "training.accuracy")


def team_markdown(members: tuple[Member, ...] | None) -> str:
    head = src("""
        # Exercise Sheet 5 – Exercise 5.4: a feed-forward neural network

        Neural Networks: Theory and Implementation (NNTI), Winter Term 2024/2025
        """)
    if members is None:
        lines = "\n\n".join("Name: ..., Student ID: ..., Email: ..." for _ in range(3))
        return head + "\n\nEvery team member's name, student ID (matriculation number) and e-mail:\n\n" + lines
    return head + "\n\nTeam:\n\n" + "\n\n".join(m.line() for m in members)


IMPORTS = src("""
    import numpy as np
    import matplotlib.pyplot as plt
    import torch
    import torch.nn as nn
    from torch.utils.data import Dataset, DataLoader
    """)

DATA_TEXT = src("""
    ## The data

    Three classes of 100 points each, arranged as a spiral in the plane. The seeds make every run
    produce the same points and the same initial weights.
    """)

DATA = src("""
    np.random.seed(352)
    torch.manual_seed(0)

    points_per_class, classes = 100, 3
    data = np.zeros((points_per_class * classes, 2))
    labels = np.zeros(points_per_class * classes, dtype="uint8")
    for j in range(classes):
        index = range(points_per_class * j, points_per_class * (j + 1))
        radius = np.linspace(0.0, 1, points_per_class)
        angle = np.linspace(j * 4, (j + 1) * 4, points_per_class) + np.random.randn(points_per_class) * 0.2
        data[index] = np.c_[radius * np.sin(angle), radius * np.cos(angle)]
        labels[index] = j

    plt.scatter(data[:, 0], data[:, 1], c=labels, s=20, cmap=plt.cm.Spectral)
    plt.title("the spiral: three classes")
    plt.show()
    """)

PART1_TEXT = src("""
    ## 5.4.1 The data set (0.5 points)

    `PointsDataset` holds the points and their labels. Write `__getitem__`, which returns the pair
    (point, label) at an index, and `__len__`, the number of points. `PointsDataLoader` is given.
    """)

DATASET_HEAD = src("""
    class PointsDataset(Dataset):
        def __init__(self, data, labels):
            self.data = torch.tensor(data, dtype=torch.float32)
            self.labels = torch.tensor(labels, dtype=torch.long)
    """)

DATASET_TAIL = src("""
    class PointsDataLoader(DataLoader):
        \"\"\"A DataLoader whose batches pass through a transform (here: none).\"\"\"
        def __init__(self, dataset, transform=lambda batch: batch, **kwargs):
            super().__init__(dataset, **kwargs)
            self.transform = transform

        def __iter__(self):
            for batch in super().__iter__():
                yield self.transform(batch)
    """)

TEMPLATE_DATASET_METHODS = """
    def __getitem__(self, index):
        # TODO: the point and its label at `index`
        raise NotImplementedError

    def __len__(self):
        # TODO: the number of points
        raise NotImplementedError
"""

SOLUTION_DATASET_METHODS = """
    def __getitem__(self, index):
        return self.data[index], self.labels[index]

    def __len__(self):
        return len(self.data)
"""

PART2_TEXT = src("""
    ## 5.4.2 The network (0.5 points)

    `FFNN(input_dim, hidden_dim, output_dim)`: a linear layer from the input to the hidden units, a
    ReLU, a linear layer to the classes, and a softmax over the classes: the network's output is the
    probability of each class.
    """)

TEMPLATE_NETWORK = src("""
    class FFNN(nn.Module):
        def __init__(self, input_dim, hidden_dim, output_dim):
            super().__init__()
            # TODO: the layers

        def forward(self, x):
            # TODO: the forward pass, ending with a softmax over the classes
            raise NotImplementedError
    """)

SOLUTION_NETWORK = src("""
    class FFNN(nn.Module):
        def __init__(self, input_dim, hidden_dim, output_dim):
            super().__init__()
            self.hidden = nn.Linear(input_dim, hidden_dim)
            self.relu = nn.ReLU()
            self.output = nn.Linear(hidden_dim, output_dim)
            self.softmax = nn.Softmax(dim=1)

        def forward(self, x):
            x = self.relu(self.hidden(x))
            return self.softmax(self.output(x))
    """)

PART3_TEXT = src("""
    ## 5.4.3 Training (1 point)

    `train(config, data, labels)` is given except for the training step: compute the network's output
    and the loss, reset the gradients, backpropagate, and let the optimizer take its step. It prints
    the loss and the accuracy every 100 epochs and ends with a plot of the decision boundary.
    """)

CONFIG = src("""
    config = {
        "input_dim": 2,
        "hidden_dim": 100,
        "output_dim": 3,
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "num_epochs": 1000,
        "batch_size": 300,
        "learning_rate": 1,
    }
    """)

TRAIN = src("""
    def plot_decision_boundary(model, data, labels, device):
        x_min, x_max = data[:, 0].min() - 0.5, data[:, 0].max() + 0.5
        y_min, y_max = data[:, 1].min() - 0.5, data[:, 1].max() + 0.5
        xx, yy = np.meshgrid(np.arange(x_min, x_max, 0.02), np.arange(y_min, y_max, 0.02))
        grid = torch.tensor(np.c_[xx.ravel(), yy.ravel()], dtype=torch.float32, device=device)
        with torch.no_grad():
            predicted = model(grid).argmax(dim=1).cpu().numpy().reshape(xx.shape)
        plt.contourf(xx, yy, predicted, cmap=plt.cm.Spectral, alpha=0.8)
        plt.scatter(data[:, 0], data[:, 1], c=labels, s=20, cmap=plt.cm.Spectral)
        plt.title("decision boundary")
        plt.show()


    def train(config, data, labels):
        device = config["device"]
        dataset = PointsDataset(data, labels)
        loader = PointsDataLoader(dataset, batch_size=config["batch_size"], shuffle=True)
        model = FFNN(config["input_dim"], config["hidden_dim"], config["output_dim"]).to(device)
        criterion = nn.CrossEntropyLoss()
        optimizer = __OPTIMIZER__

        for epoch in range(config["num_epochs"]):
            correct, total, loss_sum = 0, 0, 0.0
            for inputs, targets in loader:
                inputs, targets = inputs.to(device), targets.to(device)
    __STEP__
                loss_sum += loss.item() * len(targets)
                correct += (outputs.argmax(dim=1) == targets).sum().item()
                total += len(targets)
            if (epoch + 1) % 100 == 0:
                print(f"epoch {epoch + 1}: loss {loss_sum / total:.4f}, accuracy {correct / total:.3f}")

        plot_decision_boundary(model, data, labels, device)
    __RETURN__
    """)

TEMPLATE_STEP = """
            # TODO: the network's output and the loss, then reset the gradients, backpropagate
            # and take the optimizer's step
            outputs = None
            loss = None
"""

SOLUTION_STEP = """
            outputs = model(inputs)
            loss = criterion(outputs, targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
"""

RUN = "model = train(config, data, labels)"

PART4_TEXT = src("""
    ## 5.4.4 Experiments (1 point)

    Train again with 5 hidden units (`config_1`) and with a learning rate of 100 (`config_2`). What do
    you observe, and why? Answer each in at most two sentences.
    """)

RUN_1 = src("""
    config_1 = dict(config, hidden_dim=5)
    train(config_1, data, labels)
    """)

RUN_2 = src("""
    config_2 = dict(config, learning_rate=100)
    train(config_2, data, labels)
    """)

TEMPLATE_ANSWER = "**Your answer:**"

SOLUTION_ANSWER_1 = src("""
    **Your answer:** With 5 hidden units the accuracy stays near 0.8: five ReLU units give a boundary of
    only a few straight pieces, too few to follow the spiral's arms.
    """)

SOLUTION_ANSWER_2 = src("""
    **Your answer:** With a learning rate of 100 the accuracy stays at 1/3: the first steps are so large
    that the softmax saturates, its gradients vanish, and the network predicts one class for every point.
    """)


@dataclass(frozen=True)
class Parts:
    """The cells a team writes; the rest is fixed."""

    team: tuple[Member, ...] | None
    dataset_methods: str
    network: str
    step: str
    returns: str
    answer_1: str
    answer_2: str
    optimizer: str = 'torch.optim.SGD(model.parameters(), lr=config["learning_rate"])'

    def edit(self, field: str, old: str, new: str) -> Parts:
        """A copy with `old` replaced by `new` in one field; fails unless `old` occurs exactly once."""
        text = getattr(self, field)
        if text.count(old) != 1:
            raise ValueError(f"{field}: expected one occurrence of {old!r}, found {text.count(old)}")
        return replace(self, **{field: text.replace(old, new)})


def _indent(block: str, spaces: int) -> str:
    return "\n".join(" " * spaces + line if line else line for line in src(block).split("\n"))


def build_notebook(parts: Parts) -> nbformat.NotebookNode:
    dataset = DATASET_HEAD + "\n\n" + _indent(parts.dataset_methods, 4) + "\n\n\n" + DATASET_TAIL
    train = (
        TRAIN.replace("__STEP__", _indent(parts.step, 12))
        .replace("__RETURN__", parts.returns)
        .replace("__OPTIMIZER__", parts.optimizer)
        .rstrip()
    )
    cells = [
        ("team", "markdown", team_markdown(parts.team)),
        ("imports", "code", IMPORTS),
        ("data-text", "markdown", DATA_TEXT),
        ("data", "code", DATA),
        ("part1-text", "markdown", PART1_TEXT),
        ("part1-dataset", "code", dataset),
        ("part2-text", "markdown", PART2_TEXT),
        ("part2-network", "code", parts.network),
        ("part3-text", "markdown", PART3_TEXT),
        ("part3-config", "code", CONFIG),
        ("part3-train", "code", train),
        ("part3-run", "code", RUN),
        ("part4-text", "markdown", PART4_TEXT),
        ("part4-run-1", "code", RUN_1),
        ("part4-answer-1", "markdown", parts.answer_1),
        ("part4-run-2", "code", RUN_2),
        ("part4-answer-2", "markdown", parts.answer_2),
    ]
    return notebook_of(cells)


def notebook_bytes(parts: Parts) -> bytes:
    return (nbformat.writes(build_notebook(parts)) + "\n").encode("utf-8")


SOLUTION_TEAM = team(("Lena Vogt", "7212345"), ("Tobias Kern", "7254321"))


def template_parts() -> Parts:
    return Parts(None, TEMPLATE_DATASET_METHODS, TEMPLATE_NETWORK, TEMPLATE_STEP, "", TEMPLATE_ANSWER, TEMPLATE_ANSWER)


def solution_parts(members: tuple[Member, ...] = SOLUTION_TEAM) -> Parts:
    return Parts(
        members,
        SOLUTION_DATASET_METHODS,
        SOLUTION_NETWORK,
        SOLUTION_STEP,
        "    return model",
        SOLUTION_ANSWER_1,
        SOLUTION_ANSWER_2,
    )


# ------------------------------------------------------------------------------------------------
# Example submissions
# ------------------------------------------------------------------------------------------------

WRITTEN_ANSWERS = [
    "Exercise 5.1: a) the margin is 2/||w||; b) the dual and the kernel trick, see the derivation;",
    "c) an RBF kernel separates the rings.",
    "Exercise 5.2: a) gradient descent with step size 0.1; b) Newton's method converges in one step on a",
    "quadratic; c) the Hessian is positive definite.",
    "Exercise 5.3: a) permuting hidden units gives n! equivalent networks; b) sign flips with tanh add 2^n.",
    "Exercise 5.4: see the notebook.",
]


def team_pdf(members: tuple[Member, ...]) -> bytes:
    return make_pdf(
        [m.line() for m in members] + [""] + WRITTEN_ANSWERS, title="NNTI Winter Term 2024/2025 - Exercise Sheet 5"
    )


@dataclass(frozen=True)
class Example:
    team: tuple[Member, ...]
    defect: str
    loses: tuple[str, ...]
    parts: Parts

    @property
    def zip_name(self) -> str:
        return "_".join(f"{m.name.replace(' ', '_')}_{m.student_id}" for m in self.team) + ".zip"


def _examples() -> list[Example]:
    examples = [Example(SOLUTION_TEAM, "correct (the solution)", (), solution_parts())]

    def add(members, defect, loses, edit):
        examples.append(Example(members, defect, loses, edit(solution_parts(members))))

    add(
        team(("Jonas Berg", "7223456"), ("Clara Sommer", "7234567")),
        "FFNN.forward returns the last layer's output without the softmax",
        ("ffnn.forward",),
        lambda p: p.edit("network", "return self.softmax(self.output(x))", "return self.output(x)"),
    )
    add(
        team(("Emil Brandt", "7245678"), ("Nora Fuchs", "7256789")),
        "FFNN.forward applies the softmax twice",
        ("ffnn.forward",),
        lambda p: p.edit(
            "network",
            "return self.softmax(self.output(x))",
            "return torch.softmax(self.softmax(self.output(x)), dim=1)",
        ),
    )
    add(
        team(("Paula Lorenz", "7267890"), ("Max Winter", "7278901"), ("Ida Roth", "7289012")),
        "PointsDataset.__len__ is one short (len(self.data) - 1)",
        ("dataset.len",),
        lambda p: p.edit("dataset_methods", "return len(self.data)", "return len(self.data) - 1"),
    )
    add(
        team(("Felix Hahn", "7290123"), ("Lara Engel", "7301234")),
        "train never calls optimizer.zero_grad(): the gradients add up",
        ("training.step", "training.accuracy"),
        lambda p: p.edit("step", "            optimizer.zero_grad()\n", ""),
    )
    add(
        team(("Moritz Keller", "7312345"), ("Sara Busch", "7323456")),
        "train ignores config['learning_rate'] (the optimizer gets lr=0.01)",
        ("training.step", "training.accuracy"),
        lambda p: p.edit("optimizer", 'lr=config["learning_rate"]', "lr=0.01"),
    )
    add(
        team(("Hanna Graf", "7334567"), ("Ben Wolff", "7345678")),
        "train returns nothing (legal: as the course's given train; the cell still writes model = train(...))",
        (),
        lambda p: replace(p, returns=""),
    )
    return examples


EXAMPLES = _examples()


def zip_bytes(example: Example) -> bytes:
    return deterministic_zip(
        [("sheet05.pdf", team_pdf(example.team)), ("sheet05.ipynb", notebook_bytes(example.parts))]
    )


def expected() -> dict:
    return {
        "about": "What each example submission of Sheet 5 should score in the automatic checks of 5.4 "
        "(written by tools/make_sheet5.py; the grader skips .json files).",
        "checks": list(CHECKS),
        "submissions": {
            ex.zip_name: {
                "defect": ex.defect,
                "team": [{"name": m.name, "student_id": m.student_id, "email": m.email} for m in ex.team],
                "loses": list(ex.loses),
                "passes": [c for c in CHECKS if c not in ex.loses],
            }
            for ex in EXAMPLES
        },
    }


def outputs() -> dict[Path, bytes]:
    files = {
        REFERENCE / "template.ipynb": notebook_bytes(template_parts()),
        REFERENCE / "solution.ipynb": notebook_bytes(solution_parts()),
    }
    files.update({SUBMISSIONS / ex.zip_name: zip_bytes(ex) for ex in EXAMPLES})
    files[SUBMISSIONS / "expected.json"] = (json.dumps(expected(), indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    return files


def main(argv: list[str] | None = None) -> int:
    return examples_main(outputs(), EXAMPLES, argv, __doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
