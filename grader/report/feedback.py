"""`feedback/<stem>.html`: what a team sees. One self-contained page (inline CSS and SVG, no script,
no external resource), built only from the team's report and the reference solution's accuracy
curve: no reference code, no probe inputs, no tutors' key. Rendered from `templates/feedback.html.j2`
(`report/pages.py`: every value escaped, control characters shown).
"""

from __future__ import annotations

import math
from pathlib import Path
from statistics import mean

from markupsafe import Markup

from grader.models import CheckResult, Report
from grader.report.enrolment import for_team
from grader.report.manual import pending_parts
from grader.report.pages import render
from grader.sheet import Sheet
from grader.util.atomic import write_atomic

FEEDBACK_DIR = "feedback"
# One colour per network of the sheet, in the sheet's order.
PALETTE = ("#1f63b4", "#d9480f", "#2b8a3e", "#862e9c", "#e67700")


# ---------------------------------------------------------------- the accuracy chart


def _finite(values) -> list[float]:
    out = []
    for v in values or []:
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        out.append(f if math.isfinite(f) else float("nan"))
    return out


def reference_curves(
    calibration_curve: dict | None, keys: tuple[str, ...]
) -> dict[str, tuple[list[float], list[float], list[float]]]:
    """(mean, low, high) per network (`keys`: the sheet's network keys) from a calibration entry
    {"<network key>": [[..], ..], ...}."""
    curves = {}
    for key in keys:
        runs = [_finite(run) for run in (calibration_curve or {}).get(key) or [] if run]
        if not runs:
            continue
        n = min(len(r) for r in runs)
        columns = [[r[i] for r in runs if math.isfinite(r[i])] for i in range(n)]
        if not all(columns):
            continue
        curves[key] = ([mean(c) for c in columns], [min(c) for c in columns], [max(c) for c in columns])
    return curves


def _per_epoch(team: dict[str, list[float]], calibration_curve: dict | None, sheet: Sheet) -> bool:
    """Whether there is a curve to draw: accuracies over several epochs (the team's or the solution's)."""
    keys = tuple(n.key for n in sheet.networks)
    lengths = [len(v) for k, v in (team or {}).items() if k in keys]
    lengths += [len(mean) for mean, _, _ in reference_curves(calibration_curve, keys).values()]
    return not lengths or max(lengths) > 1


def network_colors(sheet: Sheet) -> dict[str, str]:
    """The colour of each of the sheet's networks (by key) in the charts."""
    return {n.key: PALETTE[i % len(PALETTE)] for i, n in enumerate(sheet.networks)}


def accuracy_chart(
    team: dict[str, list[float]], calibration_curve: dict | None, *, sheet: Sheet, width: int = 720, height: int = 330
) -> Markup:
    """An inline SVG line chart: the team's per-epoch test accuracies (solid, with dots) beside the
    reference solution's (dashed, with its run-to-run range shaded). Here the geometry; the markup
    is `templates/accuracy_chart.svg.j2`."""
    colors = network_colors(sheet)
    net_labels = {n.key: n.class_name for n in sheet.networks}
    reference = reference_curves(calibration_curve, tuple(colors))
    series = {k: _finite(v) for k, v in (team or {}).items() if k in colors}
    left, right, top, bottom = 56, 270, 18, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for s in series.values() for v in s if math.isfinite(v)]
    values += [v for m, lo, hi in reference.values() for v in (*lo, *hi)]
    epochs = max([len(s) for s in series.values()] + [len(m) for m, _, _ in reference.values()] + [5])
    if values:
        lo = max(0.0, math.floor((min(values) - 0.03) * 10) / 10)
        hi = min(1.0, math.ceil((max(values) + 0.03) * 10) / 10)
        lo = min(lo, max(0.0, hi - 0.2))
        if hi <= lo:
            hi = min(1.0, lo + 0.2)
    else:
        lo, hi = 0.0, 1.0
    step = 0.05 if hi - lo <= 0.3 else 0.1 if hi - lo <= 0.6 else 0.2

    def x(i: int) -> float:
        return left + (plot_w * i / (epochs - 1) if epochs > 1 else plot_w / 2)

    def y(v: float) -> float:
        v = min(max(v, lo), hi)
        return top + plot_h * (1 - (v - lo) / (hi - lo))

    def points(pts) -> str:
        return " ".join(f"{px:.1f},{py:.1f}" for px, py in pts)

    y_ticks = []
    tick = math.ceil(lo / step - 1e-9) * step
    while tick <= hi + 1e-9:
        y_ticks.append((y(tick), f"{tick * 100:.0f}%"))
        tick += step
    references = []  # (the run-to-run range, the mean, the colour) per network
    for key, (m, low, high) in reference.items():
        band = [(x(i), y(v)) for i, v in enumerate(high)] + [(x(i), y(v)) for i, v in reversed(list(enumerate(low)))]
        references.append((points(band), points((x(i), y(v)) for i, v in enumerate(m)), colors[key]))
    curves = []  # (the team's line, its colour, its points) per network
    for key, values_ in series.items():
        pts = [(x(i), y(v)) for i, v in enumerate(values_) if math.isfinite(v)]
        if pts:
            curves.append((points(pts), colors[key], pts))
    entries = [(k, True) for k in series] + [(k, False) for k in reference]
    legend = [
        (top + 8 + n * 22, colors[key], own, f"{'yours' if own else 'reference'}: {net_labels[key]}")
        for n, (key, own) in enumerate(entries)
    ]
    return render(
        "accuracy_chart.svg.j2",
        width=width,
        height=height,
        left=left,
        top=top,
        plot_w=plot_w,
        plot_h=plot_h,
        y_ticks=y_ticks,
        x_ticks=[x(i) for i in range(epochs)],
        references=references,
        curves=curves,
        legend=legend,
        legend_x=left + plot_w + 14,
    )


