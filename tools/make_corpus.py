"""Generate the corpus of notebooks written the way students write them, and what each must get.

    python tools/make_corpus.py           # (re)write tests/corpus/*.ipynb and tests/corpus/expected.json
    python tools/make_corpus.py --check   # exit 1 when a file differs from what would be written

Each notebook solves Exercise 6.6 in a style seen in real submissions: progress bars, other
instance names, networks kept in a dict or made inside a function, other data roots, Colab cells,
`%pip install`, accuracies as percent, fractions, tensors or only printed, a seeded run. Most are
right and must get every point; some carry a fault of the environment (a module the kernel lacks,
a Kaggle CSV) and must be `needs_review` where they lose something; two have real mistakes (one
never calls optimize, so no trained network is found).
`tests/test_corpus.py` grades them all in one batch, in real kernels, and compares with
`expected.json` (the grader skips .json files when it looks for submissions).

Output is deterministic (fixed cell ids, no outputs, sorted keys).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_notebooks import (
    ROOT,
    TEMPLATE_ANSWER,
    TEMPLATE_BASELINE,
    TEMPLATE_BATCHNORM,
    TEMPLATE_PLOT,
    TEMPLATE_RUN_BASELINE,
    TEMPLATE_RUN_BATCHNORM,
    Member,
    identity_markdown,
    src,
    team_markdown,
    write_or_check,
)

CORPUS = ROOT / "tests" / "corpus"
CHECKS = (
    "baseline.architecture",
    "baseline.forward",
    "baseline.training_setup",
    "baseline.accuracies",
    "batchnorm.architecture",
    "batchnorm.behaviour",
)
ALL_PASS = {check: "pass" for check in CHECKS}


@dataclass(frozen=True)
class Entry:
    style: str  # what this notebook shows, in a few words
    team: tuple[Member, Member]
    cells: tuple[tuple[str, str], ...]  # (kind, source), after the team cell
    checks: dict[str, str] = field(default_factory=lambda: dict(ALL_PASS))
    execution: str = "ok"
    violations: tuple[str, ...] = ()  # violation codes, in order
    mention: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # where -> words it must contain: a check id (its message), "violations", "notes", "outputs"
    team_cell: str = ""  # the first cell; default: the team, one member per line

    @property
    def file_name(self) -> str:
        return "_".join(f"{m.name}_{m.student_id}" for m in self.team) + ".ipynb"


def team(first: tuple[str, str, str], second: tuple[str, str, str]) -> tuple[Member, Member]:
    return tuple(Member(name, sid, mail) for name, sid, mail in (first, second))  # type: ignore[return-value]


def code(text: str) -> tuple[str, str]:
    return ("code", src(text))


def setup(*parts: str) -> tuple[str, str]:
    """A code cell made of parts written at any indentation (each is dedented on its own)."""
    return ("code", "\n".join(src(part) for part in parts))


def md(text: str) -> tuple[str, str]:
    return ("markdown", src(text))


IMPORTS = """
    import torch
    import torchvision
    import torch.nn as nn
    import torchvision.transforms as transforms
    import matplotlib.pyplot as plt
    """


def loaders(
    root_train: str = "'data/'",
    root_test: str | None = None,
    download_test: str = "True",
    train: str = "fashion_train_loader",
    test: str = "fashion_test_loader",
) -> str:
    root_test = root_test or root_train
    return f"""
    fashion_train = torchvision.datasets.FashionMNIST({root_train}, train=True, download=True, transform=transforms.ToTensor())
    fashion_test = torchvision.datasets.FashionMNIST({root_test}, train=False, download={download_test}, transform=transforms.ToTensor())
    {train} = torch.utils.data.DataLoader(fashion_train, batch_size=64, shuffle=True)
    {test} = torch.utils.data.DataLoader(fashion_test, batch_size=64)
    """


def bn_of(baseline: str, plain_layers: str, bn_layers: str) -> str:
    """The BatchNorm class from the baseline's source: renamed, its layers swapped."""
    assert baseline.count(plain_layers) == 1, plain_layers
    return baseline.replace("class FashionNetwork(", "class FashionNetworkBatchNorm(").replace(plain_layers, bn_layers)


SEQ_PLAIN = "nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)"
SEQ_BN = (
    "nn.Linear(784, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), "
    "nn.Linear(32, 10)"
)
PLOT_TWO = """
    plt.plot(range(1, 6), {a}, marker='o', label='FashionNetwork')
    plt.plot(range(1, 6), {b}, marker='o', label='FashionNetworkBatchNorm')
    plt.xlabel('epoch')
    plt.ylabel('test accuracy')
    plt.legend()
    plt.show()
    """
ANSWER = md("""
    Your Answer: with BatchNorm the test accuracy rises much faster. Normalising the hidden layers' inputs keeps
    the gradients well scaled, so plain SGD with lr 0.001 makes far more progress per epoch.
    """)


# ---- 1. tqdm progress bars everywhere (no fallback) ---------------------------------------------

TQDM_CLASS = src(f"""
    class FashionNetwork(nn.Module):
        def __init__(self):
            super().__init__()
            self.flatten = nn.Flatten()
            self.layers = nn.Sequential({SEQ_PLAIN})
            self.loss_fn = nn.CrossEntropyLoss()
            self.optimizer = torch.optim.SGD(self.parameters(), lr=0.001)

        def forward(self, x):
            return self.layers(self.flatten(x))

        def optimize(self, train_loader, test_loader):
            test_accuracies = []
            for epoch in trange(5, desc="epochs"):
                self.train()
                progress = tqdm(train_loader, desc=f"Epoch {{epoch + 1}}", leave=False)
                for images, labels in progress:
                    self.optimizer.zero_grad()
                    loss = self.loss_fn(self(images), labels)
                    loss.backward()
                    self.optimizer.step()
                    progress.set_postfix(loss=f"{{loss.item():.3f}}")
                test_accuracies.append(self.test(test_loader))
                tqdm.write(f"Epoch {{epoch + 1}}: test accuracy {{test_accuracies[-1]:.4f}}")
            return test_accuracies

        def test(self, test_loader):
            self.eval()
            correct = 0
            with torch.no_grad():
                for images, labels in tqdm(test_loader, desc="testing", leave=False):
                    correct += (self(images).argmax(dim=1) == labels).sum().item()
            return correct / len(test_loader.dataset)
    """)

