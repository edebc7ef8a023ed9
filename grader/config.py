"""`grading.toml`, read into a validated, frozen model.

Every section forbids unknown keys, so a typo is an error naming the key instead of a setting
silently ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)

from grader.errors import ConfigError
from grader.sheet import Sheet, SheetError, built_in_sheet, load_sheet
from grader.util.notebook_file import MAX_CELLS, MAX_OUTPUTS

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10 (Ubuntu 22.04's): the same parser, as a package
    import tomli as tomllib


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SheetChoice(_Section):
    """Which sheet is graded: a package of grader/sheets/, or of the folder `path` (relative to this
    file); no default (a students' wheel knows the sheet it was built for). `settings`: the sheet's
    own settings ([sheet.settings]), validated against its model and filled with its defaults."""

    name: str = ""
    path: str = ""
    settings: dict[str, Any] = Field(default_factory=dict)


def _points_value(what: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{what}: points must be a number >= 0, got {value!r}")
    return float(value)


class Exercises(_Section):
    """Points per exercise of the sheet (its ids, checked against the sheet) and which are bonus."""

    model_config = ConfigDict(extra="allow", frozen=True)
    bonus: tuple[str, ...] = ()

    @property
    def points(self) -> dict[str, float]:
        return {e: float(v) for e, v in (self.model_extra or {}).items()}


class Checks(_Section):
    """Points per automatic check of the sheet (its registry's ids; missing ones get the registry's points)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    def points(self, check_id: str) -> float:
        return float((self.model_extra or {})[check_id])


# Settings that were [tolerance]'s before they became a sheet's own ([sheet.settings]): read from
# [tolerance] still, where the sheet has them, so that an older grading.toml keeps working.
_MOVED_TO_SHEET_SETTINGS = ("learning_rate", "epochs")


def _sheet_settings(raw: dict, sheet: Sheet, choice: dict) -> dict:
    """[sheet.settings] validated against the sheet's model, with its defaults filled in."""
    settings = choice.get("settings", {})
    if not isinstance(settings, dict):
        raise ValueError("'sheet.settings': expected a table of the sheet's settings")
    settings = dict(settings)
    tolerance = raw.get("tolerance")
    if isinstance(tolerance, dict):
        tolerance = dict(tolerance)
        for key in _MOVED_TO_SHEET_SETTINGS:
            if key in tolerance and key in sheet.settings.model_fields:
                value = tolerance.pop(key)
                if key in settings and settings[key] != value:
                    raise ValueError(
                        f"'tolerance.{key}' ({value!r}) and 'sheet.settings.{key}' ({settings[key]!r}) "
                        f"differ: {key} is a setting of the sheet now, keep it in [sheet.settings]"
                    )
                settings[key] = value
        raw["tolerance"] = tolerance
    try:
        return sheet.settings.model_validate(settings).model_dump()
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(part) for part in err["loc"])
            problems.append(
                f"unknown key 'sheet.settings.{key}' ({sheet.name} has "
                f"{', '.join(sheet.settings.model_fields) or 'no settings'})"
                if err["type"] == "extra_forbidden"
                else f"'sheet.settings.{key}': {err['msg']}"
            )
        raise ValueError("; ".join(problems)) from None