# ---------------------------------------------------------------- the page


def _percent(values: list[float]) -> str:
    return ", ".join(f"{v * 100:.1f}%" if math.isfinite(v) else "?" for v in _finite(values))


def _feedback_evidence(exercise_id: str, evidence: list[str], sheet: Sheet) -> list[str]:
    """What a team may read: the notebook's facts (the sheet's student_evidence); nothing of the
    tutors' key, nor the PDF hints that compare with it."""
    return list(evidence) if exercise_id in sheet.student_evidence else []


def feedback_html(report: Report, calibration_curve: dict | None, sheet: Sheet) -> str:
    labels = {n.key: n.class_name for n in sheet.networks}
    if _per_epoch(report.accuracies, calibration_curve, sheet):
        chart, reference = accuracy_chart(report.accuracies, calibration_curve, sheet=sheet), ""
    else:
        chart = None
        reference = ", ".join(
            f"{labels.get(k, k)} {_percent(mean)}"
            for k, (mean, _, _) in reference_curves(calibration_curve, tuple(n.key for n in sheet.networks)).items()
        )
    return str(
        render(
            "feedback.html.j2",
            title=f"{sheet.title} feedback: {report.submission.stem}",
            report=report,
            sheet=sheet,
            pending=", ".join(pending_parts(report)),
            evidence={e.id: _feedback_evidence(e.id, e.evidence, sheet) for e in report.exercises},
            violations=[for_team(v) for v in report.violations],  # no other students' names and ids
            shared=shared_verdict(report.checks),
            chart=chart,
            reference=reference,
            accuracies=[(labels.get(k, k), _percent(v)) for k, v in report.accuracies.items()],
        )
    )


def shared_verdict(checks: list[CheckResult]) -> CheckResult | None:
    """The one verdict of every check, when all have the same status and message and no tutor changed
    one (a notebook that is still the template, a notebook that did not run): said once, not per check."""
    if len(checks) > 1 and len({(c.status, c.message) for c in checks}) == 1 and not any(c.override for c in checks):
        return checks[0]
    return None


def feedback_path(out_dir: Path, stem: str) -> Path:
    return Path(out_dir) / FEEDBACK_DIR / f"{stem}.html"


def write_feedback(
    report: Report, out_dir: Path, calibration_curve: dict | None, *, sheet: Sheet, stem: str | None = None
) -> Path:
    """Write `<out_dir>/feedback/<stem>.html`; `calibration_curve` is the calibration entry of the
    report's data (per network key, the accuracies of the solution's runs) or None."""
    path = feedback_path(out_dir, stem or report.submission.stem)
    write_atomic(path, feedback_html(report, calibration_curve, sheet).encode("utf-8"))
    return path
