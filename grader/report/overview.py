"""`summary.html`: the batch at a glance, for tutors (it holds the key of a written exercise: not for students).

The distribution of points, the checks failed most, the submissions that need a tutor and why,
the 6.3 key with each team's PDF hints, similar work, the enrolled students without a submission
(with a roster), and a table of every team with a link to its feedback page. Self-contained like the feedback pages: inline CSS and SVG, no script.
Rendered from `templates/summary.html.j2` (`report/pages.py`: every value escaped, control characters shown).
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

from markupsafe import Markup

from grader.models import Report
from grader.report.enrolment import Missing
from grader.report.feedback import FEEDBACK_DIR
from grader.report.manual import pending_parts
from grader.report.pages import render
from grader.report.similarity import Pair
from grader.sheet import Sheet
from grader.util.atomic import write_atomic

OVERVIEW_NAME = "summary.html"
PROBLEM_STATUSES = ("fail", "error", "needs_review", "skipped")


def needs_tutor(report: Report) -> list[str]:
    """Why a tutor should look at this submission beyond grading the written parts; [] when not."""
    reasons = []
    ex = report.execution
    if ex.status != "ok":
        error = ex.errors[0] if ex.errors else None
        first = f" ({error.label}: {error.ename})" if error else ""
        reasons.append(f"execution {ex.status}{first}")
    for v in report.violations:
        if v.severity == "error" or v.code.startswith(("name.", "identity.", "grader.")):
            reasons.append(f"{v.code}: {v.message}")
    for c in report.checks:
        if c.status == "needs_review" and not c.override:
            reasons.append(f"check {c.id} needs review: {c.message}")
    return reasons


def histogram(
    values: list[float], maximum: float, *, bin_width: float = 0.5, width: int = 640, height: int = 240
) -> Markup:
    """An inline SVG bar chart of how many teams reached each band of points. Here the geometry; the
    markup is `templates/histogram.svg.j2`."""
    bins = max(1, math.ceil(maximum / bin_width))
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, max(0, int(v / bin_width + 1e-9)))] += 1
    left, right, top, bottom = 44, 12, 14, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max(counts + [1])
    bar = plot_w / bins
    step = max(1, math.ceil(peak / 5))
    y_ticks = [(top + plot_h * (1 - tick / peak), tick) for tick in range(0, peak + 1, step)]
    bars = [
        (
            left + i * bar + 1,
            top + plot_h - plot_h * count / peak,
            bar - 2,
            plot_h * count / peak,
            f"{i * bin_width:g}–{(i + 1) * bin_width:g}",
            count,
        )
        for i, count in enumerate(counts)
        if count
    ]
    x_ticks = [(left + i * bar, i * bin_width) for i in range(0, bins + 1, max(1, round(1 / bin_width)))]
    return render(
        "histogram.svg.j2",
        width=width,
        height=height,
        left=left,
        top=top,
        plot_w=plot_w,
        plot_h=plot_h,
        y_ticks=y_ticks,
        bars=bars,
        x_ticks=x_ticks,
    )


def _pair(pair: Pair) -> dict[str, object]:
    """A pair of similar notebooks as summary.html shows it: the cells they share and the longest one's start."""
    longest = max(pair.shared_cells, key=lambda s: len(s.excerpt), default=None)
    return {
        "a": pair.a,
        "b": pair.b,
        "score": f"{pair.score:.0%}",
        "cells": ", ".join(f"{s.cell_a} ↔ {s.cell_b} ({s.ratio:.0%})" for s in pair.shared_cells) or "none whole",
        "excerpt": longest.excerpt[:100] if longest else None,
    }


def overview_html(
    reports: list[tuple[str, Report]],
    *,
    sheet: Sheet,
    pairs: list[Pair] | None = None,
    key: str | None = None,
    data_description: str | None = None,
    warnings: list[str] | None = None,
    missing: Missing | None = None,
) -> str:
    n = len(reports)
    maximum = max([r.total.max_points for _, r in reports] + [1.0])
    totals = [r.total.points for _, r in reports]
    counts: dict[str, Counter] = {c: Counter() for c in sheet.check_ids}
    for _, r in reports:
        for c in r.checks:
            counts.setdefault(c.id, Counter())[c.status] += 1
    order = sorted(counts, key=lambda c: (-sum(counts[c][s] for s in PROBLEM_STATUSES), c))
    statuses = ("pass", *PROBLEM_STATUSES)
    return str(
        render(
            "summary.html.j2",
            title=f"{sheet.title} summary ({n} submissions)",
            sheet=sheet,
            feedback_dir=FEEDBACK_DIR,
            reports=reports,
            complete=sum(1 for _, r in reports if r.total.complete),
            data_description=data_description or "",
            warnings=warnings or [],
            histogram=histogram(totals, maximum),
            maximum=maximum,
            mean=sum(totals) / n if n else 0.0,
            lowest=min(totals, default=0.0),
            highest=max(totals, default=0.0),
            statuses=statuses,
            check_counts=[(c, [counts[c][s] for s in statuses]) for c in order],
            flagged=[(stem, reasons) for stem, r in reports if (reasons := needs_tutor(r))],
            key=key or "",
            pdf_hints=[
                (
                    stem,
                    [
                        h
                        for e in r.exercises
                        if e.id == sheet.key_exercise
                        for h in e.evidence
                        if not h.startswith("key:")
                    ],
                )
                for stem, r in reports
            ],
            pairs=None if pairs is None else [_pair(p) for p in pairs],
            missing=missing,
            rows=[(stem, r, ", ".join(pending_parts(r))) for stem, r in reports],
        )
    )


def write_overview(
    reports: list[tuple[str, Report]],
    out_dir: Path,
    *,
    sheet: Sheet,
    pairs: list[Pair] | None = None,
    key: str | None = None,
    data_description: str | None = None,
    warnings: list[str] | None = None,
    missing: Missing | None = None,
) -> Path:
    """Write `<out_dir>/summary.html`. `key` is the key of the sheet's written exercise
    (Sheet.tutors_key()), `pairs` the similar work, `missing` the enrolled students without a
    submission (with a roster)."""
    path = Path(out_dir) / OVERVIEW_NAME
    write_atomic(
        path,
        overview_html(
            reports,
            pairs=pairs,
            key=key,
            data_description=data_description,
            warnings=warnings,
            sheet=sheet,
            missing=missing,
        ).encode("utf-8"),
    )
    return path