def _sheet_sections(raw: dict, base_dir: Path | None) -> dict:
    """`raw` with [exercises], [checks] and [sheet.settings] checked against the sheet named by
    [sheet] (or the sheet this installation was built for), and filled in with the sheet's own
    points and settings where grading.toml leaves them out. Without a sheet they must be absent."""
    choice = raw.get("sheet") or {}
    if not isinstance(choice, dict):
        return raw
    name, folder = choice.get("name") or built_in_sheet(), choice.get("path", "")
    if not isinstance(name, str) or not isinstance(folder, str):
        return raw  # the section's own validation names the key
    raw = dict(raw)
    if not name:
        named = [section for section in ("exercises", "checks") if raw.get(section)]
        named += ["sheet.settings"] if choice.get("settings") else []
        if named:
            raise ValueError(f"[{'], ['.join(named)}] without a sheet: name the sheet they belong to in [sheet] name")
        return raw
    raw["sheet"] = {**choice, "name": name}
    if folder:
        path = Path(os.path.expanduser(folder))
        folder = str(path if path.is_absolute() else (base_dir or Path.cwd()) / path)
    try:
        sheet = load_sheet(name, folder)
    except SheetError as exc:
        raise ValueError(f"[sheet]: {exc}") from exc
    raw["sheet"]["settings"] = _sheet_settings(raw, sheet, choice)
    exercises = raw.get("exercises")
    if exercises is None:
        raw["exercises"] = {**sheet.exercises, "bonus": sheet.bonus}
    elif isinstance(exercises, dict):
        given = {k: v for k, v in exercises.items() if k != "bonus"}
        for key, value in given.items():
            if key not in sheet.exercises:
                raise ValueError(f"exercises: unknown exercise {key!r} ({sheet.name} has {', '.join(sheet.exercises)})")
            _points_value(f"exercises: exercise {key!r}", value)
        missing = [e for e in sheet.exercises if e not in given]
        if missing:
            raise ValueError(f"exercises: missing points for exercise(s) {', '.join(missing)}")
        bonus = exercises.get("bonus", sheet.bonus)
        for b in bonus if isinstance(bonus, (list, tuple)) else ():
            if b not in sheet.exercises:
                raise ValueError(f"exercises: bonus names unknown exercise {b!r}")
        raw["exercises"] = {**{e: given[e] for e in sheet.exercises}, "bonus": bonus}
    checks = raw.get("checks") or {}
    if isinstance(checks, dict):
        for key, value in checks.items():
            if key not in sheet.check_ids:
                raise ValueError(
                    f"unknown key 'checks.{key}': {sheet.name} has no check {key!r} "
                    f"(its checks: {', '.join(sheet.check_ids)})"
                )
            _points_value(f"checks.{key}", value)
        raw["checks"] = {c: float(checks.get(c, points)) for c, points in sheet.checks.default_points.items()}
    return raw


class Tolerance(_Section):
    atol: PositiveFloat = 1e-4
    rtol: PositiveFloat = 1e-4
    accuracy_margin: float = Field(0.15, ge=0, le=1)


def _seconds_or_auto(value):
    if value == "auto":
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError('expected a number of seconds greater than 0, or "auto"')
    return float(value)


# A time limit: seconds, or "auto" (a multiple of what the solution needs on the graded data).
SecondsOrAuto = Annotated[
    float | Literal["auto"],
    PlainValidator(_seconds_or_auto),
    WithJsonSchema({"anyOf": [{"type": "number", "exclusiveMinimum": 0}, {"const": "auto"}]}),
]


class Limits(_Section):
    # "auto": derived from the solution's timings on the same data (reference/calibration.json).
    cell_timeout_s: SecondsOrAuto = "auto"
    notebook_timeout_s: SecondsOrAuto = "auto"
    probe_timeout_s: PositiveFloat = 120
    memory_mb: PositiveInt = 6144
    processes: PositiveInt = 256
    file_size_mb: PositiveInt = 256
    open_files: PositiveInt = 1024
    output_kb: PositiveInt = 64
    # What a notebook may hold: more cells is a content.notebook_too_large error (the notebook is not
    # run); outputs of a run past notebook_outputs (or past the size the grader accepts) are not kept.
    notebook_cells: PositiveInt = MAX_CELLS
    notebook_outputs: PositiveInt = MAX_OUTPUTS
    # What a kernel may write in total (its workspace is a file system of this size, under bubblewrap).
    disk_mb: PositiveInt = 1024
    # Reading a student's PDF text in the grader (in a child process that is killed at the limit).
    parse_timeout_s: PositiveFloat = 30
    parse_memory_mb: PositiveInt = 1024
    # A kernel that died is restarted (cells before the one it died in run again) so that the
    # networks can still be probed; the report says kernel_died either way.
    restart_for_probe: bool = False


class Naming(_Section):
    min_members: PositiveInt = 2
    max_members: PositiveInt = 3
    id_digits: PositiveInt = 7

    @model_validator(mode="after")
    def _order(self) -> Naming:
        if self.min_members > self.max_members:
            raise ValueError("min_members is larger than max_members")
        return self


class Archive(_Section):
    max_compressed_mb: PositiveFloat = 50
    max_uncompressed_mb: PositiveFloat = 200
    max_entries: PositiveInt = 1000
    max_ratio: PositiveFloat = 200
    nested_depth: int = Field(1, ge=0, le=3)


class Data(_Section):
    source: str = ""
    train_size: int = Field(6000, ge=0, le=60000)
    test_size: int = Field(1000, ge=0, le=10000)
    seed: int = 6


