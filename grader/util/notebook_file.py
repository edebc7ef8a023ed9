"""Reading a student's notebook file: whatever is in it, either a notebook or a `NotebookInvalid`
that says what is wrong and where ("not UTF-8 at byte 1234", "cell 3's source is a number, expected
text", "nested more than 100 levels deep"), never a RecursionError, AttributeError or
UnicodeDecodeError from deep inside a library. `run/execute.read_notebook` (the notebook to run),
`intake/identity.notebook_text` (who wrote it), the import pre-flight and the choice among several
notebooks all read through `decode_notebook`.

A notebook is bounded by what it holds, not only by its size: 50 MB of tiny cells (480,000 of them)
or of empty lists would take gigabytes as Python objects. Its JSON values are counted in the bytes
before anything is parsed, and its cells after (`NotebookTooLarge`, with the caps of
`[limits] notebook_cells` set by `configure`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

MAX_NOTEBOOK_BYTES = 50 * 1024 * 1024
MAX_DEPTH = 100  # real notebooks nest a dozen levels (widget state, metadata); 100 is generous
# JSON values (objects, lists, strings, numbers) a notebook may hold: a course notebook holds a few
# hundred, one saved with its outputs a few thousand. Half a million parse into about 50 MB.
MAX_JSON_VALUES = 500_000
# The defaults of [limits] notebook_cells and notebook_outputs (grading.toml says the same).
MAX_CELLS = 2_000
MAX_OUTPUTS = 5_000
CELL_TYPES = ("code", "markdown", "raw")

_cells_cap = MAX_CELLS


def configure(*, cells: int) -> None:
    """The most cells a notebook may have ([limits] notebook_cells), for every reader in this process."""
    global _cells_cap
    _cells_cap = cells


class NotebookInvalid(ValueError):
    """The file is not a notebook the grader can read; str() says what is wrong (no file name: the
    caller names the file)."""


class NotebookTooLarge(NotebookInvalid):
    """A notebook over a cap of the grader's: its size, its cells or its JSON values."""


_CHUNK = 1 << 20


def json_values(raw: bytes) -> int:
    """About how many values a JSON text holds (each `{`, `[` and `,` outside strings starts one),
    counted in the bytes without parsing them. Counting inside strings too is an upper bound that
    costs milliseconds; the exact count is made only when that bound is over the cap: escaped
    backslashes and quotes taken out, every quote left opens or closes a string, and the bytes are
    read a megabyte at a time (memory stays that of one copy of the text)."""
    bound = raw.count(b"{") + raw.count(b"[") + raw.count(b",") + 1
    if bound <= MAX_JSON_VALUES:
        return bound
    text = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    count, inside = 1, 0
    for start in range(0, len(text), _CHUNK):
        pieces = text[start : start + _CHUNK].split(b'"')
        outside = b"".join(pieces[inside::2])
        count += outside.count(b"{") + outside.count(b"[") + outside.count(b",")
        inside ^= (len(pieces) - 1) & 1
    return count


def _over_the_caps(raw: bytes) -> None:
    """Raise NotebookTooLarge for a notebook over the caps, before any of it is parsed."""
    if len(raw) > MAX_NOTEBOOK_BYTES:
        raise NotebookTooLarge(_too_big(len(raw)))
    values = json_values(raw)
    if values > MAX_JSON_VALUES:
        cells = raw.count(b'"cell_type"')  # as written by Jupyter; the exact count needs parsing
        if cells > _cells_cap:
            raise NotebookTooLarge(_too_many_cells(cells))
        raise NotebookTooLarge(
            f"it holds {values:,} JSON values (objects, lists, strings, numbers), more than the "
            f"{MAX_JSON_VALUES:,} a notebook may hold; a course notebook holds a few hundred: was it saved "
            f"with very many outputs? Clear all outputs (Edit, Clear Outputs of All Cells), save it, and "
            f"hand it in again"
        )


def _too_big(size: int) -> str:
    """Why a notebook of `size` bytes is refused; in bytes where MB would read "50 MB, more than 50 MB"."""
    shown = f"{size / 1024 / 1024:.1f} MB"
    if shown == f"{MAX_NOTEBOOK_BYTES / 1024 / 1024:.1f} MB":
        return (
            f"it is {size:,} bytes, more than the {MAX_NOTEBOOK_BYTES:,} bytes "
            f"({MAX_NOTEBOOK_BYTES // 1024 // 1024} MB) a notebook may have"
        )
    return f"it is {shown}, more than the {MAX_NOTEBOOK_BYTES // 1024 // 1024} MB a notebook may have"


