"""Similar work: pairs of notebooks whose own code is nearly the same, also when the copy renamed
every identifier, changed literals and comments, and reordered the cells. A hint for tutors, never a
verdict.

How (after Schleimer, Wilkerson and Aiken, "Winnowing: local algorithms for document fingerprinting",
2003, as MOSS does):

1. Each code cell becomes a stream of normalised tokens: comments, layout and IPython magics go;
   every name the notebook itself binds (variables, functions, classes, parameters, attributes it
   assigns, import aliases) becomes `N`, every number `#num`, every string `#str`; keywords,
   operators and the names of what it uses but does not define (`nn.Linear`, `.backward`, `range`)
   stay. Renaming changes nothing in this stream.
2. Every run of K tokens within a cell is hashed; of every W consecutive hashes the smallest is kept
   (winnowing). Two notebooks that share a run of at least W + K - 1 tokens share a fingerprint, and
   the number of fingerprints grows linearly with the code, so comparing costs linear time.
   Fingerprints never span two cells: reordering the cells changes nothing either.
3. The course's own code is taken out: fingerprints of the template (and, on the tutors' side, of
   the reference solution), which every team starts from or converges to; and, in large batches,
   fingerprints that more than half of all notebooks share (the idioms of the task).
4. Two notebooks are similar when the Jaccard similarity of what is left reaches the threshold.
   Notebooks with too little own code are not compared (everyone writes the same small network).
"""

from __future__ import annotations

import ast
import functools
import io
import keyword
import re
import tokenize
import zlib
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from itertools import combinations

import nbformat

K = 12  # tokens per hashed run
W = 8  # winnowing window: shared runs of W + K - 1 = 19 tokens are always found
MIN_FINGERPRINTS = 12  # notebooks with fewer fingerprints of their own are not compared
COMMON_SHARE = 0.5  # in batches of COMMON_MIN_NOTEBOOKS or more, fingerprints in more than this
COMMON_MIN_NOTEBOOKS = 8  # share of the notebooks are the task's idioms, not anyone's own code
SIMILARITY_THRESHOLD = 0.9
MIN_CELL_SHARED = 0.5  # a pair of cells is listed as shared from this Jaccard similarity
MIN_CELL_FINGERPRINTS = 3
MAX_PLACES = 50  # see _shared
# Code compared per notebook: a course notebook has 10-50 KB; one at the cells cap with 46 MB of code
# took 95 s and 900 MB to fingerprint. Past this, a notebook's code was not written by hand.
MAX_CODE_CHARS = 1_000_000
_MOD = (1 << 61) - 1
_BASE = 1_000_003


@dataclass(frozen=True)
class SharedCell:
    cell_a: int  # 1-based index among the notebook's cells
    cell_b: int
    ratio: float
    excerpt: str  # the start of a's code, comments taken out


@dataclass(frozen=True)
class Pair:
    a: str
    b: str
    score: float  # Jaccard similarity of the notebooks' own fingerprints
    shared_cells: list[SharedCell] = field(default_factory=list)


# ---------------------------------------------------------------- tokens

_MAGIC = re.compile(r"^\s*[%!]")
_FALLBACK_TOKEN = re.compile(r"""[A-Za-z_]\w*|\d[\w.]*|'[^'\n]*'|"[^"\n]*"|\S""")
_STRING_TYPES = {tokenize.STRING} | {
    getattr(tokenize, n) for n in ("FSTRING_START", "FSTRING_MIDDLE", "FSTRING_END") if hasattr(tokenize, n)
}


def _code(source: str) -> str:
    """The cell's Python: IPython magics and shell lines taken out."""
    return "\n".join(line for line in source.splitlines() if not _MAGIC.match(line)) + "\n"


