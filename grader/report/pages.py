"""The HTML the grader writes (`feedback/<stem>.html`, `summary.html`), rendered from the Jinja2
templates in `templates/`.

Nearly every value a page shows comes from a student (names, file names, cell output, error text,
PDF text), so the environment makes every `{{ value }}` safe itself; no template calls an escape:

- autoescaping: `<script>`, `"onload=` and `&` arrive as text, in element text and in attributes;
- `textsafe.plain` before it (`finalize`): control characters and bidirectional overrides are shown
  as `\\x1b` / `\\u202e`, not obeyed ("evil\\u202efdp.ipynb" would read "evilbnypi.pdf"); lone
  surrogates become U+FFFD. Markup a template made (a chart, a macro's output) goes through it
  too: its values were escaped when it was rendered, and the filter adds no markup;
- `StrictUndefined`: a value a template names but was not given is an error, not an empty string.

A value is never evaluated as a template: `{{ 7*7 }}` in a team's name is shown as written.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from grader.util.textsafe import plain, valid_text

if TYPE_CHECKING:
    import jinja2

TEMPLATES = Path(__file__).resolve().parent / "templates"

STATUS_COLORS = {
    "pass": "#2b8a3e",
    "fail": "#c92a2a",
    "error": "#862e9c",
    "skipped": "#868e96",
    "needs_review": "#e67700",
    "ok": "#2b8a3e",
    "errors": "#c92a2a",
    "timeout": "#c92a2a",
    "kernel_died": "#c92a2a",
    "not_run": "#868e96",
    "warning": "#e67700",
}


def fmt_points(value: float | None) -> str:
    return "pending" if value is None else f"{round(value, 4):g}"


def _shown(value: object) -> object:
    """What `{{ value }}` writes, before autoescaping (see the module's doc)."""
    text = plain(value, lines=True)
    return Markup(text) if isinstance(value, Markup) else text


@functools.cache
def environment() -> jinja2.Environment:
    import jinja2  # here: `grader check` imports the pages' modules for a function, renders no page (0.2 s)

    def strict(format_: Callable[[Any], str]) -> Callable[[Any], str]:
        """A filter that fails on a value the page was not given, as `{{ value }}` does (a format
        of its own would raise a TypeError, or print "Undefined")."""

        def apply(value: Any) -> str:
            if isinstance(value, jinja2.Undefined):
                value._fail_with_undefined_error()
            return format_(value)

        return apply

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        finalize=_shown,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        {
            name: strict(format_)
            for name, format_ in {
                "g": lambda value: f"{value:g}",  # 7.5, 10: points as people write them
                "f1": lambda value: f"{value:.1f}",  # a coordinate in a chart, a duration
                "points": fmt_points,  # "pending" for None
                "status_color": lambda status: STATUS_COLORS.get(status, "#495057"),
                # Jinja2's own, on text `finalize` has not seen yet: a lone surrogate would raise
                "urlencode": lambda value: jinja2.filters.do_urlencode(valid_text(str(value))),
            }.items()
        }
    )
    return env


def render(template: str, **values: object) -> Markup:
    """`template` (a file in `templates/`) rendered with `values`: markup, to write or to place into
    another template. Raises jinja2.UndefinedError for a value the template names but was not given."""
    return Markup(environment().get_template(template).render(**values))
