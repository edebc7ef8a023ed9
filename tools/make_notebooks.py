"""Generate the notebooks of Exercise 6.6: the template, the solution and correct test variants.

    python tools/make_notebooks.py           # (re)write the files below
    python tools/make_notebooks.py --check   # exit 1 when a file differs from what would be written

Writes
  reference/template.ipynb        what the students get, shaped as the course's notebook (stubs that
                                  return NotImplemented, optimize(self) and test(self) without parameters)
  reference/solution.ipynb        the full solution (also used by `grader calibrate`)
  tests/notebooks/correct_*.ipynb four correct solutions in other styles; each must get full points

The cell order, names and signatures follow the real Exercise 6.6 notebook (docs/spec.md): team cell,
setup cell, Part 1 text / class `FashionNetwork` / run cell, Part 2 text / class
`FashionNetworkBatchNorm` / run cell, Part 3 text / plot cell / "Your Answer:" cell.

`tools/make_examples.py` builds its example submissions from `solution_parts()` here, so every
example differs from the solution by exactly the edit it names. Output is deterministic (fixed cell
ids, no outputs, sorted keys): re-running gives identical bytes.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from textwrap import dedent

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "reference"
TEST_NOTEBOOKS = ROOT / "tests" / "notebooks"


def src(text: str) -> str:
    return dedent(text).strip("\n")


def fill(template: str, **blocks: str) -> str:
    """Dedent `template`, then put each block where its placeholder (`__KEY__`) stands: a placeholder
    alone on a line is replaced by the (dedented) block indented like the placeholder."""
    text = src(template)
    for key, block in blocks.items():
        mark = f"__{key.upper()}__"
        lines = []
        for line in text.split("\n"):
            if line.strip() == mark:
                pad = line[: len(line) - len(line.lstrip())]
                lines.extend(pad + b if b else b for b in src(block).split("\n"))
            else:
                lines.append(line.replace(mark, block))
        text = "\n".join(lines)
    return text


# ------------------------------------------------------------------------------------------------
# Teams
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    name: str
    student_id: str
    email: str

    def line(self) -> str:
        return f"Name: {self.name}, Student ID: {self.student_id}, Email: {self.email}"


SOLUTION_TEAM = (
    Member("Erika Mustermann", "7012345", "s8ermust@stud.uni-saarland.de"),
    Member("Jürgen Müller", "7054321", "s8jumuel@stud.uni-saarland.de"),
)


HEADING = src("""
    # Exercise Sheet 6 – Exercise 6.6: BatchNorm

    Neural Networks: Theory and Implementation (NNTI), Winter Term 2024/2025
    """)


def identity_markdown(team: tuple[Member, ...] | None, members: int = 3) -> str:
    """The first cell as the course hands it out: a line each for name, student id and e-mail of
    members 1 to 3, ended by `<br>`; a team fills in its members after the colons."""
    filled = list(team or ())
    lines = []
    for number in range(1, members + 1):
        m = filled[number - 1] if number <= len(filled) else None
        for label, value in (("Name", m and m.name), ("Student id", m and m.student_id), ("Email", m and m.email)):
            lines.append(f"{label} {number}: {value} <br>" if value else f"{label} {number}: <br>")
    return HEADING + "\n\n" + "\n".join(lines)


def team_markdown(team: tuple[Member, ...] | None) -> str:
    """A team cell in a student's own layout, one member per line ("Name: ..., Student ID: ..., Email: ...")."""
    head = src("""
        # Exercise Sheet 6 – Exercise 6.6: BatchNorm

        Neural Networks: Theory and Implementation (NNTI), Winter Term 2024/2025
        """)
    if team is None:
        members = src("""
            Please enter the name, student ID (matriculation number) and e-mail of **every** team member:

            Name: ..., Student ID: ..., Email: ...

            Name: ..., Student ID: ..., Email: ...

            Name: ..., Student ID: ..., Email: ...
            """)
    else:
        members = "Team:\n\n" + "\n\n".join(m.line() for m in team)
    return head + "\n\n" + members


