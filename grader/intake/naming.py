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
from dataclasses import dataclass
from pathlib import Path

from grader.config import Naming
from grader.intake.types import Submission
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
    """What a file name says, before it becomes a Submission."""

    stem: str
    extension: str  # as written, e.g. ".zip", ".ZIP", ".tar.gz" ("" if none)
    team: tuple[TeamMember, ...]
    violations: tuple[Violation, ...]
    expected_name: str | None  # canonical name, when it differs and can be worked out


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
    """Parse a submission's file name into its team and the naming violations."""
    filename = unicodedata.normalize("NFC", filename)
    stem, ext = split_extension(filename)
    violations: list[Violation] = []
    found: list[str] = []  # what differs from the canonical form, for name.pattern

    def violation(code: str, severity: str, text: str) -> None:
        violations.append(Violation(code=code, severity=severity, message=f"{filename}: {text}"))

    canonical_ext = ext
    if ext.lower() == ".zip" or ext.lower() in ALLOWED_SINGLE:
        pass
    elif ext.lower() in UNSUPPORTED_ARCHIVES:
        canonical_ext = ".zip"
        violation(
            "name.extension",
            "warning",
            f"expected a .zip archive (or a single .ipynb/.py/.pdf file), found a '{ext}' archive, "
            "which the grader does not unpack",
        )
    else:
        canonical_ext = ".zip"
        shown = f"'{ext}'" if ext else "no extension"
        violation(
            "name.extension", "warning", f"expected a .zip archive or a single .ipynb, .py or .pdf file, found {shown}"
        )

    body = stem
    copy = _COPY_SUFFIX.search(body)
    if copy and copy.start() > 0:
        found.append(f"the copy marker '{copy.group(0).strip()}'")
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
                found.append(f"'{dropped}' before the first name")
        core = segment.strip(_SEP)
        lead = segment[: len(segment) - len(segment.lstrip(_SEP))]
        trail = segment[len(segment.rstrip(_SEP)) :]
        raw_id = run.group(0)
        if not core:
            found.append(f"no name before the id '{raw_id}'")
        elif lead != ("" if i == 0 else "_") or trail != "_":
            written = f"{segment}{raw_id}"
            found.append(f"'{written}' where '{'' if i == 0 else '_'}{core}_{raw_id}' was expected")
        name = _clean_name(core)
        if "," in name:
            found.append(f"'{name}' written surname first with a comma")
            name = _given_name_first(name)
            core = name
        if any(ch.isdigit() for ch in name):
            found.append(f"digits in the name '{name}'")
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
                found.append(f"'{dropped}' after the last id")
            if kept.strip(_SEP):
                name = _clean_name(kept.strip(_SEP))
                id_less.append(name)
                found.append(f"the name '{name}' without a student id")
                team.append(TeamMember(name=name, student_id=""))
                names.append(name)
                ids.append("")
        else:
            found.append(f"no {naming.id_digits}-digit student id")
    elif rest and runs:
        found.append(f"{rest!r} after the last id")

    for name in id_less:
        violation(
            "name.student_id",
            "warning",
            f"'{name}' has no student id; expected {naming.id_digits} ASCII digits after every name",
        )
    for raw in bad_ids:
        what = "non-ASCII digits" if not raw.isascii() else f"{len(raw)} digit{'s' if len(raw) != 1 else ''}"
        violation(
            "name.student_id",
            "warning",
            f"student id '{raw}' has {what}; expected exactly {naming.id_digits} ASCII digits (0-9)",
        )

    if team and not (naming.min_members <= len(team) <= naming.max_members):
        violation(
            "name.group_size",
            "warning",
            f"expected a team of {naming.min_members} to {naming.max_members} students, the name lists {len(team)}",
        )

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
    hint = f"; expected name: {expected}" if expected else ""

    if not team:
        violations.insert(
            0,
            Violation(
                code="name.pattern",
                severity="error",
                message=f"{filename}: expected {PATTERN}{canonical_ext} "
                f"(names and {naming.id_digits}-digit student ids joined by '_'), "
                f"found {'; '.join(found) or 'no name/id pairs'}",
            ),
        )
    elif found:
        violations.insert(
            0,
            Violation(
                code="name.pattern",
                severity="warning",
                message=f"{filename}: expected {PATTERN}{canonical_ext}, found {'; '.join(found)}{hint}",
            ),
        )

    for v in violations:
        if v.code == "name.extension" and expected and "expected name" not in v.message:
            idx = violations.index(v)
            violations[idx] = Violation(code=v.code, severity=v.severity, message=v.message + hint)

    if expected == filename:
        expected = None
    return ParsedName(stem=stem, extension=ext, team=tuple(team), violations=tuple(violations), expected_name=expected)


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
    violations = tuple(
        v.model_copy(
            update={
                "message": v.message.replace(
                    f"expected name: {submission.expected_name}", f"expected name: {suggested}"
                )
            }
        )
        if submission.expected_name and v.code.startswith("name.")
        else v
        for v in submission.violations
    )
    return dataclasses.replace(submission, team=team, expected_name=suggested, violations=violations)


def _team_from_folder(path: Path, parsed: ParsedName, naming: Naming) -> ParsedName:
    """`Team_folder/notebook.ipynb`: when the file name names no team, its folder may."""
    folder = unicodedata.normalize("NFC", readable_name(path.parent.name))
    ext = parsed.extension
    from_folder = parse_name(folder + ext, naming)
    if not any(m.student_id for m in from_folder.team):
        return parsed
    filename = unicodedata.normalize("NFC", readable_name(path.name))
    expected = from_folder.expected_name or (folder + ext if not from_folder.violations else None)
    hint = f"; expected name: {expected}" if expected else ""
    note = Violation(
        code="name.pattern",
        severity="warning",
        message=f"{filename}: expected {PATTERN}{ext or '.zip'}, found a file name without "
        f"name/id pairs; the team is read from its folder '{folder}'{hint}",
    )
    prefix = f"{folder}{ext}:"
    others = tuple(
        v.model_copy(update={"message": f"{filename} (folder '{folder}'):" + v.message[len(prefix) :]})
        if v.message.startswith(prefix)
        else v
        for v in from_folder.violations
        if v.code != "name.pattern"
    )
    return ParsedName(
        stem=parsed.stem, extension=ext, team=from_folder.team, violations=(note,) + others, expected_name=expected
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
