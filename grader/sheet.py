"""What the core knows of a sheet: the interface every sheet package fills in, and how one is loaded.

A sheet (an exercise sheet of the course) is a package of its own: `grader/sheets/<name>/` for the
sheets shipped with the grader, or any folder named by `[sheet] path` in grading.toml. Its
`__init__.py` defines `SHEET`, a `Sheet`. The core (intake, run, checks, report, batch, commands)
reads the sheet only through this interface and never names a sheet's exercises, classes or data.

A check is declared once, where it is written, with its id, points and description
(`@CHECKS.check("<id>", points=0.25, description=...)`): `grading.toml [checks]` may change its
points and is validated against these ids.

There is no default sheet: grading.toml's `[sheet] name`, `--sheet`, or (in a students' wheel) the
sheet the wheel was built for (`built_in_sheet`) names it.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.util
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ConfigDict

from grader.errors import SheetError
from grader.models import CheckStatus
from grader.observations import Observations, Observed

if TYPE_CHECKING:  # types only: the configuration is a layer above (it is validated against the sheet)
    from grader.config import Config

# Written into a students' wheel built for one sheet (setup.py): that sheet is the wheel's default.
BUILT_FOR = Path(__file__).with_name("built_for.json")


def built_in_sheet() -> str:
    """The sheet this installation was built for (a students' wheel), or "" (a source checkout)."""
    try:
        name = json.loads(BUILT_FOR.read_text(encoding="utf-8")).get("sheet", "")
    except (OSError, ValueError, AttributeError):
        return ""
    return name if isinstance(name, str) else ""


class NoSettings(BaseModel):
    """A sheet without settings of its own: grading.toml's [sheet.settings] stays empty."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Verdict:
    """What a check decided, and the message that says what was expected and what was found."""

    status: CheckStatus
    message: str


@dataclass(frozen=True)
class AccuracyRange:
    """Per epoch (or per measurement), the lowest and highest test accuracies (fractions) the
    solution reached on the same data, over the calibration's runs of the sheet's accuracy networks."""

    low: tuple[float, ...]
    high: tuple[float, ...]
    source: str


class CheckFunction(Protocol):
    """What decides a check: the probe's observations (with the sheet's answer model), the graded
    configuration (tolerances, the sheet's settings) and the calibrated accuracy range, if any."""

    def __call__(self, obs: Observations[Any], config: Config, accuracy_range: AccuracyRange | None, /) -> Verdict: ...


@dataclass(frozen=True)
class Check:
    """One automatic check: its id (what reports and grading.toml call it), default points, the
    exercise it belongs to, a sentence saying when it passes, and the function that decides."""

    id: str
    points: float
    exercise: str
    description: str
    function: CheckFunction


class CheckRegistry:
    """The checks of a sheet, in the order reports list them."""

    def __init__(self, exercise: str):
        self.exercise = exercise
        self._checks: dict[str, Check] = {}

    def check(self, check_id: str, *, points: float, description: str) -> Callable[[CheckFunction], CheckFunction]:
        """Decorator: register the function as the check `check_id`."""

        def register(function: CheckFunction) -> CheckFunction:
            if check_id in self._checks:
                raise SheetError(f"check {check_id!r} is declared twice")
            self._checks[check_id] = Check(
                id=check_id, points=points, exercise=self.exercise, description=description, function=function
            )
            return function

        return register

    def __iter__(self):
        return iter(self._checks.values())

    def __len__(self) -> int:
        return len(self._checks)

    def __getitem__(self, check_id: str) -> Check:
        return self._checks[check_id]

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self._checks)

    @property
    def default_points(self) -> dict[str, float]:
        return {c.id: c.points for c in self._checks.values()}


@dataclass(frozen=True)
class NetworkSpec:
    """A network the sheet asks for: the key reports use (`accuracies[key]`), the class a notebook
    defines, and the name the sheet's template gives the trained instance."""

    key: str
    class_name: str
    instance_name: str


@dataclass(frozen=True)
class DatasetSpec:
    """The data set the notebooks load: four IDX files of MNIST's layout (train-images-idx3-ubyte,
    train-labels-idx1-ubyte, t10k-...), staged as `<root>/<folder>/raw/` (plain and .gz) as torchvision
    leaves a download; in the kernel, `torchvision.datasets.<torchvision_class>` (if given) is pointed
    at the staged files. `generate(n_train, n_test, seed)` makes a stand-in of the same format:
    (train images uint8 (N, *image_shape), train labels uint8 (N,), test images, test labels)."""

    title: str  # for messages and reports (the data set's name)
    folder: str  # <root>/<folder>/raw/
    image_shape: tuple[int, int]
    classes: int
    full_sizes: tuple[int, int]  # images in the whole training and test sets (size 0 = all)
    generate: Callable[[int, int, int], tuple]
    generator_fingerprint: Any  # JSON-able: a changed generator gets a new fingerprint (re-staged)
    torchvision_class: str = ""
    served_hint: str = ""  # how a notebook must load the data (said when it reads elsewhere)
    path_words: tuple[str, ...] = ()  # words that mark a missing file's path as this data set


