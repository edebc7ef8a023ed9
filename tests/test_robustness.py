"""The grader's own process against what students hand in and what happens to a batch (issue 14):
a PDF that takes forever to read, a worker killed mid-batch, a lone surrogate from the kernel,
markup and terminal escapes in names and errors, a submission named `shard.zip`, folder trees
1,500 levels deep, SIGTERM and kill -9 of the grader, malformed notebooks of every kind.

Real `grader grade` runs (subprocesses, real kernels) on small notebooks that do not train, on a
tiny generated data set with a calibration written for it, each with its own temporary folder
(TMPDIR) so that what a run leaves behind can be seen.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path

import nbformat
import pytest
from conftest import needs_torch

from grader.models import Report
from grader.sheets.sheet6 import SHEET

pytestmark = [pytest.mark.kernel, needs_torch]

TEAMS = [
    "Anna Schmidt_7000001_Bernd Weber_7000002",
    "Clara Fischer_7000003_Dieter Wolf_7000004",
    "Eva Koch_7000005_Frank Bauer_7000006",
    "Gerd Lang_7000007_Hanna Ott_7000008",
    "Ida Roth_7000009_Jan Vogt_7000010",
    "Karl Ernst_7000011_Lena Graf_7000012",
]


def notebook(*cells: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    return nb


def sleeper(seconds: float) -> nbformat.NotebookNode:
    return notebook(f"import time\ntime.sleep({seconds})\nanswer = 42")


class Course:
    """A folder of submissions, a grading.toml for tiny generated data (calibrated by hand) and a
    private temporary folder for the grader."""

    def __init__(self, root: Path, limits: str = "", workers: int = 1):
        from grader.commands.check import check_config
        from grader.config import load_config
        from grader.data.staging import stage_dataset
        from grader.engine.batch import cache_dir
        from grader.engine.calibrate import calibration_file

        self.root = root
        self.subs = root / "subs"
        self.subs.mkdir()
        self.out = root / "out"
        self.scratch = root / "t"  # TMPDIR of the grader: what it leaves there is left behind
        self.scratch.mkdir()
        self.config = root / "grading.toml"
        self.config.write_text(
            '[sheet]\nname = "sheet6"\n[data]\nsource = ""\ntrain_size = 256\ntest_size = 128\n'
            f"[run]\nworkers = {workers}\n[limits]\n{limits}\n"
        )
        config = load_config(self.config)
        calibration = calibration_file()
        entries = json.loads(calibration.read_text()) if calibration.exists() else {}
        for data in (config.data, check_config(config, full=False).data):  # grade's and check's
            staged = stage_dataset(data, None, cache_dir() / "data", SHEET.dataset)
            entries[f"sheet6/{staged.info.fingerprint}"] = {"baseline": [[0.1] * 5], "batchnorm": [[0.1] * 5]}
        calibration.write_text(json.dumps(entries))

    def env(self, **extra: str) -> dict:
        return {**os.environ, "TMPDIR": str(self.scratch), **extra}

    def start(self, *args: str, env: dict | None = None) -> subprocess.Popen:
        command = args or ("grade", str(self.subs), "--out", str(self.out))
        return subprocess.Popen(
            [sys.executable, "-m", "grader", "--config", str(self.config), *command],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env or self.env(),
            start_new_session=True,
        )

    def run(self, *args: str, timeout: float = 300, env: dict | None = None) -> tuple[int, str]:
        process = self.start(*args, env=env)
        try:
            output = process.communicate(timeout=timeout)[0]
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output = process.communicate()[0]
            pytest.fail(f"the grader did not finish within {timeout} s:\n{output.decode(errors='replace')[-3000:]}")
        return process.returncode, output.decode("utf-8", errors="replace")

    def reports(self) -> dict[str, Report]:
        return {
            p.stem: Report.model_validate_json(p.read_bytes())
            for p in self.out.glob("*.json")
            if not p.name.startswith(".")
        }

    def leftovers(self) -> list[str]:
        return sorted(p.name for p in self.scratch.iterdir())


def processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and entry.name != str(os.getpid()):
            found.append(f"{entry.name}: {cmdline[:120]}")
    return found


def gone(text: str, seconds: float = 15) -> list[str]:
    """Processes still mentioning `text` after waiting up to `seconds` for them to end."""
    deadline = time.monotonic() + seconds
    while (left := processes_mentioning(text)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


# ---------------------------------------------------------------- a PDF that takes forever


def xobject_pdf(leaf_ops: int, invocations: int, pages: int) -> bytes:
    """A small PDF whose pages draw one form XObject `invocations` times; the XObject shows
    `leaf_ops` strings. Text extraction repeats the XObject's work at every invocation: 5 KB of PDF,
    minutes of pypdf's time."""
    objects: list[bytes] = []

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    font = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    leaf = zlib.compress(b"BT /F1 12 Tf " + b"(x) Tj " * leaf_ops + b"ET")
    form = add(
        b"<< /Type /XObject /Subtype /Form /BBox [0 0 100 100] /Resources << /Font << /F1 %d 0 R >> >> "
        b"/Filter /FlateDecode /Length %d >>\nstream\n" % (font, len(leaf)) + leaf + b"\nendstream"
    )
    draw = zlib.compress(b"/X Do " * invocations)
    content = add(b"<< /Filter /FlateDecode /Length %d >>\nstream\n" % len(draw) + draw + b"\nendstream")
    parent = len(objects) + pages + 1
    kids = [
        add(
            b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 200 200] /Contents %d 0 R "
            b"/Resources << /XObject << /X %d 0 R >> >> >>" % (parent, content, form)
        )
        for _ in range(pages)
    ]
    add(b"<< /Type /Pages /Kids [" + b" ".join(b"%d 0 R" % k for k in kids) + b"] /Count %d >>" % pages)
    catalog = add(b"<< /Type /Catalog /Pages %d 0 R >>" % parent)
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, catalog, xref)
    return bytes(out)