TQDM = Entry(
    style="tqdm progress bars (tqdm, trange, tqdm.write), no fallback import",
    team=team(
        ("Anna Berger", "7300101", "s8anberg@stud.uni-saarland.de"),
        ("Ben Roth", "7300102", "s8beroth@stud.uni-saarland.de"),
    ),
    cells=(
        setup(IMPORTS, "from tqdm import tqdm, trange", loaders()),
        code(TQDM_CLASS),
        code("""
            fashion_network = FashionNetwork()
            baseline_acc = fashion_network.optimize(fashion_train_loader, fashion_test_loader)
            """),
        code(bn_of(TQDM_CLASS, SEQ_PLAIN, SEQ_BN)),
        code("""
            fashion_network_batch_norm = FashionNetworkBatchNorm()
            bn_acc = fashion_network_batch_norm.optimize(fashion_train_loader, fashion_test_loader)
            """),
        code(PLOT_TWO.format(a="baseline_acc", b="bn_acc")),
        ANSWER,
    ),
)


# ---- 2. instances called model / model_bn --------------------------------------------------------

PLAIN_CLASS = src("""
    class FashionNetwork(nn.Module):
        def __init__(self):
            super(FashionNetwork, self).__init__()
            self.fc1 = nn.Linear(28 * 28, 64)
            self.fc2 = nn.Linear(64, 32)
            self.fc3 = nn.Linear(32, 10)
            self.criterion = nn.CrossEntropyLoss()
            self.optimizer = torch.optim.SGD(self.parameters(), lr=0.001)

        def forward(self, x):
            x = x.view(-1, 28 * 28)
            x = torch.relu(self.fc1(x))
            x = torch.relu(self.fc2(x))
            return self.fc3(x)

        def optimize(self, train_loader, test_loader):
            accuracies = []
            for epoch in range(5):
                self.train()
                for images, labels in train_loader:
                    self.optimizer.zero_grad()
                    loss = self.criterion(self(images), labels)
                    loss.backward()
                    self.optimizer.step()
                acc = self.test(test_loader)
                accuracies.append(acc)
                print(f"Epoch {epoch + 1}, accuracy: {acc:.4f}")
            return accuracies

        def test(self, test_loader):
            self.eval()
            correct, total = 0, 0
            with torch.no_grad():
                for images, labels in test_loader:
                    _, predicted = torch.max(self(images), 1)
                    total += labels.size(0)
                    correct += (predicted == labels).sum().item()
            return correct / total
    """)
PLAIN_BN_CLASS = (
    src("""
    class FashionNetworkBatchNorm(nn.Module):
        def __init__(self):
            super(FashionNetworkBatchNorm, self).__init__()
            self.fc1 = nn.Linear(28 * 28, 64)
            self.bn1 = nn.BatchNorm1d(64)
            self.fc2 = nn.Linear(64, 32)
            self.bn2 = nn.BatchNorm1d(32)
            self.fc3 = nn.Linear(32, 10)
            self.criterion = nn.CrossEntropyLoss()
            self.optimizer = torch.optim.SGD(self.parameters(), lr=0.001)

        def forward(self, x):
            x = x.view(-1, 28 * 28)
            x = torch.relu(self.bn1(self.fc1(x)))
            x = torch.relu(self.bn2(self.fc2(x)))
            return self.fc3(x)
    """)
    + "\n\n"
    + PLAIN_CLASS[PLAIN_CLASS.index("    def optimize") :]
)

MODEL_NAMES = Entry(
    style="instances called model and model_bn, accuracies assigned to acc and acc_bn",
    team=team(
        ("Clara Vogel", "7300201", "s8clvoge@stud.uni-saarland.de"),
        ("David Krause", "7300202", "s8dakrau@stud.uni-saarland.de"),
    ),
    cells=(
        setup(IMPORTS, loaders()),
        code(PLAIN_CLASS),
        code("""
            model = FashionNetwork()
            acc = model.optimize(fashion_train_loader, fashion_test_loader)
            """),
        code(PLAIN_BN_CLASS),
        code("""
            model_bn = FashionNetworkBatchNorm()
            acc_bn = model_bn.optimize(fashion_train_loader, fashion_test_loader)
            """),
        code(PLOT_TWO.format(a="acc", b="acc_bn")),
        ANSWER,
    ),
)


# ---- 3. other data roots: ./datasets (download) and ../data (no download) ------------------------

OTHER_ROOTS = Entry(
    style="data under ./datasets (download=True) and ../data (download=False), loaders of other names",
    team=team(
        ("Eva Hartmann", "7300301", "s8evhart@stud.uni-saarland.de"),
        ("Felix Lange", "7300302", "s8felang@stud.uni-saarland.de"),
    ),
    cells=(
        setup(
            IMPORTS,
            loaders(
                "root='./datasets'", "root='../data'", download_test="False", train="train_loader", test="test_loader"
            ),
        ),
        code(PLAIN_CLASS),
        code("""
            fashion_network = FashionNetwork()
            acc_plain = fashion_network.optimize(train_loader, test_loader)
            """),
        code(PLAIN_BN_CLASS),
        code("""
            fashion_network_batch_norm = FashionNetworkBatchNorm()
            acc_bn = fashion_network_batch_norm.optimize(train_loader, test_loader)
            """),
        code(PLOT_TWO.format(a="acc_plain", b="acc_bn")),
        ANSWER,
    ),
)


# ---- 4. a Colab notebook: drive.mount, !nvidia-smi, device, an absolute data root ------------------