@dataclass(frozen=True)
class ProbeSpec:
    """How the probe asks a kernel about the sheet's objects (see grader/run/probe.py).

    `plan`: the sheet's kernel-side module (its text runs in the kernel; see run/kernel_code.py);
    its `observe(probe)` answers, using the library child/probe_kernel.py, with JSON that `answer`
    (a model built from grader.observations' parts) validates. `inputs(data)`: the arrays the plan
    feeds the students' code (name -> array, from the batch's staged data, None for a sheet
    without a data set); checks find them as `Observations.inputs`. `settings`: JSON-able, the
    plan's `probe.settings`. The set-up step records, while the notebook runs, the calls of the
    methods `record_methods` of the notebook's nn.Module classes and of the global functions
    `record_functions` (what trains the sheet's objects), so that the plan finds what they trained."""

    plan: Path
    answer: type[Observed]
    inputs: Callable[[Any], dict[str, Any]]
    settings: dict = field(default_factory=dict)
    record_methods: tuple[str, ...] = ()
    record_functions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Sheet:
    name: str
    title: str
    exercises: dict[str, float]  # id → default points, in the sheet's order
    bonus: tuple[str, ...]
    automatic_exercise: str  # the exercise whose checks run automatically
    manual_part: str  # its part graded by tutors ("part 3")
    manual_part_description: str  # what that part is ("plot and discussion")
    manual_part_short: str  # the same, short, for the student's verdict ("plot and answer")
    checks: CheckRegistry
    networks: tuple[NetworkSpec, ...]
    dataset: DatasetSpec | None  # None: the notebook makes its own data (nothing is staged)
    probe: ProbeSpec
    reference_dir: Path  # solution.ipynb, template.ipynb, calibration.json, tutors' key
    warmup_imports: tuple[str, ...] = ()  # what every notebook imports: a fork server imports it once
    content_markers: tuple[str, ...] = ()  # names the template asks for: the notebook using most is graded
    written_exercises: str = ""  # what the PDF holds (exercise numbers), for the message when it is missing
    # (pdf text or None, executed notebook or None) → evidence lines per exercise, for tutors
    evidence: Callable[[str | None, Any], dict[str, list[str]]] = lambda pdf_text, notebook: {}
    student_evidence: tuple[str, ...] = ()  # exercises whose evidence a student may read
    key_exercise: str | None = None  # the written exercise whose key tutors see in summary.html
    tutors_key: Callable[[], str | None] = lambda: None  # that key as one line (None: not installed)
    # (observations, epochs) → per-epoch test accuracies by network key, as fractions
    small_data_note: str = ""  # said to a student checking on a small subset (what to expect)
    # (observations, the sheet's settings) → test accuracies by network key (per epoch, or one), as fractions:
    # what a report records, and what a calibration stores of the solution's runs
    recorded_accuracies: Callable[[Any, Any], dict[str, list[float]]] = lambda observations, settings: {}
    # The sheet's settings: a pydantic model (extra keys forbidden) of grading.toml's [sheet.settings].
    settings: type[BaseModel] = NoSettings
    # The networks whose recorded accuracies (of the solution's runs) define the accuracy range; a
    # calibration is usable once it holds all of them. Default: every network of the sheet.
    accuracy_networks: tuple[str, ...] = ()
    folder: Path | None = None  # the sheet's package folder (load_sheet fills it in)

    @property
    def check_ids(self) -> tuple[str, ...]:
        return self.checks.ids

    @property
    def exercise_ids(self) -> tuple[str, ...]:
        return tuple(self.exercises)

    @property
    def manual_part_id(self) -> str:
        """The column and label of the automatic exercise's tutor-graded part ("<exercise> <manual_part>")."""
        return f"{self.automatic_exercise} {self.manual_part}"

    def network(self, key: str) -> NetworkSpec:
        return next(n for n in self.networks if n.key == key)

    @property
    def range_networks(self) -> tuple[str, ...]:
        return self.accuracy_networks or tuple(n.key for n in self.networks)

    @property
    def solution(self) -> Path:
        return self.reference_dir / "solution.ipynb"

    @property
    def template(self) -> Path:
        return self.reference_dir / "template.ipynb"

    @property
    def shipped_calibration(self) -> Path:
        """The calibration shipped with the sheet (read-only; `grader calibrate --shipped` writes it)."""
        return self.reference_dir / "calibration.json"


@functools.cache
def load_sheet(name: str, folder: str = "") -> Sheet:
    """The sheet `name`: `grader.sheets.<name>`, or the package `<folder>/<name>/` when `folder` is given."""
    if not name.isidentifier():
        raise SheetError(f"sheet name {name!r} is not a valid package name")
    if folder:
        init = Path(folder) / name / "__init__.py"
        if not init.is_file():
            raise SheetError(f"sheet {name!r}: {init} does not exist")
        module_name = f"grader_sheet_{name}"
        if module_name not in sys.modules:
            spec = importlib.util.spec_from_file_location(
                module_name, init, submodule_search_locations=[str(init.parent)]
            )
            if spec is None or spec.loader is None:
                raise SheetError(f"sheet {name!r}: {init} cannot be imported")
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[module_name]
                raise
        module = sys.modules[module_name]
    else:
        try:
            module = importlib.import_module(f"grader.sheets.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"grader.sheets.{name}":
                raise
            raise SheetError(
                f"unknown sheet {name!r} (no package grader/sheets/{name}/; a sheet elsewhere needs [sheet] path)"
            ) from exc
    sheet = getattr(module, "SHEET", None)
    if not isinstance(sheet, Sheet):
        raise SheetError(f"sheet {name!r}: its package defines no SHEET (a grader.sheet.Sheet)")
    if sheet.folder is None:
        sheet = dataclasses.replace(sheet, folder=Path(str(module.__file__)).resolve().parent)
    return sheet