def test_a_pdf_that_takes_forever_to_read_costs_its_team_a_warning_not_the_batch(tmp_path):
    course = Course(tmp_path)  # the default limit, 30 s (the PDF would take about an hour)
    bomb = xobject_pdf(leaf_ops=2000, invocations=5000, pages=30)
    assert len(bomb) < 16_000
    with zipfile.ZipFile(course.subs / f"{TEAMS[0]}.zip", "w") as archive:
        archive.writestr("solution.ipynb", nbformat.writes(sleeper(0)))
        archive.writestr("answers.pdf", bomb)
    for team in TEAMS[1:3]:
        nbformat.write(sleeper(0), course.subs / f"{team}.ipynb")
    code, output = course.run(timeout=240)
    assert code == 0, output
    reports = course.reports()
    assert sorted(reports) == sorted(TEAMS[:3]), output
    unreadable = [v for v in reports[TEAMS[0]].violations if v.code == "content.pdf_unreadable"]
    assert len(unreadable) == 1, reports[TEAMS[0]].violations
    assert "took longer than 30 s" in unreadable[0].message and "answers.pdf" in unreadable[0].message
    assert "the PDF was not read" in unreadable[0].message
    assert reports[TEAMS[0]].execution.status == "ok"
    for name in ("summary.csv", "summary.html", "cms.csv", "cms_import.csv", "manual_points.csv"):
        assert (course.out / name).exists(), name
    assert gone(str(course.scratch)) == [] and course.leftovers() == []