DEVICE_CLASS = src("""
    class FashionNetwork(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(
                nn.Flatten(),
                nn.Linear(784, 64),
                nn.ReLU(),
                nn.Linear(64, 32),
                nn.ReLU(),
                nn.Linear(32, 10),
            )
            self.to(device)

        def forward(self, x):
            return self.net(x)

        def optimize(self, train_loader, test_loader):
            criterion = nn.CrossEntropyLoss()
            optimizer = torch.optim.SGD(self.parameters(), lr=0.001)
            self.test_accuracies = []
            for epoch in range(5):
                self.train()
                for images, labels in train_loader:
                    images, labels = images.to(device), labels.to(device)
                    optimizer.zero_grad()
                    loss = criterion(self(images), labels)
                    loss.backward()
                    optimizer.step()
                self.test_accuracies.append(self.test(test_loader))
                print(f"[{epoch + 1}/5] test acc = {self.test_accuracies[-1]:.3f}")
            return self.test_accuracies

        def test(self, test_loader):
            self.eval()
            correct = 0
            with torch.no_grad():
                for images, labels in test_loader:
                    images, labels = images.to(device), labels.to(device)
                    correct += (self(images).argmax(1) == labels).sum().item()
            self.train()
            return correct / len(test_loader.dataset)
    """)
DEVICE_BN = bn_of(
    DEVICE_CLASS,
    """            nn.Linear(784, 64),
            nn.ReLU(),
            nn.Linear(64, 32),
            nn.ReLU(),""",
    """            nn.Linear(784, 64),
            nn.BatchNorm1d(64),
            nn.ReLU(),
            nn.Linear(64, 32),
            nn.BatchNorm1d(32),
            nn.ReLU(),""",
)

COLAB = Entry(
    style="Colab: drive.mount and !nvidia-smi fail harmlessly, cuda-or-cpu device, data root /content/data",
    team=team(
        ("Greta Schulze", "7300401", "s8grschu@stud.uni-saarland.de"),
        ("Hannes Brandt", "7300402", "s8habran@stud.uni-saarland.de"),
    ),
    cells=(
        code("""
            from google.colab import drive
            drive.mount('/content/drive')
            """),
        code("!nvidia-smi"),
        setup(
            IMPORTS,
            """
            device = "cuda" if torch.cuda.is_available() else "cpu"
            print("using", device)
            """,
            loaders("'/content/data'"),
        ),
        code(DEVICE_CLASS),
        code("""
            fashion_network = FashionNetwork().to(device)
            fashion_network.optimize(fashion_train_loader, fashion_test_loader)
            """),
        code(DEVICE_BN),
        code("""
            fashion_network_batch_norm = FashionNetworkBatchNorm().to(device)
            fashion_network_batch_norm.optimize(fashion_train_loader, fashion_test_loader)
            """),
        code(PLOT_TWO.format(a="fashion_network.test_accuracies", b="fashion_network_batch_norm.test_accuracies")),
        ANSWER,
    ),
    execution="errors",
    mention={"notes": ("In [1]", "google.colab", "Google Colab")},
)


# ---- 5. both networks in a dict, accuracies as tensors ---------------------------------------------

TENSOR_CLASS = src(f"""
    class FashionNetwork(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = nn.Sequential(nn.Flatten(), {SEQ_PLAIN})
            self.loss = nn.CrossEntropyLoss()
            self.opt = torch.optim.SGD(self.parameters(), lr=1e-3)

        def forward(self, x):
            return self.model(x)

        def optimize(self, train_loader, test_loader):
            losses, accs = [], []
            for _ in range(5):
                self.train()
                for x, y in train_loader:
                    self.opt.zero_grad()
                    loss = self.loss(self(x), y)
                    loss.backward()
                    self.opt.step()
                losses.append(loss.detach())
                accs.append(self.test(test_loader))
            return torch.stack(losses), torch.stack(accs)

        def test(self, test_loader):
            self.eval()
            hits = torch.tensor(0)
            with torch.no_grad():
                for x, y in test_loader:
                    hits += (self(x).argmax(1) == y).sum()
            return hits / len(test_loader.dataset)
    """)

DICT_OF_NETWORKS = Entry(
    style="networks in a dict trained in a loop, losses and accuracies returned as tensors",
    team=team(
        ("Ida Keller", "7300501", "s8idkell@stud.uni-saarland.de"),
        ("Jan Wolff", "7300502", "s8jawolf@stud.uni-saarland.de"),
    ),
    cells=(
        setup(IMPORTS, loaders()),
        code(TENSOR_CLASS),
        code(bn_of(TENSOR_CLASS, SEQ_PLAIN, SEQ_BN)),
        code("""
            models = {"plain": FashionNetwork(), "batchnorm": FashionNetworkBatchNorm()}
            results = {}
            for name, net in models.items():
                results[name] = net.optimize(fashion_train_loader, fashion_test_loader)
                print(name, results[name])
            """),
        code(PLOT_TWO.format(a="results['plain'][1]", b="results['batchnorm'][1]")),
        ANSWER,
    ),
    # the parts of what optimize returns are named by its `return losses, accs`
    mention={"baseline.accuracies": ("`accs` (returned by models['plain'].optimize in In [4])",)},
)


# ---- 6. built inside a function, a free training function, epochs as a parameter -------------------

FUNCTIONS = src("""
    def train_one_epoch(model, loader, optimizer, criterion):
        model.train()
        total_loss = 0.0
        for images, labels in loader:
            optimizer.zero_grad()
            loss = criterion(model(images), labels)
            loss.backward()
            optimizer.step()
            total_loss += loss.item()
        return total_loss / len(loader)


    def evaluate(model, loader):
        model.eval()
        correct = 0
        with torch.no_grad():
            for images, labels in loader:
                correct += (model(images).argmax(dim=1) == labels).sum().item()
        return correct / len(loader.dataset)
    """)
FUNCTION_CLASS = src(f"""
    class FashionNetwork(nn.Module):
        def __init__(self):
            super().__init__()
            self.stack = nn.Sequential(nn.Flatten(), {SEQ_PLAIN})

        def forward(self, x):
            return self.stack(x)

        def optimize(self, train_loader, test_loader, epochs=5, lr=0.001):
            optimizer = torch.optim.SGD(self.parameters(), lr=lr)
            criterion = nn.CrossEntropyLoss()
            history = {{"loss": [], "accuracy": []}}
            for epoch in range(epochs):
                history["loss"].append(train_one_epoch(self, train_loader, optimizer, criterion))
                history["accuracy"].append(self.test(test_loader))
            return history

        def test(self, test_loader):
            return evaluate(self, test_loader)
    """)

