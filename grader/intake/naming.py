"""Who submitted: the team a file name announces (`Name1_id1_Name2_id2[_Name3_id3].zip`).

Parsing is lenient on purpose: a misnamed submission is still graded, so we read whatever name/id
pairs we can find and report what differs from the canonical name as a warning. Only a name that
yields no member at all is an error.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from grader.config import Naming
from grader.intake.types import NameProblem, Submission
from grader.models import TeamMember, Violation

PATTERN = "Name1_id1_Name2_id2[_Name3_id3]"
ALLOWED_SINGLE = (".ipynb", ".py", ".pdf")
KINDS = {".zip": "zip", ".ipynb": "ipynb", ".py": "py", ".pdf": "pdf"}
# Archive formats we recognise but do not unpack: reported as name.extension, never guessed at.
MULTI_SUFFIXES = (".tar.gz", ".tar.bz2", ".tar.xz", ".tar.zst")
UNSUPPORTED_ARCHIVES = (".rar", ".7z", ".tar", ".tgz", ".gz", ".bz2", ".xz", ".zst", ".zipx") + MULTI_SUFFIXES

# Suffixes browsers and file managers add to a second copy: "x (1).zip", "x - Copy.zip", "x-1.zip"
_COPY_SUFFIX = re.compile(
    r"(?:\s*\(\d{1,3}\)|\s*\((?:copy|kopie)\)|\s+-\s+(?:copy|kopie)(?:\s*\(\d+\))?|\s+copy)\s*$", re.IGNORECASE
)
_DIGITS = re.compile(r"\d+")  # any Unicode decimal digits: Arabic-Indic ids are found, then flagged
_SEP = "_- .,+&;~"  # characters that may separate names and ids in a sloppy name


@dataclass(frozen=True)
class ParsedName:
    """What a file name says, before it becomes a Submission: the team and the problems as data; the
    messages (`violations`) are rendered from them."""

    stem: str
    extension: str  # as written, e.g. ".zip", ".ZIP", ".tar.gz" ("" if none)
    team: tuple[TeamMember, ...]
    problems: tuple[NameProblem, ...]
    expected_name: str | None  # canonical name, when it differs and can be worked out
    hint: str | None = None  # the name the messages suggest (also when it is the name itself)

    @property
    def violations(self) -> tuple[Violation, ...]:
        return render_name_problems(self.problems, self.hint)


# What each finding of name.pattern says (`found` in a message), by its kind.
_FINDING_TEXT: dict[str, Callable[..., str]] = {
    "copy_marker": lambda marker: f"the copy marker '{marker}'",
    "before_first_name": lambda dropped: f"'{dropped}' before the first name",
    "no_name_before_id": lambda raw_id: f"no name before the id '{raw_id}'",
    "separators": lambda written, wanted: f"'{written}' where '{wanted}' was expected",
    "surname_first": lambda name: f"'{name}' written surname first with a comma",
    "digits_in_name": lambda name: f"digits in the name '{name}'",
    "after_last_id": lambda dropped: f"'{dropped}' after the last id",
    "name_without_id": lambda name: f"the name '{name}' without a student id",
    "no_id": lambda digits: f"no {digits}-digit student id",
    "left_after_last_id": lambda rest: f"{rest!r} after the last id",
}


def _found(findings: tuple[tuple[str, tuple], ...]) -> str:
    return "; ".join(_FINDING_TEXT[kind](*facts) for kind, facts in findings)


def _id_malformed(id: str, digits: int) -> str:
    what = "non-ASCII digits" if not id.isascii() else f"{len(id)} digit{'s' if len(id) != 1 else ''}"
    return f"student id '{id}' has {what}; expected exactly {digits} ASCII digits (0-9)"


# The message of each problem (`NameProblem.what`), from its facts.
_PROBLEM_TEXT: dict[str, Callable[..., str]] = {
    "archive_not_unpacked": lambda ext: (
        f"expected a .zip archive (or a single .ipynb/.py/.pdf file), found a '{ext}' archive, "
        "which the grader does not unpack"
    ),
    "extension": lambda ext: (
        "expected a .zip archive or a single .ipynb, .py or .pdf file, found " + (f"'{ext}'" if ext else "no extension")
    ),
    "no_team": lambda ext, digits, findings: (
        f"expected {PATTERN}{ext} (names and {digits}-digit student ids joined by '_'), "
        f"found {_found(findings) or 'no name/id pairs'}"
    ),
    "pattern": lambda ext, findings: f"expected {PATTERN}{ext}, found {_found(findings)}",
    "team_from_folder": lambda ext, folder: (
        f"expected {PATTERN}{ext or '.zip'}, found a file name without name/id pairs; the team is read "
        f"from its folder '{folder}'"
    ),
    "id_missing": lambda name, digits: f"'{name}' has no student id; expected {digits} ASCII digits after every name",
    "id_malformed": _id_malformed,
    "group_size": lambda low, high, count: f"expected a team of {low} to {high} students, the name lists {count}",
}


def render_name_problems(problems: tuple[NameProblem, ...], expected: str | None) -> tuple[Violation, ...]:
    """The naming violations: each problem's message, ending with the expected name where it says one."""
    return tuple(
        Violation(
            code=problem.code,
            severity=problem.severity,
            message=f"{problem.file}: {_PROBLEM_TEXT[problem.what](**dict(problem.facts))}"
            + (f"; expected name: {expected}" if problem.hinted and expected else ""),
        )
        for problem in problems
    )