# ------------------------------------------------------------------------------------------------
# Cells shared by every notebook
# ------------------------------------------------------------------------------------------------

SETUP = src("""
    import torch
    import torchvision
    import torch.nn as nn
    import torchvision.transforms as transforms
    import matplotlib.pyplot as plt

    fashion_train = torchvision.datasets.FashionMNIST('data/', train=True, download=True, transform=transforms.ToTensor())
    fashion_test = torchvision.datasets.FashionMNIST('data/', train=False, download=True, transform=transforms.ToTensor())

    fashion_train_loader = torch.utils.data.DataLoader(fashion_train, batch_size=64, shuffle=True)
    fashion_test_loader = torch.utils.data.DataLoader(fashion_test, batch_size=64)
    """)

PART1_TEXT = src("""
    ## Part 1 (1 point)

    Implement the class `FashionNetwork`, a feed-forward network for the 28x28 grey images of Fashion-MNIST
    (10 classes) with the layers

    Linear(784, 64) → ReLU → Linear(64, 32) → ReLU → Linear(32, 10).

    Train it with the cross-entropy loss and `torch.optim.SGD` with learning rate 0.001 for 5 epochs.
    `optimize` trains the network and measures the accuracy on the test set after every epoch (keep
    those accuracies: Part 3 plots them); the cell that trains passes it the two loaders. `test`
    computes the accuracy on the test set; which parameters it takes is up to you.
    """)

PART2_TEXT = src("""
    ## Part 2 (0.5 points)

    Implement `FashionNetworkBatchNorm`: the same network with a batch normalisation layer
    (`nn.BatchNorm1d`) added. Where it goes, and whether you add more than one, is your choice (the
    lecture's slides show where it is commonly placed). Train it the same way.
    """)

PART3_TEXT = src("""
    ## Part 3 (0.25 points)

    Plot the test accuracies of both networks over the epochs in one figure. What do you observe?
    Explain the difference.
    """)

TEMPLATE_ANSWER = "Your Answer:"

# ------------------------------------------------------------------------------------------------
# The template
# ------------------------------------------------------------------------------------------------


def _template_class(name: str) -> str:
    """A class as the course hands it out: every method a stub that returns NotImplemented, and
    `optimize` and `test` without parameters (the team chooses them)."""
    return src(f"""
        class {name}(nn.Module):
            def __init__(self):
                # TODO: the layers (and, if you like, the loss function and the optimizer)
                pass

            def forward(self, x):
                # TODO: the forward pass; x is a batch of images of shape (N, 1, 28, 28)
                return NotImplemented

            def optimize(self):
                # TODO: train for 5 epochs and measure the test accuracy after every epoch
                return NotImplemented

            def test(self):
                # TODO: the accuracy on the test set
                return NotImplemented
        """)


TEMPLATE_BASELINE = _template_class("FashionNetwork")
TEMPLATE_BATCHNORM = _template_class("FashionNetworkBatchNorm")
TEMPLATE_RUN_BASELINE = src("""
    fashion_network = FashionNetwork()
    fashion_network.optimize(fashion_train_loader, fashion_test_loader)
    """)
TEMPLATE_RUN_BATCHNORM = src("""
    fashion_network_batch_norm = FashionNetworkBatchNorm()
    fashion_network_batch_norm.optimize(fashion_train_loader, fashion_test_loader)
    """)
TEMPLATE_PLOT = "# TODO: plot the test accuracies of both networks"


# ------------------------------------------------------------------------------------------------
# The solution
# ------------------------------------------------------------------------------------------------

