"""Build the example submissions in `submissions/`: four correct, six with a single known defect.

    python tools/make_examples.py           # (re)write submissions/*.zip and submissions/expected.json
    python tools/make_examples.py --check   # exit 1 when a file differs from what would be written

Every zip is named `Name1_id1_Name2_id2[_Name3_id3].zip` and holds the team's PDF (names, ids, e-mails
and short written answers, including the 6.3 values) and its notebook. The notebooks are the
solution (tools/make_notebooks.py) with one edit each; `EXAMPLES` says which automatic checks of 6.6
each example should lose, and `submissions/expected.json` records that for tests (the grader skips
.json files when it looks for submissions).

Deterministic: fixed zip timestamps and attributes, no dates in the PDF, so a rebuild gives
identical bytes. The PDF writer is a minimal one (one page, Helvetica, WinAnsi encoding) so that no
new dependency is needed; its text is extractable with pypdf.
"""

from __future__ import annotations

import io
import json
import sys
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_notebooks import ROOT, SOLUTION_TEAM, Member, Parts, notebook_bytes, solution_parts, write_or_check

SUBMISSIONS = ROOT / "submissions"
ZIP_DATE = (2024, 12, 4, 23, 41, 0)  # the evening before the deadline, for every entry
CHECKS = (
    "baseline.architecture",
    "baseline.forward",
    "baseline.training_setup",
    "baseline.accuracies",
    "batchnorm.architecture",
    "batchnorm.behaviour",
)


# ------------------------------------------------------------------------------------------------
# A minimal PDF
# ------------------------------------------------------------------------------------------------


def _pdf_string(text: str) -> bytes:
    """A PDF literal string in WinAnsiEncoding (cp1252): umlauts work, other characters become '?'."""
    raw = unicodedata.normalize("NFC", text).encode("cp1252", errors="replace")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def make_pdf(lines: list[str], title: str | None = None) -> bytes:
    """One A4 page of text lines (Helvetica 10pt, the optional title in Helvetica-Bold 14pt)."""
    content = io.BytesIO()
    content.write(b"BT\n")
    y = 800
    if title:
        content.write(b"/F2 14 Tf 56 %d Td " % y + _pdf_string(title) + b" Tj ET\nBT\n")
        y -= 28
    content.write(b"/F1 10 Tf 13 TL 56 %d Td\n" % y)
    for i, line in enumerate(lines):
        content.write((b"T* " if i else b"") + _pdf_string(line) + b" Tj\n")
    content.write(b"ET\n")
    stream = content.getvalue()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 4 0 R /F2 5 0 R >> >> "
        b"/Contents 6 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"endstream",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n" % (len(objects) + 1))
    out.write(b"0000000000 65535 f \n")
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


WRITTEN_ANSWERS = [
    "Exercise 6.1: see the derivations on paper; 4. softmax(y + c) = softmax(y), so we subtract max(y)",
    "before exponentiating to avoid overflow. 5. Without non-linear activations the network is linear.",
    "Exercise 6.2: a) sigmoid + binary cross-entropy, b) softmax + cross-entropy, c) linear + MSE,",
    "d) one sigmoid per label + binary cross-entropy, e) hierarchical softmax + cross-entropy.",
    "Exercise 6.3 a) a = W1^T x = (9, -11), h = ReLU(a) = (9, 0),",
    "logits z = W2^T h = (54, 18), o = softmax(z) = (1 - 2.3e-16, 2.3e-16).",
    "b) The predicted class is class 1 (o1 is almost 1).",
    "Exercise 6.4: a) internal covariate shift; b) no: gamma and beta are learned, not the batch statistics;",
    "c) batch size 1 gives variance 0, at inference the running mean and variance are used;",
    "d) it makes the loss landscape smoother (Santurkar et al.).",
    "Exercise 6.5: a) hinders, many equivalent minima; b) not with a too large step size;",
    "c) a quadratic function, gradient descent needs more steps; d) the Hessian is too large to invert.",
    "Exercise 6.6: see the notebook.",
    "Exercise 6.7: a) saddle points; b) it slows down near them; c) Newton's method is attracted to saddles.",
]


