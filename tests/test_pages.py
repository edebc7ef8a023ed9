"""The pages from their templates (report/pages.py): every value a template shows arrives escaped,
whichever field of the report it comes from, and a value a template names but was not given is an
error, not an empty string. No kernels: reports are built by hand."""

from __future__ import annotations

import shutil
from html.parser import HTMLParser

import jinja2
import pytest
from pydantic import ValidationError
from test_report_outputs import CALIBRATION, make_report

from grader.models import Report, Violation
from grader.report import feedback, overview, pages
from grader.report.enrolment import Missing
from grader.report.roster import Student
from grader.report.similarity import Pair, SharedCell
from grader.sheets.sheet6 import SHEET as SHEET6

# What a student could put into any string: markup, an attribute breaking out of its quotes, template
# syntax, a right-to-left override and an isolate (a .exe shown as .pdf), a terminal escape.
PAYLOAD = '<script>alert(1)</script>"onload="x\' {{ 7*7 }} {% if 1 %}\u202e\u2066\x1b[2J'
SHOWN = '<script>alert(1)</script>"onload="x\' {{ 7*7 }} {% if 1 %}\\u202e\\u2066\\x1b[2J'  # as a reader sees it


class Page(HTMLParser):
    """A page as a browser reads it: its elements' names, attributes and text (entities decoded)."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str]] = []
        self.text: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes += [(name, value or "") for name, value in attrs]

    handle_startendtag = handle_starttag

    def handle_data(self, data):
        self.text.append(data)


def hostile(report: Report, keep: set[tuple] = frozenset()) -> Report:
    """`report` with PAYLOAD put into every string it holds (but the paths in `keep`, and the fields
    whose type refuses it: a status, a severity), found by walking it: a field added later is covered."""
    data = report.model_dump()
    originals = {}

    def walk(value, path):
        if isinstance(value, str):
            if path in keep:
                return value
            originals[path] = value
            return PAYLOAD
        if isinstance(value, dict):
            return {k: walk(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, (*path, i)) for i, v in enumerate(value)]
        return value

    data = walk(data, ())
    for _ in range(100):
        try:
            return Report.model_validate(data)
        except ValidationError as error:
            for problem in error.errors():
                loc = tuple(problem["loc"])
                while loc and loc not in originals:  # a union's branch names itself in the location
                    loc = loc[:-1]
                assert loc, problem
                target = data
                for part in loc[:-1]:
                    target = target[part]
                target[loc[-1]] = originals.pop(loc)
    raise AssertionError("the report never validated")


VIOLATIONS = [
    Violation(code="name.pattern", severity="error", message="m"),
    Violation(code="identity.mismatch", severity="warning", message="m"),
]


def _exercise_ids(report: Report) -> set[tuple]:
    return {("exercises", i, "id") for i in range(len(report.exercises))}


def assert_escaped(html: str, at_least: int) -> None:
    page = Page(html)
    text = "".join(page.text)
    assert "script" not in page.tags
    assert not [name for name, _ in page.attributes if name.startswith("on")]
    for control in ("\u202e", "\u2066", "\x1b"):
        assert control not in html
    # Wherever the payload starts, it arrives whole, shown as text: never cut, run or obeyed.
    assert text.count(SHOWN) == text.count("<script>alert(1)") >= at_least, (text.count(SHOWN), at_least)
    assert "{{ 7*7 }}" in text and "{% if 1 %}" in text


def test_every_value_of_a_report_arrives_escaped_on_the_feedback_page():
    _, plain_report = make_report(
        [("Anna Äpfel", "7000001"), ("Bernd Brot", "0700002")],
        status="errors",
        failing=("baseline.forward",),
        violations=VIOLATIONS,
    )
    report = hostile(plain_report, keep=_exercise_ids(plain_report))
    assert report.submission.stem == PAYLOAD and report.execution.errors[0].evalue == PAYLOAD
    # team (2 names, 2 ids), stem, file, 2 violations (code, message), every check's message, the
    # error's name and value, a note, the data's description, the grader's version, the time graded.
    assert_escaped(feedback.feedback_html(report, CALIBRATION, SHEET6), at_least=15 + len(report.checks))


def test_the_other_branches_of_the_feedback_page_escape_too():
    """Tutors' comments (they may quote a team), one verdict every check shares, a run without data."""
    _, plain_report = make_report([("Anna Äpfel", "7000001")], failing=SHEET6.check_ids)
    report = plain_report.model_copy(
        update={
            "comment": "c",
            "exercises": [e.model_copy(update={"comment": "c"}) for e in plain_report.exercises],
            "checks": [c.model_copy(update={"message": "same"}) for c in plain_report.checks],
            "execution": plain_report.execution.model_copy(
                update={"data": plain_report.execution.data.model_copy(update={"kind": "none"})}
            ),
        }
    )
    report = hostile(report, keep=_exercise_ids(report))
    assert feedback.shared_verdict(report.checks) is not None and report.exercises[0].comment == PAYLOAD
    assert_escaped(feedback.feedback_html(report, None, SHEET6), at_least=2 + len(report.exercises))