class Cms(_Section):
    """The CSV files people open in spreadsheets (cms.csv, manual_points.csv). German spreadsheets
    want delimiter ";" and decimal ","; the BOM makes Excel read UTF-8 (umlauts) correctly.

    The course system's import file (cms_import.csv) has a fixed format of its own; these keys say
    which points go into it and for whom. `roster`: the course's list of students as staff export
    it (relative to grading.toml's folder; "" = none)."""

    delimiter: Literal[",", ";", "\t"] = ","
    decimal: Literal[".", ","] = "."
    bom: bool = True
    roster: str = ""
    # "total" (without the bonus), "total+bonus", or one exercise id of the sheet.
    import_points: str = "total"
    import_pending: bool = False
    import_missing_as_zero: bool = False

    @model_validator(mode="after")
    def _distinct(self) -> Cms:
        if self.delimiter == self.decimal:
            raise ValueError(f"delimiter and decimal are both {self.delimiter!r}")
        return self


class Run(_Section):
    workers: int = Field(0, ge=0, le=64)
    kernel_python: str = ""
    sandbox: Literal["auto", "bubblewrap", "none"] = "auto"
    # Fork each kernel of a batch from a per-worker server that imported torch once.
    fork_server: bool = True
    # Torch/BLAS threads per kernel; 0 = cores // workers.
    threads: int = Field(0, ge=0, le=256)