# optimize and test are the same for both networks (written out in each class, as students do).
_SOLUTION_METHODS = """
    def optimize(self, train_loader, test_loader):
        self.test_accuracies = []
        for epoch in range(self.epochs):
            self.train()
            running_loss = 0.0
            for images, labels in train_loader:
                self.optimizer.zero_grad()
                loss = self.loss_function(self(images), labels)
                loss.backward()
                self.optimizer.step()
                running_loss += loss.item() * images.size(0)
            accuracy = self.test(test_loader)
            self.test_accuracies.append(accuracy)
            print(f"epoch {epoch + 1}/{self.epochs}: training loss {running_loss / len(train_loader.dataset):.4f}, "
                  f"test accuracy {accuracy:.4f}")
        return self.test_accuracies

    def test(self, test_loader):
        # The course's stub is test(self): taking the loader as a parameter is this solution's choice;
        # test(self) reading the global fashion_test_loader is as right.
        self.eval()
        correct, total = 0, 0
        with torch.no_grad():
            for images, labels in test_loader:
                predictions = self(images).argmax(dim=1)
                correct += (predictions == labels).sum().item()
                total += labels.size(0)
        self.train()
        return correct / total
"""

SOLUTION_BASELINE = (
    src("""
    class FashionNetwork(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(784, 64)
            self.fc2 = nn.Linear(64, 32)
            self.fc3 = nn.Linear(32, 10)
            self.relu = nn.ReLU()
            self.loss_function = nn.CrossEntropyLoss()
            self.optimizer = torch.optim.SGD(self.parameters(), lr=0.001)
            self.epochs = 5
            self.test_accuracies = []

        def forward(self, x):
            x = x.view(x.size(0), -1)
            x = self.relu(self.fc1(x))
            x = self.relu(self.fc2(x))
            x = self.fc3(x)
            # logits: nn.CrossEntropyLoss applies log-softmax itself
            return x
    """)
    + "\n"
    + _SOLUTION_METHODS.rstrip()
)

SOLUTION_BATCHNORM = (
    src("""
    class FashionNetworkBatchNorm(nn.Module):
        def __init__(self):
            super().__init__()
            # The sheet asks for a batch normalisation layer and leaves where to the team: here one after
            # each hidden Linear, before its ReLU. One layer alone (on the flattened input, after a hidden
            # Linear, before or after its ReLU, or after the last Linear) is as right, as long as each
            # BatchNorm1d is as wide as the features where it stands.
            self.fc1 = nn.Linear(784, 64)
            self.bn1 = nn.BatchNorm1d(64)
            self.fc2 = nn.Linear(64, 32)
            self.bn2 = nn.BatchNorm1d(32)
            self.fc3 = nn.Linear(32, 10)
            self.relu = nn.ReLU()
            self.loss_function = nn.CrossEntropyLoss()
            self.optimizer = torch.optim.SGD(self.parameters(), lr=0.001)
            self.epochs = 5
            self.test_accuracies = []

        def forward(self, x):
            x = x.view(x.size(0), -1)
            x = self.relu(self.bn1(self.fc1(x)))
            x = self.relu(self.bn2(self.fc2(x)))
            x = self.fc3(x)
            return x
    """)
    + "\n"
    + _SOLUTION_METHODS.rstrip()
)

SOLUTION_RUN_BASELINE = src("""
    fashion_network = FashionNetwork()
    baseline_accuracies = fashion_network.optimize(fashion_train_loader, fashion_test_loader)
    """)
SOLUTION_RUN_BATCHNORM = src("""
    fashion_network_batch_norm = FashionNetworkBatchNorm()
    batch_norm_accuracies = fashion_network_batch_norm.optimize(fashion_train_loader, fashion_test_loader)
    """)
SOLUTION_PLOT = src("""
    epochs = range(1, len(baseline_accuracies) + 1)
    plt.figure(figsize=(7, 4))
    plt.plot(epochs, baseline_accuracies, marker='o', label='FashionNetwork')
    plt.plot(epochs, batch_norm_accuracies, marker='o', label='FashionNetworkBatchNorm')
    plt.xticks(list(epochs))
    plt.xlabel('epoch')
    plt.ylabel('test accuracy')
    plt.title('Fashion-MNIST: test accuracy after every epoch')
    plt.grid(alpha=0.3)
    plt.legend()
    plt.show()
    """)
