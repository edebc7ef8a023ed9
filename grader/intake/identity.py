"""Do the files name the team the file name announces? Ids, names and e-mails from notebook and PDF."""

from __future__ import annotations

import html
import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from grader.child.parser import PASSWORD_PROTECTED, ParseFailed, ParseLimitHit, parse
from grader.intake.types import Submission, Workspace
from grader.models import TeamMember, Violation
from grader.util.notebook_file import NotebookInvalid, parse_notebook_json

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+")


def _id_pattern(digits: int) -> re.Pattern:
    # ASCII digits, not part of a longer number or a decimal fraction ("0.8765432")
    return re.compile(rf"(?<![0-9.,])[0-9]{{{digits}}}(?![0-9])(?![.,][0-9])")


@dataclass
class Evidence:
    """What the files say about who wrote them."""

    ids: dict[str, set[str]] = field(default_factory=dict)  # id -> where found ("notebook", "PDF")
    emails: list[str] = field(default_factory=list)
    texts: dict[str, str] = field(default_factory=dict)  # where -> text read
    problems: list[Violation] = field(default_factory=list)
    looked_in: list[str] = field(default_factory=list)


def notebook_text(path: Path) -> str:
    """Source of the notebook's markdown and code cells (outputs are not the team's statement).
    Raises NotebookInvalid (saying what is wrong) for a file that is not a readable notebook."""
    data = parse_notebook_json(path)
    parts = []
    for cell in data["cells"]:
        if cell.get("cell_type") in ("markdown", "code", "raw"):
            parts.append(cell["source"])
    return "\n".join(parts)


# The text of a PDF by (path, mtime, size): the text, or the exception reading it ended with. A PDF
# that ran over a limit is not read again for the next question about it.
_PDF_TEXTS: dict[tuple[str, int, int], str | Exception] = {}


def pdf_text(path: Path) -> str:
    """The PDF's text (its first MAX_PDF_PAGES pages), read in a child process with a time and a
    memory limit (`grader.child.parser`). Read once per file version: the identity checks, the e-mails
    and the tutors' evidence all ask for it. Raises ParseLimitHit or ParseFailed."""
    st = os.stat(path)
    key = (os.fspath(path), st.st_mtime_ns, st.st_size)
    if key not in _PDF_TEXTS:
        try:
            _PDF_TEXTS[key] = parse("pdf_text", path)
        except (ParseLimitHit, ParseFailed) as exc:
            _PDF_TEXTS[key] = exc
        while len(_PDF_TEXTS) > 4:
            _PDF_TEXTS.pop(next(iter(_PDF_TEXTS)))
    found = _PDF_TEXTS[key]
    if isinstance(found, Exception):
        raise found
    return found


# What a file named .pdf that is not one starts with, for a message that says what it is instead.
_NOT_PDF = (
    (b"PK\x03\x04", "a zip archive or an Office document (.docx, .odt): export it as a PDF"),
    (b"\xd0\xcf\x11\xe0", "an old Office document (.doc): export it as a PDF"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"{", "text in JSON (a notebook?)"),
)