class Config(_Section):
    sheet: SheetChoice = Field(default_factory=SheetChoice)
    exercises: Exercises = Field(default_factory=Exercises)
    checks: Checks = Field(default_factory=Checks)
    tolerance: Tolerance = Field(default_factory=Tolerance)
    limits: Limits = Field(default_factory=Limits)
    naming: Naming = Field(default_factory=Naming)
    archive: Archive = Field(default_factory=Archive)
    data: Data = Field(default_factory=Data)
    run: Run = Field(default_factory=Run)
    cms: Cms = Field(default_factory=Cms)
    # Where the file was read from: relative paths in it are relative to this folder.
    base_dir: Path = Field(default=Path("."), exclude=True)
    fingerprint: str = Field(default="", exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _against_the_sheet(cls, raw, info: ValidationInfo):
        if not isinstance(raw, dict):
            return raw
        return _sheet_sections(raw, (info.context or {}).get("base_dir"))

    @model_validator(mode="after")
    def _import_points_on_the_sheet(self) -> Config:
        if self.cms.import_points in ("total", "total+bonus"):
            return self
        if not self.sheet.name:
            raise ValueError(
                f"'cms.import_points': {self.cms.import_points!r} is an exercise of no sheet: name the "
                f'sheet in [sheet] name, or import "total" or "total+bonus"'
            )
        choices = ("total", "total+bonus", *self.sheet_def.exercise_ids)
        if self.cms.import_points not in choices:
            raise ValueError(
                f'\'cms.import_points\': expected "total", "total+bonus" or an exercise of '
                f"{self.sheet_def.name} ({', '.join(self.sheet_def.exercise_ids)}); "
                f"got {self.cms.import_points!r}"
            )
        return self

    @model_validator(mode="after")
    def _disk_holds_a_submission(self) -> Config:
        if self.limits.disk_mb < self.archive.max_uncompressed_mb:
            raise ValueError(
                f"limits.disk_mb ({self.limits.disk_mb}) is smaller than archive.max_uncompressed_mb "
                f"({self.archive.max_uncompressed_mb:g}): a kernel's workspace must hold the "
                "unpacked submission"
            )
        return self

    @property
    def sheet_folder(self) -> Path | None:
        if not self.sheet.path:
            return None
        path = Path(os.path.expanduser(self.sheet.path))
        return path if path.is_absolute() else (self.base_dir / path).resolve()

    @property
    def sheet_def(self) -> Sheet:
        """The sheet graded (its exercises, checks, networks and data), loaded once per process."""
        if not self.sheet.name:
            raise ConfigError(
                "no sheet is named: set [sheet] name in grading.toml (the sheets of the grader are "
                "in grader/sheets/), or pass --sheet NAME"
            )
        return load_sheet(self.sheet.name, str(self.sheet_folder or ""))

    @property
    def sheet_settings(self) -> Any:
        """The sheet's settings ([sheet.settings], with the sheet's defaults), as its model."""
        return self.sheet_def.settings.model_validate(self.sheet.settings)

    @property
    def data_source(self) -> Path | None:
        if not self.data.source:
            return None
        path = Path(os.path.expanduser(self.data.source))
        return path if path.is_absolute() else (self.base_dir / path).resolve()

    def relative_to_file(self, text: str) -> Path | None:
        """A path named in grading.toml: relative to the file's folder; None for ""."""
        if not text:
            return None
        path = Path(os.path.expanduser(text))
        return path if path.is_absolute() else (self.base_dir / path).resolve()

    @property
    def roster_path(self) -> Path | None:
        """The course's list of students (`[cms] roster`, or `--roster`), or None."""
        return self.relative_to_file(self.cms.roster)

    def with_roster(self, path: str | Path | None) -> Config:
        """The configuration with `--roster FILE` (relative to the current folder) in place of
        `[cms] roster`; unchanged for None. The fingerprint stays: a roster changes no verdict."""
        if path is None:
            return self
        cms = self.cms.model_copy(update={"roster": str(Path(path).expanduser().resolve())})
        return self.model_copy(update={"cms": cms})

    @property
    def kernel_python(self) -> str:
        return self.run.kernel_python or sys.executable

    @property
    def worker_count(self) -> int:
        return self.run.workers or max(1, os.cpu_count() or 1)


def _key(loc: tuple) -> str:
    return ".".join(str(part) for part in loc if part != "__root__")


def load_config(path: Path | str | None = None, *, sheet: str | None = None) -> Config:
    """Read `path` (default: ./grading.toml; built-in defaults when there is none). `sheet` (the
    command's --sheet) names the sheet instead of [sheet] name."""
    if path is None:
        candidate = Path("grading.toml")
        if not candidate.exists():
            return config_from_dict(
                {"sheet": {"name": sheet}} if sheet else {}, source="the built-in defaults", base_dir=Path.cwd()
            )
        path = candidate
    path = Path(path)
    try:
        raw_bytes = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration ({exc.strerror or exc})") from exc
    try:
        raw = tomllib.loads(raw_bytes.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    if sheet:
        choice = raw.get("sheet") if isinstance(raw.get("sheet"), dict) else {}
        raw["sheet"] = {**choice, "name": sheet}
    return config_from_dict(raw, source=str(path), base_dir=path.resolve().parent)


# Keys whose value belongs to a machine, not to the grading: the tutors' file names where their copy
# of the data is (the students' checker has none and uses the generated stand-in), and where the
# course's list of students is (the checker never sees it).
MACHINE_KEYS = ("data.source", "cms.roster")


def _flatten(values: dict, prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = list(value) if isinstance(value, tuple) else value
    return flat


def differences_from_defaults(config: Config) -> list[str]:
    """Every key whose value in `config` differs from the built-in default for its sheet, as "key:
    file X, code Y".

    The students' checker runs without the tutors' grading.toml, on the built-in defaults of the
    sheet its wheel was built for: the two must agree (apart from MACHINE_KEYS) for a check to give
    the same statuses and points as the grading. `make student-package` refuses to build otherwise."""
    ours = _flatten(config.model_dump(by_alias=True))
    defaults = _flatten(
        config_from_dict(
            {"sheet": {"name": config.sheet.name, "path": config.sheet.path}}, base_dir=config.base_dir
        ).model_dump(by_alias=True)
    )
    problems = []
    for key in sorted(set(ours) | set(defaults)):
        if key in MACHINE_KEYS:
            continue
        if ours.get(key) != defaults.get(key):
            problems.append(f"{key}: the file says {ours.get(key)!r}, the code's default is {defaults.get(key)!r}")
    return problems


def config_from_dict(raw: dict, *, source: str = "<config>", base_dir: Path | None = None) -> Config:
    try:
        config = Config.model_validate(raw, context={"base_dir": base_dir})
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = _key(err["loc"])
            if not key:  # the sheet's checks and exercises (their messages name the key)
                problems.append(str(err["msg"]).removeprefix("Value error, "))
            elif err["type"] == "extra_forbidden":
                problems.append(f"unknown key '{key}'")
            else:
                value = err.get("input")
                shown = "" if isinstance(value, dict) else f" (got {value!r})"
                problems.append(f"'{key}': {err['msg']}{shown}")
        raise ConfigError(f"{source}: " + "; ".join(problems)) from exc
    return config.model_copy(update={"base_dir": base_dir or Path.cwd(), "fingerprint": grading_fingerprint(config)})


# What changes no verdict and no automatic point: the CSV format, the course's list of students and
# the import settings (applied when the outputs are written, on every run), and how many workers run.
# A tutor who sets them in week three must not regrade the course.
NOT_GRADING: dict[str, Any] = {"cms": True, "run": {"workers"}}


def grading_fingerprint(config: Config) -> str:
    """A hash of the settings that decide a report: the validated values (not the file's bytes, so a
    comment or the order of keys changes nothing), without NOT_GRADING."""
    values = config.model_dump(mode="json", by_alias=True, exclude=NOT_GRADING)
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode("utf-8")).hexdigest()