def team_pdf(team: tuple[Member, ...]) -> bytes:
    lines = [m.line() for m in team] + [""] + WRITTEN_ANSWERS
    return make_pdf(lines, title="NNTI Winter Term 2024/2025 - Exercise Sheet 6")


# ------------------------------------------------------------------------------------------------
# The examples
# ------------------------------------------------------------------------------------------------


def email(name: str) -> str:
    """s8 + 2 letters of the first name + 4 of the last, as the university assigns them."""
    ascii_ = {"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "é": "e"}
    parts = ["".join(ascii_.get(ch, ch) for ch in p.lower()) for p in name.split()]
    return f"s8{parts[0][:2]}{parts[-1][:4]}@stud.uni-saarland.de"


def team(*members: tuple[str, str]) -> tuple[Member, ...]:
    return tuple(Member(name, sid, email(name)) for name, sid in members)


@dataclass(frozen=True)
class Example:
    team: tuple[Member, ...]
    defect: str  # what is wrong, for people
    loses: tuple[str, ...]  # the automatic checks of 6.6 it should fail
    parts: Parts
    notebook_name: str  # the notebook's name inside the zip
    pdf_name: str
    folder: str = ""  # a folder inside the zip, as some teams zip a folder

    @property
    def zip_name(self) -> str:
        return "_".join(f"{m.name.replace(' ', '_')}_{m.student_id}" for m in self.team) + ".zip"


def _examples() -> list[Example]:
    examples = []

    # 1. correct: the solution itself
    examples.append(
        Example(
            SOLUTION_TEAM,
            "correct (the solution)",
            (),
            solution_parts(SOLUTION_TEAM),
            "Exercise_6_6.ipynb",
            "Sheet6.pdf",
        )
    )

    # 2. softmax inside forward
    t = team(("Anna Schmidt", "7023456"), ("Lukas Weber", "7034567"))
    parts = solution_parts(t).edit(
        "baseline",
        "        # logits: nn.CrossEntropyLoss applies log-softmax itself\n        return x",
        "        return torch.softmax(x, dim=1)",
    )
    examples.append(
        Example(
            t,
            "FashionNetwork.forward returns torch.softmax(x, dim=1) instead of logits",
            ("baseline.forward",),
            parts,
            "NNTI_sheet6.ipynb",
            "NNTI_sheet6.pdf",
        )
    )

    # 3. missing ReLU between Linear(64, 32) and Linear(32, 10) in FashionNetwork
    t = team(("Sophie Becker", "7045678"), ("Jonas Fischer", "7056789"), ("Lea Hoffmann", "7067890"))
    parts = solution_parts(t).edit("baseline", "x = self.relu(self.fc2(x))", "x = self.fc2(x)")
    examples.append(
        Example(
            t,
            "FashionNetwork.forward has no ReLU after Linear(64, 32)",
            ("baseline.architecture",),
            parts,
            "exercise6.ipynb",
            "exercise6.pdf",
            folder="Sheet6/",
        )
    )

    # 4. FashionNetworkBatchNorm without BatchNorm (the baseline under the other name)
    t = team(("Maximilian Wagner", "7078901"), ("Hannah Schulz", "7089012"))
    parts = solution_parts(t)
    parts = Parts(
        parts.team,
        parts.baseline,
        parts.run_baseline,
        parts.baseline.replace("class FashionNetwork(nn.Module):", "class FashionNetworkBatchNorm(nn.Module):", 1),
        parts.run_batchnorm,
        parts.plot,
        parts.answer,
    )
    examples.append(
        Example(
            t,
            "FashionNetworkBatchNorm has no BatchNorm layer (identical to FashionNetwork); "
            "batchnorm.behaviour fails too: without BatchNorm there is no BatchNorm behaviour",
            ("batchnorm.architecture", "batchnorm.behaviour"),
            parts,
            "Sheet_6.ipynb",
            "Sheet_6.pdf",
        )
    )

    # 5. wrong learning rate in FashionNetwork. Adam or SGD(lr=0.01) would also fail baseline.accuracies
    #    (they reach 0.6-0.8 after 5 epochs, far above the solution's range), so the defect that loses
    #    training_setup only is a learning rate that is too small: 1e-4 instead of 1e-3.
    t = team(("Paul Koch", "7090123"), ("Marie Richter", "7101234"))
    parts = solution_parts(t).edit(
        "baseline", "torch.optim.SGD(self.parameters(), lr=0.001)", "torch.optim.SGD(self.parameters(), lr=1e-4)"
    )
    examples.append(
        Example(
            t,
            "FashionNetwork uses SGD with lr=1e-4 instead of 0.001",
            ("baseline.training_setup",),
            parts,
            "notebook.ipynb",
            "answers.pdf",
        )
    )

    # 6. accuracies not recorded: optimize measures them but neither stores, returns nor prints them
    #    (printed per-epoch accuracies would count: the grader reads them as the last resort)
    t = team(("Felix Klein", "7112345"), ("Laura Wolf", "7123456"))
    parts = (
        solution_parts(t)
        .edit("baseline", "        self.test_accuracies = []\n\n    def forward", "\n    def forward")
        .edit("baseline", "        self.test_accuracies = []\n        for epoch", "        for epoch")
        .edit("baseline", "            self.test_accuracies.append(accuracy)\n", "")
        .edit("baseline", "\n        return self.test_accuracies\n", "\n")
        .edit("baseline", ':.4f}, "\n                  f"test accuracy {accuracy:.4f}")', ':.4f}")')
        .edit(
            "plot",
            "plt.plot(epochs, baseline_accuracies, marker='o', label='FashionNetwork')\n",
            "# FashionNetwork: its accuracies were not kept\n",
        )
        .edit("plot", "range(1, len(baseline_accuracies) + 1)", "range(1, len(batch_norm_accuracies) + 1)")
    )
    examples.append(
        Example(
            t,
            "FashionNetwork.optimize measures the test accuracy but neither returns, stores nor prints it",
            ("baseline.accuracies",),
            parts,
            "Exercise 6.6.ipynb",
            "Exercise Sheet 6.pdf",
        )
    )

    # 7. FashionNetworkBatchNorm.test without self.eval()
    t = team(("Tim Schröder", "7134567"), ("Mia Neumann", "7145678"))
    parts = solution_parts(t).edit("batchnorm", "        self.eval()\n", "")
    examples.append(
        Example(
            t,
            "FashionNetworkBatchNorm.test does not switch to eval mode (no self.eval())",
            ("batchnorm.behaviour",),
            parts,
            "sheet06_notebook.ipynb",
            "sheet06.pdf",
        )
    )

    # Correct in other ways the course's notebook allows: it asks for "a batch normalization layer"
    # and leaves where to the team, and its stubs `optimize(self)` and `test(self)` leave test's
    # parameters to the team.
    # 8. one BatchNorm1d, after the second hidden Linear (before its ReLU)
    t = team(("Lena Braun", "7156789"), ("Noah Zimmermann", "7167890"))
    parts = (
        solution_parts(t)
        .edit(
            "batchnorm",
            "here one after\n        # each hidden Linear, before its ReLU.",
            "here one after\n        # the second hidden Linear, before its ReLU.",
        )
        .edit("batchnorm", "        self.bn1 = nn.BatchNorm1d(64)\n", "")
        .edit("batchnorm", "x = self.relu(self.bn1(self.fc1(x)))", "x = self.relu(self.fc1(x))")
    )
    examples.append(
        Example(
            t,
            "correct: one BatchNorm1d(32), after the second hidden Linear (before its ReLU)",
            (),
            parts,
            "Assignment6.ipynb",
            "Assignment6.pdf",
        )
    )

    # 9. one BatchNorm1d(784), on the flattened input
    t = team(("Emma Krüger", "7178901"), ("Ben Hartmann", "7189012"), ("Mila Lange", "7190123"))
    parts = (
        solution_parts(t)
        .edit(
            "batchnorm",
            "here one after\n        # each hidden Linear, before its ReLU.",
            "here one on\n        # the flattened input.",
        )
        .edit(
            "batchnorm",
            "        self.fc1 = nn.Linear(784, 64)\n        self.bn1 = nn.BatchNorm1d(64)\n",
            "        self.bn_input = nn.BatchNorm1d(784)\n        self.fc1 = nn.Linear(784, 64)\n",
        )
        .edit("batchnorm", "        self.bn2 = nn.BatchNorm1d(32)\n", "")
        .edit("batchnorm", "x = self.relu(self.bn1(self.fc1(x)))", "x = self.relu(self.fc1(self.bn_input(x)))")
        .edit("batchnorm", "x = self.relu(self.bn2(self.fc2(x)))", "x = self.relu(self.fc2(x))")
    )
    examples.append(
        Example(
            t,
            "correct: one BatchNorm1d(784), on the flattened input",
            (),
            parts,
            "NNTI_Exercise_6.ipynb",
            "NNTI_Exercise_6.pdf",
        )
    )

    # 10. test(self) without parameters, reading the global fashion_test_loader (both classes)
    t = team(("Luis Schwarz", "7201234"), ("Clara Meyer", "7212345"))
    parts = solution_parts(t)
    for field in ("baseline", "batchnorm"):
        parts = (
            parts.edit(field, "accuracy = self.test(test_loader)", "accuracy = self.test()")
            .edit(field, "    def test(self, test_loader):", "    def test(self):")
            .edit(
                field,
                "            for images, labels in test_loader:",
                "            for images, labels in fashion_test_loader:",
            )
        )
    examples.append(
        Example(
            t,
            "correct: test(self) takes no loader and reads the global fashion_test_loader, "
            "as the course's stub leaves it",
            (),
            parts,
            "sheet6.ipynb",
            "sheet6_answers.pdf",
        )
    )
    return examples


EXAMPLES = _examples()


def deterministic_zip(files: list[tuple[str, bytes]]) -> bytes:
    """A zip of (name, bytes) entries with fixed timestamps and attributes: the same bytes every build."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files:
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = 0o100644 << 16
            archive.writestr(info, data, compresslevel=9)
    return buffer.getvalue()


def zip_bytes(example: Example) -> bytes:
    return deterministic_zip(
        [
            (example.folder + example.pdf_name, team_pdf(example.team)),
            (example.folder + example.notebook_name, notebook_bytes(example.parts)),
        ]
    )


def expected() -> dict:
    return {
        "about": "What each example submission should score in the automatic checks of 6.6 "
        "(written by tools/make_examples.py; the grader skips .json files).",
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
    files = {SUBMISSIONS / ex.zip_name: zip_bytes(ex) for ex in EXAMPLES}
    files[SUBMISSIONS / "expected.json"] = (json.dumps(expected(), indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    return files


def examples_main(files: dict[Path, bytes], examples, argv: list[str] | None, description: str) -> int:
    """The command line of an examples generator: write (or --check) `files`, then say what each example loses."""
    check, stale = write_or_check(files, argv, description)
    if not check:
        for ex in examples:
            print(f"  {ex.zip_name}: loses {', '.join(ex.loses) or 'nothing'}")
    return 1 if (check and stale) else 0


def main(argv: list[str] | None = None) -> int:
    return examples_main(outputs(), EXAMPLES, argv, __doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
