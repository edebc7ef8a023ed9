"""The course's kernel environment as the grader sees it, without running any notebook: what a
notebook imports (read from its source), the import pre-flight (`grader grade --preflight`), the
faults of the environment in an executed notebook and what they do to the checks, the kernel's
packages in the report's grader info, and pip in the kernel's environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import nbformat
from conftest import ROOT

from grader.checks.environment_faults import environment_faults, fault_notes, fault_violations, pip_notes, review_checks
from grader.config import Config
from grader.intake.imports import notebook_imports, shipped_modules
from grader.models import CheckResult, ExecutionInfo, GraderInfo
from grader.run.kernel_packages import KernelEnvironment, find_modules, kernel_environment
from grader.sheets.sheet6 import SHEET

CELLS = [
    "import numpy as np, os\nfrom torch import nn",
    "def f():\n    import wandb\n    from sklearn.metrics import f1_score\n    return f1_score",
    "try:\n    from tqdm.auto import tqdm\nexcept ImportError:\n    tqdm = None\nif False:\n    import cv2",
    "%matplotlib inline\n!nvidia-smi\nfiles = !ls\nimport seaborn as sns",
    "%pip install -q torchinfo==1.8.0 'scikit-learn>=1.3'\n!pip install --upgrade wandb -i https://example.org/simple",
    "from __future__ import annotations\nfrom . import sibling\nfrom .pkg import thing",
    "%%time\nimport polars",
    "%%bash\npip list\nimport not_python",
    "%%writefile helper_mod.py\nimport json\n",
    "import torchmetrics\nthis is not python (",
    "from google.colab import drive\ndrive.mount('/content/drive')",
]


def notebook(*sources: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Team")] + [nbformat.v4.new_code_cell(s) for s in sources]
    return nb


# ---- what a notebook imports ----------------------------------------------------------------------


def test_imports_are_read_wherever_they_stand():
    found = notebook_imports(notebook(*CELLS))
    tops = {use.top for use in found.third_party()}
    assert tops == {"numpy", "torch", "wandb", "sklearn", "tqdm", "cv2", "seaborn", "polars", "torchmetrics", "google"}
    # the standard library, __future__ and relative imports need no asking; a %%bash body is no Python
    assert "os" not in tops and "__future__" not in tops and "not_python" not in tops
    cells = {use.module: use.cell for use in found.imports}
    assert cells["wandb"] == 3 and cells["torchmetrics"] == 11  # positions count the markdown cell too
    assert [use.platform for use in found.imports if use.top == "google"] == ["Google Colab"]
    assert [(p.cell, p.packages) for p in found.pip] == [(6, ("torchinfo", "scikit-learn")), (6, ("wandb",))]
    assert found.written_modules == {"helper_mod"}


def test_modules_shipped_in_the_submission():
    files = ["helper.py", "pkg/__init__.py", "lib/utils/tools.py", "notes.txt", "my-file.py", "sol.ipynb"]
    assert shipped_modules(files) == {"helper", "pkg", "lib", "utils", "tools"}


def test_kernel_python_is_asked_without_importing():
    found = find_modules(sys.executable, {"tqdm", "torch", "json", "surely_not_a_module_xyz"})
    assert found == {"json": True, "surely_not_a_module_xyz": False, "torch": True, "tqdm": True}
    env = kernel_environment(sys.executable)
    assert env.has_distribution("Scikit_Learn") and env.has_distribution("tqdm")
    assert set(env.reported) == {"torch", "torchvision", "numpy"} and len(env.fingerprint) == 16


# ---- `grader grade --preflight` -------------------------------------------------------------------


def test_preflight_prints_the_table_and_grades_nothing(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    with zipfile.ZipFile(subs / "Anna Schmidt_7000001_Bernd Weber_7000002.zip", "w") as zf:
        zf.writestr(
            "solution.ipynb",
            nbformat.writes(
                notebook("import torch\nimport helper\nfrom helper import train", "def f():\n    import wandb")
            ),
        )
        zf.writestr("helper.py", "def train(): pass\n")
        zf.writestr("solution.pdf", b"%PDF-1.4\n")
    nbformat.write(
        notebook(
            "from google.colab import drive",
            "from tqdm import tqdm\nimport wandb",
            "%pip install surely-not-installed-pkg tqdm",
        ),
        subs / "Clara Fischer_7000003_Dieter Wolf_7000004.ipynb",
    )
    (subs / "Eva Koch_7000005_Frank Bauer_7000006.ipynb").write_text("{ not a notebook", encoding="utf-8")
    run = subprocess.run(
        [sys.executable, "-m", "grader", "grade", "--sheet", "sheet6", str(subs), "--preflight"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "200"},
    )
    out = run.stdout
    assert run.returncode == 1, out + run.stderr  # a module is missing
    rows = {
        line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:4]]
        for line in out.splitlines()
        if line.startswith("│")
    }
    assert rows["wandb"] == ["2", "MISSING"]
    assert rows["torch"] == ["1", "available"] and rows["tqdm"] == ["1", "available"]
    assert rows["helper"] == ["1", "shipped by the team (shipped in the submission)"]
    assert rows["google.colab"][1].startswith("platform only")
    assert rows["pip install surely-not-installed-pkg"][1].startswith("MISSING")
    assert rows["pip install tqdm"][1].startswith("available")
    assert (
        "wandb: imported by 2 team(s): Anna Schmidt_7000001_Bernd Weber_7000002, "
        "Clara Fischer_7000003_Dieter Wolf_7000004"
    ) in out
    assert "make lock" in out and "make install" in out
    assert "not read: Eva Koch_7000005_Frank Bauer_7000006: the notebook cannot be read" in out
    assert not (tmp_path / "reports").exists() and "[1/" not in out  # nothing graded


# ---- faults of the environment in an executed notebook ----------------------------------------------


def executed(*outputs: tuple[int, str, str]) -> nbformat.NotebookNode:
    """A notebook whose code cells ran as In [1], In [2], ...; (cell, ename, evalue) become error outputs."""
    nb = notebook(*[f"cell_{i}()" for i in range(1, 7)])
    for count, cell in enumerate(nb.cells[1:], start=1):
        cell.execution_count = count
    for position, ename, evalue in outputs:
        nb.cells[position].outputs.append(nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=[]))
    return nb


def test_faults_of_the_environment_are_told_apart_from_the_teams():
    nb = executed(
        (1, "ModuleNotFoundError", "No module named 'wandb'"),
        (2, "ImportError", "cannot import name 'v9' from 'torchvision.transforms'"),  # the team's code
        (3, "ModuleNotFoundError", "No module named 'torch.nonexistent'"),  # the team's code
        (3, "ModuleNotFoundError", "No module named 'google'"),  # from google.colab
        (4, "FileNotFoundError", "[Errno 2] No such file or directory: '/kaggle/input/fmnist/train.csv'"),
        (5, "FileNotFoundError", "[Errno 2] No such file or directory: 'plots/curve.png'"),  # the team's
        (6, "NameError", "name 'fashion_train_loader' is not defined"),
    )
    faults = environment_faults(nb, SHEET.dataset.path_words)
    assert [(f.kind, f.what, f.label) for f in faults] == [
        ("module", "wandb", "In [1]"),
        ("platform", "google.colab", "In [3]"),
        ("data", "/kaggle/input/fmnist/train.csv", "In [4]"),
    ]
    violations = fault_violations(faults, SHEET.dataset.served_hint)
    assert [v.code for v in violations] == ["environment.missing_module", "environment.data_path"]
    assert "In [1]" in violations[0].message and "'wandb'" in violations[0].message
    assert "/kaggle/input/fmnist/train.csv" in violations[1].message and "FashionMNIST('data/'" in violations[1].message
    notes = fault_notes(faults)
    assert len(notes) == 1 and "google.colab" in notes[0] and "Google Colab" in notes[0]


def test_checks_that_did_not_pass_become_needs_review():
    checks = [
        CheckResult(id=c, exercise="6.6", status=s, points=p, max_points=0.25, message=f"{c} found x")
        for c, s, p in zip(
            SHEET.check_ids, ["pass", "fail", "error", "pass", "skipped", "needs_review"], [0.25, 0, 0, 0.25, 0, 0]
        )
    ]
    faults = environment_faults(executed((2, "ModuleNotFoundError", "No module named 'wandb'")))
    reviewed = {c.id: c for c in review_checks(checks, faults)}
    assert [reviewed[c].status for c in SHEET.check_ids] == [
        "pass",
        "needs_review",
        "needs_review",
        "pass",
        "skipped",
        "needs_review",
    ]
    assert reviewed["baseline.forward"].points == 0
    assert (
        "'wandb'" in reviewed["baseline.forward"].message
        and "baseline.forward found x" in reviewed["baseline.forward"].message
    )
    assert review_checks(checks, []) == checks


def test_pip_lines_get_a_note_that_grading_installs_nothing():
    nb = executed()
    nb.cells[1].source = "%pip install tqdm surely-missing"
    kernel = KernelEnvironment(python="python", python_version="3.11", packages={"tqdm": "4.70.1"})
    [note] = pip_notes(nb, kernel)
    assert note.startswith("In [1] runs `%pip install tqdm surely-missing`: grading installs nothing")
    assert "tqdm is in the course environment" in note and "surely-missing is NOT in the course environment" in note


def test_the_kernel_cannot_install_or_wait_for_a_network(tmp_path):
    from grader.run.sandbox import kernel_env

    config = Config()
    env = kernel_env(config, tmp_path, threads=1, mpl_cache=None)
    assert env["PIP_NO_INDEX"] == "1" and env["PIP_DISABLE_PIP_VERSION_CHECK"] == "1"
    assert env["PIP_CONFIG_FILE"] == os.devnull
    # `!pip` is the kernel's own pip, as in an activated environment
    assert env["PATH"].split(os.pathsep)[0] == os.path.dirname(config.kernel_python)
    done = subprocess.run(
        [config.kernel_python, "-m", "pip", "install", "surely-not-a-package-xyz"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0 and "surely-not-a-package-xyz" in done.stderr


# ---- the kernel's packages decide whether an earlier report stands ---------------------------------


def test_another_kernel_environment_regrades(tmp_path):
    from grader.config import load_config
    from grader.engine.batch import plan
    from grader.intake import identify
    from grader.models import SubmissionInfo
    from grader.pipeline import make_grader_info
    from grader.report.score import build_report
    from grader.report.store import write_report

    subs, out = tmp_path / "subs", tmp_path / "out"
    subs.mkdir()
    path = subs / "Anna Schmidt_7000001_Bernd Weber_7000002.ipynb"
    nbformat.write(notebook("x = 1"), path)
    config = load_config(None)
    kernel = kernel_environment(config.kernel_python)
    grader = make_grader_info(config, kernel)
    assert grader.kernel_env == kernel.fingerprint and grader.kernel_packages["torch"] == kernel.packages["torch"]
    submission = identify(path, subs, config.naming)
    for kernel_env, regraded in ((kernel.fingerprint, False), ("0" * 16, True)):
        earlier = build_report(
            submission=SubmissionInfo(**submission.info().model_dump()),
            violations=[],
            execution=ExecutionInfo(status="ok"),
            checks=[],
            config=config,
            grader=grader.model_copy(update={"kernel_env": kernel_env}),
        )
        write_report(earlier, out, submission.stem)
        planned = plan(
            subs, config, out, shard=None, force=False, grader_hash=grader.grader_hash, kernel_env=grader.kernel_env
        )
        assert (len(planned.jobs), len(planned.cached)) == ((1, 0) if regraded else (0, 1))


def test_reports_of_before_still_read():
    old = {"version": "0.1.0", "grader_hash": "g", "config_hash": "c"}
    info = GraderInfo.model_validate(old)
    assert info.kernel_env == "" and info.kernel_packages == {}
    assert json.loads(info.model_dump_json())["kernel_env"] == ""


def test_the_pinned_environment_holds_the_kernels_packages():
    """requirements/constraints.txt pins every package `make install` puts into the kernel."""
    pinned = {}
    for line in (ROOT / "requirements" / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pinned[name.lower().replace("_", "-")] = version
    for package in (
        "torch",
        "torchvision",
        "matplotlib",
        "tqdm",
        "ipywidgets",
        "numpy",
        "pandas",
        "scipy",
        "scikit-learn",
        "seaborn",
        "torchinfo",
        "torchsummary",
        "nbclient",
        "ipykernel",
        "pydantic",
    ):
        assert pinned.get(package), f"{package} is not pinned"


def test_a_module_the_course_does_not_pin_is_flagged_where_the_notebook_still_runs(tmp_path):
    """A student's laptop has more than the course: what the kernel has but the pinned environment
    lacks is listed as such, and the report warns that it fails when tutors grade."""
    from grader.checks.environment_faults import outside_course_violations
    from grader.config import load_config
    from grader.engine.preflight import preflight
    from grader.intake import identify
    from grader.run.course_packages import DISTRIBUTIONS

    path = tmp_path / "Anna Schmidt_7000001_Bernd Weber_7000002.ipynb"
    nbformat.write(notebook("import torch", "try:\n    import tqdm\nexcept ImportError:\n    pass"), path)
    config = load_config(None)
    submission = identify(path, tmp_path, config.naming)
    assert preflight([submission], config, tmp_path).missing == []
    course = {name: v for name, v in DISTRIBUTIONS.items() if name != "tqdm"}  # a course without tqdm
    found = preflight([submission], config, tmp_path, course=course)
    assert [(row.module, row.status) for row in found.missing] == [("tqdm", "outside")]
    assert found.outside_course == {"tqdm"} and "installed from tqdm" in found.missing[0].detail
    nb = executed()
    nb.cells[3].source = "from tqdm.auto import tqdm"
    [violation] = outside_course_violations(nb, found.outside_course, [])
    assert violation.code == "environment.outside_course"
    assert violation.message.startswith("In [3] imports 'tqdm'") and "when tutors grade" in violation.message


def test_the_review_after_a_time_limit_names_the_cell_and_limit_not_another_note():
    """An unsandboxed kernel's notes say it ran 'with resource limits': the reason a check is left
    to tutors must name the cell the time limit stopped, not that note."""
    from grader.checks.environment_faults import review_after_time_limit
    from grader.models import TimedOutCell

    execution = ExecutionInfo(
        status="timeout",
        notes=[
            "not isolated: the kernel ran with resource limits only (no bubblewrap)",
            "cell In [7] ('for epoch in range(5):') ran over the limit and was interrupted",
        ],
        timed_out=[TimedOutCell(cell=9, execution_count=7, limit="cell_cpu", cpu_s=20.1, wall_s=21.0)],
    )
    checks = [
        CheckResult(id="a.b", exercise="6.6", status="fail", points=0.0, max_points=0.25, message="x"),
        CheckResult(id="a.c", exercise="6.6", status="pass", points=0.25, max_points=0.25, message="y"),
    ]
    failed, passed = review_after_time_limit(checks, execution)
    assert failed.status == "needs_review" and passed.status == "pass"
    assert "In [7] reached the limit of CPU time per cell" in failed.message
    assert "resource limits" not in failed.message
