"""Tutors' points, cms.csv, feedback pages, summary.html and similar work, on reports built by hand
(no kernels)."""

from __future__ import annotations

import csv
import io
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest

from grader.config import config_from_dict, load_config
from grader.errors import ManualPointsError
from grader.models import (
    CellError,
    CheckResult,
    DataInfo,
    ExecutionInfo,
    GraderInfo,
    Override,
    Report,
    SubmissionInfo,
    TeamMember,
    Violation,
)
from grader.report.cms import cms_rows, write_cms_csv
from grader.report.feedback import accuracy_chart, feedback_html, write_feedback
from grader.report.manual import apply_manual
from grader.report.manual_points import (
    MANUAL_POINTS_NAME,
    manual_points_columns,
    merge_manual_points,
    read_manual_points,
    write_manual_points,
)
from grader.report.outputs import merge_outputs, write_batch_outputs
from grader.report.overview import overview_html
from grader.report.score import build_report
from grader.report.similarity import similar_pairs
from grader.report.store import read_report, write_report
from grader.sheets.sheet6 import SHEET
from grader.sheets.sheet6 import SHEET as SHEET6

ROOT = Path(__file__).resolve().parents[1]
CONFIG = load_config(ROOT / "grading.toml")
DATA = DataInfo(kind="generated", description="stand-in data", train_size=600, test_size=100, fingerprint="fp-test")
CALIBRATION = {
    "baseline": [[0.6, 0.7, 0.74, 0.77, 0.79], [0.62, 0.71, 0.75, 0.78, 0.8]],
    "batchnorm": [[0.75, 0.8, 0.82, 0.83, 0.84], [0.76, 0.8, 0.83, 0.84, 0.85]],
}


def make_report(
    members: list[tuple[str, str]],
    *,
    failing: tuple[str, ...] = (),
    review: tuple[str, ...] = (),
    status: str = "ok",
    violations: list[Violation] | None = None,
    stem: str | None = None,
    accuracies: dict | None = None,
) -> tuple[str, Report]:
    stem = stem or "_".join(f"{name}_{sid}" for name, sid in members)
    checks = []
    for check_id in SHEET.check_ids:
        max_points = CONFIG.checks.points(check_id)
        state = "fail" if check_id in failing else "needs_review" if check_id in review else "pass"
        checks.append(
            CheckResult(
                id=check_id,
                exercise="6.6",
                status=state,
                points=max_points if state == "pass" else 0.0,
                max_points=max_points,
                message=f"{check_id}: {state}",
            )
        )
    errors = [CellError(cell=7, ename="ZeroDivisionError", evalue="division by zero")] if status == "errors" else []
    report = build_report(
        submission=SubmissionInfo(
            file=f"{stem}.zip",
            stem=stem,
            sha256="0" * 64,
            kind="zip",
            team=[TeamMember(name=n, student_id=s) for n, s in members],
        ),
        violations=violations or [],
        execution=ExecutionInfo(
            status=status,
            duration_s=3.2,
            cells_run=9,
            cells_total=9,
            errors=errors,
            notes=["ran without isolation"],
            data=DATA,
        ),
        checks=checks,
        config=CONFIG,
        grader=GraderInfo(version="0.1.0", grader_hash="g", config_hash="c"),
        evidence={"6.3": ["key: h = (9, 0) ...", "the PDF mentions h = (9, 0)"]},
        accuracies=accuracies
        if accuracies is not None
        else {"baseline": [0.55, 0.66, 0.72, 0.75, 0.78], "batchnorm": [0.7, 0.78, 0.81, 0.83, 0.84]},
    )
    return stem, report


ALICE = make_report([("Anna Äpfel", "7000001"), ("Bernd Brot", "0700002")])
BOB = make_report(
    [("Carla Chen", "7000003"), ("Dieter Dörr", "7000004"), ("Eva Ernst", "7000005")],
    failing=("baseline.forward",),
    review=("baseline.accuracies",),
)
REPORTS = [ALICE, BOB]


