"""Which of the unpacked files are the notebook and the PDF to grade."""

from __future__ import annotations

import functools
import json
import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import nbformat

from grader.models import Violation
from grader.sheet import Sheet
from grader.util.notebook_file import MAX_JSON_VALUES, json_values

MAX_SCAN_BYTES = 20 * 1024 * 1024
# "# %%", "# %% [markdown]", "#%%" (VS Code, Spyder, jupytext) and "# In[3]:" (Jupyter's .py export)
_CELL_MARK = re.compile(r"^#\s*(?:%%(?P<rest>.*)|In\s*\[[^\]]*\]\s*:?\s*)$")


_UNTITLED = re.compile(r"^untitled\d*(?:-\d+)?(?:\s*\(\d+\))?$", re.IGNORECASE)


@dataclass(frozen=True)
class SheetHints:
    """What the sheet tells the intake about its notebook: the classes it asks for, the names its
    template uses (the notebook that mentions most of them is the solution), the template itself
    (its lines are not the team's own work), and what the PDF should hold."""

    classes: tuple[str, ...]
    markers: tuple[str, ...]
    template: Path | None
    written_exercises: str
    data_folder: str = ""  # the data set's folder, which the grader serves (DatasetSpec.folder)

    @classmethod
    def of(cls, sheet: Sheet) -> SheetHints:
        return cls(
            classes=tuple(n.class_name for n in sheet.networks),
            markers=sheet.content_markers,
            template=sheet.template,
            written_exercises=sheet.written_exercises,
            data_folder=sheet.dataset.folder if sheet.dataset is not None else "",
        )

    @functools.cached_property
    def marker_patterns(self) -> list[re.Pattern]:
        return [re.compile(rf"\b{re.escape(m)}\b") for m in self.markers]

    @functools.cached_property
    def class_patterns(self) -> dict[str, re.Pattern]:
        return {name: re.compile(rf"\bclass\s+{re.escape(name)}\b") for name in self.classes}