SOLUTION_ANSWER = src("""
    Your Answer:

    The network with BatchNorm reaches a much higher test accuracy after the first epoch already and stays
    ahead in every epoch; the plain network learns slowly with plain SGD and the small learning rate 0.001.
    BatchNorm normalises the pre-activations of every hidden layer to zero mean and unit variance (then
    rescales them with the learned γ and β), so the scale of each layer's input no longer depends on the
    weights of the layers before it. This makes the loss surface smoother (Santurkar et al., 2018): the
    gradients are better behaved and larger steps make progress, so with the same learning rate the
    network trains much faster. At test time BatchNorm uses the running statistics (eval mode).
    """)


@dataclass(frozen=True)
class Parts:
    """The sources of the cells a student writes; the rest is fixed."""

    team: tuple[Member, ...] | None
    baseline: str
    run_baseline: str
    batchnorm: str
    run_batchnorm: str
    plot: str
    answer: str
    extra_imports: str = ""  # appended to the setup cell (e.g. `import torch.nn.functional as F`)

    def edit(self, field: str, old: str, new: str, count: int = 1) -> Parts:
        """A copy with `old` replaced by `new` in one field; fails unless `old` occurs exactly `count` times."""
        text = getattr(self, field)
        found = text.count(old)
        if found != count:
            raise ValueError(f"{field}: expected {count} occurrence(s) of {old!r}, found {found}")
        return replace(self, **{field: text.replace(old, new)})


def template_parts() -> Parts:
    return Parts(
        None,
        TEMPLATE_BASELINE,
        TEMPLATE_RUN_BASELINE,
        TEMPLATE_BATCHNORM,
        TEMPLATE_RUN_BATCHNORM,
        TEMPLATE_PLOT,
        TEMPLATE_ANSWER,
    )


def solution_parts(team: tuple[Member, ...] = SOLUTION_TEAM) -> Parts:
    return Parts(
        team,
        SOLUTION_BASELINE,
        SOLUTION_RUN_BASELINE,
        SOLUTION_BATCHNORM,
        SOLUTION_RUN_BATCHNORM,
        SOLUTION_PLOT,
        SOLUTION_ANSWER,
    )


# ------------------------------------------------------------------------------------------------
# Correct variants in other styles (tests/notebooks/)
# ------------------------------------------------------------------------------------------------

# (a) separate attributes with F.relu / torch.relu and F.cross_entropy; the BN network as nn.Sequential
#     with nn.Flatten; accuracies on self.test_accuracies and returned, assigned to other names.
VARIANT_A_BASELINE = src("""
    class FashionNetwork(nn.Module):
        def __init__(self):
            super().__init__()
            self.hidden1 = nn.Linear(28 * 28, 64)
            self.hidden2 = nn.Linear(64, 32)
            self.out = nn.Linear(32, 10)
            self.optimizer = torch.optim.SGD(self.parameters(), lr=1e-3)
            self.test_accuracies = []

        def forward(self, x):
            x = x.view(-1, 28 * 28)
            x = F.relu(self.hidden1(x))
            x = torch.relu(self.hidden2(x))
            return self.out(x)

        def optimize(self, train_loader, test_loader):
            for epoch in range(5):
                for images, labels in train_loader:
                    loss = F.cross_entropy(self.forward(images), labels)
                    self.optimizer.zero_grad()
                    loss.backward()
                    self.optimizer.step()
                self.test_accuracies.append(self.test(test_loader))
                print('Epoch', epoch + 1, 'test accuracy', round(self.test_accuracies[-1], 4))
            return self.test_accuracies

        def test(self, test_loader):
            self.eval()
            correct = 0
            with torch.no_grad():
                for images, labels in test_loader:
                    correct += (torch.argmax(self.forward(images), 1) == labels).sum().item()
            self.train()
            return correct / len(test_loader.dataset)
    """)

