"""Intake: who submitted what (naming, discovery), and a safe workspace holding it (unpacking)."""

from grader.intake.archive import unpack
from grader.intake.content import SheetHints, find_content, script_to_notebook
from grader.intake.discover import discover
from grader.intake.identity import check_identity, read_evidence, team_with_emails
from grader.intake.naming import duplicate_students, identify, parse_name
from grader.intake.types import Discovery, Skipped, Submission, Workspace

__all__ = [
    "Discovery",
    "SheetHints",
    "Skipped",
    "Submission",
    "Workspace",
    "check_identity",
    "discover",
    "duplicate_students",
    "find_content",
    "identify",
    "parse_name",
    "read_evidence",
    "script_to_notebook",
    "team_with_emails",
    "unpack",
]