def _not_a_pdf(path: Path) -> str | None:
    """What a file named .pdf is when it is not a PDF (no `%PDF-` in its first 1024 bytes, where PDF
    readers look for it); None when it is one, or cannot be read."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(1024)
    except OSError:
        return None
    if b"%PDF-" in head:
        return None
    if not head:
        return "an empty file (0 bytes): the upload may have failed"
    for magic, what in _NOT_PDF:
        if head.lstrip().startswith(magic):
            return what
    return "a file of another kind, renamed to .pdf"


def read_evidence(submission: Submission, workspace: Workspace, digits: int = 7) -> Evidence:
    ev = Evidence()
    pattern = _id_pattern(digits)
    sources = []
    if workspace.notebook is not None:
        sources.append(("notebook", workspace.notebook, notebook_text))
    if workspace.pdf is not None:
        sources.append(("PDF", workspace.pdf, pdf_text))
    for where, path, read in sources:
        rel = _rel(workspace, path)
        ev.looked_in.append(f"{where} '{rel}'")
        try:
            text = read(path)
        except ParseLimitHit as exc:
            ev.problems.append(
                Violation(
                    code="content.pdf_unreadable",
                    severity="warning",
                    message=f"{submission.rel}: reading the text of the PDF '{rel}' {exc} (limits.parse_timeout_s, "
                    f"limits.parse_memory_mb); the PDF was not read, so its names, ids and e-mails were not "
                    f"compared and tutors get no hints from it; expected a PDF whose text can be read",
                )
            )
            continue
        except ParseFailed as exc:
            if PASSWORD_PROTECTED in str(exc):
                ev.problems.append(
                    Violation(
                        code="content.pdf_unreadable",
                        severity="error",
                        message=f"{submission.rel}: the PDF '{rel}' is password-protected: tutors cannot open it to "
                        f"grade the written exercises; expected a PDF without a password "
                        f"(export or print it again without one)",
                    )
                )
                continue
            instead = _not_a_pdf(path) if where == "PDF" else None
            ev.problems.append(
                Violation(
                    code="content.pdf_unreadable",
                    severity="warning",
                    message=f"{submission.rel}: the PDF '{rel}' is not a PDF: it does not begin with %PDF- as "
                    f"every PDF does ({instead}); expected the written exercises exported or printed as a PDF"
                    if instead
                    else f"{submission.rel}: cannot read the text of the {where} '{rel}' "
                    f"({str(exc)[:150]}); expected a readable {where}",
                )
            )
            continue
        except Exception as exc:  # a broken file is reported, never a crash
            code = "content.pdf_unreadable" if where == "PDF" else "content.notebook_unreadable"
            shown = str(exc) if isinstance(exc, (ParseFailed, NotebookInvalid)) else f"{type(exc).__name__}: {exc}"
            ev.problems.append(
                Violation(
                    code=code,
                    severity="warning",
                    message=f"{submission.rel}: cannot read the text of the {where} '{rel}' "
                    f"({shown[:150]}); expected a readable {where}",
                )
            )
            continue
        text = unicodedata.normalize("NFC", text)
        ev.texts[where] = text
        for m in pattern.finditer(text):
            ev.ids.setdefault(m.group(0), set()).add(where)
        for e in _EMAIL.findall(text):
            if e not in ev.emails:
                ev.emails.append(e)
    return ev


# ---- the course's identity cell --------------------------------------------------------------------
# The notebook starts with "Name 1: <br>", "Student id 1: <br>", "Email 1: <br>" for members 1 to 3; a
# team writes each value after its colon. Read in any order of the lines, with or without `<br>`, in
# markdown or HTML, several fields on one line or one per line.
_FIELD = re.compile(
    r"(?<![\w])(name|student[ \t_-]*id|matriculation(?:[ \t_-]*(?:number|no\.?))?|e-?mail)"
    r"[ \t]*([1-9])[ \t]*[*_]*[ \t]*[:=]",
    re.IGNORECASE,
)
_HTML_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9]*(?:\s[^<>]*)?/?>")  # <br>, <b>, </p>; not <a@b.de>
_FORM_FIELDS = (("name", "Name"), ("id", "Student id"), ("email", "Email"))


def _plain(text: str) -> str:
    """`text` without HTML tags (each becomes a space) and with entities (`&nbsp;`) decoded."""
    return html.unescape(_HTML_TAG.sub(" ", text)).replace("\xa0", " ")


_BREAK = "\ue000"  # where a `<br>` stood: a value never continues past it
_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)
_TABLE_RULE = re.compile(r"\s*:?-{3,}:?\s*")
# What a value alone on the line below its label may be (markdown shows the two lines as one).
_BELOW = {"name": re.compile(r"[^\W\d_][^\d@|:<>]{1,59}"), "id": re.compile(r"[0-9][0-9 ]{3,14}"), "email": _EMAIL}


def _field_of(label: re.Match) -> str:
    kind = label.group(1).lower()
    return "name" if kind == "name" else "email" if "mail" in kind else "id"


def _clean(value: str) -> str:
    return " ".join(value.replace(_BREAK, " ").strip(" \t*_`,;|").split())


def identity_form(text: str) -> dict[int, dict[str, str]]:
    """The course's identity cell in `text`: {member number: {"name", "id", "email"}}, each value as
    written ("" where the team left it empty, as the template has it). {} when there is no such cell.
    Read too: a markdown table whose header row holds the labels and the row below the values, and a
    label's value alone on the next line (no `<br>` between: markdown shows them as one line)."""
    members: dict[int, dict[str, str]] = {}

    def put(number: int, field: str, value: str) -> None:
        entry = members.setdefault(number, {"name": "", "id": "", "email": ""})
        if not re.search(r"\w", value):
            return
        if not entry[field]:
            entry[field] = value
        elif field == "id" and value not in entry[field].split():
            entry[field] += " " + value  # `Student id 1:` twice: both kept, so that neither is guessed

    lines = _plain(_BR.sub(_BREAK, text)).splitlines()
    columns: dict[int, tuple[int, str]] = {}  # a table's header: column -> (member, field)
    for index, line in enumerate(lines):
        cells = line.strip().strip("|").split("|") if line.strip().startswith("|") else None
        if cells is None:
            columns = {}
        elif columns and all(_TABLE_RULE.fullmatch(c) for c in cells):
            continue
        elif columns:
            for column, cell in enumerate(cells):
                if column in columns and not _FIELD.search(cell):
                    put(*columns[column], _clean(cell))
            continue
        labels = list(_FIELD.finditer(line))
        for i, label in enumerate(labels):
            end = labels[i + 1].start() if i + 1 < len(labels) else len(line)
            raw = line[label.end() : end]
            value = _clean(raw)
            field = _field_of(label)
            if not value and cells is None and i + 1 == len(labels) and _BREAK not in raw and index + 1 < len(lines):
                below = _clean(lines[index + 1])
                if not _FIELD.search(lines[index + 1]) and _BELOW[field].fullmatch(below):
                    value = below
            put(int(label.group(2)), field, value)
        if cells is not None and labels and not any(_clean(c) and not _FIELD.fullmatch(_clean(c)) for c in cells):
            columns = {
                column: (int(m.group(2)), _field_of(m))
                for column, cell in enumerate(cells)
                if (m := _FIELD.search(cell))
            }
    return members


