"""Which per-epoch test accuracies a notebook recorded for a network: returned by optimize, kept on
the network or in a global, or (the last resort) printed while it trained."""

from __future__ import annotations

import re

from grader.observations import AccuracyCandidate, Observations
from grader.sheets.sheet6.answer import Answer, Network, network

_ACCURACY_WORD = re.compile(r"(?i)(?<![a-z])acc(?:uracy|uracies)?\w*")
_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?(?P<percent>\s*%)?")


def printed_accuracies(text: str, epochs: int) -> list[float] | None:
    """Per-epoch test accuracies printed during optimize ("Epoch 3: test accuracy 71.2%"), the
    last resort when nothing was returned or kept. After each word that speaks of an accuracy, the
    first number in percent, else the first number up to 100 ("Accuracy on the 10000 test images:
    45 %" is 45 %); per line a test or validation accuracy where it shows several, never one called
    train; lines that name an epoch preferred. None unless exactly `epochs` values are found."""
    lines = [line for chunk in text.splitlines() for line in chunk.split("\r") if line.strip()]
    per_line = []  # (the line names an epoch, value)
    for line in lines[:5000]:
        words = list(_ACCURACY_WORD.finditer(line[:2000]))
        found = []
        previous = 0  # where the text about the previous accuracy ends
        for i, word in enumerate(words):
            stop = words[i + 1].start() if i + 1 < len(words) else len(line)
            segment = line[word.end() : min(stop, word.end() + 60)]
            numbers = [(m, float(m.group().rstrip("% \t"))) for m in _NUMBER.finditer(segment)]
            pick = next(((m, v) for m, v in numbers if m.group("percent")), None) or next(
                ((m, v) for m, v in numbers if abs(v) <= 100), None
            )
            if pick is None:
                continue
            match, value = pick
            label = (line[max(previous, word.start() - 16) : word.end()] + segment[: match.start()]).lower()
            previous = word.end() + match.end()
            kind = "train" if "train" in label else "test" if ("test" in label or "val" in label) else "plain"
            found.append((kind, round(value / 100, 12) if match.group("percent") else value))
        tests = [v for kind, v in found if kind == "test"] or [v for kind, v in found if kind == "plain"]
        if tests:
            per_line.append(("epoch" in line.lower(), tests[0]))
    for chosen in ([v for epoch, v in per_line if epoch], [v for _, v in per_line]):
        if len(chosen) == epochs:
            return chosen
    return None


def choose_accuracies(net: Network, epochs: int) -> tuple[str, list[float]] | None:
    """(name, accuracies as fractions) of `choose_accuracy_candidate`."""
    chosen = choose_accuracy_candidate(net, epochs)
    return (chosen[0].name, chosen[1]) if chosen else None


def described(candidate: AccuracyCandidate) -> str:
    return f"`{candidate.name}`" + (f" ({candidate.where})" if candidate.where else "")


def choose_accuracy_candidate(net: Network, epochs: int) -> tuple[AccuracyCandidate, list[float]] | None:
    """The test accuracies the notebook recorded: a return value before an attribute before a
    global before numbers printed during training; names that speak of training or loss are not
    test accuracies."""

    def last_part(name: str) -> str:  # `model_trained.accuracies` is named by `accuracies`
        return name.rsplit(".", 1)[-1].lower()

    def acceptable(name: str) -> bool:
        return "train" not in last_part(name) and "loss" not in last_part(name)

    rank = {"return": 0, "attribute": 1, "global": 2, "printed": 3}
    found = list(net.accuracy_candidates)
    if net.printed and (values := printed_accuracies(net.printed[:100_000], epochs)):
        found.append(
            AccuracyCandidate(
                source="printed",
                name="the printed test accuracies",
                values=values,
                where="printed by optimize while it trained",
            )
        )
    candidates = [c for c in found if acceptable(c.name) and len(c.values) == epochs]
    candidates.sort(key=lambda c: (rank[c.source], "test" not in last_part(c.name) and "val" not in last_part(c.name)))
    if not candidates:
        return None
    chosen = candidates[0]
    values = list(chosen.values)
    if values and max(values) > 1.0:
        values = [v / 100.0 for v in values]
    return chosen, values


def recorded_accuracies(observations: Observations[Answer], settings) -> dict[str, list[float]]:
    """The accuracies of every network observed, as fractions (report.accuracies); `settings`: the
    sheet's (how many epochs)."""
    epochs = settings.epochs
    found = {}
    for key in ("baseline", "batchnorm"):
        net = network(observations, key) if observations.status == "ok" else None
        if net is not None and (chosen := choose_accuracies(net, epochs)):
            found[key] = chosen[1]
    return found
