"""Files as teams send them, through the commands people run: a zip whose entries have absolute
paths (a Windows tool's `C:\\Users\\…`), graded by `grader check` and read by the import pre-flight
the same way; a notebook of 480,000 tiny cells, refused by every reader of notebooks before it costs
memory, and graded by `grader grade` within the memory `grader prepare` asks Slurm for; the executed
notebook kept under the size the grader accepts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
from conftest import ROOT, needs_torch

from grader.config import config_from_dict, load_config
from grader.engine.preflight import preflight
from grader.intake import identify
from grader.util.notebook_file import (
    MAX_CELLS,
    MAX_NOTEBOOK_BYTES,
    NotebookTooLarge,
    configure,
    fit_outputs,
    json_values,
    parse_notebook_json,
)

CORRECT = "Erika_Mustermann_7012345_Jürgen_Müller_7054321.zip"
WINDOWS_FOLDER = "C:\\Users\\Erika Mustermann\\Documents\\Abgabe\\"


def _with_windows_paths(source: Path, target: Path) -> Path:
    """The example solution's zip as a Windows tool writes it: every entry under its absolute path,
    with backslashes, made on MS-DOS/Windows (create_system 0). Written byte for byte by zipfile."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            new = zipfile.ZipInfo(WINDOWS_FOLDER + info.filename.replace("/", "\\"), date_time=info.date_time)
            new.create_system = 0
            new.compress_type = zipfile.ZIP_DEFLATED
            zout.writestr(new, zin.read(info))
    with zipfile.ZipFile(target) as z:
        assert all(name.startswith("C:\\Users\\") for name in z.namelist())
    return target


def test_the_import_preflight_reads_the_notebook_of_a_zip_with_absolute_paths(tmp_path):
    zipped = _with_windows_paths(ROOT / "submissions" / CORRECT, tmp_path / CORRECT)
    config = load_config(None)
    found = preflight([identify(zipped, tmp_path, config.naming)], config, tmp_path)
    assert (found.notebooks, found.unreadable) == (1, [])
    assert {row.module for row in found.rows} >= {"torch", "torchvision", "matplotlib"}