@functools.lru_cache(maxsize=8)
def _template_lines(template: Path | None) -> frozenset[str]:
    """The code lines of the sheet's template notebook: not the team's own work."""
    if template is None:
        return frozenset()
    try:
        data = json.loads(Path(template).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return frozenset()
    return frozenset(line for source in _code_sources(data) for line in _code_lines(source))


def _code_sources(data) -> list[str]:
    cells = data.get("cells", []) if isinstance(data, dict) else []
    out = []
    for cell in cells:
        if isinstance(cell, dict) and cell.get("cell_type") == "code":
            src = cell.get("source", "")
            out.append("".join(src) if isinstance(src, list) else str(src))
    return out


def _code_lines(source: str) -> list[str]:
    return [ln.strip() for ln in source.splitlines() if ln.strip() and not ln.strip().startswith("#")]


@dataclass(frozen=True)
class NotebookMerit:
    """How much a notebook looks like the team's solution of the sheet (more is better)."""

    classes: tuple[str, ...]  # the sheet's classes it defines
    own_lines: int  # code lines that are not the template's
    untitled: bool  # Jupyter's default name ("Untitled.ipynb", "Untitled1.ipynb")
    score: tuple[int, int]  # template_score of its text

    def key(self) -> tuple:
        return (-len(self.classes), self.own_lines == 0, self.untitled, -self.score[0], -self.score[1])


def notebook_merit(path: Path, hints: SheetHints) -> NotebookMerit:
    text = _read_text(path)
    try:
        # Parsed only when what it holds is bounded (notebook_file): 20 MB of tiny cells or empty
        # lists would take gigabytes as Python objects. Otherwise read as text, as a broken one is.
        if json_values(text.encode("utf-8", "surrogatepass")) > MAX_JSON_VALUES:
            raise ValueError("too many JSON values")
        sources = _code_sources(json.loads(text))
    except ValueError:
        sources = [text]
    code = "\n".join(sources)
    template = _template_lines(hints.template)
    return NotebookMerit(
        classes=tuple(name for name, pattern in hints.class_patterns.items() if name in code and pattern.search(code)),
        own_lines=sum(1 for source in sources for line in _code_lines(source) if line not in template),
        untitled=bool(_UNTITLED.match(PurePosixPath(path.name).stem.strip())),
        score=template_score(text, hints),
    )


def why_chosen(
    chosen: str, chosen_merit: NotebookMerit, other: str, other_merit: NotebookMerit, hints: SheetHints
) -> str:
    """Why `chosen` was graded rather than `other` (the runner-up), in words."""
    if len(chosen_merit.classes) != len(other_merit.classes):
        return f"it defines {' and '.join(chosen_merit.classes)}" + (
            f", '{other}' does not" if not other_merit.classes else f", '{other}' only {', '.join(other_merit.classes)}"
        )
    if (chosen_merit.own_lines == 0) != (other_merit.own_lines == 0):
        return f"'{other}' holds only the sheet's template, no code of your own"
    if chosen_merit.untitled != other_merit.untitled:
        return f"'{other}' has Jupyter's default name (Untitled), so it looks like a scratch notebook"
    if chosen_merit.score != other_merit.score:
        markers = ", ".join(hints.markers)
        return f"it uses the sheet's names ({markers}) more than '{other}'"
    return f"it and '{other}' look alike; the one with the shorter path (then the first by name) is graded"


def template_score(text: str, hints: SheetHints) -> tuple[int, int]:
    """(how many template names occur, how often): a solved notebook uses them more than a template."""
    # `in` first: a regex that starts with \b reads 20 MB of text in seconds, `in` in milliseconds.
    counts = [len(r.findall(text)) if m in text else 0 for m, r in zip(hints.markers, hints.marker_patterns)]
    return sum(1 for c in counts if c), sum(counts)


def _read_text(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            return fh.read(MAX_SCAN_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return ""


def _path_key(rel: str) -> tuple[int, int, str]:
    return (len(PurePosixPath(rel).parts), len(rel), rel)


def rank_notebooks(dest: Path, candidates: list[str], hints: SheetHints) -> list[tuple[str, NotebookMerit]]:
    """Best first: the one that defines the sheet's classes, holds code of its own beyond the
    template, is not an `Untitled*` notebook and uses the sheet's names most; ties go to the
    shortest path, then the name."""
    merits = {rel: notebook_merit(dest / rel, hints) for rel in candidates}
    return sorted(merits.items(), key=lambda item: item[1].key() + _path_key(item[0]))


def choose_notebook(dest: Path, candidates: list[str], hints: SheetHints) -> str:
    return rank_notebooks(dest, candidates, hints)[0][0]


def script_to_notebook(source: str) -> nbformat.NotebookNode:
    """A .py script as a notebook: cells split at '# %%' / '# In[ ]:' markers, else one code cell."""
    source = source.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    lines = source.split("\n")
    if lines and lines[0].startswith("#!"):
        lines = lines[1:]
    if lines and re.match(r"^#.*coding[:=]", lines[0] or ""):
        lines = lines[1:]
    cells: list[tuple[str, list[str]]] = []
    kind = "code"
    current: list[str] = []
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


def find_content(
    dest: Path,
    files: list[str],
    label: str,
    *,
    hints: SheetHints,
    preferred_stem: str | None = None,
) -> tuple[Path | None, Path | None, list[Violation]]:
    """(notebook, pdf, violations) among the unpacked files (posix paths relative to dest)."""
    violations: list[Violation] = []
    notebooks = _by_suffix(files, ".ipynb")
    scripts = _by_suffix(files, ".py")
    notebook: Path | None = None
    chosen: str | None = None
    if len(notebooks) == 1:  # nothing to choose: its merit would cost seconds for a 50 MB one
        chosen = notebooks[0]
        notebook = dest / chosen
    elif notebooks:
        ranked = rank_notebooks(dest, notebooks, hints)
        chosen = ranked[0][0]
        notebook = dest / chosen
        if len(notebooks) > 1:
            others = ", ".join(f"'{n}'" for n, _ in ranked[1:])
            why = why_chosen(chosen, ranked[0][1], ranked[1][0], ranked[1][1], hints)
            violations.append(
                Violation(
                    code="content.multiple_notebooks",
                    severity="warning",
                    message=f"{label}: expected one notebook, found {len(notebooks)}; grading '{chosen}', "
                    f"not {others}, because {why}. Leave the others out of the zip",
                )
            )
    elif scripts:
        chosen_script = choose_notebook(dest, scripts, hints)
        notebook = convert_script(dest, chosen_script)
        chosen = notebook.relative_to(dest).as_posix()
        if len(scripts) > 1:
            others = ", ".join(s for s in scripts if s != chosen_script)
            violations.append(
                Violation(
                    code="content.multiple_notebooks",
                    severity="warning",
                    message=f"{label}: expected one notebook, found no .ipynb but {len(scripts)} .py scripts; "
                    f"grading '{chosen_script}' (converted to '{chosen}'), not {others}",
                )
            )
    else:
        shown = ", ".join(files[:10]) + (" ..." if len(files) > 10 else "") if files else "no files"
        violations.append(
            Violation(
                code="content.no_notebook",
                severity="error",
                message=f"{label}: expected a Jupyter notebook (.ipynb) or a Python script (.py), found {shown}",
            )
        )

    pdfs = _by_suffix(files, ".pdf")
    pdf: Path | None = None
    if pdfs:
        wanted = {
            unicodedata.normalize("NFC", s).casefold()
            for s in (preferred_stem, PurePosixPath(chosen).stem if chosen else None)
            if s
        }

        def pdf_key(rel: str):
            return (PurePosixPath(rel).stem.casefold() not in wanted,) + _path_key(rel)

        pdf = dest / min(pdfs, key=pdf_key)
    else:
        violations.append(
            Violation(
                code="content.no_pdf",
                severity="warning",
                message=f"{label}: expected a PDF with the written exercises ({hints.written_exercises}), found none",
            )
        )
    return notebook, pdf, violations