def split_extension(filename: str) -> tuple[str, str]:
    """("stem", ".ext"), treating ".tar.gz" and friends as one extension."""
    lower = filename.lower()
    for multi in MULTI_SUFFIXES:
        if lower.endswith(multi) and len(filename) > len(multi):
            return filename[: -len(multi)], filename[-len(multi) :]
    dot = filename.rfind(".")
    if dot <= 0:
        return filename, ""
    return filename[:dot], filename[dot:]


def kind_of(filename: str) -> str:
    return KINDS.get(split_extension(filename)[1].lower(), "other")


def _ascii_id(raw: str) -> str:
    """Arabic-Indic and other Unicode digits written as ASCII, so ids compare with the files' text."""
    return "".join(str(unicodedata.decimal(ch)) for ch in raw)


def _is_id_run(text: str, start: int, end: int) -> bool:
    """Is this digit run meant as a student id? Long runs are; 'Sheet6', 'WS2024' and '-6' are not."""
    if end - start >= 5:
        return True
    before = text[start - 1] if start > 0 else "_"
    after = text[end] if end < len(text) else "_"
    return end - start == 4 and not before.isalpha() and not after.isalpha()


_JUNK_WORDS = (
    "final",
    "sheet",
    "blatt",
    "abgabe",
    "submission",
    "submit",
    "nnti",
    "exercise",
    "uebung",
    "übung",
    "ubung",
    "solution",
    "loesung",
    "lösung",
    "version",
    "korrigiert",
    "corrected",
    "neu",
    "new",
    "hw",
    "homework",
    "ex",
    "assignment",
    "aufgabe",
    "zettel",
    "copy",
    "kopie",
)


def _is_junk(token: str) -> bool:
    low = token.lower()
    return (
        any(ch.isdigit() for ch in token)
        or low in _JUNK_WORDS
        or any(low.startswith(w) for w in _JUNK_WORDS if len(w) > 3)
    )


def _drop_junk(text: str, leading: bool) -> tuple[str, str]:
    """Split off words such as 'Sheet6' or 'final' that are not part of a name: (kept, dropped)."""
    tokens = re.split(r"([_\-\s.]+)", text)
    words = tokens[0::2]
    seps = tokens[1::2]
    order = range(len(words)) if leading else range(len(words) - 1, -1, -1)
    cut = None
    for k in order:
        if not words[k]:
            continue
        if not _is_junk(words[k]):
            break
        cut = k
    if cut is None:
        return text, ""
    if leading:
        dropped = "".join(t for pair in zip(words[: cut + 1], seps[: cut + 1]) for t in pair)
        return text[len(dropped) :], dropped.strip(_SEP)
    kept_tokens = tokens[: 2 * cut]
    kept = "".join(kept_tokens)
    return kept, text[len(kept) :].strip(_SEP)