VARIANT_A_BATCHNORM = src("""
    class FashionNetworkBatchNorm(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(
                nn.Flatten(),
                nn.Linear(784, 64),
                nn.BatchNorm1d(64),
                nn.ReLU(),
                nn.Linear(64, 32),
                nn.BatchNorm1d(32),
                nn.ReLU(),
                nn.Linear(32, 10),
            )
            self.optimizer = torch.optim.SGD(self.parameters(), lr=1e-3)
            self.test_accuracies = []

        def forward(self, x):
            return self.net(x)

        def optimize(self, train_loader, test_loader):
            for epoch in range(5):
                self.train()
                for images, labels in train_loader:
                    loss = F.cross_entropy(self(images), labels)
                    self.optimizer.zero_grad()
                    loss.backward()
                    self.optimizer.step()
                self.test_accuracies.append(self.test(test_loader))
                print('Epoch', epoch + 1, 'test accuracy', round(self.test_accuracies[-1], 4))
            return self.test_accuracies

        def test(self, test_loader):
            self.eval()
            correct = 0
            with torch.no_grad():
                for images, labels in test_loader:
                    correct += (torch.argmax(self(images), 1) == labels).sum().item()
            self.train()
            return correct / len(test_loader.dataset)
    """)


def variant_a() -> Parts:
    return Parts(
        team=SOLUTION_TEAM,
        baseline=VARIANT_A_BASELINE,
        run_baseline=src("""
            fashion_network = FashionNetwork()
            acc_plain = fashion_network.optimize(fashion_train_loader, fashion_test_loader)
            """),
        batchnorm=VARIANT_A_BATCHNORM,
        run_batchnorm=src("""
            fashion_network_batch_norm = FashionNetworkBatchNorm()
            acc_bn = fashion_network_batch_norm.optimize(fashion_train_loader, fashion_test_loader)
            """),
        plot=src("""
            plt.plot(range(1, 6), acc_plain, label='without BatchNorm')
            plt.plot(range(1, 6), acc_bn, label='with BatchNorm')
            plt.xlabel('Epoch')
            plt.ylabel('Test accuracy')
            plt.legend()
            plt.show()
            """),
        answer=src("""
            Your Answer: With BatchNorm the accuracy is higher from the first epoch on, because normalising the
            hidden pre-activations keeps the gradients well scaled, so SGD with lr 0.001 makes faster progress.
            """),
        extra_imports="import torch.nn.functional as F",
    )


# (b) forward expects (N, 784): the training loop and test flatten before calling the model; loss and
#     optimizer built in optimize; accuracies in percent, returned as (train, test) and unpacked;
#     BatchNorm placed Linear -> ReLU -> BN.
def _variant_b_class(name: str, layers: str) -> str:
    return fill(
        """
        class __NAME__(nn.Module):
            def __init__(self):
                super().__init__()
                self.model = nn.Sequential(
                    __LAYERS__
                )

            def forward(self, x):
                # x: (N, 784), flattened by the caller
                return self.model(x)

            def optimize(self, train_loader, test_loader):
                criterion = nn.CrossEntropyLoss()
                optimizer = torch.optim.SGD(self.parameters(), lr=0.001)
                train_acc, test_acc = [], []
                for epoch in range(5):
                    self.train()
                    correct, total = 0, 0
                    for images, labels in train_loader:
                        images = images.view(images.shape[0], -1)
                        optimizer.zero_grad()
                        outputs = self(images)
                        loss = criterion(outputs, labels)
                        loss.backward()
                        optimizer.step()
                        correct += (outputs.argmax(1) == labels).sum().item()
                        total += labels.size(0)
                    train_acc.append(100 * correct / total)
                    test_acc.append(self.test(test_loader))
                    print(f'Epoch {epoch + 1}: train accuracy {train_acc[-1]:.2f}%, test accuracy {test_acc[-1]:.2f}%')
                return train_acc, test_acc

            def test(self, test_loader):
                self.eval()
                correct, total = 0, 0
                with torch.no_grad():
                    for images, labels in test_loader:
                        outputs = self(images.view(images.shape[0], -1))
                        correct += (outputs.argmax(1) == labels).sum().item()
                        total += labels.size(0)
                self.train()
                return 100 * correct / total
        """,
        name=name,
        layers=layers,
    )