def german(config=CONFIG):
    raw = config.model_dump()
    raw.setdefault("cms", {})
    try:
        return config_from_dict({**raw, "cms": {"delimiter": ";", "decimal": ","}})
    except Exception:  # no [cms] section in the configuration yet: the same settings, by attribute

        class WithCms:
            def __init__(self, inner):
                self._inner = inner
                self.cms = type("Cms", (), {"delimiter": ";", "decimal": ",", "bom": True})()

            def __getattr__(self, name):
                return getattr(self._inner, name)

        return WithCms(config)


def sheet_text(header: list[str], rows: list[list[str]], delimiter: str = ",") -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def fill(path: Path, values: dict[str, dict[str, str]]) -> None:
    """Fill cells of the sheet like a tutor: {stem: {column prefix: value}}."""
    text = path.read_text(encoding="utf-8-sig")
    delimiter = ";" if text.split("\n")[0].count(";") else ","
    rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    header = rows[0]
    for row in rows[1:]:
        for prefix, value in values.get(row[0], {}).items():
            index = next(i for i, h in enumerate(header) if h.startswith(prefix))
            row[index] = value
    path.write_text(sheet_text(header, rows[1:], delimiter), encoding="utf-8")


FULL = {
    "6.1": "3,5",
    "6.2": "1.25",
    "6.3 (": "0.5",
    "6.4": "1",
    "6.5": "1",
    "6.6 part 3": "0.25",
    "6.7": "0,75",
    "comment": "Gut gemacht <b>!</b>",
}


# ---------------------------------------------------------------- the sheet's errors


def write_sheet(tmp_path: Path, rows: list[list[str]], header: list[str] | None = None, delimiter=",") -> Path:
    path = tmp_path / MANUAL_POINTS_NAME
    path.write_text(sheet_text(header or manual_points_columns(CONFIG), rows, delimiter), encoding="utf-8")
    return path


def row(stem: str, **cells: str) -> list[str]:
    header = manual_points_columns(CONFIG)
    out = [""] * len(header)
    out[0] = stem
    for prefix, value in cells.items():
        prefix = prefix.replace("_", ".").replace("part3", " part 3").replace("override.", "override ")
        out[next(i for i, h in enumerate(header) if h.startswith(prefix))] = value
    return out


@pytest.mark.parametrize(
    "cells, words",
    [
        ({"6.1": "4"}, ["line 2", ALICE[0], "'6.1 (max 3.75)'", "above the maximum 3.75"]),
        ({"6.2": "-0.5"}, ["line 2", ALICE[0], "'6.2 (max 1.25)'", "negative"]),
        ({"6.4": "viel"}, ["line 2", ALICE[0], "'6.4 (max 1.5)'", "'viel' is not a number"]),
        ({"6.5": "1,5,0"}, ["'6.5 (max 1)'", "not a number"]),
        ({"6.6part3": "0.5"}, ["'6.6 part 3 (max 0.25)'", "above the maximum 0.25"]),
        ({"override.baseline.forward": "0.3"}, ["'override baseline.forward (max 0.25)'", "above the maximum 0.25"]),
        ({"6.7": "nan"}, ["'6.7 bonus (max 1.5)'", "not a number"]),
    ],
)
def test_a_bad_value_names_line_team_and_column(tmp_path, cells, words):
    path = write_sheet(tmp_path, [row(ALICE[0], **cells), row(BOB[0])])
    with pytest.raises(ManualPointsError) as info:
        read_manual_points(path, REPORTS, CONFIG)
    assert len(info.value.problems) == 1
    for word in words:
        assert word in str(info.value)


def test_unknown_team_and_unknown_columns_are_named(tmp_path):
    header = manual_points_columns(CONFIG) + ["6.8 (max 1)", "bonus points"]
    rows = [row(ALICE[0]) + ["", ""], row("Nobody_7999999_Else_7999998") + ["", ""]]
    path = write_sheet(tmp_path, rows, header)
    with pytest.raises(ManualPointsError) as info:
        read_manual_points(path, REPORTS, CONFIG)
    message = str(info.value)
    assert "unknown column" in message and "'6.8 (max 1)'" in message and "'bonus points'" in message
    assert "line 3 (team 'Nobody_7999999_Else_7999998')" in message and "unknown team" in message


