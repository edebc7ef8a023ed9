"""Which of the unpacked files are the notebook and the PDF to grade."""
from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path, PurePosixPath

import nbformat

from grader.report.models import Violation

# Names the sheet's template asks for: the notebook that mentions most of them is the solution.
TEMPLATE_MARKERS = ("FashionNetwork", "FashionNetworkBatchNorm", "fashion_network", "optimize")
_MARKER_RES = [re.compile(rf"\b{re.escape(m)}\b") for m in TEMPLATE_MARKERS]
MAX_SCAN_BYTES = 20 * 1024 * 1024
# "# %%", "# %% [markdown]", "#%%" (VS Code, Spyder, jupytext) and "# In[3]:" (Jupyter's .py export)
_CELL_MARK = re.compile(r"^#\s*(?:%%(?P<rest>.*)|In\s*\[[^\]]*\]\s*:?\s*)$")


def template_score(text: str) -> tuple[int, int]:
    """(how many template names occur, how often): a solved notebook uses them more than a template."""
    counts = [len(r.findall(text)) for r in _MARKER_RES]
    return sum(1 for c in counts if c), sum(counts)


def _read_text(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            return fh.read(MAX_SCAN_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return ""


def _path_key(rel: str) -> tuple[int, int, str]:
    return (len(PurePosixPath(rel).parts), len(rel), rel)


def choose_notebook(dest: Path, candidates: list[str]) -> str:
    """The candidate that best matches the template; ties go to the shortest path, then the name."""
    def key(rel: str):
        distinct, total = template_score(_read_text(dest / rel))
        return (-distinct, -total) + _path_key(rel)
    return min(candidates, key=key)


def script_to_notebook(source: str) -> nbformat.NotebookNode:
    """A .py script as a notebook: cells split at '# %%' / '# In[ ]:' markers, else one code cell."""
    source = source.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    lines = source.split("\n")
    if lines and lines[0].startswith("#!"):
        lines = lines[1:]
    if lines and re.match(r"^#.*coding[:=]", lines[0] or ""):
        lines = lines[1:]
    cells: list[tuple[str, list[str]]] = []
    kind, current = "code", []
    for line in lines:
        mark = _CELL_MARK.match(line.rstrip())
        if mark:
            cells.append((kind, current))
            rest = (mark.group("rest") or "").lower()
            kind = "markdown" if "[markdown]" in rest or "[md]" in rest else "code"
            current = []
        else:
            current.append(line)
    cells.append((kind, current))
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for kind, body in cells:
        text = "\n".join(body).strip("\n")
        if not text.strip():
            continue
        if kind == "markdown":
            text = "\n".join(re.sub(r"^# ?", "", ln) for ln in text.split("\n"))
            nb.cells.append(nbformat.v4.new_markdown_cell(text))
        else:
            nb.cells.append(nbformat.v4.new_code_cell(text))
    if not nb.cells:
        nb.cells.append(nbformat.v4.new_code_cell(""))
    return nb


def convert_script(dest: Path, rel: str) -> Path:
    """Write the notebook made from the script dest/rel next to it; its path is returned."""
    script = dest / rel
    text = _read_text(script)
    nb = script_to_notebook(text)
    base = script.with_suffix("")
    target = base.with_name(base.name + ".ipynb")
    n = 1
    while os.path.lexists(target):
        target = base.with_name(f"{base.name}.converted{'' if n == 1 else n}.ipynb")
        n += 1
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    with os.fdopen(os.open(target, flags, 0o644), "w", encoding="utf-8") as fh:
        nbformat.write(nb, fh)
    return target


def _by_suffix(files: list[str], suffix: str) -> list[str]:
    return sorted(f for f in files if f.lower().endswith(suffix))


def find_content(dest: Path, files: list[str], label: str,
                 preferred_stem: str | None = None) -> tuple[Path | None, Path | None, list[Violation]]:
    """(notebook, pdf, violations) among the unpacked files (posix paths relative to dest)."""
    violations: list[Violation] = []
    notebooks = _by_suffix(files, ".ipynb")
    scripts = _by_suffix(files, ".py")
    notebook: Path | None = None
    chosen: str | None = None
    if notebooks:
        chosen = choose_notebook(dest, notebooks)
        notebook = dest / chosen
        if len(notebooks) > 1:
            others = ", ".join(n for n in notebooks if n != chosen)
            violations.append(Violation(
                code="content.multiple_notebooks", severity="warning",
                message=f"{label}: expected one notebook, found {len(notebooks)}; grading '{chosen}' "
                        f"(best match for the sheet's template: FashionNetwork, FashionNetworkBatchNorm, "
                        f"fashion_network, optimize), not {others}"))
    elif scripts:
        chosen_script = choose_notebook(dest, scripts)
        notebook = convert_script(dest, chosen_script)
        chosen = notebook.relative_to(dest).as_posix()
        if len(scripts) > 1:
            others = ", ".join(s for s in scripts if s != chosen_script)
            violations.append(Violation(
                code="content.multiple_notebooks", severity="warning",
                message=f"{label}: expected one notebook, found no .ipynb but {len(scripts)} .py scripts; "
                        f"grading '{chosen_script}' (converted to '{chosen}'), not {others}"))
    else:
        shown = ", ".join(files[:10]) + (" ..." if len(files) > 10 else "") if files else "no files"
        violations.append(Violation(
            code="content.no_notebook", severity="error",
            message=f"{label}: expected a Jupyter notebook (.ipynb) or a Python script (.py), found {shown}"))

    pdfs = _by_suffix(files, ".pdf")
    pdf: Path | None = None
    if pdfs:
        wanted = {unicodedata.normalize("NFC", s).casefold()
                  for s in (preferred_stem, PurePosixPath(chosen).stem if chosen else None) if s}

        def pdf_key(rel: str):
            return (PurePosixPath(rel).stem.casefold() not in wanted,) + _path_key(rel)
        pdf = dest / min(pdfs, key=pdf_key)
    else:
        violations.append(Violation(
            code="content.no_pdf", severity="warning",
            message=f"{label}: expected a PDF with the written exercises (6.1-6.5, 6.7), found none"))
    return notebook, pdf, violations
