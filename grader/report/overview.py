"""`summary.html`: the batch at a glance, for tutors (it holds the key of a written exercise: not for students).

The distribution of points, the checks failed most, the submissions that need a tutor and why,
the 6.3 key with each team's PDF hints, similar work, the enrolled students without a submission
(with a roster), and a table of every team with a link to its feedback page. Self-contained like the feedback pages: inline CSS and SVG, no script.
"""
from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from urllib.parse import quote

from grader.sheet import Sheet
from grader.report.feedback import FEEDBACK_DIR, badge, esc, fmt_points, page
from grader.report.manual import pending_parts
from grader.models import Report
from grader.util.atomic import write_atomic
from grader.report.similarity import Pair
from grader.report.enrolment import Missing

OVERVIEW_NAME = "summary.html"
PROBLEM_STATUSES = ("fail", "error", "needs_review", "skipped")


def needs_tutor(report: Report) -> list[str]:
    """Why a tutor should look at this submission beyond grading the written parts; [] when not."""
    reasons = []
    ex = report.execution
    if ex.status != "ok":
        error = ex.errors[0] if ex.errors else None
        where = (f"In [{error.execution_count}]" if error.execution_count else f"cell {error.cell}") if error else ""
        first = f" ({where}: {error.ename})" if error else ""
        reasons.append(f"execution {ex.status}{first}")
    for v in report.violations:
        if v.severity == "error" or v.code.startswith(("name.", "identity.", "grader.")):
            reasons.append(f"{v.code}: {v.message}")
    for c in report.checks:
        if c.status == "needs_review" and not c.override:
            reasons.append(f"check {c.id} needs review: {c.message}")
    return reasons


def histogram(values: list[float], maximum: float, *, bin_width: float = 0.5, width: int = 640,
              height: int = 240) -> str:
    """An inline SVG bar chart of how many teams reached each band of points."""
    bins = max(1, math.ceil(maximum / bin_width))
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, max(0, int(v / bin_width + 1e-9)))] += 1
    left, right, top, bottom = 44, 12, 14, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max(counts + [1])
    bar = plot_w / bins
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="distribution of points">',
             f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fbfcfd" stroke="#adb5bd"/>']
    step = max(1, math.ceil(peak / 5))
    for tick in range(0, peak + 1, step):
        y = top + plot_h * (1 - tick / peak)
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e9ecef"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end" fill="#495057">{tick}</text>')
    for i, count in enumerate(counts):
        if count:
            h = plot_h * count / peak
            parts.append(f'<rect x="{left + i * bar + 1:.1f}" y="{top + plot_h - h:.1f}" width="{bar - 2:.1f}" '
                         f'height="{h:.1f}" fill="#1f63b4"><title>{i * bin_width:g}–{(i + 1) * bin_width:g}: '
                         f'{count}</title></rect>')
    label_every = max(1, round(1 / bin_width))
    for i in range(0, bins + 1, label_every):
        parts.append(f'<text x="{left + i * bar:.1f}" y="{top + plot_h + 16}" font-size="11" text-anchor="middle" '
                     f'fill="#495057">{i * bin_width:g}</text>')
    parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" font-size="12" text-anchor="middle" '
                 f'fill="#212529">points (without bonus)</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _link(stem: str) -> str:
    return f'<a href="{esc(FEEDBACK_DIR + "/" + quote(stem) + ".html")}">{esc(stem)}</a>'


def _missing_section(missing: Missing) -> list[str]:
    """Enrolled students no submission names (with a roster), for staff to write to or enter 0."""
    out = ["<h2>Enrolled students without a submission</h2>"]
    if missing.students:
        out.append('<p class="sub">Also in missing.csv.</p>')
        out.append("<table><tr><th>student id</th><th>name</th><th>e-mail</th></tr>")
        for s in missing.students:
            out.append(f"<tr><td>{esc(s.student_id)}</td><td>{esc(s.name)}</td><td>{esc(s.email)}</td></tr>")
        out.append("</table>")
    else:
        out.append('<p class="note">None: every student on the course\'s list is named by a submission.</p>')
    for student, typed, stem in missing.probably_mistyped:
        how = (f"with the id {esc(typed)}, which is not enrolled: probably a typo in the file name" if typed
               else "without an id")
        out.append(f'<p class="note">Not listed: {esc(student.name)} ({esc(student.student_id)}). {_link(stem)} '
                   f"names a student of that name {how}.</p>")
    return out