def test_all_errors_are_collected_in_one_exception(tmp_path):
    path = write_sheet(
        tmp_path, [row(ALICE[0], **{"6.1": "9", "6.2": "x"}), row(BOB[0], **{"6.3 (": "-1"}), row(ALICE[0])]
    )
    with pytest.raises(ManualPointsError) as info:
        read_manual_points(path, REPORTS, CONFIG)
    problems = info.value.problems
    assert len(problems) == 4, problems
    assert any("line 3" in p and BOB[0] in p for p in problems)
    assert any("line 4" in p and "already has a row (line 2)" in p for p in problems)


def test_decimal_comma_and_empty_cells_and_a_semicolon_sheet(tmp_path):
    path = write_sheet(tmp_path, [row(ALICE[0], **{"6.1": "3,75", "6.2": " 1.0 "}), row(BOB[0])], delimiter=";")
    entries = read_manual_points(path, REPORTS, CONFIG)
    assert entries[ALICE[0]].points == {"6.1": 3.75, "6.2": 1.0}
    assert entries[BOB[0]].points == {}


def test_unquoted_decimal_comma_in_a_comma_sheet_is_explained(tmp_path):
    path = tmp_path / MANUAL_POINTS_NAME
    header = ",".join(manual_points_columns(CONFIG))
    path.write_text(header + "\n" + ALICE[0] + ",,,3,5" + "," * (len(manual_points_columns(CONFIG)) - 4) + "\n")
    with pytest.raises(ManualPointsError, match="decimal comma"):
        read_manual_points(path, REPORTS, CONFIG)


def test_a_decomposed_umlaut_stem_matches(tmp_path):
    import unicodedata

    path = write_sheet(tmp_path, [row(unicodedata.normalize("NFD", ALICE[0]), **{"6.1": "1"})])
    assert read_manual_points(path, REPORTS, CONFIG)[ALICE[0]].points == {"6.1": 1.0}


# ---------------------------------------------------------------- applying


def test_apply_sets_points_overrides_and_completeness(tmp_path):
    path = write_sheet(
        tmp_path,
        [
            row(
                BOB[0],
                **{
                    "6.1": "3",
                    "6.2": "1",
                    "6.3 (": "0.75",
                    "6.4": "1.5",
                    "6.5": "1",
                    "6.6part3": "0.25",
                    "6.7": "1.5",
                    "override.baseline.forward": "0.25",
                },
            )
        ],
    )
    entry = read_manual_points(path, REPORTS, CONFIG)[BOB[0]]
    report = apply_manual(BOB[1], entry, CONFIG)
    checks = {c.id: c for c in report.checks}
    assert checks["baseline.forward"].override == Override(automatic=0.0, tutor=0.25)
    assert checks["baseline.forward"].points == 0.25
    # baseline.accuracies asked for a review and has no override: 6.6 stays pending
    six = next(e for e in report.exercises if e.id == "6.6")
    assert six.points is None and not report.total.complete
    assert report.total.points == pytest.approx(3 + 1 + 0.75 + 1.5 + 1 + 1.25)

    fill(path, {BOB[0]: {"override baseline.accuracies": "0,25"}})
    report = apply_manual(BOB[1], read_manual_points(path, REPORTS, CONFIG)[BOB[0]], CONFIG)
    six = next(e for e in report.exercises if e.id == "6.6")
    assert six.points == pytest.approx(1.5 + 0.25)
    assert report.total.complete and report.total.points == pytest.approx(9.0) and report.total.bonus_points == 1.5
    # applying twice is the same as once, and no row takes the tutor's work out again
    again = apply_manual(report, read_manual_points(path, REPORTS, CONFIG)[BOB[0]], CONFIG)
    assert again.model_dump() == report.model_dump()
    undone = apply_manual(report, None, CONFIG)
    assert undone.model_dump(exclude={"graded_at"}) == BOB[1].model_dump(exclude={"graded_at"})