@functools.lru_cache(maxsize=4096)  # the template's cells come back in most notebooks
def _raw_tokens(code: str) -> tuple[tuple[int, str], ...]:
    """(tokenize type, text) of the code, comments and layout left out; code that does not tokenize
    (a syntax error) is split by a rough pattern instead."""
    try:
        tokens = [(t.type, t.string) for t in tokenize.generate_tokens(io.StringIO(code).readline)]
    except (tokenize.TokenError, IndentationError, SyntaxError, ValueError):
        tokens = []
        for text in _FALLBACK_TOKEN.findall(code):
            kind = (
                tokenize.NAME
                if text[0].isalpha() or text[0] == "_"
                else tokenize.NUMBER
                if text[0].isdigit()
                else tokenize.STRING
                if text[0] in "'\""
                else tokenize.OP
            )
            tokens.append((kind, text))
    skip = {
        tokenize.COMMENT,
        tokenize.NL,
        tokenize.ENCODING,
        tokenize.ENDMARKER,
        tokenize.TYPE_COMMENT if hasattr(tokenize, "TYPE_COMMENT") else -1,
    }
    return tuple((kind, text) for kind, text in tokens if kind not in skip)


@functools.lru_cache(maxsize=4096)
def bound_names(code: str) -> frozenset[str]:
    """The names the code defines (and so may rename freely): assignment targets, functions,
    classes, parameters, import aliases, attributes it assigns. Empty for code that does not parse."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return frozenset()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.alias):
            names.add(node.asname or node.name.split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            names.update(node.names)
    return frozenset(names)


def normalised_tokens(code: str, own: set[str]) -> list[str]:
    out = []
    for kind, text in _raw_tokens(code):
        if kind == tokenize.NAME:
            out.append("N" if text in own and not keyword.iskeyword(text) else text)
        elif kind == tokenize.NUMBER:
            out.append("#num")
        elif kind in _STRING_TYPES:
            if not out or out[-1] != "#str":  # "a" "b" and f-string parts: one string
                out.append("#str")
        elif kind == tokenize.NEWLINE:
            out.append(";")
        elif kind == tokenize.INDENT:
            out.append("{")
        elif kind == tokenize.DEDENT:
            out.append("}")
        else:
            out.append(text)
    return out


# ---------------------------------------------------------------- fingerprints

_TOKEN_IDS: dict[str, int] = {}


def _token_id(token: str) -> int:
    found = _TOKEN_IDS.get(token)
    if found is None:
        found = _TOKEN_IDS[token] = zlib.crc32(token.encode("utf-8", "surrogatepass")) + 1
    return found


def winnow(tokens: list[str], k: int = K, w: int = W) -> set[int]:
    """The winnowed fingerprints of a token stream: of every w consecutive k-gram hashes, the
    smallest (Karp-Rabin rolling hashes; linear time)."""
    if len(tokens) < k:
        return set()
    ids = [_token_id(t) for t in tokens]
    top = pow(_BASE, k - 1, _MOD)
    h = 0
    for value in ids[:k]:
        h = (h * _BASE + value) % _MOD
    hashes = [h]
    for i in range(k, len(ids)):
        h = ((h - ids[i - k] * top) * _BASE + ids[i]) % _MOD
        hashes.append(h)
    if len(hashes) <= w:
        return {min(hashes)}
    chosen: set[int] = set()
    window: deque[int] = deque()  # indices of hashes, their values increasing
    for i, value in enumerate(hashes):
        while window and hashes[window[-1]] >= value:  # the rightmost minimum wins ties
            window.pop()
        window.append(i)
        if window[0] <= i - w:
            window.popleft()
        if i >= w - 1:
            chosen.add(hashes[window[0]])
    return chosen


@dataclass
class _Notebook:
    cells: list[tuple[int, set[int], str]]  # (1-based cell index, fingerprints, excerpt)
    prints: set[int]


def _sources(nb) -> list[tuple[int, str]]:
    """(1-based cell index, source) of the code cells, up to MAX_CODE_CHARS of source in all."""
    cells, room = [], MAX_CODE_CHARS
    for index, cell in enumerate(getattr(nb, "cells", None) or [], start=1):
        source = cell.get("source", "") if isinstance(cell, dict) else ""
        if cell.get("cell_type") == "code" and isinstance(source, str) and source.strip() and room > 0:
            cells.append((index, source[:room]))
            room -= len(source)
    return cells


def _code_cells(nb) -> list[tuple[int, str]]:
    return [(index, _code(source)) for index, source in _sources(nb)]


def code_only(nb) -> nbformat.NotebookNode:
    """What the comparison reads of a notebook: its code cells' sources (MAX_CODE_CHARS in all), at
    their places. A batch's notebooks are compared together: their outputs (images and all) need
    not stay in memory meanwhile."""
    kept = nbformat.v4.new_notebook()
    code = dict(_sources(nb))
    kept.cells = [
        nbformat.v4.new_code_cell(code[i]) if i in code else nbformat.v4.new_raw_cell("")
        for i in range(1, len(getattr(nb, "cells", None) or []) + 1)
    ]
    return kept


def fingerprint(nb) -> _Notebook:
    """A notebook's fingerprints, per code cell and in all."""
    cells = _code_cells(nb)
    own: set[str] = set()
    for _, code in cells:
        own |= bound_names(code)
    out, everything = [], set()
    for index, code in cells:
        prints = winnow(normalised_tokens(code, own))
        if prints:
            out.append((index, prints, _excerpt(code)))
            everything |= prints
    return _Notebook(cells=out, prints=everything)