def variant_b() -> Parts:
    plain = """            nn.Linear(784, 64),
            nn.ReLU(),
            nn.Linear(64, 32),
            nn.ReLU(),
            nn.Linear(32, 10),"""
    with_bn = """            nn.Linear(784, 64),
            nn.ReLU(),
            nn.BatchNorm1d(64),
            nn.Linear(64, 32),
            nn.ReLU(),
            nn.BatchNorm1d(32),
            nn.Linear(32, 10),"""
    return Parts(
        team=SOLUTION_TEAM,
        baseline=_variant_b_class("FashionNetwork", plain),
        run_baseline=src("""
            fashion_network = FashionNetwork()
            train_acc, test_acc = fashion_network.optimize(fashion_train_loader, fashion_test_loader)
            """),
        batchnorm=_variant_b_class("FashionNetworkBatchNorm", with_bn),
        run_batchnorm=src("""
            fashion_network_batch_norm = FashionNetworkBatchNorm()
            train_acc_bn, test_acc_bn = fashion_network_batch_norm.optimize(fashion_train_loader, fashion_test_loader)
            """),
        plot=src("""
            fig, ax = plt.subplots()
            ax.plot([1, 2, 3, 4, 5], test_acc, 'o-', label='FashionNetwork')
            ax.plot([1, 2, 3, 4, 5], test_acc_bn, 's-', label='FashionNetworkBatchNorm')
            ax.set_xlabel('epoch')
            ax.set_ylabel('test accuracy (%)')
            ax.legend()
            plt.show()
            """),
        answer=src("""
            **Your Answer:** the BatchNorm network converges much faster: its test accuracy after one epoch is
            already above what the plain network reaches after five. BatchNorm re-centres and re-scales the
            activations, which smooths the loss landscape and allows effective progress with a small learning rate.
            """),
    )


# (c) optimize with keyword arguments that have defaults, a tqdm progress bar (with a fallback), the
#     optimizer built in optimize, the loss in __init__; test accuracies kept in self.accuracies beside
#     self.train_accuracies; optimize returns None.
def _variant_c_class(name: str, init_layers: str, forward_body: str) -> str:
    return fill(
        """
        class __NAME__(nn.Module):
            def __init__(self):
                super().__init__()
                __INIT_LAYERS__
                self.criterion = nn.CrossEntropyLoss()
                self.train_accuracies = []
                self.accuracies = []

            def forward(self, x):
                x = x.reshape(x.shape[0], 784)
                __FORWARD_BODY__

            def optimize(self, train_loader, test_loader, epochs=5, lr=0.001):
                optimizer = torch.optim.SGD(self.parameters(), lr=lr)
                for epoch in range(epochs):
                    self.train()
                    correct = 0
                    for images, labels in tqdm(train_loader, desc=f'epoch {epoch + 1}/{epochs}', leave=False):
                        outputs = self(images)
                        loss = self.criterion(outputs, labels)
                        optimizer.zero_grad()
                        loss.backward()
                        optimizer.step()
                        correct += (outputs.argmax(dim=1) == labels).sum().item()
                    self.train_accuracies.append(correct / len(train_loader.dataset))
                    self.accuracies.append(self.test(test_loader))
                    print(f'epoch {epoch + 1}: train {self.train_accuracies[-1]:.3f}, test {self.accuracies[-1]:.3f}')

            def test(self, test_loader):
                self.eval()
                correct = 0
                with torch.no_grad():
                    for images, labels in test_loader:
                        correct += (self(images).argmax(dim=1) == labels).sum().item()
                self.train()
                return correct / len(test_loader.dataset)
        """,
        name=name,
        init_layers=init_layers,
        forward_body=forward_body,
    )