def test_round_trip_grade_fill_merge(tmp_path):
    for stem, report in REPORTS:
        write_report(report, tmp_path, stem)
    assert write_batch_outputs(REPORTS, tmp_path, CONFIG) == []
    sheet = tmp_path / MANUAL_POINTS_NAME
    assert sheet.read_bytes().startswith(b"\xef\xbb\xbf")
    cms = list(csv.reader(io.StringIO((tmp_path / "cms.csv").read_text(encoding="utf-8-sig"))))
    assert cms[0][:3] == ["student_id", "name", "team"] and len(cms) == 6
    assert next(r[0] for r in cms[1:]) == "0700002"  # leading zero kept
    assert '"0700002"' in (tmp_path / "cms.csv").read_text(encoding="utf-8-sig")
    assert all(r[3] == "" for r in cms[1:])  # pending exercises are empty

    fill(sheet, {ALICE[0]: FULL, BOB[0]: {"6.1": "2"}})
    warnings = write_batch_outputs([(s, read_report(tmp_path / f"{s}.json")) for s, _ in REPORTS], tmp_path, CONFIG)
    assert any("not completely graded" in w and BOB[0] in w for w in warnings)
    alice = read_report(tmp_path / f"{ALICE[0]}.json")
    assert alice.total.complete and alice.total.points == pytest.approx(3.5 + 1.25 + 0.5 + 1 + 1 + 1.75)
    assert alice.total.bonus_points == 0.75
    assert "Gut gemacht &lt;b&gt;!&lt;/b&gt;" in (tmp_path / "feedback" / f"{ALICE[0]}.html").read_text()
    rows = {
        r["student_id"]: r for r in csv.DictReader(io.StringIO((tmp_path / "cms.csv").read_text(encoding="utf-8-sig")))
    }
    assert rows["7000001"]["6.1"] == "3.5" and rows["7000001"]["total"] == "9" and rows["7000001"]["complete"] == "yes"
    assert rows["7000003"]["6.1"] == "2" and rows["7000003"]["6.2"] == "" and rows["7000003"]["complete"] == "no"
    assert rows["7000001"]["name"] == "Anna Äpfel"

    # the filled sheet survives another batch with a new team; the new row is added
    carl = make_report([("Fritz Fink", "7000006"), ("Gina Gans", "7000007")])
    write_report(carl[1], tmp_path, carl[0])
    reports = [(s, read_report(tmp_path / f"{s}.json")) for s, _ in [*REPORTS, carl]]
    write_batch_outputs(reports, tmp_path, CONFIG)
    entries = read_manual_points(sheet, reports, CONFIG)
    assert entries[ALICE[0]].points["6.1"] == 3.5 and entries[ALICE[0]].comment == "Gut gemacht <b>!</b>"
    assert carl[0] in entries
    # the sheet as the tutors filled it is kept, dated, before the grader wrote it again
    kept = sorted((tmp_path / "manual").glob("*-manual_points.csv"))
    assert any(
        "3,5" in p.read_text(encoding="utf-8-sig") and ALICE[0] in p.read_text(encoding="utf-8-sig") for p in kept
    ), [p.name for p in kept]