BUILT_IN_FUNCTION = Entry(
    style="networks made and trained inside a function, a free training function, epochs=5 as a parameter",
    team=team(
        ("Karla Frank", "7300601", "s8kafran@stud.uni-saarland.de"),
        ("Lars Simon", "7300602", "s8lasimo@stud.uni-saarland.de"),
    ),
    cells=(
        setup(IMPORTS, loaders()),
        code(FUNCTIONS),
        code(FUNCTION_CLASS),
        code(bn_of(FUNCTION_CLASS, SEQ_PLAIN, SEQ_BN)),
        code("""
            def run_experiment(network_class, epochs=5):
                net = network_class()
                history = net.optimize(fashion_train_loader, fashion_test_loader, epochs=epochs)
                return history["accuracy"]

            acc_plain = run_experiment(FashionNetwork)
            acc_bn = run_experiment(FashionNetworkBatchNorm, epochs=5)
            """),
        code(PLOT_TWO.format(a="acc_plain", b="acc_bn")),
        ANSWER,
    ),
)


# ---- 7. accuracies only printed; the plot has the numbers typed in ----------------------------------

PRINTING_CLASS = src("""
    class FashionNetwork(nn.Module):
        def __init__(self):
            super().__init__()
            self.l1 = nn.Linear(784, 64)
            self.l2 = nn.Linear(64, 32)
            self.l3 = nn.Linear(32, 10)

        def forward(self, x):
            x = torch.flatten(x, 1)
            x = F.relu(self.l1(x))
            x = F.relu(self.l2(x))
            return self.l3(x)

        def optimize(self, train_loader, test_loader):
            optimizer = optim.SGD(self.parameters(), lr=0.001)
            for epoch in range(5):
                self.train()
                for data, target in train_loader:
                    optimizer.zero_grad()
                    loss = F.cross_entropy(self(data), target)
                    loss.backward()
                    optimizer.step()
                print(f"Epoch {epoch + 1}/5 - loss: {loss.item():.4f} - test accuracy: {100 * self.test(test_loader):.2f}%")

        def test(self, test_loader):
            self.eval()
            correct = 0
            with torch.no_grad():
                for data, target in test_loader:
                    correct += self(data).argmax(dim=1).eq(target).sum().item()
            return correct / len(test_loader.dataset)
    """)
PRINTING_BN = bn_of(
    bn_of(
        PRINTING_CLASS,
        """        self.l1 = nn.Linear(784, 64)
        self.l2 = nn.Linear(64, 32)""",
        """        self.l1 = nn.Linear(784, 64)
        self.bn1 = nn.BatchNorm1d(64)
        self.l2 = nn.Linear(64, 32)
        self.bn2 = nn.BatchNorm1d(32)""",
    ),
    """        x = F.relu(self.l1(x))
        x = F.relu(self.l2(x))""",
    """        x = F.relu(self.bn1(self.l1(x)))
        x = F.relu(self.bn2(self.l2(x)))""",
)

PRINTED_ONLY = Entry(
    style="optimize only prints the accuracies (percent) and returns nothing; the plot's numbers are typed in",
    team=team(
        ("Marie Kuhn", "7300701", "s8makuhn@stud.uni-saarland.de"),
        ("Nils Jung", "7300702", "s8nijung@stud.uni-saarland.de"),
    ),
    cells=(
        setup(
            IMPORTS,
            """
            import torch.nn.functional as F
            import torch.optim as optim
            """,
            loaders(),
        ),
        code(PRINTING_CLASS),
        code("""
            fashion_network = FashionNetwork()
            fashion_network.optimize(fashion_train_loader, fashion_test_loader)
            """),
        code(PRINTING_BN),
        code("""
            fashion_network_batch_norm = FashionNetworkBatchNorm()
            fashion_network_batch_norm.optimize(fashion_train_loader, fashion_test_loader)
            """),
        code("""
            # numbers copied from the output above
            plain = [10.2, 11.5, 13.9, 16.4, 18.8]
            batch_norm = [45.1, 58.3, 63.0, 65.2, 67.9]
            plt.plot([1, 2, 3, 4, 5], plain, label="without BatchNorm")
            plt.plot([1, 2, 3, 4, 5], batch_norm, label="with BatchNorm")
            plt.xlabel("epoch"); plt.ylabel("test accuracy (%)"); plt.legend(); plt.show()
            """),
        ANSWER,
    ),
    mention={"baseline.accuracies": ("printed",)},
)


# ---- 8. a seeded run, accuracies in percent, epochs=5 passed explicitly -----------------------------

PERCENT_CLASS = src(f"""
    class FashionNetwork(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.Sequential({SEQ_PLAIN})
            self.loss_function = nn.CrossEntropyLoss()
            self.optimizer = torch.optim.SGD(self.parameters(), lr=0.001)

        def forward(self, x):
            return self.layers(x.reshape(x.shape[0], -1))

        def optimize(self, train_loader, test_loader, epochs=5):
            train_losses, test_accuracies = [], []
            for epoch in range(epochs):
                self.train()
                epoch_loss = 0.0
                for images, labels in train_loader:
                    self.optimizer.zero_grad()
                    loss = self.loss_function(self(images), labels)
                    loss.backward()
                    self.optimizer.step()
                    epoch_loss += loss.item()
                train_losses.append(epoch_loss / len(train_loader))
                test_accuracies.append(self.test(test_loader))
                print(f"epoch {{epoch + 1}}: loss {{train_losses[-1]:.3f}}, accuracy {{test_accuracies[-1]:.1f}} %")
            return train_losses, test_accuracies

        def test(self, test_loader):
            self.eval()
            correct = total = 0
            with torch.no_grad():
                for images, labels in test_loader:
                    correct += (self(images).argmax(1) == labels).sum().item()
                    total += len(labels)
            return 100.0 * correct / total
    """)

