"""grading.toml: the shipped file is valid, and every kind of mistake names its key."""

from pathlib import Path

import pytest

from grader.config import ConfigError, config_from_dict, load_config
from grader.sheets.sheet6 import SHEET

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_configuration_is_valid_and_matches_the_sheet():
    config = load_config(ROOT / "grading.toml")
    points = config.exercises.points
    assert sum(v for k, v in points.items() if k not in config.exercises.bonus) == pytest.approx(10.0)
    assert points["6.7"] == 1.5 and config.exercises.bonus == ("6.7",)
    assert sum(config.checks.points(c) for c in SHEET.check_ids) == pytest.approx(1.5)
    assert config.sheet_settings.learning_rate == 0.001 and config.sheet_settings.epochs == 5
    assert len(config.fingerprint) == 64


def test_there_is_no_default_sheet():
    """No sheet named: nothing to grade, and a clear message; [checks] or [exercises] without a sheet are errors."""
    config = config_from_dict({}, source="grading.toml")
    with pytest.raises(
        ConfigError, match=r"no sheet is named: set \[sheet\] name in grading.toml .* or pass --sheet NAME"
    ):
        _ = config.sheet_def  # a property: reading it raises
    with pytest.raises(ConfigError, match=r"\[checks\] without a sheet"):
        config_from_dict({"checks": {"dataset.len": 0.25}}, source="grading.toml")


def test_the_sheet_option_names_the_sheet_instead_of_the_file(tmp_path, monkeypatch):
    path = tmp_path / "grading.toml"
    path.write_text('[sheet]\nname = "sheet6"\n[limits]\nmemory_mb = 4000\n')
    assert load_config(path, sheet="sheet5").sheet_def.name == "sheet5"
    assert load_config(path, sheet="sheet5").fingerprint != load_config(path).fingerprint
    monkeypatch.chdir(tmp_path / "..")  # no grading.toml here: the built-in defaults of the sheet named
    assert not Path("grading.toml").exists() and load_config(sheet="sheet5").exercises.points["5.4"] == 3.0
    with pytest.raises(ConfigError, match=r"unknown key 'sheet.settings.learning_rate' \(sheet5 has no settings\)"):
        load_config(ROOT / "grading.toml", sheet="sheet5")  # Sheet 6's settings do not fit Sheet 5


def test_the_sheets_settings_are_validated_and_old_tolerance_keys_still_read():
    sheet6 = {"sheet": {"name": "sheet6"}}
    assert config_from_dict({**sheet6, "tolerance": {"learning_rate": 0.01}}).sheet_settings.learning_rate == 0.01
    with pytest.raises(ConfigError, match=r"unknown key 'sheet.settings.epoch' \(sheet6 has learning_rate, epochs\)"):
        config_from_dict({"sheet": {"name": "sheet6", "settings": {"epoch": 5}}}, source="grading.toml")
    with pytest.raises(ConfigError, match=r"'sheet.settings.epochs': Input should be greater than 0"):
        config_from_dict({"sheet": {"name": "sheet6", "settings": {"epochs": 0}}}, source="grading.toml")
    with pytest.raises(ConfigError, match=r"unknown key 'sheet.settings.epochs' \(sheet5 has no settings\)"):
        config_from_dict({"sheet": {"name": "sheet5", "settings": {"epochs": 5}}}, source="grading.toml")
    with pytest.raises(ConfigError, match="unknown key 'tolerance.learning_rate'"):  # Sheet 5 has no such setting
        config_from_dict({"sheet": {"name": "sheet5"}, "tolerance": {"learning_rate": 1}}, source="grading.toml")


def test_relative_data_source_is_relative_to_the_file(tmp_path):
    (tmp_path / "grading.toml").write_text('[data]\nsource = "data/fm"\n')
    assert load_config(tmp_path / "grading.toml").data_source == (tmp_path / "data/fm").resolve()


@pytest.mark.parametrize(
    "raw, words",
    [
        ({"limits": {"cell_timeout": 5}}, ["unknown key", "limits.cell_timeout"]),
        ({"limtis": {}}, ["unknown key", "limtis"]),
        ({"limits": {"memory_mb": -1}}, ["limits.memory_mb", "greater than 0", "-1"]),
        ({"limits": {"memory_mb": "lots"}}, ["limits.memory_mb", "'lots'"]),
        ({"run": {"sandbox": "docker"}}, ["run.sandbox", "'docker'"]),
        ({"sheet": {"name": "sheet6"}, "checks": {"baseline.forwrd": 0.25}}, ["unknown key", "checks.baseline.forwrd"]),
        ({"sheet": {"name": "sheet6"}, "exercises": {"6.8": 1}}, ["exercises", "6.8"]),
        ({"naming": {"min_members": 4, "max_members": 3}}, ["naming", "min_members"]),
        ({"data": {"train_size": 70000}}, ["data.train_size", "60000"]),
        ({"tolerance": {"accuracy_margin": 2}}, ["tolerance.accuracy_margin"]),
        (
            {"sheet": {"name": "sheet6"}, "cms": {"import_points": "bonus"}},
            ["cms.import_points", "'bonus'", "total+bonus", "6.6"],
        ),
        ({"cms": {"import_points": "5.4"}}, ["cms.import_points", "'5.4' is an exercise of no sheet"]),
        ({"cms": {"roster": 3}}, ["cms.roster", "3"]),
    ],
)
def test_wrong_values_are_errors_naming_the_key(raw, words):
    with pytest.raises(ConfigError) as err:
        config_from_dict(raw, source="grading.toml")
    message = str(err.value)
    assert message.startswith("grading.toml:")
    for word in words:
        assert word in message


