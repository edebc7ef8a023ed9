"""`feedback/<stem>.html`: what a team sees. One self-contained page (inline CSS and SVG, no script,
no external resource), built only from the team's report and the reference solution's accuracy
curve: no reference code, no probe inputs, no tutors' key. Every string goes through html.escape.
"""
from __future__ import annotations

import html
import math
from pathlib import Path
from statistics import mean

from grader.report.manual import pending_parts
from grader.report.enrolment import for_team
from grader.models import CheckResult, Report
from grader.util.atomic import write_atomic
from grader.sheet import Sheet
from grader.util.textsafe import plain

FEEDBACK_DIR = "feedback"
# One colour per network of the sheet, in the sheet's order.
PALETTE = ("#1f63b4", "#d9480f", "#2b8a3e", "#862e9c", "#e67700")
STATUS_COLORS = {"pass": "#2b8a3e", "fail": "#c92a2a", "error": "#862e9c", "skipped": "#868e96",
                 "needs_review": "#e67700", "ok": "#2b8a3e", "errors": "#c92a2a", "timeout": "#c92a2a",
                 "kernel_died": "#c92a2a", "not_run": "#868e96", "warning": "#e67700"}

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #212529; margin: 0;
       background: #f8f9fa; }
main { max-width: 980px; margin: 0 auto; padding: 24px 28px 48px; background: #fff; min-height: 100vh; }
h1 { font-size: 1.5em; margin: 0 0 4px; } h2 { font-size: 1.15em; margin: 28px 0 8px;
  border-bottom: 2px solid #e9ecef; padding-bottom: 4px; }
.sub { color: #495057; margin: 0 0 16px; }
table { border-collapse: collapse; width: 100%; font-size: 0.93em; }
th, td { text-align: left; vertical-align: top; padding: 6px 8px; border-bottom: 1px solid #dee2e6;
         overflow-wrap: anywhere; }
code.excerpt { white-space: pre-wrap; word-break: break-all; display: block; background: #f8f9fa;
               padding: 2px 4px; margin-top: 2px; }
th { background: #f1f3f5; }
td.num, th.num { text-align: right; white-space: nowrap; }
td.nw { white-space: nowrap; overflow-wrap: normal; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; color: #fff; font-size: 0.85em;
         font-weight: 600; white-space: nowrap; }
.total { font-size: 1.3em; font-weight: 700; }
.pending { color: #868e96; font-style: italic; }
.note { color: #495057; font-size: 0.9em; }
.box { background: #fff9db; border-left: 4px solid #fab005; padding: 8px 12px; margin: 8px 0; }
.ok { background: #ebfbee; border-left-color: #2b8a3e; }
code, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 0.9em; }
ul { margin: 4px 0; padding-left: 22px; } li { margin: 2px 0; }
figure { margin: 8px 0; } figcaption { color: #495057; font-size: 0.88em; }
svg text { font-family: system-ui, sans-serif; }
"""


def esc(value: object) -> str:
    """Text for a page: HTML escaped, and control characters and bidirectional overrides shown as
    `\\u202e` (a browser would obey them: "evil\\u202efdp.ipynb" reads "evilbnypi.pdf")."""
    return html.escape(plain(value, lines=True), quote=True)


def fmt_points(value: float | None) -> str:
    return "pending" if value is None else f"{round(value, 4):g}"


def badge(status: str) -> str:
    color = STATUS_COLORS.get(status, "#495057")
    return f'<span class="badge" style="background:{color}">{esc(status.replace("_", " "))}</span>'


def page(title: str, body: str) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n{body}\n</main>\n"
            "</body>\n</html>\n")


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


def reference_curves(calibration_curve: dict | None, keys: tuple[str, ...]
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


def accuracy_chart(team: dict[str, list[float]], calibration_curve: dict | None, *, sheet: Sheet, width: int = 720,
                   height: int = 330) -> str:
    """An inline SVG line chart: the team's per-epoch test accuracies (solid, with dots) beside the
    reference solution's (dashed, with its run-to-run range shaded)."""
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

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="test accuracy per epoch">',
             f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fbfcfd" stroke="#adb5bd"/>']
    tick = math.ceil(lo / step - 1e-9) * step
    while tick <= hi + 1e-9:
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
                     f'stroke="#e9ecef"/>')
        parts.append(f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" font-size="11" text-anchor="end" '
                     f'fill="#495057">{tick * 100:.0f}%</text>')
        tick += step
    for i in range(epochs):
        parts.append(f'<text x="{x(i):.1f}" y="{top + plot_h + 16}" font-size="11" text-anchor="middle" '
                     f'fill="#495057">{i + 1}</text>')
    parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" font-size="12" text-anchor="middle" '
                 f'fill="#212529">epoch</text>')
    parts.append(f'<text transform="translate(14 {top + plot_h / 2:.1f}) rotate(-90)" font-size="12" '
                 f'text-anchor="middle" fill="#212529">test accuracy</text>')
    for key, (m, low, high) in reference.items():
        band = [f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(high)]
        band += [f"{x(i):.1f},{y(v):.1f}" for i, v in reversed(list(enumerate(low)))]
        parts.append(f'<polygon points="{" ".join(band)}" fill="{colors[key]}" fill-opacity="0.12" stroke="none"/>')
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(m))
        parts.append(f'<polyline class="reference" points="{points}" fill="none" stroke="{colors[key]}" '
                     f'stroke-width="2" stroke-dasharray="6 4" stroke-opacity="0.8"/>')
    for key, values_ in series.items():
        pts = [(x(i), y(v)) for i, v in enumerate(values_) if math.isfinite(v)]
        if not pts:
            continue
        points = " ".join(f"{px:.1f},{py:.1f}" for px, py in pts)
        parts.append(f'<polyline class="team" points="{points}" fill="none" stroke="{colors[key]}" '
                     f'stroke-width="2.5"/>')
        parts.extend(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3.5" fill="{colors[key]}"/>' for px, py in pts)
    legend_x, legend_y = left + plot_w + 14, top + 8
    entries = [(k, True) for k in series] + [(k, False) for k in reference]
    for n, (key, own) in enumerate(entries):
        ly = legend_y + n * 22
        dash = "" if own else ' stroke-dasharray="6 4"'
        parts.append(f'<line x1="{legend_x}" x2="{legend_x + 26}" y1="{ly}" y2="{ly}" stroke="{colors[key]}" '
                     f'stroke-width="2.5"{dash}/>')
        label = f"{'yours' if own else 'reference'}: {net_labels[key]}"
        parts.append(f'<text x="{legend_x + 32}" y="{ly + 4}" font-size="11" fill="#212529">{esc(label)}</text>')
    if not entries:
        parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{top + plot_h / 2:.1f}" font-size="13" '
                     f'text-anchor="middle" fill="#868e96">no accuracies were recorded</text>')
    parts.append("</svg>")
    return "\n".join(parts)


# ---------------------------------------------------------------- the page

def _percent(values: list[float]) -> str:
    return ", ".join(f"{v * 100:.1f}%" if math.isfinite(v) else "?" for v in _finite(values))


def _feedback_evidence(exercise_id: str, evidence: list[str], sheet: Sheet) -> list[str]:
    """What a team may read: the notebook's facts (the sheet's student_evidence); nothing of the
    tutors' key, nor the PDF hints that compare with it."""
    return list(evidence) if exercise_id in sheet.student_evidence else []


def feedback_html(report: Report, calibration_curve: dict | None, sheet: Sheet) -> str:
    labels = {n.key: n.class_name for n in sheet.networks}
    sub = report.submission
    total = report.total
    members = ", ".join(f"{esc(m.name)} ({esc(m.student_id)})" for m in sub.team) or "no members could be read"
    out = [f"<h1>{esc(sheet.title)} — feedback for {esc(sub.stem)}</h1>",
           f'<p class="sub">Team: {members}<br>File: <span class="mono">{esc(sub.file)}</span></p>']
    state = ("all parts graded" if total.complete
             else "so far: parts graded by tutors are still pending (" + esc(", ".join(pending_parts(report))) + ")")
    out.append(f'<p><span class="total">{total.points:g} of {total.max_points:g} points</span>'
               f'{f" + {total.bonus_points:g} bonus" if total.bonus_points else ""} — {state}</p>')
    if (comment := report.comment):
        out.append(f'<div class="box ok"><strong>Tutor\'s comment:</strong> {esc(comment)}</div>')

    out.append("<h2>Points per exercise</h2>")
    out.append('<table><tr><th>exercise</th><th class="num">points</th><th class="num">max</th>'
               '<th>graded by</th><th>notes</th></tr>')
    for e in report.exercises:
        notes = [esc(n) for n in _feedback_evidence(e.id, e.evidence, sheet)]
        if (own := e.comment):
            notes.append(f"<strong>tutor:</strong> {esc(own)}")
        shown = f'<span class="pending">pending</span>' if e.points is None else esc(fmt_points(e.points))
        out.append(f'<tr><td>{esc(e.id)}{" (bonus)" if e.bonus else ""}</td><td class="num">{shown}</td>'
                   f'<td class="num">{e.max_points:g}</td><td class="nw">{esc(e.graded_by)}</td>'
                   f'<td>{"<br>".join(notes)}</td></tr>')
    out.append("</table>")

    out.append("<h2>Problems with the submission</h2>")
    if report.violations:
        shown = [for_team(v) for v in report.violations]   # no other students' names and ids
        out.append("<ul>" + "".join(f"<li>{badge(v.severity)} <code>{esc(v.code)}</code>: {esc(v.message)}</li>"
                                    for v in shown) + "</ul>")
    else:
        out.append('<p class="note">None: file name, archive and identity are in order.</p>')

    out.append(f"<h2>Automatic checks of Exercise {esc(sheet.automatic_exercise)}</h2>")
    out.append('<table><tr><th>check</th><th>result</th><th class="num">points</th><th>what the grader found</th></tr>')
    if (shared := shared_verdict(report.checks)) is not None:
        out.append(f'<tr><td>all {len(report.checks)} checks</td><td>{badge(shared.status)}</td>'
                   f'<td class="num">{sum(c.points for c in report.checks):g} / '
                   f'{sum(c.max_points for c in report.checks):g}</td><td>{esc(shared.message)}</td></tr>')
    for c in ([] if shared is not None else report.checks):
        override = (f'<br><span class="note">overridden by a tutor (tutor: {fmt_points(c.override.automatic)} → '
                    f'{fmt_points(c.override.tutor)})</span>' if c.override else "")
        out.append(f'<tr><td><code>{esc(c.id)}</code></td><td>{badge(c.status)}</td>'
                   f'<td class="num">{c.points:g} / {c.max_points:g}</td><td>{esc(c.message)}{override}</td></tr>')
    out.append("</table>")

    ex = report.execution
    out.append("<h2>How the notebook ran</h2>")
    # Cells are named as Jupyter shows them (In [n]); the notes say where a run stopped.
    out.append(f"<p>{badge(ex.status)} {ex.cells_run} of {ex.cells_total} code cells ran in {ex.duration_s:.1f} s.</p>")
    if ex.errors:
        out.append("<p>Errors:</p><ul>" + "".join(
            f"<li>{f'In [{e.execution_count}]' if e.execution_count else f'cell {e.cell}'}: "
            f"<code>{esc(e.ename)}</code>: {esc(e.evalue)}</li>" for e in ex.errors) + "</ul>")
    if ex.notes:
        out.append('<p class="note">Notes:</p><ul class="note">' + "".join(f"<li>{esc(n)}</li>" for n in ex.notes) + "</ul>")
    if ex.data and ex.data.kind == "none":
        out.append(f'<p class="note">Data: {esc(ex.data.description)}.</p>')
    elif ex.data:
        out.append(f'<p class="note">Data: {esc(ex.data.description)} ({ex.data.train_size} training and '
                   f'{ex.data.test_size} test images, {esc(ex.data.kind)}).</p>')

    if _per_epoch(report.accuracies, calibration_curve, sheet):
        out.append("<h2>Test accuracy per epoch</h2>")
        out.append(f"<figure>{accuracy_chart(report.accuracies, calibration_curve, sheet=sheet)}"
                   "<figcaption>Solid: the accuracies your networks recorded. Dashed: the reference solution on "
                   "the same data (shaded: its range over several runs). Runs are not seeded, so small "
                   "differences are expected.</figcaption></figure>")
    else:
        out.append("<h2>Accuracy</h2>")
        reference = reference_curves(calibration_curve, tuple(n.key for n in sheet.networks))
        if reference:
            out.append("<p>The reference solution on the same data: " + esc(", ".join(
                f"{labels.get(k, k)} {_percent(mean)}" for k, (mean, _, _) in reference.items())) + ".</p>")
    if report.accuracies:
        out.append("<ul>" + "".join(f"<li>{esc(labels.get(k, k))}: {esc(_percent(v))}</li>"
                                    for k, v in report.accuracies.items()) + "</ul>")
    out.append(f'<p class="note">Graded by sheet6-grader {esc(report.grader.version)} on {esc(report.graded_at)}.</p>')
    return page(f"{sheet.title} feedback: {sub.stem}", "\n".join(out))


def shared_verdict(checks: list[CheckResult]) -> CheckResult | None:
    """The one verdict of every check, when all have the same status and message and no tutor changed
    one (a notebook that is still the template, a notebook that did not run): said once, not per check."""
    if len(checks) > 1 and len({(c.status, c.message) for c in checks}) == 1 and not any(c.override for c in checks):
        return checks[0]
    return None


def feedback_path(out_dir: Path, stem: str) -> Path:
    return Path(out_dir) / FEEDBACK_DIR / f"{stem}.html"


def write_feedback(report: Report, out_dir: Path, calibration_curve: dict | None, *, sheet: Sheet,
                   stem: str | None = None) -> Path:
    """Write `<out_dir>/feedback/<stem>.html`; `calibration_curve` is the calibration entry of the
    report's data (per network key, the accuracies of the solution's runs) or None."""
    path = feedback_path(out_dir, stem or report.submission.stem)
    write_atomic(path, feedback_html(report, calibration_curve, sheet).encode("utf-8"))
    return path