def _clean_name(raw: str) -> str:
    """'Anna_Lena' -> 'Anna Lena': underscores inside a name part are read as spaces."""
    return " ".join(part for part in re.split(r"[_\s]+", raw) if part)


def _given_name_first(name: str) -> str:
    """'Mustermann, Erika' -> 'Erika Mustermann' (a comma says the surname came first)."""
    if name.count(",") != 1:
        return name
    surname, given = (part.strip(_SEP) for part in name.split(","))
    return f"{given} {surname}" if surname and given else name.replace(",", " ").strip()


def _as_file_name_part(name: str) -> str:
    """A member's name as a suggested file name writes it: words joined by '_' (no spaces to lose)."""
    return "_".join(name.replace(",", " ").split())


def parse_name(filename: str, naming: Naming) -> ParsedName:
    """Parse a submission's file name into its team and the naming problems."""
    filename = unicodedata.normalize("NFC", filename)
    stem, ext = split_extension(filename)
    problems: list[NameProblem] = []
    found: list[tuple[str, tuple]] = []  # what differs from the canonical form, for name.pattern

    def problem(code: str, what: str, *, hinted: bool = False, first: bool = False, **facts) -> None:
        severity = "error" if what == "no_team" else "warning"
        problems.insert(
            0 if first else len(problems), NameProblem(code, severity, what, filename, tuple(facts.items()), hinted)
        )

    canonical_ext = ext
    if ext.lower() == ".zip" or ext.lower() in ALLOWED_SINGLE:
        pass
    elif ext.lower() in UNSUPPORTED_ARCHIVES:
        canonical_ext = ".zip"
        problem("name.extension", "archive_not_unpacked", hinted=True, ext=ext)
    else:
        canonical_ext = ".zip"
        problem("name.extension", "extension", hinted=True, ext=ext)

    body = stem
    copy = _COPY_SUFFIX.search(body)
    if copy and copy.start() > 0:
        found.append(("copy_marker", (copy.group(0).strip(),)))
        body = body[: copy.start()]

    runs = [m for m in _DIGITS.finditer(body) if _is_id_run(body, m.start(), m.end())]
    team: list[TeamMember] = []
    names: list[str] = []
    ids: list[str] = []
    bad_ids: list[str] = []
    pos = 0
    for i, run in enumerate(runs):
        segment = body[pos : run.start()]
        pos = run.end()
        if i == 0:
            segment, dropped = _drop_junk(segment, leading=True)
            if dropped:
                found.append(("before_first_name", (dropped,)))
        core = segment.strip(_SEP)
        lead = segment[: len(segment) - len(segment.lstrip(_SEP))]
        trail = segment[len(segment.rstrip(_SEP)) :]
        raw_id = run.group(0)
        if not core:
            found.append(("no_name_before_id", (raw_id,)))
        elif lead != ("" if i == 0 else "_") or trail != "_":
            found.append(("separators", (f"{segment}{raw_id}", f"{'' if i == 0 else '_'}{core}_{raw_id}")))
        name = _clean_name(core)
        if "," in name:
            found.append(("surname_first", (name,)))
            name = _given_name_first(name)
            core = name
        if any(ch.isdigit() for ch in name):
            found.append(("digits_in_name", (name,)))
        student_id = _ascii_id(raw_id)
        if not (raw_id.isascii() and len(raw_id) == naming.id_digits):
            bad_ids.append(raw_id)
        names.append(" ".join(core.split()))
        ids.append(student_id)
        team.append(TeamMember(name=name, student_id=student_id))

    rest = body[pos:]
    id_less: list[str] = []
    if rest.strip(_SEP):
        if runs:
            kept, dropped = _drop_junk(rest, leading=False)
            if dropped:
                found.append(("after_last_id", (dropped,)))
            if kept.strip(_SEP):
                name = _clean_name(kept.strip(_SEP))
                id_less.append(name)
                found.append(("name_without_id", (name,)))
                team.append(TeamMember(name=name, student_id=""))
                names.append(name)
                ids.append("")
        else:
            found.append(("no_id", (naming.id_digits,)))
    elif rest and runs:
        found.append(("left_after_last_id", (rest,)))

    for name in id_less:
        problem("name.student_id", "id_missing", name=name, digits=naming.id_digits)
    for raw in bad_ids:
        problem("name.student_id", "id_malformed", id=raw, digits=naming.id_digits)
    if team and not (naming.min_members <= len(team) <= naming.max_members):
        problem("name.group_size", "group_size", low=naming.min_members, high=naming.max_members, count=len(team))

    # The canonical name can be worked out when every member has a name and a well-formed id.
    can_work_out = (
        bool(team)
        and all(names)
        and not id_less
        and all(len(i) == naming.id_digits and i.isascii() and i.isdigit() for i in ids)
        and not any(any(ch.isdigit() for ch in n) for n in names)
    )
    expected = None
    if can_work_out:
        # A name that is fine stays as written (spaces inside a name are allowed); one that must be
        # renamed anyway gets '_' for every space, so that nobody types "erika mustermann_7012345".
        if found or canonical_ext != ext:
            expected = "_".join(f"{_as_file_name_part(n)}_{i}" for n, i in zip(names, ids)) + canonical_ext
        else:
            expected = "_".join(f"{n}_{i}" for n, i in zip(names, ids)) + canonical_ext

    if not team:
        problem(
            "name.pattern", "no_team", first=True, ext=canonical_ext, digits=naming.id_digits, findings=tuple(found)
        )
    elif found:
        problem("name.pattern", "pattern", hinted=True, first=True, ext=canonical_ext, findings=tuple(found))

    return ParsedName(
        stem=stem,
        extension=ext,
        team=tuple(team),
        problems=tuple(problems),
        expected_name=None if expected == filename else expected,
        hint=expected,
    )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()  # hashlib.file_digest is Python 3.11+; the checker runs on 3.10
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def files_sha256(paths: list[Path]) -> str:
    """The hash a report records for the bytes it graded: the file's own for one file (a zip, a
    notebook alone), else a hash of each file's hash in order (a notebook and its PDF): a PDF
    replaced beside its notebook is a changed submission."""
    if len(paths) == 1:
        return sha256_of(paths[0])
    digest = hashlib.sha256()
    for path in paths:
        digest.update(sha256_of(path).encode())
    return digest.hexdigest()


