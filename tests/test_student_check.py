"""`grader check` as a student meets it: what it refuses, the advice it gives, the three-level verdict
and its exit status, what it leaves out of the report (the tutors' material), and that it runs where
Linux-only modules do not exist (macOS, Windows)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import ROOT, SHEET6_HINTS, needs_torch
from intake_corpus import make_pdf
from rich.console import Console

from grader.commands.check import (
    EXIT_UNCHECKED,
    FINE,
    LOSES_POINTS,
    TUTORS_MAY_DEDUCT,
    CheckInput,
    check_path,
    print_verdict,
    student_report,
    upload_advice,
    verdict,
)
from grader.config import Naming
from grader.intake.naming import complete_from_files
from grader.intake.types import Submission
from grader.models import (
    CellError,
    CheckResult,
    ExecutionInfo,
    ExerciseResult,
    GraderInfo,
    Report,
    SubmissionInfo,
    TeamMember,
    Total,
    Violation,
)
from grader.report.students import for_students
from grader.sheets.sheet6 import SHEET as SHEET6
from grader.sheets.sheet6.evidence import STUDENT_EVIDENCE, key_6_3, pdf_hints

CORRECT = "Erika_Mustermann_7012345_Jürgen_Müller_7054321.zip"
TEAM = (
    TeamMember(name="Erika Mustermann", student_id="7012345"),
    TeamMember(name="Jürgen Müller", student_id="7054321"),
)


def _report(
    *,
    statuses=("pass",) * 6,
    execution="ok",
    violations=(),
    team=TEAM,
    expected_name=None,
    file=CORRECT,
    errors=(),
    evidence=None,
    pdf="sheet.pdf",
) -> Report:
    checks = [
        CheckResult(
            id=f"c{i}",
            exercise="6.6",
            status=s,
            points=0.25 if s == "pass" else 0.0,
            max_points=0.25,
            message=f"message {i}",
        )
        for i, s in enumerate(statuses)
    ]
    exercises = [
        ExerciseResult(
            id=e,
            max_points=1.0,
            graded_by="tutor",
            evidence=list((evidence or {}).get(e, [])),
            comment="a tutor's note" if e == "6.1" else None,
        )
        for e in ("6.1", "6.2", "6.3", "6.4", "6.5", "6.6", "6.7")
    ]
    return Report(
        submission=SubmissionInfo(
            file=file,
            stem=Path(file).stem,
            sha256="0" * 64,
            kind="zip",
            team=list(team),
            expected_name=expected_name,
            pdf=pdf,
        ),
        violations=list(violations),
        execution=ExecutionInfo(
            status=execution,
            cells_run=6,
            cells_total=6,
            errors=list(errors),
            notes=[
                "the kernel ran without isolation (bubblewrap (bwrap) is not installed), with "
                "resource limits: it could read and write what the grader's user can, and "
                "reach the network"
            ],
        ),
        checks=checks,
        exercises=exercises,
        comment="the tutors' comment",
        total=Total(points=1.5, max_points=11.5, bonus_points=0, complete=False),
        grader=GraderInfo(version="0", grader_hash="0", config_hash="0"),
        graded_at="2025-01-01T00:00:00Z",
    )


def _printed(report: Report, given: CheckInput | None = None) -> str:
    console = Console(record=True, width=250, force_terminal=False)
    print_verdict(report, console, given, SHEET6)
    return console.export_text()


# ----------------------------------------------------------------------------- the verdict


@pytest.mark.parametrize(
    "report, level",
    [
        (_report(), FINE),
        (_report(statuses=("pass",) * 5 + ("fail",)), LOSES_POINTS),
        (_report(execution="errors"), LOSES_POINTS),
        (_report(statuses=("pass",) * 5 + ("needs_review",)), TUTORS_MAY_DEDUCT),
        (
            _report(
                execution="errors",
                statuses=("pass",) * 5 + ("needs_review",),
                violations=[Violation(code="environment.missing_module", severity="warning", message="x")],
            ),
            TUTORS_MAY_DEDUCT,
        ),
        (_report(execution="timeout", statuses=("pass",) * 5 + ("needs_review",)), TUTORS_MAY_DEDUCT),
        (
            _report(
                execution="errors",
                statuses=("pass",) * 5 + ("fail",),
                violations=[Violation(code="environment.missing_module", severity="warning", message="x")],
            ),
            LOSES_POINTS,
        ),
        (_report(violations=[Violation(code="name.pattern", severity="warning", message="x")]), TUTORS_MAY_DEDUCT),
        (_report(violations=[Violation(code="content.no_pdf", severity="warning", message="x")]), TUTORS_MAY_DEDUCT),
        (_report(violations=[Violation(code="archive.absolute_path", severity="warning", message="x")]), FINE),
    ],
    ids=[
        "fine",
        "failed check",
        "cell error",
        "needs review",
        "module the course lacks",
        "grader's time limit",
        "module the course lacks and a failed check",
        "name",
        "no pdf",
        "absolute paths taken off",
    ],
)
def test_the_verdict_separates_lost_points_from_what_tutors_may_deduct(report, level):
    assert verdict(report) == level
    text = _printed(report)
    shown = {FINE: "ready to upload", LOSES_POINTS: "would lose points", TUTORS_MAY_DEDUCT: "tutors may deduct"}
    assert shown[level] in text and sum(s in text for s in shown.values()) == 1, text


def test_a_naming_warning_alone_does_not_lose_points():
    report = _report(
        violations=[Violation(code="name.pattern", severity="warning", message="sheet6 final.zip: x")],
        expected_name=CORRECT,
        file="sheet6 final.zip",
    )
    text = _printed(report)
    assert "would lose points" not in text and f"rename the file to {CORRECT}" in text


def test_the_same_verdict_of_every_check_is_said_once():
    report = _report(statuses=("fail",) * 6, execution="errors")
    same = [
        c.model_copy(update={"message": "The notebook is still the template: nothing to check."}) for c in report.checks
    ]
    text = _printed(report.model_copy(update={"checks": same}))
    assert text.count("The notebook is still the template") == 1, text
    assert "✗ all 6 checks (0/1.5): The notebook is still the template" in text and "c0" not in text
    assert "would lose points: the notebook did not run through; all 6 checks (1.5)" in text
    # Different messages, or one a tutor overrode: check by check, as before.
    text = _printed(_report(statuses=("fail",) * 6))
    assert all(f"c{i} (0/0.25): message {i}" in text for i in range(6)), text


def test_cell_numbers_are_what_jupyter_shows():
    report = _report(execution="errors", errors=[CellError(cell=7, execution_count=4, ename="NameError", evalue="x")])
    text = _printed(report)
    assert "In [4]: NameError" in text and "cell 7" not in text


def test_student_strings_are_not_rich_markup():
    hostile = "[bold red]Erika[/] [link=http://evil]x[/link]"
    report = _report(
        team=(TeamMember(name=hostile, student_id="7012345"),),
        violations=[Violation(code="identity.mismatch", severity="warning", message=f"{hostile}: odd")],
        errors=[CellError(cell=1, execution_count=1, ename="ValueError", evalue=hostile)],
        execution="errors",
    )
    text = _printed(report)
    assert text.count(hostile) == 3, text


def test_the_isolation_note_does_not_alarm_a_student():
    text = _printed(student_report(_report(), SHEET6))
    assert "ran on your own machine without a sandbox, which is fine for a self-check" in text
    assert "could read and write" not in text and "without isolation" not in text


# ----------------------------------------------------------------------------- tutors' material


def test_the_students_report_leaves_out_the_key_and_the_tutors_notes():
    assert key_6_3() is not None, "the tutors' key (reference/tutors_key.json) is part of the repository"
    hints = pdf_hints("Exercise 6.3: h = (9, 0), z = (54, 18), class 1")
    assert "the PDF mentions h = (9, 0), logits (54, 18)" in hints["6.3"][1]
    report = _report(evidence={**hints, "6.6": ["part 3: 1 plot(s) in the executed notebook"]})
    shown = for_students(report, STUDENT_EVIDENCE)
    dumped = shown.model_dump_json()
    assert not re.search(r"54\D{1,3}18|\(9,\s*0\)|e-16|predicted class", dumped), dumped
    assert "a tutor's note" not in dumped and "the tutors' comment" not in dumped
    assert [e.evidence for e in shown.exercises if e.id == "6.6"] == [["part 3: 1 plot(s) in the executed notebook"]]


def test_without_the_tutors_key_there_is_no_6_3_evidence(monkeypatch):
    """The students' package has no tutors_key.json: no key, no hints, nothing to compare."""
    from grader.sheets.sheet6 import evidence

    monkeypatch.setattr(evidence, "tutors_key", lambda: None)
    assert evidence.pdf_hints("54, 18") == {} and evidence.key_6_3() is None