def identity_form_note(ev: Evidence) -> str:
    """What the identity cell leaves empty, in words: "" when it is filled in, or not there."""
    for where, text in ev.texts.items():
        form = identity_form(text)
        if not form:
            continue
        filled = {number: entry for number, entry in form.items() if any(entry.values())}
        if not filled:
            return (
                f"the {where}'s identity cell (Name 1:, Student id 1:, Email 1:, ...) is not filled in: "
                f"write each member's name, student id and e-mail after the colons"
            )
        gaps = [
            f"{label} {number}"
            for number, entry in sorted(filled.items())
            for field, label in _FORM_FIELDS
            if not entry[field]
        ]
        if gaps:
            return f"the {where}'s identity cell leaves {', '.join(gaps)} empty"
    return ""


def _rel(workspace: Workspace, path: Path) -> str:
    try:
        return path.relative_to(workspace.dir).as_posix()
    except ValueError:
        return path.name


def _digits_of(team: tuple[TeamMember, ...]) -> int:
    lengths = {len(m.student_id) for m in team if m.student_id.isdigit()}
    return lengths.pop() if len(lengths) == 1 else 7


def check_identity(submission: Submission, workspace: Workspace) -> list[Violation]:
    """identity.mismatch / identity.missing: the ids in the file name against those in the files."""
    team_ids = [m.student_id for m in submission.team if m.student_id.isascii() and m.student_id.isdigit()]
    digits = _digits_of(submission.team)
    ev = read_evidence(submission, workspace, digits)
    violations = list(ev.problems)
    where = " and ".join(ev.looked_in)
    note = identity_form_note(ev)
    if not ev.ids:
        expected = f"the ids {', '.join(team_ids)} of the file name" if team_ids else "the team's ids"
        violations.append(
            Violation(
                code="identity.missing",
                severity="warning",
                message=f"{submission.rel}: expected every member's name, {digits}-digit student id and e-mail "
                f"in the notebook or PDF; "
                + (f"found no student id in {where}" if where else "found no notebook or PDF to look in")
                + f" (expected {expected})"
                + (f"; {note}" if note else ""),
            )
        )
        return violations
    if not team_ids:
        return violations  # the file name gave no ids to compare with (name.pattern says so)
    missing = [i for i in team_ids if i not in ev.ids]
    extra = sorted(i for i in ev.ids if i not in team_ids)
    if missing or extra:
        bits = []
        if missing:
            names = {m.student_id: m.name for m in submission.team}
            bits.append(
                "ids of the file name not found in the files: "
                + ", ".join(f"{i} ({names.get(i) or '?'})" for i in missing)
            )
        if extra:
            bits.append(
                "ids in the files that the file name lacks: "
                + ", ".join(f"{i} (in the {' and '.join(sorted(ev.ids[i]))})" for i in extra)
            )
        violations.append(
            Violation(
                code="identity.mismatch",
                severity="warning",
                message=f"{submission.rel}: expected the files to name the team of the file name "
                f"({', '.join(team_ids)}); {'; '.join(bits)}. Looked in {where}" + (f"; {note}" if note else ""),
            )
        )
    return violations