def variant_c() -> Parts:
    base_init = """        self.linear1 = nn.Linear(784, 64)
        self.linear2 = nn.Linear(64, 32)
        self.linear3 = nn.Linear(32, 10)
        self.act = nn.ReLU()"""
    base_forward = """        x = self.act(self.linear1(x))
        x = self.act(self.linear2(x))
        return self.linear3(x)"""
    bn_init = """        self.linear1 = nn.Linear(784, 64)
        self.norm1 = nn.BatchNorm1d(64)
        self.linear2 = nn.Linear(64, 32)
        self.norm2 = nn.BatchNorm1d(32)
        self.linear3 = nn.Linear(32, 10)
        self.act = nn.ReLU()"""
    bn_forward = """        x = self.act(self.norm1(self.linear1(x)))
        x = self.act(self.norm2(self.linear2(x)))
        return self.linear3(x)"""
    return Parts(
        team=SOLUTION_TEAM,
        baseline=_variant_c_class("FashionNetwork", base_init, base_forward),
        run_baseline=TEMPLATE_RUN_BASELINE,
        batchnorm=_variant_c_class("FashionNetworkBatchNorm", bn_init, bn_forward),
        run_batchnorm=TEMPLATE_RUN_BATCHNORM,
        plot=src("""
            plt.plot(fashion_network.accuracies, label='no BatchNorm')
            plt.plot(fashion_network_batch_norm.accuracies, label='BatchNorm')
            plt.xlabel('epoch (0-based)')
            plt.ylabel('accuracy on the test set')
            plt.legend()
            plt.show()
            """),
        answer=src("""
            Your Answer:

            BatchNorm gives a steeper and higher curve. Normalising each hidden layer's inputs per batch reduces
            the dependence between the layers' scales, so the gradient steps of SGD are more effective.
            """),
        extra_imports=src("""
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = lambda x, **k: x
            """),
    )


# (d) the optimize call is not assigned: its return value is the cell's last expression (the only
#     record of the accuracies); nn.Sequential of modules, loss and optimizer in __init__.
def _variant_d_class(name: str, layers: str) -> str:
    return fill(
        """
        class __NAME__(nn.Module):
            def __init__(self):
                super().__init__()
                self.layers = nn.Sequential(
                    __LAYERS__
                )
                self.loss_fn = nn.CrossEntropyLoss()
                self.opt = torch.optim.SGD(self.parameters(), lr=0.001)

            def forward(self, x):
                return self.layers(x.reshape(-1, 784))

            def optimize(self, train_loader, test_loader):
                accuracies = []
                for epoch in range(5):
                    self.train()
                    for x, y in train_loader:
                        self.opt.zero_grad()
                        self.loss_fn(self(x), y).backward()
                        self.opt.step()
                    accuracies.append(self.test(test_loader))
                return accuracies

            def test(self, test_loader):
                self.eval()
                with torch.no_grad():
                    hits = sum((self(x).argmax(1) == y).sum().item() for x, y in test_loader)
                self.train()
                return hits / len(test_loader.dataset)
        """,
        name=name,
        layers=layers,
    )