def test_broken_toml_names_the_file(tmp_path):
    path = tmp_path / "grading.toml"
    path.write_text("[limits\nmemory_mb = 1\n")
    with pytest.raises(ConfigError, match="grading.toml: not valid TOML"):
        load_config(path)


def test_missing_file_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.toml: cannot read"):
        load_config(tmp_path / "nope.toml")


def test_different_files_have_different_fingerprints(tmp_path):
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    a.write_text("[limits]\nmemory_mb = 4000\n")
    b.write_text("[limits]\nmemory_mb = 4001\n")
    assert load_config(a).fingerprint != load_config(b).fingerprint


def test_the_code_defaults_are_the_tutors_values():
    """The students' checker has no grading.toml and runs on the code's defaults: every key but the
    machine's data folder and the course's list of students must be what the tutors grade with
    (`make student-package` refuses too)."""
    from grader.config import MACHINE_KEYS, differences_from_defaults

    assert differences_from_defaults(load_config(ROOT / "grading.toml")) == []
    assert MACHINE_KEYS == ("data.source", "cms.roster")


def test_a_roster_is_no_difference_for_the_students_checker(tmp_path):
    from grader.config import differences_from_defaults

    path = tmp_path / "grading.toml"
    path.write_text(
        (ROOT / "grading.toml").read_text(encoding="utf-8").replace('roster = ""', 'roster = "students.csv"'),
        encoding="utf-8",
    )
    config = load_config(path)
    assert config.cms.roster == "students.csv" and differences_from_defaults(config) == []


def test_a_difference_from_the_defaults_is_named(tmp_path):
    from grader.config import differences_from_defaults

    path = tmp_path / "grading.toml"
    path.write_text(
        (ROOT / "grading.toml").read_text(encoding="utf-8").replace("accuracy_margin = 0.15", "accuracy_margin = 0.2"),
        encoding="utf-8",
    )
    assert differences_from_defaults(load_config(path)) == [
        "tolerance.accuracy_margin: the file says 0.2, the code's default is 0.15"
    ]


def test_a_wheel_built_for_a_sheet_defaults_to_it(tmp_path, monkeypatch):
    """A students' wheel carries grader/built_for.json (setup.py): without grading.toml, and without
    --sheet, that is the sheet; [sheet] name in a grading.toml still wins."""
    import grader.sheet

    built_for = tmp_path / "built_for.json"
    built_for.write_text('{"sheet": "sheet5"}', encoding="utf-8")
    monkeypatch.setattr(grader.sheet, "BUILT_FOR", built_for)
    monkeypatch.chdir(tmp_path)
    assert load_config().sheet_def.name == "sheet5"
    assert load_config(sheet="sheet6").sheet_def.name == "sheet6"
    (tmp_path / "grading.toml").write_text('[sheet]\nname = "sheet6"\n', encoding="utf-8")
    assert load_config().sheet_def.name == "sheet6"
    built_for.write_text("not json", encoding="utf-8")
    assert grader.sheet.built_in_sheet() == ""


def test_settings_that_decide_no_verdict_do_not_regrade(tmp_path):
    """A tutor who adds the roster, changes the CSV format or the workers, or writes a comment, in
    week three: the reports stay current (same fingerprint). A grading setting still regrades."""
    base = tmp_path / "grading.toml"
    base.write_text("[limits]\nmemory_mb = 4000\n")
    later = tmp_path / "later.toml"
    later.write_text(
        "# week 3: the course's list of students\n[run]\nworkers = 3\n[limits]\nmemory_mb = 4000\n"
        "[cms]\nroster = 'students.csv'\ndelimiter = ';'\ndecimal = ','\nimport_pending = true\n"
    )
    assert load_config(later).fingerprint == load_config(base).fingerprint
    graded_otherwise = tmp_path / "other.toml"
    graded_otherwise.write_text("[limits]\nmemory_mb = 4000\n[run]\nsandbox = 'none'\n")
    assert load_config(graded_otherwise).fingerprint != load_config(base).fingerprint