def _too_many_cells(cells: int) -> str:
    return (
        f"it has {cells:,} cells, more than the {_cells_cap:,} cells a notebook may have "
        f"([limits] notebook_cells; a course notebook has tens)"
    )


def _kind(value) -> str:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, (int, float)):
        return "a number"
    if value is None:
        return "null"
    names: dict[type, str] = {dict: "an object", list: "a list", str: "text"}
    return names.get(type(value), type(value).__name__)


def _depth_over(value, limit: int) -> bool:
    """Whether `value` nests deeper than `limit` (iteratively: the value may be deeper than Python's
    recursion limit allows to walk recursively)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values() if isinstance(v, (dict, list)))
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item if isinstance(v, (dict, list)))
    return False


def _text(value, what: str) -> str:
    """A notebook's multi-line text field: a string or a list of strings."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(part, str) for part in value):
        return "".join(value)
    if isinstance(value, list):
        bad = next(part for part in value if not isinstance(part, str))
        raise NotebookInvalid(f"{what} is a list holding {_kind(bad)}, expected text (a string or a list of strings)")
    raise NotebookInvalid(f"{what} is {_kind(value)}, expected text (a string or a list of strings)")


def decode_notebook(raw: bytes) -> dict:
    """The notebook's JSON (nbformat 4, checked as far as the grader relies on it), from its bytes.
    Multi-line fields (`source`) come back as strings; outputs are kept as they are."""
    _over_the_caps(raw)
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NotebookInvalid(
            f"not UTF-8 at byte {exc.start} (0x{raw[exc.start]:02x}); a notebook is UTF-8 "
            f"JSON: save it again from Jupyter"
        ) from None
    try:
        data = json.loads(text)
    except RecursionError:
        raise NotebookInvalid(f"nested more than {MAX_DEPTH} levels deep; expected a Jupyter notebook") from None
    except json.JSONDecodeError as exc:
        raise NotebookInvalid(
            f"not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); expected a Jupyter notebook, which is JSON"
        ) from None
    if not isinstance(data, dict):
        raise NotebookInvalid(f"JSON that is not a notebook: expected an object with 'cells', found {_kind(data)}")
    if _depth_over(data, MAX_DEPTH):
        raise NotebookInvalid(f"nested more than {MAX_DEPTH} levels deep; expected a Jupyter notebook")
    major = data.get("nbformat")
    if major is None and "cells" not in data and "worksheets" not in data:
        keys = ", ".join(repr(k) for k in list(data)[:5]) or "no keys at all"
        raise NotebookInvalid(
            f"JSON that is not a notebook: expected an object with 'nbformat' and 'cells', found one with {keys}"
        )
    if major == 3 or (major is None and "worksheets" in data):
        return _from_version_3(data)
    if major != 4:
        found = "no 'nbformat' field" if major is None else f"nbformat {major!r}"
        raise NotebookInvalid(f"JSON that is not a notebook of a known version: expected nbformat 4, found {found}")
    cells = data.get("cells")
    if not isinstance(cells, list):
        found = "no 'cells'" if cells is None else f"'cells' that is {_kind(cells)}"
        raise NotebookInvalid(f"JSON that is not a notebook: expected a list of cells, found {found}")
    if len(cells) > _cells_cap:
        raise NotebookTooLarge(_too_many_cells(len(cells)))
    if not isinstance(data.setdefault("metadata", {}), dict):  # left out by converters: Jupyter opens it
        raise NotebookInvalid(f"the notebook's metadata is {_kind(data['metadata'])}, expected an object")
    for number, cell in enumerate(cells, start=1):
        if not isinstance(cell, dict):
            raise NotebookInvalid(f"cell {number} is {_kind(cell)}, expected an object")
        kind = cell.get("cell_type")
        if kind not in CELL_TYPES:
            raise NotebookInvalid(f"cell {number} has cell_type {kind!r}, expected one of {', '.join(CELL_TYPES)}")
        cell["source"] = _text(cell.get("source", ""), f"cell {number}'s source")
        if not isinstance(cell.setdefault("metadata", {}), dict):
            raise NotebookInvalid(f"cell {number}'s metadata is {_kind(cell['metadata'])}, expected an object")
        # Keys Jupyter does without (converters and scripts leave them out), filled in as it would.
        if kind == "code":
            if not isinstance(cell.get("outputs"), list):
                cell["outputs"] = []
            cell.setdefault("execution_count", None)
        if "attachments" in cell and not (
            isinstance(cell["attachments"], dict) and all(isinstance(v, dict) for v in cell["attachments"].values())
        ):
            del cell["attachments"]  # images pasted into markdown: nothing the grader reads
    return data


