"""The errors a user can fix: bad input, not a crash. Each says what and where in its message; the
commands print it on one line with its `label` (and a `hint` of what to do) and exit with status 2.

Defined here, in one place below every stage, and raised where the problem is found (the modules
that raise them re-export them under their old names: `grader.config.ConfigError`, ...)."""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """Something a user can fix. `label` heads the one-line message, `hint` follows it."""

    label = "error"
    hint = ""


class ConfigError(UserError):
    """A configuration file that cannot be used; the message names the file and the key."""

    label = "configuration error"


class SheetError(UserError, ValueError):
    """A sheet that cannot be loaded, or a configuration that does not fit the sheet."""

    label = "sheet"


class DataError(UserError):
    """The configured data cannot be used; the message names the file and what is wrong."""

    label = "data"
    hint = "\nFix \\[data] in grading.toml (or the files it names)."


class SandboxError(UserError, RuntimeError):
    """The configured sandbox cannot be used (e.g. `sandbox = "bubblewrap"` without bwrap)."""

    label = "sandbox"


class CalibrationError(UserError, RuntimeError):
    """The calibration file cannot be read or the solution cannot be calibrated."""

    label = "calibration"


class FolderBusy(UserError, RuntimeError):
    """Another grader process is writing the same output folder."""

    label = "busy"


class ManualPointsError(UserError, ValueError):
    """The sheet cannot be used. `problems` lists every one found, each naming line, team and column."""

    label = "manual points sheet"
    hint = "\nFix the sheet and run again; the reports themselves are written."

    def __init__(self, path: Path | str, problems: list[str]):
        self.path = str(path)
        self.problems = problems
        listed = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{path}: {len(problems)} problem(s) in the manual points; fix them and run again:\n{listed}")


class ClearingRefused(ManualPointsError):
    """A sheet that would take points out of reports that hold them (an empty file, a deleted row, a
    cleared cell): refused unless the tutor says so. `problems` names each team and part."""

    hint = (
        "\nPut the points back, or bring back an earlier sheet (`grader merge OUT --out OUT --restore` lists "
        "the versions kept in OUT/manual/); if the points are meant to go, run again with --allow-clearing."
    )

    def __init__(self, path: Path | str, problems: list[str]):
        self.path = str(path)
        self.problems = problems
        listed = "\n".join(f"  - {p}" for p in problems)
        UserError.__init__(
            self,
            f"{path}: refused, it would take tutors' points out of the reports "
            f"({len(problems)} team(s)); the sheet was not applied and no summary, CSV "
            f"or page was written:\n{listed}",
        )


class CmsError(UserError, ValueError):
    """The course system's file cannot be written."""


class MergeError(UserError, ValueError):
    """Shards that cannot be merged (a missing or doubled part, overlapping reports)."""


class RosterError(UserError, ValueError):
    """The course's list of students cannot be read; the message names the file, the line and what is wrong."""

    label = "roster"
    hint = "\nFix the file (or \\[cms] roster / --roster) and run again."