# ----------------------------------------------------------------------------- what is refused


def _check(path: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "grader", "check", *args, str(path)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "250"},
    )


def test_a_script_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "was-run"
    script = tmp_path / "Erika_Mustermann_7012345_Juergen_Mueller_7054321.py"
    script.write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    done = _check(script, cwd=tmp_path)
    assert done.returncode == EXIT_UNCHECKED
    assert "expected a .zip, a .ipynb notebook or a folder; found a Python script" in done.stdout
    assert "Nothing was run" in done.stdout and not marker.exists()


@pytest.mark.parametrize(
    "name, words",
    [
        ("sheet.pdf", "found a PDF alone"),
        ("notes.txt", "found a '.txt' file"),
        ("Erika_Mustermann_7012345.rar", "found a '.rar' file"),
    ],
)
def test_other_files_are_refused_with_what_was_expected(tmp_path, name, words):
    (tmp_path / name).write_bytes(b"%PDF-1.4\n" if name.endswith(".pdf") else b"x")
    done = _check(tmp_path / name, cwd=tmp_path)
    assert done.returncode == EXIT_UNCHECKED and words in done.stdout, done.stdout


def test_a_missing_path_and_an_empty_folder_are_refused(tmp_path):
    done = _check(tmp_path / "nope.zip", cwd=tmp_path)
    assert done.returncode == EXIT_UNCHECKED and "no such file or folder" in done.stdout
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "a.zip").write_bytes(b"")
    (tmp_path / "empty" / "b.zip").write_bytes(b"")
    done = _check(tmp_path / "empty", cwd=tmp_path)
    assert done.returncode == EXIT_UNCHECKED and "found 2 zip files (a.zip, b.zip)" in done.stdout, done.stdout