def _from_version_3(data: dict) -> dict:
    """An old (nbformat 3) notebook, converted by nbformat; anything it cannot take is said so."""
    import warnings

    import nbformat

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nb = nbformat.reads(json.dumps(data), as_version=4, capture_validation_error={})
    except Exception as exc:  # nbformat's converter on a malformed old notebook
        raise NotebookInvalid(
            f"an nbformat 3 notebook that cannot be converted ({type(exc).__name__}: {str(exc)[:200]})"
        ) from None
    return decode_notebook(json.dumps(nb).encode("utf-8"))


# Notebooks refused for their size, by (path, inode, mtime, size, cells cap): the identity checks, the
# choice of notebook and the run all read the same file, and counting 50 MB of JSON takes seconds.
_REFUSED: dict[tuple, NotebookTooLarge] = {}


def parse_notebook_json(path: os.PathLike | str) -> dict:
    """`decode_notebook` of the file at `path` (read up to the size limit)."""
    with open(Path(path), "rb") as handle:
        st = os.fstat(handle.fileno())
        key = (os.fspath(path), st.st_ino, st.st_mtime_ns, st.st_size, _cells_cap)
        if key in _REFUSED:
            raise _REFUSED[key]
        if st.st_size > MAX_NOTEBOOK_BYTES:
            raise NotebookTooLarge(_too_big(st.st_size))
        raw = handle.read(min(st.st_size, MAX_NOTEBOOK_BYTES) + 1)  # not a 50 MB buffer for every file
    try:
        return decode_notebook(raw)
    except NotebookTooLarge as exc:
        _REFUSED[key] = NotebookTooLarge(str(exc))  # not its traceback: its frames hold the file's bytes
        while len(_REFUSED) > 4:
            _REFUSED.pop(next(iter(_REFUSED)))
        raise


def _written_size(nb) -> int:
    """Bytes of the notebook as nbformat writes it (indented, multi-line text split into lines)."""
    import nbformat

    return len(nbformat.v4.writes(nb).encode("utf-8", "surrogatepass"))


def fit_outputs(nb, limit: int = MAX_NOTEBOOK_BYTES) -> list[int]:
    """Leave outputs out of the executed notebook `nb`, from its last cell back, until it is written
    in no more than `limit` bytes (the size the grader accepts as a notebook: its executed copy must
    be one the grader can read again). Errors stay (they are what the verdict and tutors read); each
    cell that loses outputs says so in their place. Returns the indices of those cells."""
    import nbformat

    rough = sum(
        len(cell.get("source", "")) + len(json.dumps(cell.get("outputs", []), default=str)) for cell in nb.cells
    )
    if 3 * rough < limit:  # nbformat's layout at most doubles a text: nothing to measure
        return []
    size = _written_size(nb)
    left_out: list[int] = []
    note = nbformat.v4.new_output(
        "stream",
        name="stderr",
        text=(
            f"[grader: outputs of this cell left out: the executed notebook must stay within "
            f"{limit // 1024 // 1024} MB, the size the grader accepts as a notebook]\n"
        ),
    )
    for index in reversed(range(len(nb.cells))):
        if size <= limit:
            break
        cell = nb.cells[index]
        kept = [out for out in cell.get("outputs", []) if out.get("output_type") == "error"]
        if cell.get("cell_type") != "code" or len(kept) == len(cell.get("outputs", [])):
            continue
        before = len(json.dumps(cell.outputs, indent=1, default=str))
        cell.outputs = [nbformat.from_dict(dict(note))] + kept
        left_out.append(index)
        size -= before - len(json.dumps(cell.outputs, indent=1, default=str))
        if size <= limit:
            size = _written_size(nb)  # the estimate says it fits: make sure
    return sorted(left_out)