def readable_name(name: str) -> str:
    """A file name as its author wrote it. Bytes that are not UTF-8 (Python holds them as lone
    surrogates, which no report, page or CSV can write) come from Windows zip tools and old uploads:
    they are read as Windows-1252 (Latin-1 where that has no character)."""
    if name.isascii() or not any("\udc80" <= ch <= "\udcff" for ch in name):
        return name
    raw = os.fsencode(name)
    try:
        return unicodedata.normalize("NFC", raw.decode("cp1252"))
    except UnicodeDecodeError:
        return unicodedata.normalize("NFC", raw.decode("latin-1"))


def identify(path: Path, root: Path, naming: Naming) -> Submission:
    """The Submission a file on disk stands for: its team, naming violations and content hash."""
    path = Path(path)
    root = Path(root)
    if root == path or root.is_file():
        rel = path.name
    else:
        try:
            rel = path.relative_to(root).as_posix()
        except ValueError:
            rel = path.name
    rel = "/".join(readable_name(part) for part in rel.split("/"))
    parsed = parse_name(readable_name(path.name), naming)
    if not parsed.team and path.parent != root and not root.is_file():
        parsed = _team_from_folder(path, parsed, naming)
    return Submission(
        path=path,
        rel=unicodedata.normalize("NFC", rel),
        stem=parsed.stem,
        sha256=sha256_of(path),
        kind=kind_of(path.name),
        team=parsed.team,
        violations=parsed.violations,
        expected_name=parsed.expected_name,
        name_problems=parsed.problems,
    )