def _excerpt(code: str) -> str:
    lines = [line.rstrip() for line in code.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return "\n".join(lines)[:160]


# ---------------------------------------------------------------- pairs


def _shared(a: _Notebook, b: _Notebook, base: set[int]) -> list[SharedCell]:
    """For each cell of a, the cell of b it shares the most fingerprints with, when that is similar
    enough. Linear in the notebooks' size: b's cells are indexed by fingerprint (cells with the same
    fingerprints once), and a fingerprint found in more than MAX_PLACES of b's cells, which says
    little about where a cell came from, is not followed."""
    groups: dict[frozenset, int] = {}
    where: dict[int, list[int]] = defaultdict(list)
    for position, (_, prints, _) in enumerate(b.cells):
        key = frozenset(prints - base)
        if key in groups:
            continue
        groups[key] = position
        for value in key:
            where[value].append(position)
    shared = []
    for index, prints, excerpt in a.cells:
        own = prints - base
        if len(own) < MIN_CELL_FINGERPRINTS:
            continue
        counts = Counter(
            position for value in own if len(places := where.get(value, ())) <= MAX_PLACES for position in places
        )
        if not counts:
            continue
        position, _common = counts.most_common(1)[0]
        other = b.cells[position][1] - base
        ratio = len(own & other) / len(own | other)
        if ratio >= MIN_CELL_SHARED:
            shared.append(SharedCell(index, b.cells[position][0], round(ratio, 3), excerpt))
    return shared


def similar_pairs(
    notebooks: dict[str, nbformat.NotebookNode],
    template: nbformat.NotebookNode | None = None,
    threshold: float = SIMILARITY_THRESHOLD,
    max_pairs: int = 200,
    course_code: list[nbformat.NotebookNode] | None = None,
) -> list[Pair]:
    """Pairs of teams whose own code has a fingerprint Jaccard similarity >= threshold, most similar
    first (at most max_pairs), each with the cells they share. `template` and `course_code` (the
    reference solution, say) are the course's code: their fingerprints count for no one."""
    base: set[int] = set()
    for nb in [template, *(course_code or [])]:
        if nb is not None:
            base |= fingerprint(nb).prints
    printed = {stem: fingerprint(nb) for stem, nb in notebooks.items()}
    if len(printed) >= COMMON_MIN_NOTEBOOKS:
        seen = Counter(value for nb in printed.values() for value in nb.prints)
        base |= {value for value, count in seen.items() if count > COMMON_SHARE * len(printed)}
    own = {stem: nb.prints - base for stem, nb in printed.items()}
    own = {stem: prints for stem, prints in own.items() if len(prints) >= MIN_FINGERPRINTS}
    # Only pairs that share a fingerprint at all are scored: an index from fingerprint to notebooks.
    holders: dict[int, list[str]] = defaultdict(list)
    for stem in sorted(own):
        for value in own[stem]:
            holders[value].append(stem)
    common: Counter = Counter()
    for stems in holders.values():
        if len(stems) > 1:
            common.update(combinations(stems, 2))
    pairs = []
    for (a, b), shared in common.items():
        score = shared / (len(own[a]) + len(own[b]) - shared)
        if score >= threshold:
            pairs.append(Pair(a, b, round(score, 3)))
    pairs.sort(key=lambda p: (-p.score, p.a, p.b))
    pairs = pairs[:max_pairs]
    return [Pair(p.a, p.b, p.score, _shared(printed[p.a], printed[p.b], base)) for p in pairs]
