"""The teams' ids against the course's list of students (the roster): who is not enrolled, whose name
is spelled otherwise, and who is enrolled but submitted nothing.

Applied when the outputs are written, as the tutors' points are: `apply_roster` first takes out every
violation an earlier roster put into a report, then adds the current ones, so a changed roster (or
none) needs no regrading and the reports on disk say what the outputs say.

- `identity.not_enrolled` (error): an id of the file name that is not on the roster. It names the
  closest enrolled students: the same name (beyond case, accents and the order of the names), or an
  id one edit away (one digit changed, added or dropped, or two neighbouring digits swapped), the
  same name first. Such a student is never written to the course system's import under that id.
- `identity.roster_name` (warning): an enrolled id whose name in the file name is not the roster's
  name for it, with both spellings.
- Missing: enrolled students no submission names. One whose name a member carries who is not
  enrolled or has no id, or whose id is one edit from such a member's, is left off that list: they
  probably submitted under a mistyped id (the violation names them) or none, and must not be
  written as 0.

The candidates are other students' names and ids: the team's own feedback page shows the violation
without them (`for_team`).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from grader.models import Report, Violation
from grader.report.roster import Roster, Student
from grader.report.store import write_report

NOT_ENROLLED = "identity.not_enrolled"
ROSTER_NAME = "identity.roster_name"
ROSTER_CODES = (NOT_ENROLLED, ROSTER_NAME)
IMPORT_FILE = "cms_import.csv"
_CANDIDATES = " Closest enrolled: "
_ROSTER_SAYS = " but "
MAX_CANDIDATES = 3


# ---------------------------------------------------------------- names and ids

_GERMAN = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue"})


@functools.lru_cache(maxsize=1 << 16)  # a roster's names are compared with every name not enrolled
def _name_keys(name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The name's words, sorted, without case and accents: plain (ü → u), and German (ü → ue)."""
    keys = []
    for german in (False, True):
        text = unicodedata.normalize("NFC", name).casefold()  # casefold: ß → ss
        if german:
            text = text.translate(_GERMAN)
        text = "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))
        keys.append(tuple(sorted(w for w in re.split(r"[\W_]+", text) if w)))
    return keys[0], keys[1]


def same_name(a: str, b: str) -> bool:
    """The same person's name, written with other case, accents (`Muller`, or `Mueller` for
    `Müller`), separators or order of the names (`Müller, Jürgen`)."""
    if not a.strip() or not b.strip():
        return False
    (plain_a, german_a), (plain_b, german_b) = _name_keys(a), _name_keys(b)
    return plain_a == plain_b or german_a == german_b


def id_relation(typed: str, enrolled: str) -> str | None:
    """How `typed` differs from `enrolled` when it is one edit away, else None."""
    if typed == enrolled:
        return None
    if len(typed) == len(enrolled):
        diff = [i for i, (a, b) in enumerate(zip(typed, enrolled)) if a != b]
        if len(diff) == 1:
            return "one digit differs"
        if (
            len(diff) == 2
            and diff[1] == diff[0] + 1
            and typed[diff[0]] == enrolled[diff[1]]
            and typed[diff[1]] == enrolled[diff[0]]
        ):
            return "two neighbouring digits swapped"
        return None
    longer, shorter = (typed, enrolled) if len(typed) > len(enrolled) else (enrolled, typed)
    if len(longer) - len(shorter) != 1:
        return None
    if any(longer[:i] + longer[i + 1 :] == shorter for i in range(len(longer))):
        return "one digit more" if longer is typed else "one digit missing"
    return None


@dataclass(frozen=True)
class Candidate:
    student: Student
    reasons: tuple[str, ...]

    @property
    def same_name(self) -> bool:
        return "same name" in self.reasons

    def describe(self) -> str:
        return f"{self.student.name or '(no name)'} ({self.student.student_id}: {', '.join(self.reasons)})"


def one_edit_away(student_id: str) -> set[str]:
    """Every string of digits one edit from `student_id` (a digit changed, added or dropped, two
    neighbouring ones swapped): the ids `id_relation` can relate it to, about 160 for 7 digits."""
    digits = "0123456789"
    found = {student_id[:i] + student_id[i + 1 :] for i in range(len(student_id))}
    found |= {student_id[:i] + d + student_id[i:] for i in range(len(student_id) + 1) for d in digits}
    found |= {student_id[:i] + d + student_id[i + 1 :] for i in range(len(student_id)) for d in digits}
    found |= {
        student_id[:i] + student_id[i + 1] + student_id[i] + student_id[i + 2 :] for i in range(len(student_id) - 1)
    }
    found.discard(student_id)
    return found


# The roster's students by name key, for one roster at a time (the one being applied): a member not
# enrolled is looked up, not compared with every enrolled student (a list of 50,000 took minutes).
_BY_NAME: list = [None, {}]


def _by_name(roster: Roster) -> dict[tuple[str, ...], list[Student]]:
    if _BY_NAME[0] is not roster:
        index: dict[tuple[str, ...], list[Student]] = {}
        for student in roster.students.values():
            if student.name.strip():
                for key in set(_name_keys(student.name)):
                    index.setdefault(key, []).append(student)
        _BY_NAME[:] = [roster, index]
    return _BY_NAME[1]