def variant_d() -> Parts:
    plain = """            nn.Linear(784, 64), nn.ReLU(),
            nn.Linear(64, 32), nn.ReLU(),
            nn.Linear(32, 10),"""
    with_bn = """            nn.Linear(784, 64), nn.BatchNorm1d(64), nn.ReLU(),
            nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(),
            nn.Linear(32, 10),"""
    return Parts(
        team=SOLUTION_TEAM,
        baseline=_variant_d_class("FashionNetwork", plain),
        run_baseline=TEMPLATE_RUN_BASELINE,
        batchnorm=_variant_d_class("FashionNetworkBatchNorm", with_bn),
        run_batchnorm=TEMPLATE_RUN_BATCHNORM,
        # The curves are only in the cells' outputs; this team plots the final accuracies instead.
        plot=src("""
            final = [fashion_network.test(fashion_test_loader), fashion_network_batch_norm.test(fashion_test_loader)]
            plt.bar(['FashionNetwork', 'FashionNetworkBatchNorm'], final)
            plt.ylabel('test accuracy after 5 epochs')
            plt.show()
            """),
        answer=src("""
            Your Answer: the accuracies per epoch are printed above the plot. With BatchNorm the network learns
            much faster with the same optimizer, because the normalised activations keep gradients well scaled.
            """),
    )


VARIANTS = {
    "correct_a_attributes_functional_relu.ipynb": variant_a,
    "correct_b_flatten_in_loop_percent_tuple.ipynb": variant_b,
    "correct_c_kwargs_tqdm_accuracies_attribute.ipynb": variant_c,
    "correct_d_unassigned_optimize_call.ipynb": variant_d,
}


# ------------------------------------------------------------------------------------------------
# Assembly
# ------------------------------------------------------------------------------------------------


def build_notebook(parts: Parts) -> nbformat.NotebookNode:
    setup = SETUP
    if parts.extra_imports:  # right after the imports
        anchor = "import matplotlib.pyplot as plt\n"
        setup = setup.replace(anchor, anchor + parts.extra_imports + "\n", 1)
    cells = [
        ("team", "markdown", identity_markdown(parts.team)),
        ("setup", "code", setup),
        ("part1-text", "markdown", PART1_TEXT),
        ("part1-class", "code", parts.baseline),
        ("part1-run", "code", parts.run_baseline),
        ("part2-text", "markdown", PART2_TEXT),
        ("part2-class", "code", parts.batchnorm),
        ("part2-run", "code", parts.run_batchnorm),
        ("part3-text", "markdown", PART3_TEXT),
        ("part3-plot", "code", parts.plot),
        ("part3-answer", "markdown", parts.answer),
    ]
    return notebook_of(cells)


def notebook_of(cells: list[tuple[str, str, str]]) -> nbformat.NotebookNode:
    """A notebook of (cell id, "code" or "markdown", source) cells, without outputs: the same bytes every build."""
    nb = new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    for cell_id, kind, source in cells:
        cell = new_code_cell(source) if kind == "code" else new_markdown_cell(source)
        cell["id"] = cell_id
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


def notebook_bytes(parts: Parts) -> bytes:
    return (nbformat.writes(build_notebook(parts)) + "\n").encode("utf-8")


def outputs() -> dict[Path, bytes]:
    files = {
        REFERENCE / "template.ipynb": notebook_bytes(template_parts()),
        REFERENCE / "solution.ipynb": notebook_bytes(solution_parts()),
    }
    for name, make in VARIANTS.items():
        files[TEST_NOTEBOOKS / name] = notebook_bytes(make())
    return files


def write_or_check(files: dict[Path, bytes], argv: list[str] | None, description: str) -> tuple[bool, list[Path]]:
    """The command line of the generators: write the files that differ, or with --check only
    list them. Returns (check mode, the files that were out of date)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when a file is out of date")
    args = parser.parse_args(argv)
    stale = [path for path, data in files.items() if not (path.exists() and path.read_bytes() == data)]
    for path in stale:
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(files[path])
        print(("out of date: " if args.check else "wrote ") + str(path.relative_to(ROOT)))
    return args.check, stale


def main(argv: list[str] | None = None) -> int:
    check, stale = write_or_check(outputs(), argv, __doc__.splitlines()[0])
    return 1 if (check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