def test_a_pdf_that_needs_too_much_memory_is_not_read():
    from grader.child.parser import ParseLimitHit, ParseLimits, parse

    # A page whose content is 60 MB of text operators, from 117 KB of PDF.
    content = zlib.compress(b"BT /F1 12 Tf " + b"[(x) 1 (y)] TJ " * 4_000_000 + b"ET", 9)
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"memory-{os.getpid()}.pdf"
    objects = [
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Page /Parent 4 0 R /MediaBox [0 0 200 200] /Contents 2 0 R "
        b"/Resources << /Font << /F1 1 0 R >> >> >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Catalog /Pages 4 0 R >>",
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 6\n0000000000 65535 f \n" + b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size 6 /Root 5 0 R >>\nstartxref\n%d\n%%%%EOF\n" % xref
    path.write_bytes(bytes(out))
    try:
        with pytest.raises(ParseLimitHit, match="needed more than 300 MB of memory"):
            parse("pdf_text", path, ParseLimits(timeout_s=120, memory_mb=300))
        # the next file gets a fresh parser
        good = Path(__file__).resolve().parents[1] / "submissions"
        with zipfile.ZipFile(next(good.glob("*.zip"))) as archive:
            name = next(n for n in archive.namelist() if n.endswith(".pdf"))
            path.write_bytes(archive.read(name))
        assert "@" in parse("pdf_text", path, ParseLimits(timeout_s=60, memory_mb=300))
    finally:
        path.unlink()


# ---------------------------------------------------------------- a worker that dies


def workers_of(grader_pid: int) -> list[int]:
    """The grader's worker processes (multiprocessing's spawned children)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == grader_pid and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


def wait_for(condition, seconds: float = 120, what: str = "") -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_a_killed_worker_costs_no_other_submission(tmp_path):
    """Two workers, both busy; one is killed (as the out-of-memory killer would). Its submission is
    graded again in a new worker; the one on the other worker and all later ones are not touched."""
    course = Course(tmp_path, workers=2)
    for team in TEAMS:
        nbformat.write(sleeper(4), course.subs / f"{team}.ipynb")
    process = course.start()
    wait_for(lambda: len(list(course.out.glob("*.json"))) >= 1, what="the first report")
    time.sleep(1.5)  # both workers are in their next (4 s) job
    workers = workers_of(process.pid)
    assert len(workers) == 2, workers
    os.kill(workers[0], signal.SIGKILL)
    output = process.communicate(timeout=300)[0].decode()
    assert process.returncode == 0, output
    reports = course.reports()
    assert sorted(reports) == sorted(TEAMS), output
    assert {stem: r.execution.status for stem, r in reports.items()} == {t: "ok" for t in TEAMS}, output
    assert not any(v.code == "grader.error" for r in reports.values() for v in r.violations)
    assert "died (killed by SIGKILL" in output and "grading it once more in a new worker" in output
    assert "BrokenProcessPool" not in output and "Traceback" not in output
    assert (course.out / "summary.csv").read_text(encoding="utf-8-sig").count("\n") == len(TEAMS) + 1
    assert gone(str(course.scratch)) == [] and course.leftovers() == []


def test_a_submission_whose_worker_dies_twice_gets_a_report_and_is_graded_again_next_time(tmp_path):
    course = Course(tmp_path, workers=1)
    victim = TEAMS[0]
    nbformat.write(sleeper(8), course.subs / f"{victim}.ipynb")
    for team in TEAMS[1:4]:
        nbformat.write(sleeper(0), course.subs / f"{team}.ipynb")
    process = course.start()
    seen: set[Path] = set()

    def grading_victim_again() -> bool:  # a new unpacked folder of it: a worker has started on it
        new = set(course.scratch.glob("grader-work-*/Anna_Schmidt_7000001*")) - seen
        seen.update(new)
        return bool(new)

    for _ in range(2):
        wait_for(grading_victim_again, what="the victim being graded")
        time.sleep(1.0)
        os.kill(workers_of(process.pid)[0], signal.SIGKILL)
    output = process.communicate(timeout=300)[0].decode()
    assert process.returncode == 0, output
    reports = course.reports()
    assert sorted(reports) == sorted(TEAMS[:4]), output
    died = reports[victim]
    errors = [v for v in died.violations if v.code == "grader.error"]
    assert len(errors) == 1 and f"{victim}.ipynb" in errors[0].message, died.violations
    assert "died twice (the second time killed by SIGKILL" in errors[0].message
    assert died.execution.status == "not_run"
    assert all(reports[t].execution.status == "ok" for t in TEAMS[1:4])
    assert (course.out / "summary.csv").read_text(encoding="utf-8-sig").count("\n") == 5
    assert (course.out / "summary.html").exists() and (course.out / "cms.csv").exists()
    # The next run does not take the "worker died" report as the submission's result.
    code, again = course.run()
    assert code == 0, again
    assert "1 submission(s) to grade, 3 unchanged" in again, again
    assert course.reports()[victim].execution.status == "ok"
    assert not any(v.code == "grader.error" for v in course.reports()[victim].violations)
    assert gone(str(course.scratch)) == [] and course.leftovers() == []


# ---------------------------------------------------------------- stopping the grader


def test_sigterm_stops_the_grader_cleanly(tmp_path):
    course = Course(tmp_path, workers=2)
    for team in TEAMS:
        nbformat.write(sleeper(5), course.subs / f"{team}.ipynb")
    process = course.start()
    wait_for(lambda: len(list(course.out.glob("*.json"))) >= 1, what="the first report")
    wait_for(lambda: len(list(course.scratch.glob("grader-work-*/*_70000*"))) >= 1, what="a job in flight")
    os.kill(process.pid, signal.SIGTERM)  # the grader only, as a scheduler's time limit would
    output = process.communicate(timeout=60)[0].decode()
    assert process.returncode == 128 + signal.SIGTERM, output
    assert "terminated by SIGTERM" in output and "temporary folders removed" in output, output
    assert "Traceback" not in output, output
    assert gone(str(course.scratch)) == [], "workers or kernels outlived the grader"
    assert course.leftovers() == [], "student files were left in the temporary folder"
    for report in course.reports().values():  # what was written is whole
        assert report.execution.status == "ok"


def test_kill_9_of_the_grader_takes_its_workers_and_kernels_along_and_the_next_run_sweeps(tmp_path):
    course = Course(tmp_path, workers=2)
    for team in TEAMS:
        nbformat.write(sleeper(5), course.subs / f"{team}.ipynb")
    process = course.start()
    wait_for(lambda: len(list(course.out.glob("*.json"))) >= 1, what="the first report")
    wait_for(lambda: len(list(course.scratch.glob("grader-work-*/*_70000*"))) >= 1, what="a job in flight")
    os.kill(process.pid, signal.SIGKILL)  # the grader only: its workers are not signalled by anyone
    process.wait()
    assert gone(str(course.scratch)) == [], "workers, fork servers or kernels outlived the grader"
    assert any(name.startswith("grader-work-") for name in course.leftovers())  # the killed run's
    time.sleep(5)  # folders younger than 5 s might be a running grader's, just made: not swept
    code, output = course.run()
    assert code == 0, output
    assert sorted(course.reports()) == sorted(TEAMS)
    assert course.leftovers() == [], "the next run did not sweep the killed run's folders"


# ---------------------------------------------------------------- what students' files contain

DEEP = 1500


def deep_zip(path: Path, cells: list[str]) -> None:
    """A zip with the notebook and a file 1,500 folders deep."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("solution.ipynb", nbformat.writes(notebook(*cells)))
        archive.writestr("a/" * DEEP + "deep.txt", "bottom")


DEEP_CELL = f"""
import os
here = os.getcwd()
for i in range({DEEP}):             # deeper than PATH_MAX allows to name from the top
    os.mkdir("folder-" + "x" * 20)
    os.chdir("folder-" + "x" * 20)
    if i % 300 == 0:
        open("file.txt", "w").write("x")
os.chdir(here)
answer = 42
"""

SURROGATE_CELL = """
import json
session = get_ipython().kernel.session
# Messages packed as ASCII JSON carry "\\ud800" escapes: the grader decodes a lone surrogate.
session.pack = lambda obj: json.dumps(obj, default=str).encode("ascii")
print("before \\ud800 after")
"""

LATIN1 = (
    b'{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [{"cell_type": "markdown", '
    b'"metadata": {}, "source": "M\xfcller"}]}'
)
MALFORMED = {
    "metadata nested 600 deep": (
        json.dumps(
            {"nbformat": 4, "nbformat_minor": 5, "cells": [], "metadata": {"x": json.loads("[" * 600 + "]" * 600)}}
        ).encode(),
        "nested more than 100 levels deep",
    ),
    "a numeric source": (
        json.dumps(
            {
                "nbformat": 4,
                "nbformat_minor": 5,
                "metadata": {},
                "cells": [
                    {"cell_type": "markdown", "metadata": {}, "source": "# hi"},
                    {"cell_type": "code", "metadata": {}, "source": 5, "outputs": [], "execution_count": None},
                ],
            }
        ).encode(),
        "cell 2's source is a number, expected text",
    ),
    "a Latin-1 byte": (LATIN1, f"not UTF-8 at byte {LATIN1.index(bytes([0xFC]))} (0xfc)"),
    "an output nested 600 deep": (
        json.dumps(
            {
                "nbformat": 4,
                "nbformat_minor": 5,
                "metadata": {},
                "cells": [
                    {
                        "cell_type": "code",
                        "metadata": {},
                        "source": "1",
                        "execution_count": 1,
                        "outputs": [
                            {
                                "output_type": "execute_result",
                                "execution_count": 1,
                                "metadata": {},
                                "data": {"application/json": json.loads("[" * 600 + "]" * 600)},
                            }
                        ],
                    }
                ],
            }
        ).encode(),
        "nested more than 100 levels deep",
    ),
    "not JSON at all": (b"[/] this is not a notebook", "not JSON (Expecting value at line 1, column 2)"),
    "JSON that is not a notebook": (b'{"hello": "world"}', "JSON that is not a notebook"),
}


@pytest.fixture(scope="module")
def hostile_batch(tmp_path_factory):
    """One batch (on a terminal, as rich sees it) of: a lone surrogate from the kernel, folder trees
    1,500 levels deep from a zip and from a cell, file names with markup and terminal escapes, and a
    malformed notebook of every kind."""
    course = Course(tmp_path_factory.mktemp("hostile"), workers=2)
    nbformat.write(
        notebook(SURROGATE_CELL, "raise ValueError('x\\ud800y [/]')", "answer = 42"), course.subs / f"{TEAMS[0]}.ipynb"
    )
    deep_zip(course.subs / f"{TEAMS[1]}.zip", [DEEP_CELL])
    names = {
        "markup": "Ida Roth_7000009_[conceal]_Jan Vogt_7000010 [link=https:evil.example]click",
        "escape": "Karl Ernst_7000011_\x1b]8;;https:evil.example\x07Lena\x1b]8;;\x07_\x1b[8mGraf_7000012",
    }
    for name in names.values():
        nbformat.write(sleeper(0), course.subs / f"{name}.ipynb")
    malformed = {}
    for index, (kind, (raw, expected)) in enumerate(MALFORMED.items()):
        stem = f"Team {index}_71000{index:02d}_Other {index}_72000{index:02d}"
        (course.subs / f"{stem}.ipynb").write_bytes(raw)
        malformed[stem] = (kind, expected)
    code, output = course.run(timeout=400, env=course.env(FORCE_COLOR="1", COLUMNS="200"))
    return course, code, output, names, malformed


def test_a_lone_surrogate_from_the_kernel_does_not_cost_the_report(hostile_batch):
    course, _code, output, _, _ = hostile_batch
    report = course.reports().get(TEAMS[0])
    assert report is not None, output
    assert report.execution.status == "errors"
    assert [(e.cell, e.ename, e.evalue) for e in report.execution.errors] == [(2, "ValueError", "x\ufffdy [/]")]
    executed = json.loads((course.out / "executed" / f"{TEAMS[0]}.ipynb").read_text(encoding="utf-8"))
    assert "".join(executed["cells"][0]["outputs"][0]["text"]) == "before \ufffd after\n"
    summary = (course.out / "summary.csv").read_text(encoding="utf-8-sig")
    assert TEAMS[0] in summary and "7000001" in (course.out / "cms.csv").read_text(encoding="utf-8-sig")


def test_folder_trees_1500_levels_deep_are_cleaned_up(hostile_batch):
    course, code, output, _, _ = hostile_batch
    assert code == 0, output
    assert course.reports()[TEAMS[1]].execution.status == "ok", output
    assert "RecursionError" not in output and "Traceback" not in output, output
    assert course.leftovers() == [], "files were left in the temporary folder"


def test_background_failures_do_not_reach_the_terminal(hostile_batch):
    _, _, output, _, _ = hostile_batch
    assert "Task exception was never retrieved" not in output, output
    assert "Exception ignored" not in output, output


def test_student_names_cannot_inject_markup_or_terminal_escapes(hostile_batch):
    course, code, output, names, _ = hostile_batch
    assert "MarkupError" not in output, output
    assert "\x1b]8;;https:evil" not in output and "\x1b[8m" not in output, "a student's escape reached the terminal"
    # shown, not sent: as text where the name is printed, without them where it names a file
    assert "\\x1b]8;;https:evil.example\\x07" in output or "Karl Ernst_7000011__]8;;https:evil.example_Lena" in output
    assert "[conceal]" in output and "[link=https:evil.example]click" in output  # shown as text
    # Reports keep the names as they are; their files are named without the escapes.
    assert set(names.values()) <= {report.submission.stem for report in course.reports().values()}
    assert code == 0, output


def test_malformed_notebooks_end_in_a_content_violation_saying_what_is_wrong(hostile_batch):
    course, _code, _output, _, malformed = hostile_batch
    reports = course.reports()
    for stem, (kind, expected) in malformed.items():
        report = reports[stem]
        codes = [v.code for v in report.violations]
        assert "grader.error" not in codes, (kind, report.violations)
        invalid = [v for v in report.violations if v.code == "content.notebook_invalid"]
        assert len(invalid) == 1 and expected in invalid[0].message, (kind, report.violations)
        assert f"{stem}.ipynb" in invalid[0].message
        assert "content.notebook_unreadable" not in codes  # one violation for one cause
        assert report.execution.status == "not_run"


# ---------------------------------------------------------------- outputs that cannot collide


def test_a_submission_named_shard_keeps_its_report_and_merge_takes_the_course(tmp_path):
    course = Course(tmp_path, workers=1)
    nbformat.write(sleeper(0), course.subs / f"{TEAMS[0]}.ipynb")
    with zipfile.ZipFile(course.subs / "shard.zip", "w") as archive:
        archive.writestr("solution.ipynb", nbformat.writes(sleeper(0)))
    code, output = course.run("grade", str(course.subs), "--out", str(course.out), "--shard", "1/1")
    assert code == 0, output
    assert Report.model_validate_json((course.out / "shard.json").read_bytes()).submission.file == "shard.zip"
    assert json.loads((course.out / ".shard.json").read_text())["shard"] == "1/1"
    code, output = course.run("merge", str(course.out), "--out", str(tmp_path / "merged"))
    assert code == 0, output
    assert sorted(p.name for p in (tmp_path / "merged").glob("*.json")) == sorted([f"{TEAMS[0]}.json", "shard.json"])


def test_merge_takes_folders_with_the_old_shard_marker(tmp_path):
    from test_report_outputs import ALICE, BOB

    from grader.commands.merge import check_shards, merge_reports
    from grader.report.store import write_report

    for index, (stem, report) in enumerate((ALICE, BOB), start=1):
        folder = tmp_path / f"s{index}"
        write_report(report, folder, stem)
        (folder / "shard.json").write_text(json.dumps({"shard": f"{index}/2", "stems": [stem], "config_hash": "c"}))
    check_shards([tmp_path / "s1", tmp_path / "s2"])
    merged = merge_reports([tmp_path / "s1", tmp_path / "s2"], tmp_path / "out")
    assert [stem for stem, _ in merged] == sorted([ALICE[0], BOB[0]])
    with pytest.raises(Exception, match="missing shard"):
        check_shards([tmp_path / "s1"])


# ---------------------------------------------------------------- the students' checker


def test_grader_check_prints_a_cell_error_that_looks_like_markup(tmp_path):
    course = Course(tmp_path)
    target = course.subs / f"{TEAMS[0]}.ipynb"
    nbformat.write(notebook("raise ValueError('[/] [bold]not bold[/bold]')"), target)
    code, output = course.run("check", str(target))
    assert "MarkupError" not in output and "Traceback" not in output, output
    assert "In [1]: ValueError: [/] [bold]not bold[/bold]" in output, output  # as Jupyter numbers it
    assert code == 1, output  # an error in a cell would lose points


def test_a_file_that_cannot_be_read_gets_a_report_and_does_not_block_the_batch(tmp_path):
    course = Course(tmp_path)
    nbformat.write(sleeper(0), course.subs / f"{TEAMS[0]}.ipynb")
    os.mkfifo(course.subs / f"{TEAMS[1]}.zip")  # reading it would wait forever
    code, output = course.run(timeout=120)
    assert code == 0, output
    reports = course.reports()
    assert reports[TEAMS[0]].execution.status == "ok"
    fifo = reports[TEAMS[1]]
    assert fifo.execution.status == "not_run"
    assert any(v.code == "archive.corrupt" and "not a regular file" in v.message for v in fifo.violations)
    assert (course.out / "summary.csv").read_text(encoding="utf-8-sig").count("\n") == 3