SEEDED_PERCENT = Entry(
    style="seeded (torch, numpy, random), percent accuracies returned with the losses, epochs=5 passed",
    team=team(
        ("Olga Peters", "7300801", "s8olpete@stud.uni-saarland.de"),
        ("Paul Zimmer", "7300802", "s8pazimm@stud.uni-saarland.de"),
    ),
    cells=(
        setup(
            IMPORTS,
            """
            import random
            import numpy as np

            SEED = 42
            random.seed(SEED)
            np.random.seed(SEED)
            torch.manual_seed(SEED)
            """,
            loaders(),
        ),
        code(PERCENT_CLASS),
        code("""
            fashion_network = FashionNetwork()
            losses, accuracies = fashion_network.optimize(fashion_train_loader, fashion_test_loader, epochs=5)
            """),
        code(bn_of(PERCENT_CLASS, SEQ_PLAIN, SEQ_BN)),
        code("""
            torch.manual_seed(SEED)
            fashion_network_batch_norm = FashionNetworkBatchNorm()
            losses_bn, accuracies_bn = fashion_network_batch_norm.optimize(fashion_train_loader, fashion_test_loader, epochs=5)
            """),
        code(PLOT_TWO.format(a="accuracies", b="accuracies_bn")),
        ANSWER,
    ),
)


# ---- 9. %pip install cells, torchinfo's summary ------------------------------------------------------

PIP_INSTALL = Entry(
    style="%pip install and !pip install cells (nothing installed, nothing hangs), torchinfo summary",
    team=team(
        ("Rosa Lehmann", "7300901", "s8roleh@stud.uni-saarland.de"),
        ("Simon Haas", "7300902", "s8sihaas@stud.uni-saarland.de"),
    ),
    cells=(
        code("%pip install tqdm torchinfo"),
        code("!pip install -q seaborn"),
        setup(IMPORTS, "from torchinfo import summary", loaders()),
        code(PLAIN_CLASS),
        code("""
            fashion_network = FashionNetwork()
            summary(fashion_network, input_size=(64, 1, 28, 28))
            """),
        code("baseline = fashion_network.optimize(fashion_train_loader, fashion_test_loader)"),
        code(PLAIN_BN_CLASS),
        code("""
            fashion_network_batch_norm = FashionNetworkBatchNorm()
            with_bn = fashion_network_batch_norm.optimize(fashion_train_loader, fashion_test_loader)
            """),
        code(PLOT_TWO.format(a="baseline", b="with_bn")),
        ANSWER,
    ),
    mention={
        "notes": (
            "In [1]",
            "%pip install tqdm torchinfo",
            "grading installs nothing",
            "tqdm, torchinfo are in the course environment",
            "In [2]",
        ),
        "outputs": ("[grader] Grading installs nothing", "Requirement already satisfied"),
    },
)


# ---- 10. a module the kernel lacks ------------------------------------------------------------------

MISSING_MODULE = Entry(
    style="imports wandb (not in the course environment) in the set-up cell",
    team=team(
        ("Tara Busch", "7301001", "s8tabusc@stud.uni-saarland.de"),
        ("Ulf Seidel", "7301002", "s8ulseid@stud.uni-saarland.de"),
    ),
    cells=(
        setup(
            IMPORTS,
            """
            import wandb
            wandb.init(project='nnti-sheet6', mode='disabled')
            """,
            loaders(),
        ),
        code(PLAIN_CLASS),
        code("""
            fashion_network = FashionNetwork()
            baseline = fashion_network.optimize(fashion_train_loader, fashion_test_loader)
            """),
        code(PLAIN_BN_CLASS),
        code("""
            fashion_network_batch_norm = FashionNetworkBatchNorm()
            with_bn = fashion_network_batch_norm.optimize(fashion_train_loader, fashion_test_loader)
            """),
        code(PLOT_TWO.format(a="baseline", b="with_bn")),
        ANSWER,
    ),
    checks={**ALL_PASS, "baseline.accuracies": "needs_review"},
    execution="errors",
    violations=("environment.missing_module",),
    mention={"violations": ("wandb", "In [1]"), "baseline.accuracies": ("wandb", "In [1]", "A tutor decides")},
)


# ---- 11. a Kaggle CSV the grader cannot serve -------------------------------------------------------

KAGGLE_CSV = Entry(
    style="reads Fashion-MNIST from a Kaggle CSV with pandas",
    team=team(
        ("Vera Engel", "7301101", "s8veenge@stud.uni-saarland.de"),
        ("Willi Sauer", "7301102", "s8wisaue@stud.uni-saarland.de"),
    ),
    cells=(
        setup(
            IMPORTS,
            """
            import pandas as pd
            from torch.utils.data import TensorDataset, DataLoader

            train_df = pd.read_csv('/kaggle/input/fashionmnist/fashion-mnist_train.csv')
            test_df = pd.read_csv('/kaggle/input/fashionmnist/fashion-mnist_test.csv')

            def to_dataset(df):
                x = torch.tensor(df.drop(columns='label').values, dtype=torch.float32).reshape(-1, 1, 28, 28) / 255
                return TensorDataset(x, torch.tensor(df['label'].values))

            fashion_train_loader = DataLoader(to_dataset(train_df), batch_size=64, shuffle=True)
            fashion_test_loader = DataLoader(to_dataset(test_df), batch_size=64)
            """,
        ),
        code(PLAIN_CLASS),
        code("""
            fashion_network = FashionNetwork()
            baseline = fashion_network.optimize(fashion_train_loader, fashion_test_loader)
            """),
        code(PLAIN_BN_CLASS),
        code("""
            fashion_network_batch_norm = FashionNetworkBatchNorm()
            with_bn = fashion_network_batch_norm.optimize(fashion_train_loader, fashion_test_loader)
            """),
        code(PLOT_TWO.format(a="baseline", b="with_bn")),
        ANSWER,
    ),
    checks={**ALL_PASS, "baseline.accuracies": "needs_review"},
    execution="errors",
    violations=("environment.data_path",),
    mention={
        "violations": (
            "/kaggle/input/fashionmnist/fashion-mnist_train.csv",
            "FashionMNIST('data/'",
            "data/FashionMNIST/raw/",
        )
    },
)


# ---- 12. reads the raw IDX .gz files itself ---------------------------------------------------------