@pytest.mark.kernel
@needs_torch
def test_a_complete_solution_zipped_with_absolute_paths_gets_every_point_in_the_check(tmp_path):
    """Before: both files were refused as unsafe, content.no_notebook, 0 points. Now the check
    unpacks them inside (the root taken off, with a note), runs the notebook, and every check passes:
    `ready to upload` (exit 0), as the import pre-flight read the same notebook."""
    zipped = _with_windows_paths(ROOT / "submissions" / CORRECT, tmp_path / CORRECT)
    calibration = tmp_path / "calibration.json"
    shutil.copy(ROOT / "reference" / "calibration.json", calibration)
    env = {**os.environ, "GRADER_CACHE": str(tmp_path / "cache"), "GRADER_CALIBRATION": str(calibration)}
    done = subprocess.run(
        [sys.executable, "-m", "grader", "check", "--sheet", "sheet6", "--json", zipped.name],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert [v["code"] for v in report["violations"]] == ["archive.absolute_path"]
    assert report["submission"]["notebook"] == "Users/Erika Mustermann/Documents/Abgabe/Exercise_6_6.ipynb"
    assert report["submission"]["pdf"] == "Users/Erika Mustermann/Documents/Abgabe/Sheet6.pdf"
    assert report["execution"]["status"] == "ok"
    assert {c["status"] for c in report["checks"]} == {"pass"}
    assert [m["student_id"] for m in report["submission"]["team"]] == ["7012345", "7054321"]


# ----------------------------------------------------------------------------- what a notebook holds
# A notebook is bounded by what it holds, not only by its size: 45 MB of 480,000 tiny cells (under
# the 50 MB cap) took the worker 2.5 GB and 398 s, and its executed copy was 71.6 MB.

TINY_CELL = b'{"cell_type": "code", "execution_count": null, "metadata": {}, "outputs": [], "source": "x = %d"}'


def tiny_cells(n: int, cell: bytes = TINY_CELL, metadata: bytes = b"{}") -> bytes:
    """A notebook of `n` tiny code cells `x = <number>`, made as bytes (the test stays cheap; the
    numbers keep a zip of it from looking like a bomb)."""
    return (
        b'{"cells": ['
        + b", ".join(cell % i for i in range(n))
        + b'], "metadata": '
        + metadata
        + b', "nbformat": 4, "nbformat_minor": 5}'
    )


@pytest.fixture(scope="module")
def tiny_cells_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tiny") / "Exercise_6_6.ipynb"
    path.write_bytes(tiny_cells(480_000))
    assert 40 << 20 < path.stat().st_size < MAX_NOTEBOOK_BYTES  # under the size cap
    return path


def _growth_mb(path: Path, read: str) -> tuple[str, float]:
    """What `read(path)` ends with (its result's type, or the exception's text), and how much the
    peak memory (RSS) of a fresh Python grew while it ran, in MB: measured in a process of its own."""
    code = f"""
import resource, sys
from pathlib import Path
from grader.intake.content import notebook_merit
from grader.intake.identity import notebook_text
from grader.util.notebook_file import parse_notebook_json
path = Path(sys.argv[1])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    outcome = type({read}(path)).__name__
except Exception as exc:
    outcome = f"{{type(exc).__name__}}: {{exc}}"
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
print(outcome)
"""
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    growth, outcome = done.stdout.strip().split("\n", 1)
    return outcome, float(growth)


def test_480000_tiny_cells_are_refused_before_they_are_parsed(tiny_cells_file):
    size_mb = tiny_cells_file.stat().st_size / 2**20
    outcome, growth = _growth_mb(tiny_cells_file, "parse_notebook_json")
    assert outcome == (
        "NotebookTooLarge: it has 480,000 cells, more than the 2,000 cells a notebook may have "
        "([limits] notebook_cells; a course notebook has tens)"
    ), outcome
    # Parsed, they took 400 MB here and 1 GB in read_notebook; counted in the bytes, about two copies.
    assert growth < 2.5 * size_mb, f"{growth:.0f} MB more for a {size_mb:.0f} MB file"


def test_every_reader_of_the_notebook_refuses_it_in_bounded_memory(tiny_cells_file, tmp_path):
    """The identity check, the choice among notebooks and the import pre-flight read the same file."""
    size_mb = tiny_cells_file.stat().st_size / 2**20
    for read in ("notebook_text", "notebook_merit"):
        outcome, growth = _growth_mb(tiny_cells_file, read)
        assert growth < 2.5 * size_mb, (read, growth)
        assert outcome.startswith("NotebookTooLarge: it has 480,000 cells") or read == "notebook_merit", outcome
    zipped = tmp_path / "Anna Schmidt_7000001_Bernd Weber_7000002.zip"
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(tiny_cells_file, "Exercise_6_6.ipynb")
    config = load_config(None)
    found = preflight([identify(zipped, tmp_path, config.naming)], config, tmp_path)
    [(_stem, why)] = found.unreadable
    assert "480,000 cells" in why, why


def test_the_cells_are_counted_however_the_keys_are_written(tmp_path):
    """A key written with an escape (`\\u0063ell_type`) is a cell all the same: counted after parsing."""
    path = tmp_path / "escaped.ipynb"
    path.write_bytes(tiny_cells(2_001, TINY_CELL.replace(b'"cell_type"', b'"\\u0063ell_type"')))
    with pytest.raises(NotebookTooLarge, match="it has 2,001 cells"):
        parse_notebook_json(path)
    path.write_bytes(tiny_cells(2_000, TINY_CELL.replace(b'"cell_type"', b'"\\u0063ell_type"')))
    assert len(parse_notebook_json(path)["cells"]) == 2_000  # at the cap: read


def test_the_cells_cap_is_the_configured_one(tmp_path):
    config = config_from_dict({"limits": {"notebook_cells": 10}})
    assert config.limits.notebook_cells == 10 and load_config(None).limits.notebook_cells == 2_000
    path = tmp_path / "eleven.ipynb"
    path.write_bytes(tiny_cells(11))
    configure(cells=config.limits.notebook_cells)
    try:
        with pytest.raises(NotebookTooLarge, match="it has 11 cells, more than the 10 cells"):
            parse_notebook_json(path)
    finally:
        configure(cells=MAX_CELLS)
    assert len(parse_notebook_json(path)["cells"]) == 11


def test_a_notebook_of_half_a_million_empty_lists_is_refused_before_it_is_parsed(tmp_path):
    """Few cells, but metadata that would take 50 bytes of memory for each 3 of the file."""
    path = tmp_path / "lists.ipynb"
    path.write_bytes(tiny_cells(3, metadata=b'{"x": [' + b",".join([b"[]"] * 2_000_000) + b"]}"))
    outcome, growth = _growth_mb(path, "parse_notebook_json")
    assert outcome.startswith("NotebookTooLarge: it holds 4,000,0") and "Clear all outputs" in outcome, outcome
    assert growth < 3 * path.stat().st_size / 2**20 + 5, growth  # parsed: 100 MB


def test_what_real_notebooks_hold_is_read(tmp_path):
    """Text full of commas and brackets, and a 30 MB image, are one value each: read as before."""
    text = json.dumps('a, b, [c], {d}, \\", "' * 400_000).encode()
    image = json.dumps("iVBORw0KGgo" * 3_000_000).encode()
    cell = (
        b'{"cell_type": "code", "execution_count": 1, "metadata": {}, "source": "plot()", "outputs": ['
        b'{"output_type": "display_data", "metadata": {}, "data": {"image/png": ' + image + b"}}]}"
    )
    markdown = b'{"cell_type": "markdown", "metadata": {}, "source": ' + text + b"}"
    path = tmp_path / "real.ipynb"
    path.write_bytes(
        b'{"cells": [' + markdown + b", " + cell + b'], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'
    )
    assert json_values(path.read_bytes()) < 100
    data = parse_notebook_json(path)
    assert [c["cell_type"] for c in data["cells"]] == ["markdown", "code"]
    assert data["cells"][0]["source"] == json.loads(text)


def test_the_imports_of_a_notebook_with_megabytes_of_code_are_read_line_by_line_after_the_first_two(tmp_path):
    """The import pre-flight parsed every cell as Python: 90 s for a notebook at the cells cap with
    46 MB of code. Past 2 MB it reads imports line by line, and finds them all the same."""
    from grader.intake.imports import MAX_PARSED_CHARS, notebook_imports

    filler = "w = torch.nn.Linear(784, 64)  # a line of code, as a long notebook has\n" * 300
    cells = (
        ["import numpy as np"]
        + [filler] * (MAX_PARSED_CHARS // len(filler) + 2)
        + ["import wandb\ndef f():\n    from sklearn.metrics import f1_score\n%pip install torchinfo"]
    )
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    found = notebook_imports(nb)
    assert {use.top for use in found.third_party()} == {"numpy", "wandb", "sklearn"}
    assert [use.cell for use in found.imports if use.top == "wandb"] == [len(cells)]
    assert [p.packages for p in found.pip] == [("torchinfo",)]


@pytest.mark.slow
def test_similarity_compares_the_first_megabyte_of_a_notebooks_code_and_holds_no_outputs():
    """Fingerprinting 46 MB of code took the grader 95 s and 900 MB at the end of a batch; a course
    notebook has 10-50 KB of code. And while a batch's notebooks are compared, their outputs (images
    and all) are not held."""
    import random

    from grader.report.similarity import MAX_CODE_CHARS, code_only, fingerprint, similar_pairs

    def cells(seed: int, size: int) -> list[str]:
        rnd, out = random.Random(seed), []
        while sum(map(len, out)) < size:
            op, act, red = rnd.choice("+-*/"), rnd.choice(["relu", "tanh", "sigmoid"]), rnd.choice(["sum", "mean"])
            out.append(
                f"def f(a, b):\n    c = a {op} b\n    for k in range({rnd.randrange(9)}):\n"
                f"        c = torch.{act}(c {op} k) {rnd.choice('+-*/')} a\n    return c.{red}()\n"
            )
        return out

    same = cells(1, MAX_CODE_CHARS + 1000)
    a, b = nbformat.v4.new_notebook(), nbformat.v4.new_notebook()
    a.cells = [nbformat.v4.new_code_cell(c) for c in same + cells(2, 200_000)]
    b.cells = [nbformat.v4.new_code_cell(c) for c in same + cells(3, 200_000)]
    a.cells[0].outputs = [nbformat.v4.new_output("display_data", data={"image/png": "iVBOR" * 200_000})]
    kept = code_only(a)
    assert len(kept.cells) == len(a.cells) and all(not c.get("outputs") for c in kept.cells)
    assert sum(len(c.source) for c in kept.cells) <= MAX_CODE_CHARS
    assert fingerprint(kept).prints == fingerprint(a).prints
    [pair] = similar_pairs({"a": kept, "b": code_only(b)})
    assert pair.score == 1.0  # what differs lies past the first megabyte of code


# ----------------------------------------------------------------------------- what a run writes back


def _executed(sizes: list[int], source: str = "print(1)") -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    for _i, size in enumerate(sizes):
        cell = nbformat.v4.new_code_cell(source)
        cell.outputs = [
            nbformat.v4.new_output("stream", name="stdout", text="x" * size),
            nbformat.v4.new_output("display_data", data={"image/png": "iVBOR" * (size // 5)}),
        ]
        nb.cells.append(cell)
    nb.cells[1].outputs.append(nbformat.v4.new_output("error", ename="ValueError", evalue="v", traceback=["tb"]))
    return nb


def test_outputs_are_left_out_from_the_last_cell_back_until_the_notebook_fits():
    nb = _executed([100_000] * 10)
    assert len(nbformat.writes(nb).encode()) > 1_000_000
    left_out = fit_outputs(nb, limit=1_000_000)
    assert len(nbformat.writes(nb).encode()) <= 1_000_000
    assert left_out == list(range(10 - len(left_out), 10)) and 1 <= len(left_out) < 10
    for index in left_out:
        assert nb.cells[index].outputs[0].text.startswith("[grader: outputs of this cell left out")
    assert [o.output_type for o in nb.cells[0].outputs] == ["stream", "display_data"]  # kept whole


def test_errors_stay_when_outputs_are_left_out():
    nb = _executed([300_000] * 2)
    assert fit_outputs(nb, limit=100_000) == [0, 1]
    assert [o.output_type for o in nb.cells[1].outputs] == ["stream", "error"]
    assert nb.cells[1].outputs[1].evalue == "v"


def test_a_notebook_under_the_size_is_left_as_it_ran():
    nb = _executed([1000] * 5)
    before = nbformat.writes(nb)
    assert fit_outputs(nb) == [] and nbformat.writes(nb) == before


def test_an_executed_notebook_is_never_written_larger_than_the_grader_reads(tmp_path):
    """Sources alone over the size (cells that made the notebook larger than it was handed in): not
    written, with a reason the batch puts into the report."""
    from grader.report.store import write_executed

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("b" * (MAX_NOTEBOOK_BYTES // 2 + 1000)) for _ in range(2)]
    with pytest.raises(NotebookTooLarge, match="more than the 50 MB the grader accepts as a notebook"):
        write_executed(nb, tmp_path, "over")
    assert not (tmp_path / "executed" / "over.ipynb").exists()


@pytest.mark.slow
def test_an_executed_notebook_of_many_short_lines_is_written_compact(tmp_path):
    """nbformat writes every line of a text on a line of its own, indented: 7 million short lines
    (21 MB as handed in) would be 70 MB. Written compact instead, and read back the same."""
    from grader.report.store import write_executed

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("a\n" * 7_000_000)]
    path = write_executed(nb, tmp_path, "compact")
    assert 10 << 20 < path.stat().st_size <= MAX_NOTEBOOK_BYTES
    assert parse_notebook_json(path)["cells"][0]["source"] == nb.cells[0].source


@pytest.mark.kernel
def test_a_runs_outputs_are_capped_across_the_notebook_and_its_text_is_one_output(tmp_path):
    """Consecutive text on a stream is one output (as Jupyter keeps it); past [limits]
    notebook_outputs nothing more is kept but errors, and the notebook and the report say so."""
    import asyncio

    from grader.run.execute import KernelSession
    from grader.run.sandbox import kernel_command

    config = config_from_dict({"limits": {"notebook_outputs": 40, "cell_timeout_s": 60, "notebook_timeout_s": 300}})
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(source)
        for source in (
            "for i in range(300):\n    print(i, flush=True)",
            "from IPython.display import display\nfor i in range(30):\n    display(i)",
            "for i in range(30):\n    display(i)",
            "print('after')",
            "1 / 0",
        )
    ]

    async def run():
        async with KernelSession(kernel_command(config, tmp_path), tmp_path, config.limits) as session:
            return await session.run_notebook(nb)

    execution = asyncio.run(run())
    cells = execution.notebook.cells
    [printed] = cells[0].outputs  # 300 messages, one output
    assert printed.text.split() == [str(i) for i in range(300)]
    assert len(cells[1].outputs) == 30
    kept = [o for o in cells[2].outputs if o.output_type == "display_data"]
    assert len(kept) == 9 and "output from here on is not kept" in cells[2].outputs[-1].text  # 1 + 30 + 9 = 40
    assert cells[3].outputs == []
    assert [o.output_type for o in cells[4].outputs] == ["error"]  # errors are always kept
    assert execution.info.status == "errors"
    assert any(
        n.startswith(
            "output from cell In [3] on was not kept: the notebook's output reached the grader's limit of 40 outputs"
        )
        for n in execution.info.notes
    ), execution.info.notes


@pytest.mark.kernel
@needs_torch
def test_the_executed_notebook_is_written_within_the_size_the_grader_accepts(grading_context, tmp_path):
    """A 10 MB notebook whose cells print 7 MB each (a course that allows 8 MB per cell): the run keeps
    50 MB of output in all, and the executed copy leaves the last cells' outputs out to stay within
    the 50 MB the grader reads; both are said in the notebook and the report. Before: 71.6 MB."""
    import dataclasses

    from grader.pipeline import grade_submission
    from grader.report.store import write_executed

    limits = grading_context.config.limits.model_copy(update={"output_kb": 8192})
    ctx = dataclasses.replace(grading_context, config=grading_context.config.model_copy(update={"limits": limits}))
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("Erika Mustermann 7012345, Jürgen Müller 7054321\n\n" + "notes " * 1_700_000)
    ] + [nbformat.v4.new_code_cell(f"print('{i}' * 7_000_000)") for i in range(9)]
    target = tmp_path / "Erika Mustermann_7012345_Jürgen Müller_7054321.ipynb"
    nbformat.write(nb, str(target))
    assert target.stat().st_size > 10_000_000
    graded = grade_submission(target, tmp_path, ctx)
    written = write_executed(graded.executed, tmp_path / "out", "team")
    assert written.stat().st_size <= MAX_NOTEBOOK_BYTES
    again = parse_notebook_json(written)  # a notebook the grader accepts as input
    outputs = ["".join(o.get("text", "")) for c in again["cells"][1:] for o in c["outputs"]]
    assert sum(len(text) for text in outputs) > 30_000_000  # most of the output is kept
    notes = graded.report.execution.notes
    assert any(n.startswith("output from cell In [8] on was not kept") for n in notes), notes
    assert any(n.startswith("outputs of ") and "were left out of the executed notebook" in n for n in notes), notes
    assert any("[grader: outputs of this cell left out" in text for text in outputs)


def _tree_memory_mib(process) -> tuple[float, float]:
    """(sum of PSS, sum of RSS) over a process and all its descendants, in MiB."""
    import psutil

    pss = rss = 0
    for proc in [process, *process.children(recursive=True)]:
        try:
            info = proc.memory_full_info()
        except (psutil.Error, OSError):
            continue
        pss, rss = pss + info.pss, rss + info.rss
    return pss / 2**20, rss / 2**20


@pytest.mark.kernel
@needs_torch
def test_a_batch_with_480000_tiny_cells_stays_within_the_memory_prepare_asks_for(tiny_cells_file, tmp_path):
    """The issue's case in a batch beside a correct submission, one worker: before, the worker took
    2.5 GB and 398 s, the grader 1.1 GB (the process tree 3.1 GiB, PSS) and the executed copy was
    71.6 MB. Now the notebook is refused before it is parsed (content.notebook_too_large; a tutor
    decides, no points taken), and the tree stays within `grader prepare`'s --mem for one worker."""
    import time

    import psutil

    from grader.commands.prepare import shard_resources
    from grader.models import TimeLimits

    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(ROOT / "submissions" / CORRECT, subs / CORRECT)
    big = "Anna Schmidt_7000001_Bernd Weber_7000002"
    with zipfile.ZipFile(subs / f"{big}.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(tiny_cells_file, "Exercise_6_6.ipynb")
        with zipfile.ZipFile(ROOT / "submissions" / CORRECT) as example:
            zf.writestr("Sheet6.pdf", example.read("Sheet6.pdf"))
    calibration = tmp_path / "calibration.json"
    shutil.copy(ROOT / "reference" / "calibration.json", calibration)
    env = {**os.environ, "GRADER_CACHE": str(tmp_path / "cache"), "GRADER_CALIBRATION": str(calibration)}
    out = tmp_path / "out"
    grade = subprocess.Popen(
        [sys.executable, "-m", "grader", "grade", str(subs), "--out", str(out), "--workers", "1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    peak_pss = peak_rss = 0.0
    process = psutil.Process(grade.pid)
    while grade.poll() is None:
        pss, rss = _tree_memory_mib(process)
        peak_pss, peak_rss = max(peak_pss, pss), max(peak_rss, rss)
        time.sleep(0.2)
    output = grade.stdout.read()
    assert grade.returncode == 0, output[-3000:]
    report = json.loads((out / f"{big}.json").read_text(encoding="utf-8"))
    [violation] = [v for v in report["violations"] if v["code"] == "content.notebook_too_large"]
    assert "it has 480,000 cells, more than the 2,000 cells" in violation["message"]
    assert violation["severity"] == "error" and report["execution"]["status"] == "not_run"
    assert {c["status"] for c in report["checks"]} == {"needs_review"}  # no points taken for the grader's limit
    assert not (out / "executed" / f"{big}.ipynb").exists()
    allowed = shard_resources(
        workers=1,
        largest_shard=2,
        solution_seconds=None,
        limits=TimeLimits(cell_timeout_s=60, notebook_timeout_s=120, source="test"),
    ).memory_mb
    print(f"peak of the process tree: {peak_pss:.0f} MiB PSS, {peak_rss:.0f} MiB RSS; prepare asks for {allowed} MiB")
    assert peak_pss < allowed, (peak_pss, peak_rss, allowed)
    correct = json.loads((out / f"{Path(CORRECT).stem}.json").read_text(encoding="utf-8"))
    assert correct["execution"]["cells_run"] == correct["execution"]["cells_total"] > 0  # the batch went on