def team_with_emails(submission: Submission, workspace: Workspace) -> tuple[TeamMember, ...]:
    """The file name's team, with the e-mail each member gave in the files where it can be matched.

    An e-mail belongs to a member when it is on the same line as the member's id or contains a part
    of the member's name (ASCII-folded: 'müller' matches 'mueller' and 'muller').
    """
    ev = read_evidence(submission, workspace, _digits_of(submission.team))
    lines = [ln for text in ev.texts.values() for ln in text.splitlines()]
    form_emails: dict[str, str] = {}  # student id -> the e-mail the identity cell gives the same member
    for text in ev.texts.values():
        for entry in identity_form(text).values():
            found = _EMAIL.search(entry["email"])
            numbers = re.findall(r"[0-9]+", entry["id"])
            if found and len(numbers) == 1:  # two ids for one member: whose e-mail it is cannot be told
                form_emails.setdefault(numbers[0], found.group(0))
    out = []
    for member in submission.team:
        email = member.email
        if email is None and member.student_id:
            email = form_emails.get(member.student_id)
        if email is None and member.student_id:
            for ln in lines:
                if member.student_id in ln:
                    emails = _EMAIL.findall(ln)
                    if emails:
                        email = emails[0]
                        break
        if email is None:
            keys = _name_keys(member.name)
            for e in ev.emails:
                local = e.split("@")[0].lower()
                if any(k in local for k in keys):
                    email = e
                    break
        out.append(member.model_copy(update={"email": email}))
    return tuple(out)


def _name_keys(name: str) -> set[str]:
    keys = set()
    for part in re.split(r"[\s\-']+", name.lower()):
        if len(part) < 3 or part in ("van", "der", "von", "den", "del", "de", "la"):
            continue
        keys.add(part)
        keys.add(part.replace("ä", "ae").replace("ö", "oe").replace("ü", "ue").replace("ß", "ss"))
        keys.add(unicodedata.normalize("NFKD", part).encode("ascii", "ignore").decode())
    return {k for k in keys if len(k) >= 3}


_NAME_LABEL = re.compile(r"\bname\s*[:=]\s*([^,;|\n]+)", re.IGNORECASE)
_LABELS = re.compile(
    r"\b(student\s*id|matriculation(\s*number)?|matrikel(nummer)?|id|name|e-?mail)\b\s*[:=]?", re.IGNORECASE
)


def team_from_files(submission: Submission, workspace: Workspace, digits: int = 7) -> tuple[TeamMember, ...]:
    """The team as the notebook and PDF state it: a name and an id on the same line (e.g.
    "Name: Erika Mustermann, Student ID: 7012345"). Used to tell the exact file name to use when
    the file's own name does not say who submitted it."""
    ev = read_evidence(submission, workspace, digits)
    pattern = _id_pattern(digits)
    members: dict[str, TeamMember] = {}
    for text in ev.texts.values():
        for _, entry in sorted(identity_form(text).items()):
            ids = pattern.findall(entry["id"])
            name = " ".join(re.sub(r"[0-9_]", " ", entry["name"]).split())
            if len(ids) == 1 and ids[0] not in members and 2 <= len(name) <= 60:
                members[ids[0]] = TeamMember(name=unicodedata.normalize("NFC", name), student_id=ids[0])
        for line in _plain(text).splitlines():
            if _FIELD.search(line):
                continue  # the identity cell's lines: read above, member by member
            ids = pattern.findall(line)
            if len(ids) != 1 or ids[0] in members:
                continue
            labelled = _NAME_LABEL.search(line)
            if labelled:
                name = labelled.group(1)
            else:
                before = _LABELS.sub(" ", _EMAIL.sub(" ", line.split(ids[0])[0]))
                name = re.sub(r"[^\w\s'\-]", " ", before)
            name = " ".join(re.sub(r"[0-9_]", " ", name).split())
            if 2 <= len(name) <= 60:
                members[ids[0]] = TeamMember(name=unicodedata.normalize("NFC", name), student_id=ids[0])
    return tuple(members.values())