RAW_IDX = Entry(
    style="reads the raw .gz IDX files from data/FashionMNIST/raw with gzip and numpy",
    team=team(
        ("Xenia Graf", "7301201", "s8xegraf@stud.uni-saarland.de"),
        ("Yannik Pohl", "7301202", "s8yapohl@stud.uni-saarland.de"),
    ),
    cells=(
        setup(
            IMPORTS,
            """
            import gzip
            import numpy as np
            from torch.utils.data import TensorDataset, DataLoader

            def read_images(path):
                with gzip.open(path, 'rb') as f:
                    return np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)

            def read_labels(path):
                with gzip.open(path, 'rb') as f:
                    return np.frombuffer(f.read(), np.uint8, offset=8)

            raw = 'data/FashionMNIST/raw/'
            x_train = torch.tensor(read_images(raw + 'train-images-idx3-ubyte.gz'), dtype=torch.float32) / 255
            y_train = torch.tensor(read_labels(raw + 'train-labels-idx1-ubyte.gz'), dtype=torch.long)
            x_test = torch.tensor(read_images(raw + 't10k-images-idx3-ubyte.gz'), dtype=torch.float32) / 255
            y_test = torch.tensor(read_labels(raw + 't10k-labels-idx1-ubyte.gz'), dtype=torch.long)
            fashion_train_loader = DataLoader(TensorDataset(x_train, y_train), batch_size=64, shuffle=True)
            fashion_test_loader = DataLoader(TensorDataset(x_test, y_test), batch_size=64)
            print(x_train.shape, x_test.shape)
            """,
        ),
        code(PLAIN_CLASS),
        code("""
            fashion_network = FashionNetwork()
            baseline = fashion_network.optimize(fashion_train_loader, fashion_test_loader)
            """),
        code(PLAIN_BN_CLASS),
        code("""
            fashion_network_batch_norm = FashionNetworkBatchNorm()
            with_bn = fashion_network_batch_norm.optimize(fashion_train_loader, fashion_test_loader)
            """),
        code(PLOT_TWO.format(a="baseline", b="with_bn")),
        ANSWER,
    ),
)


# ---- 13. BatchNorm network as a subclass; tqdm.auto, seaborn, sklearn, pandas ------------------------

SUBCLASS_BASE = src("""
    class FashionNetwork(nn.Module):
        def __init__(self, lr=0.001):
            super().__init__()
            self.hidden = nn.Sequential(nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU())
            self.out = nn.Linear(32, 10)
            self.lr = lr
            self.history = {"train_acc": [], "test_acc": []}

        def forward(self, x):
            return self.out(self.hidden(x.flatten(start_dim=1)))

        def optimize(self, train_loader, test_loader):
            optimizer = torch.optim.SGD(self.parameters(), lr=self.lr)
            loss_fn = nn.CrossEntropyLoss()
            for epoch in tqdm(range(5), desc=type(self).__name__):
                self.train()
                correct = 0
                for x, y in train_loader:
                    out = self(x)
                    loss = loss_fn(out, y)
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    correct += (out.argmax(1) == y).sum().item()
                self.history["train_acc"].append(correct / len(train_loader.dataset))
                self.history["test_acc"].append(self.test(test_loader))

        def test(self, test_loader):
            self.eval()
            with torch.no_grad():
                predictions = torch.cat([self(x).argmax(1) for x, _ in test_loader])
            targets = torch.cat([y for _, y in test_loader])
            self.train()
            return accuracy_score(targets.numpy(), predictions.numpy())
    """)
SUBCLASS_BN = src("""
    class FashionNetworkBatchNorm(FashionNetwork):
        def __init__(self, lr=0.001):
            super().__init__(lr)
            self.hidden = nn.Sequential(nn.Linear(784, 64), nn.BatchNorm1d(64), nn.ReLU(),
                                        nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU())
    """)

SUBCLASS = Entry(
    style="BatchNorm network subclasses the baseline; tqdm.auto, sklearn, pandas and seaborn",
    team=team(
        ("Zoe Albrecht", "7301301", "s8zoalbr@stud.uni-saarland.de"),
        ("Arne Bauer", "7301302", "s8arbaue@stud.uni-saarland.de"),
    ),
    cells=(
        setup(
            IMPORTS,
            """
            import numpy as np
            import pandas as pd
            import seaborn as sns
            from sklearn.metrics import accuracy_score, confusion_matrix
            from tqdm.auto import tqdm
            """,
            loaders(),
        ),
        code(SUBCLASS_BASE),
        code(SUBCLASS_BN),
        code("""
            net = FashionNetwork()
            net.optimize(fashion_train_loader, fashion_test_loader)
            net_bn = FashionNetworkBatchNorm()
            net_bn.optimize(fashion_train_loader, fashion_test_loader)
            pd.DataFrame({"plain": net.history["test_acc"], "batchnorm": net_bn.history["test_acc"]},
                         index=range(1, 6))
            """),
        code("""
            fig, axes = plt.subplots(1, 2, figsize=(11, 4))
            axes[0].plot(range(1, 6), net.history["test_acc"], label="FashionNetwork")
            axes[0].plot(range(1, 6), net_bn.history["test_acc"], label="FashionNetworkBatchNorm")
            axes[0].legend()
            with torch.no_grad():
                predictions = torch.cat([net_bn(x).argmax(1) for x, _ in fashion_test_loader])
            targets = torch.cat([y for _, y in fashion_test_loader])
            sns.heatmap(confusion_matrix(targets, predictions), ax=axes[1], cmap="Blues")
            plt.show()
            """),
        ANSWER,
    ),
)


# ---- 14. a real mistake under other names: test() keeps the BatchNorm network in train mode --------

NO_EVAL_BN = PLAIN_BN_CLASS.replace(
    """    def test(self, test_loader):
        self.eval()
        correct, total = 0, 0""",
    """    def test(self, test_loader):
        correct, total = 0, 0""",
)
assert NO_EVAL_BN != PLAIN_BN_CLASS

