"""What tutors grade by hand, made quick: facts the grader found for them, per exercise."""
from __future__ import annotations

import re

import nbformat

from reference.numpy_ref import exercise_6_3_key

_ANSWER = re.compile(r"your\s+answer\s*:?", re.IGNORECASE)


def key_6_3() -> str:
    key = exercise_6_3_key()
    h = ", ".join(f"{v:g}" for v in key["h"])
    logits = ", ".join(f"{v:g}" for v in key["logits"])
    o = ", ".join(f"{v:.3g}" for v in key["o"])
    return (f"key: h = ReLU(W1ᵀx) = ({h}), logits W2ᵀh = ({logits}), o = softmax = ({o}), "
            f"predicted class {key['predicted_class']}")


def notebook_evidence(nb: nbformat.NotebookNode | None) -> list[str]:
    """Part 3 of 6.6: is there a plot, and is the "Your Answer:" cell filled in?"""
    if nb is None:
        return ["part 3: no notebook ran"]
    plots = sum(1 for cell in nb.cells if cell.cell_type == "code"
                for out in cell.get("outputs", []) if "image/png" in out.get("data", {}))
    answers = [cell.source for cell in nb.cells if cell.cell_type == "markdown" and _ANSWER.search(cell.source)]
    filled = [a for a in answers if len(_ANSWER.sub("", a).strip(" *_#\n")) >= 20]
    notes = [f"part 3: {plots} plot(s) in the executed notebook" if plots else "part 3: no plot in the executed notebook"]
    if not answers:
        notes.append("part 3: no \"Your Answer:\" cell found")
    else:
        notes.append("part 3: \"Your Answer:\" cell filled in" if filled else "part 3: \"Your Answer:\" cell left empty")
    return notes


def pdf_hints(pdf_text: str | None) -> dict[str, list[str]]:
    """Where the PDF mentions the 6.3 key values (h = (9, 0), logits (54, 18), class 1)."""
    hints: dict[str, list[str]] = {"6.3": [key_6_3()]}
    if pdf_text is None:
        hints["6.3"].append("no PDF text to compare with")
        return hints
    compact = re.sub(r"\s+", "", pdf_text)
    found = [label for label, pattern in (("h = (9, 0)", r"\(?9,0\)?"), ("logits (54, 18)", r"54,18"),
                                          ("the value 54", r"54"))
             if re.search(pattern, compact)]
    hints["6.3"].append("the PDF mentions " + ", ".join(found) if found else "the PDF does not mention the key values")
    return hints