# ----------------------------------------------------------------------------- names to use


def _submission(filename: str, kind: str = "zip") -> Submission:
    from grader.intake.naming import parse_name

    parsed = parse_name(filename, Naming())
    return Submission(
        path=Path(filename),
        rel=filename,
        stem=parsed.stem,
        sha256="0",
        kind=kind,
        team=parsed.team,
        violations=parsed.violations,
        expected_name=parsed.expected_name,
        name_problems=parsed.problems,
    )


@pytest.mark.parametrize(
    "filename, expected",
    [
        # spaces for '_', one member in the name though the files name two
        ("erika mustermann 7012345.zip", "Erika_Mustermann_7012345_Jürgen_Müller_7054321.zip"),
        # one member, well written: the partner the files name is added
        ("Erika_Mustermann_7012345.zip", "Erika_Mustermann_7012345_Jürgen_Müller_7054321.zip"),
        # surname first, with commas
        ("Mustermann, Erika_7012345_Müller, Jürgen_7054321.zip", "Erika_Mustermann_7012345_Jürgen_Müller_7054321.zip"),
        # nothing in the name: the files' team
        ("sheet6 final.zip", "Erika_Mustermann_7012345_Jürgen_Müller_7054321.zip"),
        # right as it is
        (CORRECT, None),
    ],
)
def test_a_name_for_every_fixable_name(filename, expected):
    completed = complete_from_files(_submission(filename), TEAM, Naming())
    assert completed.expected_name == expected
    for v in completed.violations:  # the name's own messages say the same name, or none
        assert "expected name:" not in v.message or v.message.endswith(f"expected name: {expected}"), v.message


def test_a_bare_notebook_and_a_folder_are_told_to_zip():
    report = _report(file="Erika_Mustermann_7012345_Jürgen_Müller_7054321.ipynb", pdf=None)
    notebook = CheckInput(given=Path("x.ipynb"), kind="notebook", target=Path(report.submission.file), root=Path("."))
    assert upload_advice(report, notebook, SHEET6) == (f"zip it with your PDF (6.1-6.5, 6.7) as [bold]{CORRECT}[/]")
    folder = CheckInput(
        given=Path(CORRECT[:-4]),
        kind="folder",
        target=Path(CORRECT),
        root=Path("."),
        packed=("solution.ipynb", "sheet.pdf"),
    )
    advice = upload_advice(_report(), folder, SHEET6)
    assert (
        advice == f"zip these files of the folder (solution.ipynb, sheet.pdf) as [bold]{CORRECT}[/], and upload the zip"
    )
    assert "rename" not in _printed(_report(), folder)


# ----------------------------------------------------------------------------- real runs


