"""What a notebook imports, read from its source without running it.

Every `import` and `from ... import` statement of every code cell counts, wherever it stands
(inside functions, `try`, `if`), after IPython's own transforms have turned magics and shell lines
(`%time`, `!nvidia-smi`, `x = !ls`) into calls; a cell that does not parse is read line by line.
Cell magics whose body is Python (`%%time`, `%%capture`, ...) are read through; `%%writefile x.py`
makes a module of the submission's own; other cell magics (`%%bash`, ...) are not Python.
`%pip install` and `!pip install` lines are collected apart: they name distributions, not modules.
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import nbformat

# Modules that exist only on a notebook platform: a failed import of one is no fault of the course's
# environment (nothing could provide it), and the pre-flight lists them as such.
PLATFORM_MODULES = {
    "google.colab": "Google Colab",
    "kaggle_secrets": "Kaggle",
    "kaggle_datasets": "Kaggle",
    "kaggle_web_client": "Kaggle",
    "kaggle_gcp": "Kaggle",
}
_PYTHON_CELL_MAGICS = {"time", "timeit", "capture", "prun", "debug", "python", "python3", "ipython"}
_PIP_LINE = re.compile(
    r"^\s*[%!]\s*(?:\S*python\S*\s+-m\s+)?(?:pip3?(?:\.\d+)?|uv\s+pip|conda|mamba)\s+install\s+(.*)$"
)
_PIP_OPTIONS_WITH_VALUE = {
    "-r",
    "--requirement",
    "-c",
    "--constraint",
    "-e",
    "--editable",
    "-i",
    "--index-url",
    "--extra-index-url",
    "-f",
    "--find-links",
    "-t",
    "--target",
    "--prefix",
    "--root",
    "--python-version",
    "--platform",
    "--implementation",
    "--abi",
    "--upgrade-strategy",
    "-C",
    "--config-settings",
    "--progress-bar",
    "--trusted-host",
    "--proxy",
    "--timeout",
    "--retries",
    "--cache-dir",
    "--log",
    "--src",
    "--channel",
}
_DISTRIBUTION = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)")
MAX_CELL_CHARS = 200_000
# Code read as Python (parsed, every node visited) in one notebook; the rest is read line by line. A
# course notebook has 10-50 KB of code; one at the cells cap with 23 KB a cell (46 MB) took 90 s.
MAX_PARSED_CHARS = 2_000_000


@dataclass(frozen=True)
class ImportUse:
    module: str  # the full dotted name as written (`google.colab`, `torch.nn`)
    cell: int  # 1-based position of the code cell in the notebook

    @property
    def top(self) -> str:
        return self.module.split(".", 1)[0]

    @property
    def platform(self) -> str | None:
        """The platform that alone provides this module (`Google Colab`), or None."""
        for name, platform in PLATFORM_MODULES.items():
            if self.module == name or self.module.startswith(name + "."):
                return platform
        return None


@dataclass(frozen=True)
class PipInstall:
    line: str  # the line as written (stripped, at most 200 characters)
    packages: tuple[str, ...]  # distribution names it asks for
    cell: int


@dataclass
class NotebookImports:
    imports: list[ImportUse] = field(default_factory=list)
    pip: list[PipInstall] = field(default_factory=list)
    written_modules: set[str] = field(default_factory=set)  # by %%writefile NAME.py

    def third_party(self) -> list[ImportUse]:
        """Imports the kernel must provide: not relative, not __future__, not the standard library."""
        return [use for use in self.imports if use.top != "__future__" and use.top not in sys.stdlib_module_names]


def _transform(source: str) -> str:
    """IPython's transforms (magics and shell lines to calls); the source as it is when they fail."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        return TransformerManager().transform_cell(source)
    except Exception:
        return source


def _imports_of(tree: ast.AST) -> list[str]:
    modules: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            modules.append(node.module)
    return modules


_IMPORT_LINE = re.compile(
    r"^\s*(?:from\s+([A-Za-z_][\w.]*)\s+import\b|import\s+([A-Za-z_][\w.]*(?:\s*,\s*[A-Za-z_][\w.]*)*))"
)


def _imports_by_line(source: str) -> list[str]:
    """For a cell that does not parse: every line that reads like an import statement."""
    modules = []
    for line in source.splitlines():
        match = _IMPORT_LINE.match(line)
        if not match:
            continue
        if match.group(1):
            modules.append(match.group(1))
        else:
            modules.extend(part.strip() for part in match.group(2).split(","))
    return modules


def _pip_packages(arguments: str) -> tuple[str, ...]:
    words = arguments.split()
    packages, skip = [], False
    for word in words:
        if skip:
            skip = False
            continue
        if word.startswith("-"):
            skip = word in _PIP_OPTIONS_WITH_VALUE
            continue
        if word.startswith(("#", "$", "{")):
            break
        match = _DISTRIBUTION.match(word.strip("'\""))
        if match and not word.startswith((".", "/")) and "://" not in word:
            packages.append(match.group(1).rstrip("._-"))
    return tuple(p for p in packages if p)


def _read_cell(source: str, cell: int, found: NotebookImports, parse: bool = True) -> None:
    source = source[:MAX_CELL_CHARS]
    for line in source.splitlines():
        pip = _PIP_LINE.match(line)
        if pip:
            found.pip.append(PipInstall(line=line.strip()[:200], packages=_pip_packages(pip.group(1)), cell=cell))
    stripped = source.lstrip()
    if stripped.startswith("%%"):
        first, _, body = stripped.partition("\n")
        words = first[2:].split()
        magic = words[0] if words else ""
        if magic == "writefile":
            target = next((w for w in words[1:] if not w.startswith("-")), "")
            name = PurePosixPath(target.strip("'\"")).name
            if name.endswith(".py") and name[:-3].isidentifier():
                found.written_modules.add(name[:-3])
            return
        if magic not in _PYTHON_CELL_MAGICS:
            return
        source = body
    if not parse:
        found.imports.extend(ImportUse(module=m, cell=cell) for m in _imports_by_line(source))
        return
    try:  # most cells are plain Python; IPython's transforms cost a millisecond a cell
        modules = _imports_of(ast.parse(source))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        try:
            modules = _imports_of(ast.parse(_transform(source)))
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            modules = _imports_by_line(source)
    found.imports.extend(ImportUse(module=m, cell=cell) for m in modules)


def notebook_imports(nb: nbformat.NotebookNode) -> NotebookImports:
    """The imports and pip lines of every code cell of `nb` (positions count all cells, from 1)."""
    found = NotebookImports()
    parsed = 0
    for index, cell in enumerate(nb.get("cells", []), start=1):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        if isinstance(source, list):
            source = "".join(source)
        if isinstance(source, str) and source.strip():
            _read_cell(source, index, found, parse=parsed < MAX_PARSED_CHARS)
            parsed += min(len(source), MAX_CELL_CHARS)
    return found


def shipped_modules(files: tuple[str, ...] | list[str]) -> set[str]:
    """Top-level module names the submission brings itself: `helper.py`, `utils/__init__.py` or a
    folder of .py files, anywhere in it (relative to the unpacked folder)."""
    names = set()
    for rel in files:
        path = PurePosixPath(rel)
        if path.suffix == ".py" and path.stem.isidentifier():
            if path.stem != "__init__":
                names.add(path.stem)
            for parent in path.parents:
                if parent.name and parent.name.isidentifier():
                    names.add(parent.name)
    return names