def test_german_cms_csv(tmp_path):
    config = german()
    write_manual_points(REPORTS, tmp_path, config)
    text = (tmp_path / MANUAL_POINTS_NAME).read_text(encoding="utf-8-sig")
    assert text.splitlines()[0].startswith("stem;team;student_ids;6.1 (max 3.75)")
    fill(tmp_path / MANUAL_POINTS_NAME, {ALICE[0]: FULL})
    entry = read_manual_points(tmp_path / MANUAL_POINTS_NAME, REPORTS, config)[ALICE[0]]
    reports = [(ALICE[0], apply_manual(ALICE[1], entry, config)), BOB]
    write_cms_csv(reports, tmp_path, config)
    raw = (tmp_path / "cms.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    lines = raw.decode("utf-8-sig").splitlines()
    assert lines[0] == "student_id;name;team;6.1;6.2;6.3;6.4;6.5;6.6;6.7;total;bonus;complete"
    alice = next(line for line in lines if line.startswith('"7000001"'))
    assert alice == f'"7000001";Anna Äpfel;{ALICE[0]};3,5;1,25;0,5;1;1;1,75;0,75;9;0,75;yes'
    bob = next(line for line in lines if line.startswith('"7000003"'))
    assert bob.endswith(";;;;;;;;1;0;no")  # 1.5 automatic minus the failed forward check, nothing else yet


def test_a_student_in_two_teams_is_left_out_of_cms_csv_and_listed(tmp_path):
    """Changed with issue 14: one such student used to stop cms.csv for the whole course (CmsError).
    Now everyone in exactly one team is written, and the student is listed with both teams."""
    twice = make_report([("Bernd Brot", "0700002"), ("Hans Huhn", "7000008")])
    rows, left_out = cms_rows([*REPORTS, twice], SHEET6.exercise_ids)
    assert [str(row[0]) for row in rows] == ["7000001", "7000003", "7000004", "7000005", "7000008"]
    message = left_out[0].message()
    assert "Bernd Brot (0700002)" in message and ALICE[0] in message and twice[0] in message
    assert "Decide which submission counts" in message
    warnings = write_batch_outputs([*REPORTS, twice], tmp_path, CONFIG)
    assert any("0700002" in w and ALICE[0] in w and twice[0] in w for w in warnings)
    lines = (tmp_path / "cms.csv").read_text(encoding="utf-8-sig").splitlines()
    assert [line.split(",")[0] for line in lines[1:]] == [
        '"7000001"',
        '"7000003"',
        '"7000004"',
        '"7000005"',
        '"7000008"',
    ]
    page = (tmp_path / "summary.html").read_text(encoding="utf-8")
    assert "Bernd Brot (0700002)" in page and "left out of cms.csv" in page


def test_merge_joins_the_shards_sheets(tmp_path):
    shard1, shard2, out = tmp_path / "s1", tmp_path / "s2", tmp_path / "out"
    for folder, item in ((shard1, ALICE), (shard2, BOB)):
        write_report(item[1], folder, item[0])
        write_batch_outputs([item], folder, CONFIG)
    fill(shard1 / MANUAL_POINTS_NAME, {ALICE[0]: {"6.1": "3"}})
    fill(shard2 / MANUAL_POINTS_NAME, {BOB[0]: {"6.2": "1"}})
    for stem, report in REPORTS:
        write_report(report, out, stem)
    merge_outputs([shard1, shard2], REPORTS, out, CONFIG)
    assert read_report(out / f"{ALICE[0]}.json").exercises[0].points == 3
    assert read_report(out / f"{BOB[0]}.json").exercises[1].points == 1
    # a conflicting value for the same cell is refused, naming both files
    fill(out / MANUAL_POINTS_NAME, {ALICE[0]: {"6.1": "2"}})
    with pytest.raises(ManualPointsError, match="6.1"):
        merge_manual_points([shard1 / MANUAL_POINTS_NAME], out / MANUAL_POINTS_NAME, CONFIG)


# ---------------------------------------------------------------- the pages


class Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.scripts = 0
        self.polylines: list[dict] = []
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attrs = dict(attrs)
        if tag == "script":
            self.scripts += 1
        if tag == "polyline":
            self.polylines.append(attrs)
        for name in ("src", "href"):
            if attrs.get(name, "").startswith(("http:", "https:", "//")):
                self.external.append(attrs[name])


HOSTILE = "<script>alert(1)</script>"


def test_feedback_escapes_a_hostile_team_and_draws_the_curves(tmp_path):
    stem, report = make_report(
        [(HOSTILE, "7000009"), ('Eve" onload="x', "7000010")],
        status="errors",
        stem="hostile",
        violations=[Violation(code="name.pattern", severity="error", message=f"bad name {HOSTILE}")],
    )
    report = report.model_copy(
        update={
            "execution": report.execution.model_copy(
                update={"errors": [CellError(cell=4, ename="ValueError", evalue=HOSTILE)]}
            )
        }
    )
    path = write_feedback(report, tmp_path, CALIBRATION, stem=stem, sheet=SHEET6)
    text = path.read_text(encoding="utf-8")
    assert HOSTILE not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert 'onload="x' not in text
    parser = Collector()
    parser.feed(text)
    assert parser.scripts == 0 and not parser.external
    assert "svg" in parser.tags
    assert len([p for p in parser.polylines if p.get("class") == "team"]) == 2
    assert len([p for p in parser.polylines if p.get("class") == "reference"]) == 2
    assert "cell 4" in text and "the PDF mentions" not in text and "key:" not in text  # no 6.3 key for students


def test_chart_without_accuracies_still_renders():
    svg = accuracy_chart({}, None, sheet=SHEET6)
    assert svg.startswith("<svg") and "no accuracies were recorded" in svg
    svg = accuracy_chart({"baseline": [float("nan"), 0.5, 0.6]}, None, sheet=SHEET6)
    assert "<polyline" in svg and "nan" not in svg


def test_overview_lists_problems_key_and_pairs():
    broken = make_report(
        [("Ida Igel", "7000011"), ("Jan Jung", "7000012")],
        status="errors",
        violations=[Violation(code="identity.mismatch", severity="warning", message="not in PDF")],
    )
    text = overview_html([*REPORTS, broken], key="key: h = (9, 0)", pairs=[], sheet=SHEET6)
    parser = Collector()
    parser.feed(text)
    assert parser.scripts == 0 and "svg" in parser.tags and "rect" in parser.tags
    assert "identity.mismatch" in text and "execution errors (cell 7: ZeroDivisionError)" in text
    assert "baseline.accuracies needs review" in text and "key: h = (9, 0)" in text
    assert "the PDF mentions h = (9, 0)" in text


# ---------------------------------------------------------------- similar work


def notebook(*sources: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Sheet 6")] + [nbformat.v4.new_code_cell(s) for s in sources]
    return nb


SETUP = "import torch\nimport torch.nn as nn\nfashion_train_loader = make_loader(64)"
CODE = """class FashionNetwork(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
        self.loss = nn.CrossEntropyLoss()
        self.opt = torch.optim.SGD(self.parameters(), lr=0.001)

    def forward(self, x):
        return self.layers(x.view(-1, 784))
"""
OTHER = """class FashionNetwork(nn.Module):
    def __init__(self):
        super(FashionNetwork, self).__init__()
        self.fc1 = nn.Linear(28 * 28, 64)
        self.fc2 = nn.Linear(64, 32)
        self.out = nn.Linear(32, 10)

    def forward(self, images):
        flat = torch.flatten(images, start_dim=1)
        return self.out(torch.relu(self.fc2(torch.relu(self.fc1(flat)))))
"""


def test_similar_pairs_ignore_comments_layout_and_the_template():
    copied = "# my own work!\n" + CODE.replace("    ", "  ").replace("(784, 64)", "(784,64)").replace(
        "super().__init__()", "super().__init__()  # first the parent"
    )
    notebooks = {
        "a": notebook(SETUP, CODE),
        "b": notebook(SETUP, copied),
        "c": notebook(SETUP, OTHER),
        "d": notebook(SETUP),
        "e": notebook(SETUP),
    }
    pairs = similar_pairs(notebooks, notebook(SETUP), threshold=0.9)
    assert [(p.a, p.b) for p in pairs] == [("a", "b")]
    assert pairs[0].score == 1.0 and pairs[0].shared_cells[0].cell_a == 3
    assert similar_pairs(notebooks, None, threshold=0.9)[0].a == "a"


def _example_notebooks() -> dict[str, nbformat.NotebookNode]:
    """The example submissions' notebooks and the test notebooks of correct solutions."""
    import zipfile

    found = {}
    for path in sorted((ROOT / "submissions").glob("*.zip")):
        with zipfile.ZipFile(path) as archive:
            name = next(n for n in archive.namelist() if n.endswith(".ipynb"))
            found[path.stem] = nbformat.reads(archive.read(name).decode("utf-8"), as_version=4)
    for path in sorted((ROOT / "tests" / "notebooks").glob("*.ipynb")):
        found[path.stem] = nbformat.read(path, as_version=4)
    return found


def _renamed_and_reordered(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """What a copier does: every own name renamed, numbers and comments changed, cells reordered."""
    import re

    copy = nbformat.from_dict(nb)
    renames = {
        "FashionNetwork": "MyNet",
        "fc1": "first",
        "fc2": "second",
        "fc3": "third",
        "optimizer": "opt",
        "train_loader": "tl",
        "test_loader": "vl",
        "accuracies": "history",
        "epoch": "ep",
        "images": "xb",
        "labels": "yb",
        "outputs": "pred",
        "loss": "objective",
        "correct": "hits",
        "total": "seen",
        "fashion_network": "net",
        "x": "inp",
        "self": "me",
    }
    for cell in copy.cells:
        if cell.cell_type == "code":
            for old, new in renames.items():
                cell.source = re.sub(rf"\b{old}\b", new, cell.source)
            cell.source = "# written by us\n" + re.sub(r"#.*", "", cell.source).replace("64", "96")
    copy.cells = copy.cells[::-1]
    return copy


def test_similarity_sees_through_renaming_and_reordering_but_not_independent_solutions():
    template = nbformat.read(ROOT / "reference" / "template.ipynb", as_version=4)
    notebooks = _example_notebooks()
    assert len(notebooks) >= 13
    # A copy with every name renamed and the cells reversed is flagged...
    original = "correct_a_attributes_functional_relu"
    copier = _renamed_and_reordered(notebooks[original])
    pairs = similar_pairs({original: notebooks[original], "copier": copier}, template)
    assert [{p.a, p.b} for p in pairs] == [{original, "copier"}]
    assert pairs[0].score >= 0.95
    cells = len(notebooks[original].cells)
    assert any(s.cell_b == cells + 1 - s.cell_a for s in pairs[0].shared_cells), pairs[0].shared_cells
    # ...also among all the others; the examples (the solution with one edit each: the course's own
    # code) and the test notebooks are not, and neither are the examples alone, fewer than the
    # batch size from which what most notebooks share counts as the task's idiom.
    course_code = [nbformat.read(ROOT / "reference" / "solution.ipynb", as_version=4)]
    examples = {stem: nb for stem, nb in notebooks.items() if not stem.startswith("correct_")}
    assert similar_pairs(examples, template, course_code=course_code) == []
    assert similar_pairs(notebooks, template, course_code=course_code) == []
    pairs = similar_pairs({**notebooks, "copier": copier}, template, course_code=course_code)
    assert [{p.a, p.b} for p in pairs] == [{original, "copier"}]


def test_an_override_written_by_schema_1_0_is_read_as_data():
    """Reports written before overrides were data said "tutor: 0.25 → 0"; they still validate."""
    check = CheckResult.model_validate(
        {
            "id": "baseline.forward",
            "exercise": "6.6",
            "status": "fail",
            "points": 0,
            "max_points": 0.25,
            "message": "m",
            "override": "tutor: 0.25 → 0",
        }
    )
    assert check.override == Override(automatic=0.25, tutor=0.0)


def test_feedback_says_a_verdict_every_check_shares_once():
    _, report = make_report([("Anna Äpfel", "7000001")], failing=SHEET.check_ids)
    line = "The notebook is still the template: nothing to check."
    same = report.model_copy(update={"checks": [c.model_copy(update={"message": line}) for c in report.checks]})
    page = feedback_html(same, None, SHEET6)
    assert page.count(line) == 1 and f"all {len(SHEET.check_ids)} checks" in page
    assert "<code>baseline.architecture</code>" not in page
    # A tutor's override is per check: then every check has its row again.
    first = same.checks[0].model_copy(update={"override": Override(automatic=0.0, tutor=0.25)})
    page = feedback_html(same.model_copy(update={"checks": [first, *same.checks[1:]]}), None, SHEET6)
    assert "<code>baseline.architecture</code>" in page and page.count(line) == len(SHEET.check_ids)