def _student_setting(tmp_path: Path, monkeypatch) -> None:
    """As on a student's laptop: the wheel built for Sheet 6 (its built_for.json names the sheet), no
    grading.toml in the folder (the code's defaults), the shipped calibration (a copy: nothing is
    written into the repository)."""
    import grader.sheet

    calibration = tmp_path / "calibration.json"
    shutil.copy(ROOT / "reference" / "calibration.json", calibration)
    monkeypatch.setenv("GRADER_CALIBRATION", str(calibration))
    built_for = tmp_path / "built_for.json"
    built_for.write_text('{"sheet": "sheet6"}', encoding="utf-8")
    monkeypatch.setattr(grader.sheet, "BUILT_FOR", built_for)
    monkeypatch.chdir(tmp_path)


@pytest.mark.kernel
def test_a_correctly_named_folder_is_zipped_not_renamed(tmp_path, monkeypatch):
    _student_setting(tmp_path, monkeypatch)
    folder = tmp_path / CORRECT[:-4]
    folder.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("Erika Mustermann 7012345, Jürgen Müller 7054321"),
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_markdown_cell("# part 2"),
        nbformat.v4.new_code_cell("raise ValueError('on purpose')"),
    ]
    nbformat.write(nb, str(folder / "Assignment_6.ipynb"))
    make_pdf(folder / "sheet6.pdf", ["Erika Mustermann 7012345", "Jürgen Müller 7054321"])
    (folder / ".ipynb_checkpoints").mkdir()
    nbformat.write(nb, str(folder / ".ipynb_checkpoints" / "Assignment_6-checkpoint.ipynb"))
    (folder / "sheet6" / "share").mkdir(parents=True)  # the students' page's venv, made in the same folder
    (folder / "sheet6" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    nbformat.write(nb, str(folder / "sheet6" / "share" / "example.ipynb"))
    console = Console(record=True, width=250, force_terminal=False)
    code = check_path(folder, config_path=None, as_json=False, full=False, console=console)
    text = console.export_text()
    assert code == 1, text
    assert (
        f"upload: zip these files of the folder (Assignment_6.ipynb, sheet6.pdf) as {CORRECT}, and upload the zip"
        in text
    ), text
    assert "rename" not in text and "name.pattern" not in text
    assert "In [2]: ValueError: on purpose" in text  # the second code cell, the fourth cell
    assert "running cell In [2] of 2: raise ValueError('on purpose')" in text


@pytest.mark.kernel
def test_a_bare_notebook_is_told_to_zip_with_its_pdf(tmp_path, monkeypatch):
    _student_setting(tmp_path, monkeypatch)
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell(
            "Name: Erika Mustermann, Student ID: 7012345\n\nName: Jürgen Müller, Student ID: 7054321"
        ),
        nbformat.v4.new_code_cell("x = 1"),
    ]
    nbformat.write(nb, str(tmp_path / "Assignment_6.ipynb"))
    console = Console(record=True, width=250, force_terminal=False)
    check_path(tmp_path / "Assignment_6.ipynb", config_path=None, as_json=False, full=False, console=console)
    text = console.export_text()
    assert f"upload: zip it with your PDF (6.1-6.5, 6.7) as {CORRECT}" in text, text
    assert "rename" not in text