BN_TEST_MISTAKE = Entry(
    style="names model / model_bn and tqdm.notebook; test() of the BatchNorm network never calls eval() (a real mistake)",
    team=team(
        ("Bea Winter", "7301401", "s8bewint@stud.uni-saarland.de"),
        ("Carl Fuchs", "7301402", "s8cafuch@stud.uni-saarland.de"),
    ),
    cells=(
        setup(IMPORTS, "from tqdm.notebook import tqdm", loaders()),
        code(PLAIN_CLASS.replace("for images, labels in train_loader:", "for images, labels in tqdm(train_loader):")),
        code("""
            model = FashionNetwork()
            acc = model.optimize(fashion_train_loader, fashion_test_loader)
            """),
        code(NO_EVAL_BN),
        code("""
            model_bn = FashionNetworkBatchNorm()
            acc_bn = model_bn.optimize(fashion_train_loader, fashion_test_loader)
            """),
        code(PLOT_TWO.format(a="acc", b="acc_bn")),
        ANSWER,
    ),
    checks={**ALL_PASS, "batchnorm.behaviour": "fail"},
    mention={"batchnorm.behaviour": ("self.eval()",)},
)

# ---- 15. optimize never called: a free function trains two networks kept in a list; BN never trained --

NOT_TRAINED_BY_OPTIMIZE = Entry(
    style="trains two FashionNetworks in a list with a free function instead of optimize; BatchNorm never trained",
    team=team(
        ("Dora Kaiser", "7301501", "s8dokais@stud.uni-saarland.de"),
        ("Emil Hahn", "7301502", "s8emhahn@stud.uni-saarland.de"),
    ),
    cells=(
        setup(IMPORTS, loaders()),
        code(PLAIN_CLASS),
        code("""
            def train(model, epochs=5):
                history = []
                for epoch in range(epochs):
                    model.train()
                    for images, labels in fashion_train_loader:
                        model.optimizer.zero_grad()
                        model.criterion(model(images), labels).backward()
                        model.optimizer.step()
                    history.append(model.test(fashion_test_loader))
                return history

            nets = [FashionNetwork(), FashionNetwork()]
            histories = [train(net) for net in nets]
            """),
        code(PLAIN_BN_CLASS),
        md("(We ran out of time for training the BatchNorm network.)"),
    ),
    checks={**ALL_PASS, "baseline.accuracies": "fail"},
    mention={
        "baseline.accuracies": (
            "No trained FashionNetwork was found",
            "`fashion_network` (it is not defined)",
            "FashionNetwork.optimize was never called",
            "`nets[0]`, `nets[1]`",
        ),
        "batchnorm.behaviour": ("checked on a new FashionNetworkBatchNorm(): no trained instance was found",),
    },
)

# ---- 16. the course's template, untouched but for the identity cell --------------------------------

TEMPLATE_PROBLEMS = (
    "The notebook is still the template",
    "`__init__` does not call `super().__init__()`",
    "`forward` still returns the template's `NotImplemented`",
    "`optimize` takes no loaders but the notebook calls it with two",
)
UNTOUCHED_TEMPLATE = Entry(
    style="the course's template as handed out, only the identity cell filled in",
    team=team(
        ("Fiona Brandt", "7301601", "s8fibran@stud.uni-saarland.de"),
        ("Gustav Ritter", "7301602", "s8guritt@stud.uni-saarland.de"),
    ),
    team_cell=identity_markdown(
        (
            Member("Fiona Brandt", "7301601", "s8fibran@stud.uni-saarland.de"),
            Member("Gustav Ritter", "7301602", "s8guritt@stud.uni-saarland.de"),
        )
    ),
    cells=(
        setup(IMPORTS, loaders()),
        code(TEMPLATE_BASELINE),
        code(TEMPLATE_RUN_BASELINE),
        code(TEMPLATE_BATCHNORM),
        code(TEMPLATE_RUN_BATCHNORM),
        code(TEMPLATE_PLOT),
        md(TEMPLATE_ANSWER),
    ),
    checks={check: "fail" for check in CHECKS},
    execution="errors",
    mention={check: TEMPLATE_PROBLEMS for check in CHECKS},
)

# ---- 17. Part 1 done, Part 2's class still the template's stub --------------------------------------

PART_2_LEFT = Entry(
    style="Part 1 done; FashionNetworkBatchNorm still the template's stub (its training cell fails)",
    team=team(
        ("Hanna Vogt", "7301701", "s8havogt@stud.uni-saarland.de"),
        ("Ivo Sommer", "7301702", "s8ivsomm@stud.uni-saarland.de"),
    ),
    cells=(
        setup(IMPORTS, loaders()),
        code(PLAIN_CLASS),
        code("""
            fashion_network = FashionNetwork()
            accuracies = fashion_network.optimize(fashion_train_loader, fashion_test_loader)
            """),
        code(TEMPLATE_BATCHNORM),
        code(TEMPLATE_RUN_BATCHNORM),
        md("Your Answer: (Part 2 is missing.)"),
    ),
    checks={**ALL_PASS, "batchnorm.architecture": "fail", "batchnorm.behaviour": "fail"},
    execution="errors",
    mention={
        check: (
            "FashionNetworkBatchNorm: `__init__` does not call `super().__init__()`",
            "`forward` still returns the template's `NotImplemented`",
        )
        for check in ("batchnorm.architecture", "batchnorm.behaviour")
    },
)

# ---- 18. test(self) as the stub has it, reading the loader optimize kept; one BatchNorm after a ReLU --

KEPT_LOADER_CLASS = src("""
    class FashionNetwork(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(),
                                        nn.Linear(32, 10))

        def forward(self, x):
            return self.layers(x)

        def optimize(self, train_loader, test_loader):
            self.test_loader = test_loader       # test() reads it
            optimizer = torch.optim.SGD(self.parameters(), lr=0.001)
            loss_fn = nn.CrossEntropyLoss()
            self.accuracies = []
            for epoch in range(5):
                self.train()
                for images, labels in train_loader:
                    optimizer.zero_grad()
                    loss_fn(self(images), labels).backward()
                    optimizer.step()
                self.accuracies.append(self.test())
            return self.accuracies

        def test(self):
            self.eval()
            correct = 0
            with torch.no_grad():
                for images, labels in self.test_loader:
                    correct += (self(images).argmax(1) == labels).sum().item()
            return correct / len(self.test_loader.dataset)
    """)