def overview_html(reports: list[tuple[str, Report]], *, sheet: Sheet, pairs: list[Pair] | None = None,
                  key: str | None = None, data_description: str | None = None,
                  warnings: list[str] | None = None, missing: Missing | None = None) -> str:
    n = len(reports)
    complete = sum(1 for _, r in reports if r.total.complete)
    out = [f"<h1>{esc(sheet.title)} — {n} submission{'s' if n != 1 else ''}</h1>",
           f'<p class="sub">{complete} of {n} completely graded (tutors\' points merged).'
           + (f" Data: {esc(data_description)}." if data_description else "") + "</p>"]
    for w in warnings or []:
        out.append(f'<div class="box">{esc(w)}</div>')

    out.append("<h2>Distribution of points</h2>")
    maximum = max([r.total.max_points for _, r in reports] + [1.0])
    totals = [r.total.points for _, r in reports]
    if reports:
        avg = sum(totals) / n
        out.append(f"<figure>{histogram(totals, maximum)}<figcaption>Points so far (automatic points, and tutors' "
                   f"points where merged). Mean {avg:.2f}, lowest {min(totals):g}, highest {max(totals):g} of "
                   f"{maximum:g}.</figcaption></figure>")
    else:
        out.append(f"<figure>{histogram([], maximum)}<figcaption>No reports.</figcaption></figure>")

    out.append("<h2>Automatic checks failed most</h2>")
    counts = {c: Counter() for c in sheet.check_ids}
    for _, r in reports:
        for c in r.checks:
            counts.setdefault(c.id, Counter())[c.status] += 1
    order = sorted(counts, key=lambda c: (-sum(counts[c][s] for s in PROBLEM_STATUSES), c))
    out.append('<table><tr><th>check</th>' + "".join(f'<th class="num">{esc(s.replace("_", " "))}</th>'
                                                    for s in ("pass", *PROBLEM_STATUSES)) + "</tr>")
    for c in order:
        out.append(f"<tr><td><code>{esc(c)}</code></td>" + "".join(
            f'<td class="num">{counts[c][s] or ""}</td>' for s in ("pass", *PROBLEM_STATUSES)) + "</tr>")
    out.append("</table>")

    out.append("<h2>Submissions that need a tutor</h2>")
    flagged = [(stem, r, needs_tutor(r)) for stem, r in reports]
    flagged = [f for f in flagged if f[2]]
    if flagged:
        out.append("<table><tr><th>submission</th><th>why</th></tr>")
        for stem, r, reasons in flagged:
            out.append(f"<tr><td>{_link(stem)}</td><td><ul>" + "".join(f"<li>{esc(x)}</li>" for x in reasons)
                       + "</ul></td></tr>")
        out.append("</table>")
    else:
        out.append('<p class="note">None: every notebook ran, and names and identities are in order.</p>')

    if sheet.key_exercise:
        out.append(f"<h2>Exercise {esc(sheet.key_exercise)}: key and PDF hints</h2>")
        if key:
            out.append(f'<div class="box ok">{esc(key)}</div>')
        out.append("<table><tr><th>submission</th><th>what the PDF shows</th></tr>")
        for stem, r in reports:
            hints = [h for e in r.exercises if e.id == sheet.key_exercise for h in e.evidence if not h.startswith("key:")]
            out.append(f"<tr><td>{_link(stem)}</td><td>{esc('; '.join(hints) or 'no hints')}</td></tr>")
        out.append("</table>")

    out.append("<h2>Similar work</h2>")
    if pairs:
        out.append('<table><tr><th>team A</th><th>team B</th><th class="num">similarity</th>'
                   "<th>shared cells (A ↔ B)</th></tr>")
        for p in pairs:
            cells = ", ".join(f"{s.cell_a} ↔ {s.cell_b} ({s.ratio:.0%})" for s in p.shared_cells) or "none whole"
            longest = max(p.shared_cells, key=lambda s: len(s.excerpt), default=None)
            excerpt = f'<code class="excerpt">{esc(longest.excerpt[:100])}…</code>' if longest else ""
            out.append(f'<tr><td>{_link(p.a)}</td><td>{_link(p.b)}</td><td class="num">{p.score:.0%}</td>'
                       f"<td>cells {esc(cells)}{excerpt}</td></tr>")
        out.append("</table>")
    elif pairs is None:
        out.append('<p class="note">Not compared (no executed notebooks).</p>')
    else:
        out.append('<p class="note">No pair of notebooks is nearly the same beyond the template.</p>')

    if missing is not None:
        out += _missing_section(missing)

    out.append("<h2>All submissions</h2>")
    out.append('<table><tr><th>submission</th><th>team</th><th>notebook</th><th class="num">automatic</th>'
               '<th class="num">total</th><th class="num">bonus</th><th>pending</th></tr>')
    for stem, r in reports:
        auto, auto_max = r.auto_points, r.auto_max_points
        team = ", ".join(f"{m.name} ({m.student_id})" for m in r.submission.team)
        pending = ", ".join(pending_parts(r)) or "—"
        out.append(f"<tr><td>{_link(stem)}</td><td>{esc(team)}</td><td>{badge(r.execution.status)}</td>"
                   f'<td class="num">{auto:g} / {auto_max:g}</td><td class="num">{esc(fmt_points(r.total.points))}</td>'
                   f'<td class="num">{r.total.bonus_points:g}</td><td class="note">{esc(pending)}</td></tr>')
    out.append("</table>")
    return page(f"{sheet.title} summary ({n} submissions)", "\n".join(out))


def write_overview(reports: list[tuple[str, Report]], out_dir: Path, *, sheet: Sheet, pairs: list[Pair] | None = None,
                   key: str | None = None, data_description: str | None = None,
                   warnings: list[str] | None = None, missing: Missing | None = None) -> Path:
    """Write `<out_dir>/summary.html`. `key` is the key of the sheet's written exercise
    (Sheet.tutors_key()), `pairs` the similar work, `missing` the enrolled students without a
    submission (with a roster)."""
    path = Path(out_dir) / OVERVIEW_NAME
    write_atomic(path, overview_html(reports, pairs=pairs, key=key, data_description=data_description,
                                     warnings=warnings, sheet=sheet, missing=missing).encode("utf-8"))
    return path