def test_every_value_arrives_escaped_on_summary_html():
    _, plain_report = make_report(
        [("Anna Äpfel", "7000001"), ("Bernd Brot", "0700002")],
        status="errors",
        review=("baseline.forward",),
        violations=VIOLATIONS,
    )
    report = hostile(plain_report, keep=_exercise_ids(plain_report))
    student = Student(student_id=PAYLOAD, name=PAYLOAD, email=PAYLOAD, line=2)
    pairs = [
        Pair(a=PAYLOAD, b=PAYLOAD, score=0.9, shared_cells=[SharedCell(cell_a=1, cell_b=2, ratio=1.0, excerpt=PAYLOAD)])
    ]
    html = overview.overview_html(
        [(PAYLOAD, report)],
        sheet=SHEET6,
        pairs=pairs,
        key=PAYLOAD,
        data_description=PAYLOAD,
        warnings=[PAYLOAD],
        missing=Missing(students=[student], probably_mistyped=[(student, PAYLOAD, PAYLOAD)]),
    )
    assert_escaped(html, at_least=15)
    # A stem in a link's address is percent-encoded: it cannot leave the attribute nor the folder.
    links = [value for name, value in Page(html).attributes if name == "href"]
    assert links and all(link.startswith("feedback/%3Cscript%3E") and link.endswith(".html") for link in links)


def _values_given(monkeypatch, module, call) -> tuple[str, dict]:
    """The template and the values `call` renders a page with (the real ones, recorded)."""
    given = {}
    real = module.render

    def recording(template, **values):
        given.update(template=template, values=values)
        return real(template, **values)

    monkeypatch.setattr(module, "render", recording)
    call()
    monkeypatch.setattr(module, "render", real)
    return given["template"], given["values"]


# Values a page passes that its template reads on one branch only: the reference's accuracies in
# words, shown when there is no curve to draw (the feedback page below draws one).
ONE_BRANCH = {"reference"}


@pytest.mark.parametrize("page", ["feedback", "summary"])
def test_a_value_a_template_names_but_was_not_given_is_an_error_not_an_empty_string(monkeypatch, page):
    stem, report = make_report([("Anna Äpfel", "7000001")], status="errors")
    if page == "feedback":
        template, values = _values_given(
            monkeypatch, feedback, lambda: feedback.feedback_html(report, CALIBRATION, SHEET6)
        )
    else:
        template, values = _values_given(
            monkeypatch,
            overview,
            lambda: overview.overview_html(
                [(stem, report)], sheet=SHEET6, pairs=[], key="k", missing=Missing(students=[], probably_mistyped=[])
            ),
        )
    assert values
    for name in sorted(set(values) - ONE_BRANCH):
        with pytest.raises(jinja2.UndefinedError):
            pages.render(template, **{k: v for k, v in values.items() if k != name})
    # Nor an attribute the value lacks: a report without its execution is not a page with no errors.
    if "report" in values:

        class Partial:
            def __init__(self, report):
                self.submission, self.total = report.submission, report.total

        with pytest.raises(jinja2.UndefinedError):
            pages.render(template, **{**values, "report": Partial(report)})


def test_a_changed_template_changes_the_grader_hash(tmp_path, monkeypatch):
    """Reports say which grader wrote them (grader_hash); the pages' templates are part of it, so a
    changed page is written again for every report."""
    from grader import pipeline

    copy = tmp_path / "grader"
    PACKAGE = pipeline.PACKAGE_DIR
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(pipeline, "PACKAGE_DIR", copy)
    monkeypatch.setattr(pipeline, "SHEETS_DIR", copy / "sheets")
    before = pipeline.grader_hash(SHEET6)
    assert pipeline.grader_hash(SHEET6) == before
    template = copy / pages.TEMPLATES.relative_to(PACKAGE) / "feedback.html.j2"
    template.write_text(template.read_text(encoding="utf-8").replace("Problems with", "Trouble with"), encoding="utf-8")
    assert pipeline.grader_hash(SHEET6) != before