@pytest.mark.kernel
@needs_torch
def test_check_runs_without_linux_only_modules(tmp_path):
    """As on macOS or Windows: the grader's process has no resource, fcntl, termios, pwd, grp and no
    os.fork (a sitecustomize takes them away; the kernel, started with its own environment, keeps
    them), and no bubblewrap on the PATH. The check runs the notebook and agrees with the grading."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import os, sys\n"
        "for name in ('resource', 'fcntl', 'termios', 'pwd', 'grp', 'prctl'):\n"
        "    sys.modules[name] = None\n"
        "for name in ('fork', 'forkpty', 'register_at_fork'):\n"
        "    if hasattr(os, name):\n"
        "        delattr(os, name)\n"
    )
    env = {
        "PATH": str(Path(sys.executable).parent),
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(site),
        "GRADER_CACHE": str(tmp_path / "cache"),
    }
    calibration = tmp_path / "calibration.json"
    shutil.copy(ROOT / "reference" / "calibration.json", calibration)
    env["GRADER_CALIBRATION"] = str(calibration)
    probe = subprocess.run([sys.executable, "-c", "import resource"], env=env, capture_output=True, text=True)
    assert probe.returncode != 0 and "ModuleNotFoundError" in probe.stderr  # the sitecustomize is in force
    shutil.copy(ROOT / "submissions" / CORRECT, tmp_path / CORRECT)
    done = subprocess.run(
        [sys.executable, "-m", "grader", "check", "--sheet", "sheet6", "--json", CORRECT],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["execution"]["status"] == "ok" and report["execution"]["sandbox"] == "none"
    assert {c["status"] for c in report["checks"]} == {"pass"}


@pytest.mark.kernel
def test_a_kernel_over_tcp_as_on_windows(tmp_path, monkeypatch):
    """Where there are no Unix sockets (Windows) the kernel talks over TCP on localhost; and the
    progress callback hears of every code cell, numbered as Jupyter numbers them."""
    import asyncio

    from grader.config import config_from_dict
    from grader.run import execute
    from grader.run.execute import KernelSession
    from grader.run.sandbox import kernel_command

    with monkeypatch.context() as patch:
        patch.setattr(execute.os, "name", "nt")
        windows = execute.kernel_transport(tmp_path)
    assert windows == ("tcp", "127.0.0.1")
    assert execute.kernel_transport(tmp_path) == ("ipc", str(tmp_path / "k"))
    monkeypatch.setattr(execute, "kernel_transport", lambda runtime_dir: windows)
    config = config_from_dict({"run": {"sandbox": "none"}, "limits": {"cell_timeout_s": 30}})
    session = KernelSession(kernel_command(config, tmp_path), tmp_path, config.limits)
    assert session.km.transport == "tcp" and session.km.ip == "127.0.0.1"
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# one"),
        nbformat.v4.new_code_cell("x = 6 * 7"),
        nbformat.v4.new_code_cell("   "),
        nbformat.v4.new_markdown_cell("# two"),
        nbformat.v4.new_code_cell("print(x)\nraise KeyError('k')"),
    ]
    heard = []

    async def run():
        async with session:
            return await session.run_notebook(nb, progress=heard.append)

    execution = asyncio.run(run())
    assert "42" in nb.cells[4].outputs[0]["text"]
    assert [(p.number, p.total, p.finished) for p in heard] == [
        (1, 2, False),
        (1, 2, True),
        (2, 2, False),
        (2, 2, True),
    ]
    assert heard[2].first_line == "print(x)"
    (error,) = execution.info.errors
    assert (error.cell, error.execution_count, error.ename) == (5, 2, "KeyError")


# ----------------------------------------------------------------------------- which notebook


def _zip_with(tmp_path: Path, entries: dict[str, str]) -> Path:
    from intake_corpus import make_zip

    return make_zip(tmp_path / CORRECT, entries)


def _solution_json() -> str:
    return (ROOT / "reference" / "solution.ipynb").read_text(encoding="utf-8")


def _unpacked(tmp_path: Path, entries: dict[str, str]):
    from grader.config import Archive
    from grader.intake import identify, unpack

    z = _zip_with(tmp_path, entries)
    return unpack(identify(z, tmp_path, Naming()), tmp_path / "ws", Archive(), SHEET6_HINTS)


def test_of_two_solutions_the_untitled_one_is_not_graded(tmp_path):
    ws = _unpacked(tmp_path, {"Untitled.ipynb": _solution_json(), "Assignment_6.ipynb": _solution_json()})
    assert ws.notebook.name == "Assignment_6.ipynb"
    (v,) = [v for v in ws.violations if v.code == "content.multiple_notebooks"]
    assert (
        "grading 'Assignment_6.ipynb', not 'Untitled.ipynb', because 'Untitled.ipynb' has Jupyter's default name"
        in v.message
        and "best match" not in v.message
    )


def test_a_solved_untitled_notebook_beats_the_untouched_template(tmp_path):
    template = (ROOT / "reference" / "template.ipynb").read_text(encoding="utf-8")
    ws = _unpacked(tmp_path, {"Untitled1.ipynb": _solution_json(), "Assignment_6.ipynb": template})
    assert ws.notebook.name == "Untitled1.ipynb"
    (v,) = [v for v in ws.violations if v.code == "content.multiple_notebooks"]
    assert "because 'Assignment_6.ipynb' holds only the sheet's template" in v.message, v.message


def test_the_notebook_that_defines_the_classes_is_graded(tmp_path):
    scratch = json.dumps(
        {
            "cells": [
                {
                    "cell_type": "code",
                    "metadata": {},
                    "execution_count": None,
                    "outputs": [],
                    "source": "fashion_network.optimize(fashion_train_loader, fashion_test_loader)\n"
                    "optimize optimize optimize fashion_network fashion_network",
                }
            ],
            "metadata": {},
            "nbformat": 4,
            "nbformat_minor": 5,
        }
    )
    ws = _unpacked(tmp_path, {"a_scratch.ipynb": scratch, "zz_solution.ipynb": _solution_json()})
    assert ws.notebook.name == "zz_solution.ipynb"
    (v,) = [v for v in ws.violations if v.code == "content.multiple_notebooks"]
    assert "because it defines FashionNetwork and FashionNetworkBatchNorm, 'a_scratch.ipynb' does not" in v.message


@pytest.mark.kernel
@pytest.mark.bwrap
@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")
def test_a_kernel_that_does_not_start_still_says_how_it_was_isolated(tmp_path, grading_context):
    """The symptom of an installed checker whose sandbox hid site-packages ("No module named
    ipykernel_launcher"): the report said "not isolated" although bubblewrap was used."""
    import dataclasses

    from grader.pipeline import grade_submission

    python = shutil.which("python3", path="/usr/bin")
    if python is None or subprocess.run([python, "-c", "import ipykernel"], capture_output=True).returncode == 0:
        pytest.skip("needs a Python without ipykernel")
    run = grading_context.config.run.model_copy(update={"kernel_python": python, "sandbox": "auto"})
    ctx = dataclasses.replace(grading_context, config=grading_context.config.model_copy(update={"run": run}))
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1")]
    target = tmp_path / "Erika_Mustermann_7012345_Jürgen_Müller_7054321.ipynb"
    nbformat.write(nb, str(target))
    execution = grade_submission(target, tmp_path, ctx).report.execution
    assert execution.status == "not_run" and "No module named ipykernel" in " ".join(execution.notes)
    assert execution.isolated is True and execution.sandbox == "bubblewrap", execution


# ----------------------------------------------------------------------------- the course's notebook

# How teams hand in the course's notebook (tests/corpus/, graded by `grader grade` in test_corpus.py).
# The examples of what it allows (one BatchNorm after the second hidden Linear, one on the input,
# test(self) reading the global loader) are compared in test_end_to_end.py's
# test_students_check_agrees_with_the_tutors_grading.
COURSE_CASES = {
    "template": ROOT / "tests" / "corpus" / "Fiona Brandt_7301601_Gustav Ritter_7301602.ipynb",
    "part 2 left as the stub": ROOT / "tests" / "corpus" / "Hanna Vogt_7301701_Ivo Sommer_7301702.ipynb",
    "test reads a kept loader": ROOT / "tests" / "corpus" / "Jana Wolf_7301801_Kai Berger_7301802.ipynb",
    "html identity, test helper": ROOT / "tests" / "corpus" / "Lisa Sommer_7301901_Moritz Haas_7301902.ipynb",
}


@pytest.mark.kernel
@needs_torch
@pytest.mark.parametrize("case", sorted(COURSE_CASES))
def test_check_and_grade_agree_on_the_course_notebooks_cases(tmp_path, monkeypatch, grading_context, case):
    """`grader check` (the student's defaults, small stand-in data) and the tutors' grading give every
    check the same status and points."""
    import contextlib
    import io

    from grader.pipeline import grade_submission

    _student_setting(tmp_path, monkeypatch)
    target = tmp_path / COURSE_CASES[case].name
    shutil.copy(COURSE_CASES[case], target)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = check_path(target, config_path=None, as_json=True, full=False, console=Console(record=True))
    checked = Report.model_validate_json(printed.getvalue())
    graded = grade_submission(target, tmp_path, grading_context).report
    assert {c.id: (c.status, c.points) for c in checked.checks} == {
        c.id: (c.status, c.points) for c in graded.checks
    }, ({c.id: c.message for c in checked.checks}, {c.id: c.message for c in graded.checks})
    points = sum(c.points for c in checked.checks)
    assert points == {"template": 0.0, "part 2 left as the stub": 1.0}.get(case, 1.5), {
        c.id: c.message for c in checked.checks
    }
    if case == "template":
        assert code == 1
        text = " ".join(_printed(checked).split())  # the console wraps long lines
        assert text.count("The notebook is still the template") == 1, text
        for words in (
            "✗ all 6 checks (0/1.5)",
            "`__init__` does not call `super().__init__()`",
            "`forward` still returns the template's `NotImplemented`",
            "`optimize` takes no loaders but the notebook calls it with two",
        ):
            assert words in text, text
        assert "AttributeError" not in text.split("✗ all 6 checks")[1]