KEPT_LOADER = Entry(
    style="test(self) as the stub has it, reading the loader optimize kept on the network; one BatchNorm1d(64) "
    "after the first ReLU",
    team=team(
        ("Jana Wolf", "7301801", "s8jawolf@stud.uni-saarland.de"),
        ("Kai Berger", "7301802", "s8kaberg@stud.uni-saarland.de"),
    ),
    cells=(
        setup(IMPORTS, loaders()),
        code(KEPT_LOADER_CLASS),
        code(TEMPLATE_RUN_BASELINE),
        code(
            bn_of(
                KEPT_LOADER_CLASS,
                "nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 32)",
                "nn.Linear(784, 64), nn.ReLU(), nn.BatchNorm1d(64), nn.Linear(64, 32)",
            )
        ),
        code(TEMPLATE_RUN_BATCHNORM),
        code(PLOT_TWO.format(a="fashion_network.accuracies", b="fashion_network_batch_norm.accuracies")),
        ANSWER,
    ),
    mention={
        "batchnorm.behaviour": ("test() (it takes no loader", "`self.test_loader`"),
        "batchnorm.architecture": ("BatchNorm1d after Linear(784, 64)",),
    },
)

# ---- 19. the identity cell in HTML; test() through a helper on the global loader; BatchNorm1d(10) last --

HELPER_CLASS = src("""
    def evaluate(model, loader):
        model.eval()
        hits = 0
        with torch.no_grad():
            for images, labels in loader:
                hits += (model(images).argmax(dim=1) == labels).sum().item()
        model.train()
        return hits / len(loader.dataset)


    class FashionNetwork(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
            self.optimizer = torch.optim.SGD(self.parameters(), lr=0.001)
            self.criterion = nn.CrossEntropyLoss()

        def forward(self, x):
            return self.net(x.flatten(1))

        def optimize(self, train_loader, test_loader):
            history = []
            for epoch in range(5):
                for images, labels in train_loader:
                    self.optimizer.zero_grad()
                    self.criterion(self(images), labels).backward()
                    self.optimizer.step()
                history.append(self.test())
                print(f"epoch {epoch + 1}: {history[-1]:.3f}")
            return history

        def test(self):
            return evaluate(self, fashion_test_loader)
    """)
HTML_IDENTITY = (
    "<h2>Exercise Sheet 6</h2>\n"
    "<p><b>Name 1:</b> Lisa Sommer<br><b>Student id 1:</b> 7301901<br><b>Email 1:</b> s8lisomm@stud.uni-saarland.de<br>\n"
    "<b>Name 2:</b> Moritz Haas<br><b>Student id 2:</b> 7301902<br><b>Email 2:</b> s8mohaas@stud.uni-saarland.de<br>\n"
    "<b>Name 3:</b> <br><b>Student id 3:</b> <br><b>Email 3:</b> <br></p>"
)
HELPER_TEST = Entry(
    style="identity cell in HTML; test() calls a helper on the global fashion_test_loader; one BatchNorm1d(10) "
    "after the last Linear",
    team=team(
        ("Lisa Sommer", "7301901", "s8lisomm@stud.uni-saarland.de"),
        ("Moritz Haas", "7301902", "s8mohaas@stud.uni-saarland.de"),
    ),
    team_cell=HTML_IDENTITY,
    cells=(
        setup(IMPORTS, loaders()),
        code(HELPER_CLASS),
        code("""
            fashion_network = FashionNetwork()
            plain = fashion_network.optimize(fashion_train_loader, fashion_test_loader)
            """),
        code(
            bn_of(
                HELPER_CLASS[HELPER_CLASS.index("class FashionNetwork") :],
                "nn.ReLU(), nn.Linear(32, 10))",
                "nn.ReLU(), nn.Linear(32, 10), nn.BatchNorm1d(10))",
            )
        ),
        code("""
            fashion_network_batch_norm = FashionNetworkBatchNorm()
            with_bn = fashion_network_batch_norm.optimize(fashion_train_loader, fashion_test_loader)
            """),
        code(PLOT_TWO.format(a="plain", b="with_bn")),
        ANSWER,
    ),
    mention={
        "batchnorm.behaviour": ("test() (it takes no loader", "`fashion_test_loader`"),
        "batchnorm.architecture": ("BatchNorm1d after Linear(32, 10)",),
    },
)

CORPUS_ENTRIES = (
    TQDM,
    MODEL_NAMES,
    OTHER_ROOTS,
    COLAB,
    DICT_OF_NETWORKS,
    BUILT_IN_FUNCTION,
    PRINTED_ONLY,
    SEEDED_PERCENT,
    PIP_INSTALL,
    MISSING_MODULE,
    KAGGLE_CSV,
    RAW_IDX,
    SUBCLASS,
    BN_TEST_MISTAKE,
    NOT_TRAINED_BY_OPTIMIZE,
    UNTOUCHED_TEMPLATE,
    PART_2_LEFT,
    KEPT_LOADER,
    HELPER_TEST,
)


def notebook(entry: Entry) -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    cells = [("markdown", entry.team_cell or team_markdown(entry.team))] + list(entry.cells)
    for index, (kind, source) in enumerate(cells):
        cell = new_code_cell(source) if kind == "code" else new_markdown_cell(source)
        cell["id"] = f"cell-{index}"
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


def expected() -> dict:
    return {
        "about": "What each corpus notebook must get (written by tools/make_corpus.py; the grader skips .json "
        "files). checks: status per check; execution: its status; violations: the codes, in order; "
        "mention: words that must appear in a check's message, in the violations, the notes or the "
        "cells' outputs.",
        "notebooks": {
            entry.file_name: {
                "style": entry.style,
                "checks": entry.checks,
                "execution": entry.execution,
                "violations": list(entry.violations),
                "mention": {k: list(v) for k, v in entry.mention.items()},
            }
            for entry in CORPUS_ENTRIES
        },
    }


def outputs() -> dict[Path, bytes]:
    files = {
        CORPUS / entry.file_name: (nbformat.writes(notebook(entry)) + "\n").encode("utf-8") for entry in CORPUS_ENTRIES
    }
    files[CORPUS / "expected.json"] = (
        json.dumps(expected(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    ).encode("utf-8")
    return files


def main(argv: list[str] | None = None) -> int:
    check, stale = write_or_check(outputs(), argv, __doc__.splitlines()[0])
    return 1 if (check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
