"""Where the submissions are: every submission under a folder, whatever its layout."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

from grader.config import Naming
from grader.intake.naming import UNSUPPORTED_ARCHIVES, kind_of, parse_name, split_extension
from grader.intake.types import Discovery, Skipped

SUBMISSION_EXTENSIONS = (".zip", ".ipynb", ".py", ".pdf")
NOTEBOOK_EXTENSIONS = (".ipynb", ".py")
JUNK_NAMES = {
    ".ds_store": "macOS folder metadata",
    "thumbs.db": "Windows thumbnail cache",
    "desktop.ini": "Windows folder settings",
    "ehthumbs.db": "Windows thumbnail cache",
}
JUNK_DIRS = {
    "__macosx": "macOS resource forks",
    ".ipynb_checkpoints": "Jupyter checkpoints",
    "__pycache__": "Python byte code",
}
CHECKSUMS = (".md5", ".sha1", ".sha256", ".sha512", ".crc", ".sfv")
NOTES = (".txt", ".md", ".csv", ".html", ".htm", ".json", ".log", ".xlsx", ".xls", ".ods", ".rtf", ".tsv")


def _skip_reason_dir(name: str) -> str | None:
    low = name.lower()
    if low in JUNK_DIRS:
        return f"folder of {JUNK_DIRS[low]}"
    if name.startswith("."):
        return "hidden folder"
    return None


def _skip_reason_file(name: str, naming: Naming) -> str | None:
    """None when the file is a submission; else why it is not."""
    low = name.lower()
    if low in JUNK_NAMES:
        return JUNK_NAMES[low]
    if name.startswith("._"):
        return "macOS resource fork (._ file)"
    if name.startswith("."):
        return "hidden file"
    if name.startswith("~$") or low.endswith((".tmp", ".part", ".crdownload")):
        return "temporary or partial download"
    ext = split_extension(name)[1].lower()
    if ext in SUBMISSION_EXTENSIONS or ext in UNSUPPORTED_ARCHIVES:
        return None
    if ext in CHECKSUMS:
        return "checksum file"
    if ext in NOTES:
        return f"tutor notes or course-system export ({ext} file)"
    # Anything else counts when its name announces a team: it gets a report saying the format is wrong.
    if any(m.student_id for m in parse_name(name, naming).team):
        return None
    return f"not a submission: {ext or 'no extension'} file whose name names no team"


def _names_team(name: str, naming: Naming) -> bool:
    return any(m.student_id for m in parse_name(name, naming).team)


def paired_pdfs(path: Path, naming: Naming | None = None, subfolder: bool = False) -> list[Path]:
    """The PDFs that belong with a loose notebook or script: same stem in the same folder; or, when
    neither name announces a team and the folder is a team's (its name names one, or it is a
    `subfolder` of the folder graded: `Abgabe 7/notebook.ipynb + answers.pdf`), the folder's only
    PDF beside its only notebook."""
    naming = naming or Naming()
    stem = _stem_key(path.name)
    try:
        pdfs = sorted(
            p
            for p in path.parent.iterdir()
            if p != path
            and p.suffix.lower() == ".pdf"
            and not p.is_symlink()
            and p.is_file()
            and not p.name.startswith(".")
        )
    except OSError:
        return []
    same = [p for p in pdfs if _stem_key(p.name) == stem]
    if same:
        return same
    if (
        len(pdfs) == 1
        and not _names_team(path.name, naming)
        and not _names_team(pdfs[0].name, naming)
        and (subfolder or _names_team(path.parent.name, naming))
    ):
        try:
            notebooks = [
                p
                for p in path.parent.iterdir()
                if p.suffix.lower() in NOTEBOOK_EXTENSIONS and not p.name.startswith(".")
            ]
        except OSError:
            return []
        if len(notebooks) == 1:
            return pdfs
    return []


def graded_files(path: Path, rel: str) -> list[Path]:
    """The files a submission's grade reads: a notebook or script with its paired PDFs (as unpacking
    copies them in), else the file itself. Their hash (`naming.files_sha256`) is the one a report
    records: a PDF replaced beside its notebook is a changed submission."""
    if kind_of(path.name) not in ("ipynb", "py"):
        return [path]
    return [path, *paired_pdfs(path, subfolder="/" in rel)]


def _stem_key(name: str) -> str:
    return unicodedata.normalize("NFC", split_extension(name)[0]).casefold()


def discover(root: Path, naming: Naming | None = None) -> Discovery:
    """Every submission under root, sorted; everything else is listed as Skipped with the reason."""
    root = Path(root)
    naming = naming or Naming()
    if root.is_file():
        return Discovery(submissions=(root,))
    if not root.is_dir():
        return Discovery(skipped=(Skipped(root, "does not exist or is not a folder"),))
    submissions: list[Path] = []
    skipped: list[Skipped] = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        here = Path(folder)
        keep = []
        zips = {_stem_key(f) for f in files if f.lower().endswith(".zip")}
        for d in sorted(dirs):
            reason = _skip_reason_dir(d)
            if os.path.islink(here / d):
                reason = "symbolic link (not followed)"
            elif reason is None and _stem_key(d + ".zip") in zips and _names_team(d + ".zip", naming):
                # `X/` beside `X.zip`: what a double-click on the zip makes (macOS, Windows); the
                # team's files would be graded twice, and its members be in two teams.
                reason = f"the unpacked copy of {d}.zip beside it (the zip is graded)"
            if reason:
                skipped.append(Skipped(here / d, reason))
            else:
                keep.append(d)
        dirs[:] = keep
        candidates = []
        for name in sorted(files):
            path = here / name
            if os.path.islink(path):
                skipped.append(Skipped(path, "symbolic link (not followed)"))
                continue
            reason = _skip_reason_file(name, naming)
            if reason:
                skipped.append(Skipped(path, reason))
            else:
                candidates.append(path)
        # A notebook (or script) and a PDF with the same name are one submission: the pair.
        by_stem: dict[str, list[Path]] = {}
        for path in candidates:
            by_stem.setdefault(_stem_key(path.name), []).append(path)
        for group in by_stem.values():
            lead = next((p for p in group if p.suffix.lower() == ".ipynb"), None) or next(
                (p for p in group if p.suffix.lower() == ".py"), None
            )
            for p in group:
                if lead is not None and p != lead and p.suffix.lower() in (".pdf", ".py"):
                    skipped.append(Skipped(p, f"graded together with {lead.name} (same name)"))
                else:
                    submissions.append(p)
        # Team_folder/notebook.ipynb + sheet.pdf: the folder names the team, the files do not.
        leads = [p for p in submissions if p.parent == here and p.suffix.lower() in NOTEBOOK_EXTENSIONS]
        if len(leads) == 1:
            for pdf in paired_pdfs(leads[0], naming, subfolder=here != root):
                if pdf in submissions:
                    submissions.remove(pdf)
                    skipped.append(
                        Skipped(pdf, f"graded together with {leads[0].name} (the only notebook in the team's folder)")
                    )
    key = lambda p: p.as_posix()
    return Discovery(
        submissions=tuple(sorted(set(submissions), key=key)), skipped=tuple(sorted(skipped, key=lambda s: key(s.path)))
    )
