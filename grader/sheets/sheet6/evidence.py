"""What tutors grade by hand, made quick: facts the grader found for them, per exercise.

The key of the written Exercise 6.3 and the patterns that find it in a PDF are tutors' material: they
live in `reference/tutors_key.json`, which the students' package does not ship. Where it is missing,
the reports simply carry no 6.3 evidence. Students read only the notebook's facts (STUDENT_EVIDENCE,
see grader/report/students.py).
"""

from __future__ import annotations

import functools
import json
import re

import nbformat

from grader import REFERENCE_DIR

_ANSWER = re.compile(r"your\s+answer\s*:?", re.IGNORECASE)
TUTORS_KEY = "tutors_key.json"
# The only evidence a student's own report keeps: facts about their notebook (part 3 of 6.6).
STUDENT_EVIDENCE = ("6.6",)


@functools.lru_cache(maxsize=1)
def tutors_key() -> dict | None:
    """The 6.3 key (reference/tutors_key.json), or None where it is not installed (students)."""
    try:
        text = (REFERENCE_DIR / TUTORS_KEY).read_text(encoding="utf-8")
    except OSError:
        return None
    return json.loads(text)


def key_6_3() -> str | None:
    key = tutors_key()
    if key is None:
        return None
    h = ", ".join(f"{v:g}" for v in key["h"])
    logits = ", ".join(f"{v:g}" for v in key["logits"])
    o = ", ".join(f"{v:.3g}" for v in key["o"])
    return (
        f"key: h = ReLU(W1ᵀx) = ({h}), logits W2ᵀh = ({logits}), o = softmax = ({o}), "
        f"predicted class {key['predicted_class']}"
    )


def notebook_evidence(nb: nbformat.NotebookNode | None) -> list[str]:
    """Part 3 of 6.6: is there a plot, and is the "Your Answer:" cell filled in?"""
    if nb is None:
        return ["part 3: no notebook ran"]
    plots = sum(
        1
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if "image/png" in out.get("data", {})
    )
    answers = [cell.source for cell in nb.cells if cell.cell_type == "markdown" and _ANSWER.search(cell.source)]
    filled = [a for a in answers if len(_ANSWER.sub("", a).strip(" *_#\n")) >= 20]
    notes = [
        f"part 3: {plots} plot(s) in the executed notebook" if plots else "part 3: no plot in the executed notebook"
    ]
    if not answers:
        notes.append('part 3: no "Your Answer:" cell found')
    else:
        notes.append('part 3: "Your Answer:" cell filled in' if filled else 'part 3: "Your Answer:" cell left empty')
    return notes


def pdf_hints(pdf_text: str | None) -> dict[str, list[str]]:
    """For the tutors: the 6.3 key, and which of its values the PDF mentions. Empty where the
    tutors' key is not installed."""
    key = tutors_key()
    if key is None:
        return {}
    hints: dict[str, list[str]] = {"6.3": [key_6_3() or ""]}
    if pdf_text is None:
        hints["6.3"].append("no PDF text to compare with")
        return hints
    compact = re.sub(r"\s+", "", pdf_text)
    found = [hint["label"] for hint in key["pdf_hints"] if re.search(hint["pattern"], compact)]
    hints["6.3"].append("the PDF mentions " + ", ".join(found) if found else "the PDF does not mention the key values")
    return hints


def sheet_evidence(pdf_text: str | None, notebook: nbformat.NotebookNode | None) -> dict[str, list[str]]:
    """Everything tutors get per exercise: the 6.3 key and PDF hints, and part 3 of 6.6."""
    found = pdf_hints(pdf_text)
    found["6.6"] = notebook_evidence(notebook)
    return found