def candidates(student_id: str, name: str, roster: Roster) -> list[Candidate]:
    """The enrolled students `student_id`/`name` most likely means: the same name and a close id,
    then the same name, then a close id."""
    near: dict[str, Student] = {}
    if name.strip():
        index = _by_name(roster)
        for key in set(_name_keys(name)):
            near.update((s.student_id, s) for s in index.get(key, ()))
    for other in one_edit_away(student_id):
        if other in roster.students:
            near[other] = roster.students[other]
    found = []
    for student in near.values():
        reasons = []
        if same_name(name, student.name):
            reasons.append("same name")
        if (relation := id_relation(student_id, student.student_id)) is not None:
            reasons.append(relation)
        if reasons:
            found.append(Candidate(student, tuple(reasons)))
    return sorted(found, key=lambda c: (-len(c.reasons), not c.same_name, c.student.student_id))


def closest(student_id: str, name: str, roster: Roster) -> str:
    """The enrolled students `student_id`/`name` most likely means, in words."""
    close = candidates(student_id, name, roster)[:MAX_CANDIDATES]
    if not close:
        return "nobody (no enrolled student has this name, or an id one digit or one swap away)"
    return "; ".join(c.describe() for c in close)


# ---------------------------------------------------------------- the violations


def _roster_label(roster: Roster) -> str:
    return roster.path.name


def member_violations(report: Report, roster: Roster) -> list[Violation]:
    found = []
    for member in report.submission.team:
        student_id = member.student_id.strip()
        if not student_id:
            continue  # no id to check: cms.csv and the import list the member already
        enrolled = roster.students.get(student_id)
        if enrolled is None:
            shown = closest(student_id, member.name, roster)
            found.append(
                Violation(
                    code=NOT_ENROLLED,
                    severity="error",
                    message=f"student id {student_id} ({member.name}) is not on the course's list of students "
                    f"({_roster_label(roster)}): left out of {IMPORT_FILE} until the id in the file name is "
                    f"corrected.{_CANDIDATES}{shown}",
                )
            )
        elif enrolled.name and not same_name(member.name, enrolled.name):
            found.append(
                Violation(
                    code=ROSTER_NAME,
                    severity="warning",
                    message=f"student id {student_id} is '{member.name}' in the file name{_ROSTER_SAYS}'{enrolled.name}' on the "
                    f"course's list of students ({_roster_label(roster)}): check that the id is theirs",
                )
            )
    return found


def with_roster(report: Report, roster: Roster | None) -> Report:
    """The report with the roster's violations of now (none without a roster) in place of earlier ones."""
    kept = [v for v in report.violations if v.code not in ROSTER_CODES]
    current = member_violations(report, roster) if roster is not None else []
    return report.model_copy(update={"violations": kept + current})


def apply_roster(reports: list[tuple[str, Report]], roster: Roster | None, out_dir: Path) -> list[tuple[str, Report]]:
    """Every report checked against the roster; the reports that change are written again."""
    updated = []
    for stem, report in reports:
        new = with_roster(report, roster)
        if new.violations != report.violations:
            write_report(new, Path(out_dir), stem)
        updated.append((stem, new))
    return updated


def for_team(violation: Violation) -> Violation:
    """The violation as the team's feedback page shows it: without other students' names and ids,
    nor the roster's name for an id of the file name (a mistyped id may be another student's)."""
    if violation.code == ROSTER_NAME and _ROSTER_SAYS in violation.message:
        head = violation.message.split(_ROSTER_SAYS, 1)[0]
        return violation.model_copy(
            update={
                "message": head + " but the course's list of students has another name "
                "for this id: check that the id is theirs (a tutor "
                "compares both)"
            }
        )
    if violation.code != NOT_ENROLLED or _CANDIDATES not in violation.message:
        return violation
    head = violation.message.split(_CANDIDATES, 1)[0]
    return violation.model_copy(update={"message": head + " A tutor matches it with the course's list."})


# ---------------------------------------------------------------- who submitted nothing


@dataclass(frozen=True)
class Missing:
    """Enrolled students no submission names, and those left off the list because a member who is
    not enrolled, or has no id, carries their name (they probably mistyped or left out their id).
    `unplaced`: the submissions whose authors cannot be told (the file name names nobody, or a
    member without an id whose name no enrolled student has): any of the missing may have sent them."""

    students: list[Student]
    probably_mistyped: list[tuple[Student, str, str]]  # (student, id typed or "", stem)
    unplaced: list[str] = field(default_factory=list)  # stems


def missing_students(reports: list[tuple[str, Report]], roster: Roster) -> Missing:
    named = {m.student_id.strip() for _, r in reports for m in r.submission.team}
    absent = {sid: s for sid, s in roster.students.items() if sid not in named}
    mistyped: list[tuple[Student, str, str]] = []
    unplaced: list[str] = []
    for stem, report in reports:
        if not report.submission.team:
            unplaced.append(stem)
        for member in report.submission.team:
            sid = member.student_id.strip()
            if sid in roster:
                continue
            # An id not enrolled, or none at all: a student of that name, or of an id one edit away,
            # probably did submit, under no id of theirs.
            close = candidates(sid, member.name, roster)
            for student in [c.student for c in close if c.student.student_id in absent]:
                mistyped.append((absent.pop(student.student_id), sid, stem))
            if not sid and not any(c.same_name for c in close) and stem not in unplaced:
                unplaced.append(stem)
    return Missing(
        students=sorted(absent.values(), key=lambda s: s.student_id), probably_mistyped=mistyped, unplaced=unplaced
    )
