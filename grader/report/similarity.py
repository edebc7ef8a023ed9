"""Similar work: pairs of notebooks whose own code (template lines, comments and layout removed) is
nearly the same. A hint for tutors, never a verdict: everyone builds the same small network, so
only what is left after the template is compared, and short notebooks are left out.
"""
from __future__ import annotations

import difflib
import io
import re
import tokenize
from dataclasses import dataclass, field
from itertools import combinations

import nbformat

SHINGLE = 5          # tokens per shingle
MIN_SHINGLES = 25    # notebooks with less own code than this are not compared
CELL_RATIO = 0.9     # a pair of cells counts as shared from this SequenceMatcher ratio
MIN_CELL_CHARS = 40  # shorter cells (a call, an import) are not listed as shared


@dataclass(frozen=True)
class SharedCell:
    cell_a: int      # 1-based index among the notebook's cells
    cell_b: int
    ratio: float
    excerpt: str     # the start of a's normalised code


@dataclass(frozen=True)
class Pair:
    a: str
    b: str
    score: float                 # Jaccard similarity of the token shingles of the whole notebooks
    shared_cells: list[SharedCell] = field(default_factory=list)


def _strip_comments(source: str) -> str:
    """Source without comments; tokenizer-based, so '#' in strings stays. Falls back to a line regex
    for code that does not tokenize (a syntax error, IPython magics)."""
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    text = "\n".join(lines) + "\n"
    try:
        tokens = [t for t in tokenize.generate_tokens(io.StringIO(text).readline) if t.type != tokenize.COMMENT]
        return tokenize.untokenize(tokens)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return "\n".join(re.sub(r"\s+#.*$|^\s*#.*$", "", line) for line in lines)


def normalise_lines(source: str) -> list[str]:
    """Code lines without comments and whitespace, empty lines dropped."""
    out = []
    for line in _strip_comments(source).splitlines():
        compact = re.sub(r"\s+", "", line)
        if compact:
            out.append(compact)
    return out


class _Normaliser:
    """normalise_lines, remembered for one comparison: the template's cells come back unchanged in
    most notebooks. Cells over 64 KB are not kept."""

    def __init__(self) -> None:
        self.seen: dict[str, list[str]] = {}

    def __call__(self, source: str) -> list[str]:
        if len(source) > 65536:
            return normalise_lines(source)
        if source not in self.seen:
            self.seen[source] = normalise_lines(source)
        return self.seen[source]


def _template_lines(template: nbformat.NotebookNode | None) -> set[str]:
    if template is None:
        return set()
    return {line for cell in template.cells if cell.cell_type == "code" for line in normalise_lines(cell.source)}


def own_cells(nb: nbformat.NotebookNode, template_lines: set[str], normalise=normalise_lines) -> list[tuple[int, str]]:
    """(1-based cell index, normalised code not from the template) of every code cell with own code."""
    cells = []
    for index, cell in enumerate(nb.cells, start=1):
        if cell.cell_type != "code":
            continue
        lines = [line for line in normalise(cell.source) if line not in template_lines]
        if lines:
            cells.append((index, "\n".join(lines)))
    return cells


_TOKEN = re.compile(r"[A-Za-z_]\w*|\d+(?:\.\d+)?|\S")


def shingles(cells: list[tuple[int, str]]) -> set[tuple[str, ...]]:
    tokens = [t for _, text in cells for t in _TOKEN.findall(text)]
    return {tuple(tokens[i:i + SHINGLE]) for i in range(max(0, len(tokens) - SHINGLE + 1))}


def _shared(cells_a: list[tuple[int, str]], cells_b: list[tuple[int, str]]) -> list[SharedCell]:
    shared = []
    for ia, ta in cells_a:
        if len(ta) < MIN_CELL_CHARS:
            continue
        best = None
        for ib, tb in cells_b:
            if len(tb) < MIN_CELL_CHARS:
                continue
            # by lines, not characters: fast, and a changed line is a changed line
            matcher = difflib.SequenceMatcher(None, ta.split("\n"), tb.split("\n"), autojunk=False)
            if matcher.real_quick_ratio() < CELL_RATIO or matcher.quick_ratio() < CELL_RATIO:
                continue
            ratio = matcher.ratio()
            if ratio >= CELL_RATIO and (best is None or ratio > best.ratio):
                best = SharedCell(ia, ib, round(ratio, 3), ta[:160])
        if best:
            shared.append(best)
    return shared


def similar_pairs(notebooks: dict[str, nbformat.NotebookNode], template: nbformat.NotebookNode | None = None,
                  threshold: float = 0.9, max_pairs: int = 200) -> list[Pair]:
    """Pairs of teams whose own code has a shingle Jaccard similarity >= threshold, most similar
    first (at most max_pairs), each with the cells they share."""
    template_lines = _template_lines(template)
    normalise = _Normaliser()
    cells = {stem: own_cells(nb, template_lines, normalise) for stem, nb in notebooks.items()}
    prints = {stem: shingles(c) for stem, c in cells.items()}
    prints = {stem: s for stem, s in prints.items() if len(s) >= MIN_SHINGLES}
    pairs = []
    for a, b in combinations(sorted(prints), 2):
        sa, sb = prints[a], prints[b]
        if min(len(sa), len(sb)) < threshold * max(len(sa), len(sb)):
            continue  # Jaccard <= |small| / |large|: cannot reach the threshold
        score = len(sa & sb) / len(sa | sb)
        if score >= threshold:
            pairs.append(Pair(a, b, round(score, 3)))
    pairs.sort(key=lambda p: (-p.score, p.a, p.b))
    pairs = pairs[:max_pairs]
    return [Pair(p.a, p.b, p.score, _shared(cells[p.a], cells[p.b])) for p in pairs]