def _words(name: str) -> list[str]:
    return unicodedata.normalize("NFC", name).casefold().replace(",", " ").split()


def complete_from_files(submission: Submission, stated: tuple[TeamMember, ...], naming: Naming) -> Submission:
    """The submission with what the files (notebook, PDF) say about the team, where the file name
    falls short: a name that names nobody takes the files' team; a name with fewer members than a
    team has gets the members the files add (its suggested name then names them all; the team stays
    the file name's); a member the files spell the same but in other letter case is written as the
    files write it. `stated`: `identity.team_from_files`."""
    stated = tuple(m for m in stated if m.name and m.student_id)
    if not stated:
        return submission
    ext = {"zip": ".zip", "ipynb": ".ipynb", "py": ".py", "pdf": ".pdf"}.get(submission.kind, ".zip")
    by_id = {m.student_id: m for m in stated}
    if not submission.team:
        members = list(stated)
        team = stated
    else:
        members = []
        for member in submission.team:
            own = by_id.get(member.student_id)
            if own is not None and (not member.name or sorted(_words(member.name)) == sorted(_words(own.name))):
                member = member.model_copy(update={"name": own.name})
            members.append(member)
        if len(members) < naming.min_members:
            known = {m.student_id for m in members}
            members += [m for m in stated if m.student_id not in known][: naming.max_members - len(members)]
        team = submission.team
    if not all(
        m.name and len(m.student_id) == naming.id_digits and m.student_id.isascii() and m.student_id.isdigit()
        for m in members
    ):
        return dataclasses.replace(submission, team=team)
    suggested = "_".join(f"{_as_file_name_part(m.name)}_{m.student_id}" for m in members) + ext
    current = unicodedata.normalize("NFC", readable_name(submission.path.name))
    if suggested == current or (submission.expected_name is None and len(members) == len(submission.team)):
        return dataclasses.replace(submission, team=team)  # the name is fine as it is
    # The name's own messages suggested what the name alone allowed: now they say the better name.
    # The naming violations come first in a Submission's (see `identify`); they are rendered anew.
    violations = submission.violations
    if submission.expected_name:
        named = render_name_problems(submission.name_problems, suggested)
        violations = named + violations[len(named) :]
    return dataclasses.replace(submission, team=team, expected_name=suggested, violations=violations)


def _team_from_folder(path: Path, parsed: ParsedName, naming: Naming) -> ParsedName:
    """`Team_folder/notebook.ipynb`: when the file name names no team, its folder may."""
    folder = unicodedata.normalize("NFC", readable_name(path.parent.name))
    ext = parsed.extension
    from_folder = parse_name(folder + ext, naming)
    if not any(m.student_id for m in from_folder.team):
        return parsed
    filename = unicodedata.normalize("NFC", readable_name(path.name))
    expected = from_folder.expected_name or (folder + ext if not from_folder.problems else None)
    note = NameProblem(
        "name.pattern", "warning", "team_from_folder", filename, (("ext", ext), ("folder", folder)), hinted=True
    )
    # The folder name's own problems, said of this file in its folder.
    others = tuple(
        dataclasses.replace(p, file=f"{filename} (folder '{folder}')")
        for p in from_folder.problems
        if p.code != "name.pattern"
    )
    return ParsedName(
        stem=parsed.stem,
        extension=ext,
        team=from_folder.team,
        problems=(note,) + others,
        expected_name=expected,
        hint=expected,
    )


def duplicate_students(subs: list[Submission]) -> dict[str, list[str]]:
    """Student id -> the submissions (rel) naming it, for ids that appear in more than one."""
    seen: dict[str, list[str]] = {}
    for sub in subs:
        for member in sub.team:
            if not member.student_id:
                continue
            rels = seen.setdefault(member.student_id, [])
            if sub.rel not in rels:
                rels.append(sub.rel)
    return {sid: sorted(rels) for sid, rels in sorted(seen.items()) if len(rels) > 1}
