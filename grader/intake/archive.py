"""What was submitted: safe unpacking of a submission into a fresh workspace.

The archive is hostile until proven otherwise. Nothing is extracted on trust: every entry name is
checked and written by us, as a regular file inside the workspace, opened with O_NOFOLLOW|O_EXCL;
sizes are the bytes actually written while streaming (headers lie), so a zip bomb stops at the limit
in bounded memory. The original file is only ever read.
"""

from __future__ import annotations

import copy
import ntpath
import os
import re
import stat
import struct
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader.config import Archive
from grader.intake.content import SheetHints, find_content
from grader.intake.discover import paired_pdfs
from grader.intake.types import Submission, Workspace
from grader.models import Violation

CHUNK = 64 * 1024
# Below this many bytes an entry is never called a bomb: small files full of zeros compress well.
RATIO_FLOOR = 1 << 20
MAX_SAME_CODE = 5  # violations of one code listed one by one; the rest are summed up
ROOTED_SHOWN = 3  # entries with absolute paths named in the note; the rest are counted
# Violations that only say what the grader did for the team (nothing was lost, nothing for a tutor to
# deduct): `grader check` shows them without calling the zip one that tutors may mark down.
NOTE_CODES = frozenset({"archive.absolute_path"})

JUNK_DIRS = {"__MACOSX", ".ipynb_checkpoints", "__pycache__", ".git", ".svn", ".idea", ".vscode"}
JUNK_FILES = {".ds_store", "thumbs.db", "desktop.ini", "ehthumbs.db", "icon\r"}  # 'Icon\r': a Finder folder icon
_DRIVE = re.compile(r"^[A-Za-z]:")
_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


class _Stop(Exception):
    """A running limit was reached: nothing more is unpacked."""


class _Violations:
    """Collects violations; a hostile archive with 10 000 bad entries gives a readable list."""

    def __init__(self) -> None:
        self.items: list[Violation] = []
        self._count: dict[str, int] = {}
        self._severity: dict[str, str] = {}
        self._label: dict[str, str] = {}

    def add(self, code: str, severity: str, label: str, message: str) -> None:
        n = self._count.get(code, 0) + 1
        self._count[code] = n
        self._severity[code] = severity
        self._label[code] = label
        if n <= MAX_SAME_CODE:
            self.items.append(Violation(code=code, severity=severity, message=f"{label}: {message}"))

    def result(self) -> list[Violation]:
        out = list(self.items)
        for code, n in self._count.items():
            if n > MAX_SAME_CODE:
                out.append(
                    Violation(
                        code=code,
                        severity=self._severity[code],
                        message=f"{self._label[code]}: {n - MAX_SAME_CODE} more entries "
                        f"with the same problem ({code}) not listed",
                    )
                )
        return out


@dataclass
class _Budget:
    limits: Archive
    written: int = 0
    entries: int = 0
    files: list[str] = field(default_factory=list)
    seen: dict[str, str] = field(default_factory=dict)  # folded name -> name as kept
    rooted: list[tuple[str, str]] = field(default_factory=list)  # (entry's name, where it was unpacked)
    data_folder: str = ""  # the sheet's data set folder (`<root>/<folder>/raw/`): served by the grader

    @property
    def max_bytes(self) -> int:
        return int(self.limits.max_uncompressed_mb * 1024 * 1024)


def entry_name(info: zipfile.ZipInfo) -> str:
    """The entry's name as the student meant it: UTF-8 stored without the UTF-8 flag is repaired."""
    name = info.orig_filename
    if not info.flag_bits & 0x800:
        try:
            name = name.encode("cp437").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
    return unicodedata.normalize("NFC", name)


def safe_parts(name: str) -> tuple[str, ...] | None:
    """The path components a relative entry may be written to, or None when the name reaches
    outside (or has a root: see `rooted_parts`)."""
    if _has_control(name):
        return None
    posix = name.replace("\\", "/")
    if posix.startswith("/") or _DRIVE.match(posix):
        return None
    parts = tuple(p for p in posix.split("/") if p not in ("", "."))
    if not parts or any(p == ".." for p in parts):
        return None
    if any(len(p.encode("utf-8", "surrogateescape")) > 255 for p in parts):
        return None
    return parts


def _has_control(name: str) -> bool:
    return any(ord(ch) < 32 or ord(ch) == 127 for ch in name)


def entry_root(name: str) -> str:
    """The root of an entry's name: a drive (`C:`, `\\\\?\\C:`), a UNC share (`\\\\server\\share`) and
    the separators after it, or a leading `/`; '' for a relative name. Backslashes count as
    separators (Windows tools store them)."""
    posix = name.replace("\\", "/")
    drive, rest = ntpath.splitdrive(posix)
    return name[: len(drive) + len(rest) - len(rest.lstrip("/"))]


def rooted_parts(name: str) -> tuple[str, ...]:
    """Where an entry with a root (`C:\\Users\\…`, `/home/…`, `\\\\server\\share\\…`) is unpacked: the
    root, `.` and `..` taken out, as Python's zipfile does on Windows (Info-ZIP and 7-Zip do the
    same), so that what is left is a path inside the target folder. Empty when nothing is left."""
    rest = name.replace("\\", "/")[len(entry_root(name)) :]
    return tuple(p for p in rest.split("/") if p not in ("", ".", ".."))


PATH_MAX = 4096  # bytes of a path the system takes, its terminating NUL included (Linux)


def _room(dest: Path) -> int:
    """How long (bytes) a path inside dest may be."""
    return PATH_MAX - 2 - len(os.fsencode(os.path.abspath(dest)))


def _too_long(name: str, room: int = PATH_MAX) -> str | None:
    """Why an entry's name is too long to be written (`room`: bytes its path may have), or None."""
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    longest = max((len(p.encode("utf-8", "surrogateescape")) for p in parts), default=0)
    if longest > 255:
        return (
            f"name too long: a name in its path is {longest} bytes long, more than the 255 bytes a file system "
            "allows (expected shorter file and folder names)"
        )
    total = len("/".join(parts).encode("utf-8", "surrogateescape"))
    if total > room:
        return (
            f"path too long: {total} bytes, more than the {room} bytes a path may have in the folder it "
            "is unpacked into (expected fewer nested folders)"
        )
    return None


def is_junk(parts: tuple[str, ...]) -> bool:
    base = parts[-1]
    return (
        any(p in JUNK_DIRS for p in parts[:-1])
        or base.startswith("._")
        or base.lower() in JUNK_FILES
        or base in JUNK_DIRS
    )


def served_data(name: str, data_folder: str) -> bool:
    """Is this entry the data set the grader serves itself (torchvision's `<root>/<data_folder>/raw/`
    or `processed/`, which a team zips along with its notebook)? It would be replaced anyway."""
    parts = [p.lower() for p in name.replace("\\", "/").split("/") if p]
    return bool(data_folder) and any(
        part == data_folder.lower() and parts[k + 1] in ("raw", "processed") for k, part in enumerate(parts[:-2])
    )


def _rank(info: zipfile.ZipInfo) -> tuple[int, bool]:
    """Notebooks, scripts and PDFs first, then inner zips, then the rest; within each, entries with
    a root after the relative ones (which are what the team made: a rooted entry that lands on the
    same path is the one refused, wherever it stands in the archive)."""
    name = info.filename.lower()
    kind = 0 if name.endswith((".ipynb", ".py", ".pdf")) else 1 if name.endswith(".zip") else 2
    return kind, bool(entry_root(info.filename))


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def _make_dirs(root: Path, parts: tuple[str, ...]) -> Path:
    """Create root/parts... as real directories; an existing symlink or file on the way is refused."""
    current = root
    for part in parts:
        current = current / part
        try:
            os.mkdir(current, 0o755)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(current).st_mode):
                raise NotADirectoryError(f"'{part}' exists and is not a folder") from None
    return current


def _inside(root: Path, path: Path) -> bool:
    real_root = os.path.realpath(root)
    return os.path.commonpath([real_root, os.path.realpath(path)]) == real_root


def _stream(src, target: Path, budget: _Budget, compressed_size: int | None) -> int:
    """Copy src into a new file at target, counting bytes written; raises _Stop at a limit.

    With compressed_size (a zip entry), the ratio of bytes written to compressed bytes consumed so
    far is watched as we go, so a bomb is caught after a megabyte, not after the whole budget.
    """
    fd = os.open(target, _OPEN_FLAGS, 0o644)
    written = 0
    ratio = budget.limits.max_ratio
    try:
        with os.fdopen(fd, "wb") as out:
            while True:
                room = budget.max_bytes - budget.written
                chunk = src.read(min(CHUNK, room + 1))
                if not chunk:
                    break
                if len(chunk) > room:
                    raise _Stop(
                        f"more than {budget.limits.max_uncompressed_mb:g} MB when unpacked "
                        f"(limit archive.max_uncompressed_mb); unpacking stopped"
                    )
                out.write(chunk)
                written += len(chunk)
                budget.written += len(chunk)
                if compressed_size is not None and written > RATIO_FLOOR:
                    left = getattr(src, "_compress_left", None)  # zipfile's count of unread input
                    consumed = compressed_size - left if isinstance(left, int) else compressed_size
                    if written > ratio * max(1, consumed):
                        raise _Stop(
                            f"entry '{target.name}' inflates more than {ratio:g} times "
                            f"(limit archive.max_ratio; {written // 1024} KB from "
                            f"{max(1, consumed) // 1024} KB so far): a zip bomb? unpacking stopped"
                        )
    except BaseException:
        budget.written -= written
        _unlink(target)
        raise
    return written


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _free_folder(parent: Path, name: str) -> str:
    candidate = name
    n = 1
    while os.path.lexists(parent / candidate):
        candidate = f"{name}_{n}"
        n += 1
    return candidate


def _unpack_zip(
    zpath: Path,
    label: str,
    dest: Path,
    prefix: tuple[str, ...],
    budget: _Budget,
    depth: int,
    out: _Violations,
    inner: str = "",
) -> None:
    limits = budget.limits
    size = os.path.getsize(zpath)
    what = f"the inner archive '{inner}'" if inner else "the archive"
    try:
        zf = zipfile.ZipFile(zpath)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        what = f"the inner archive '{inner}'" if inner else "the archive"
        found = _what_it_is(zpath)
        advice = (
            f"{found}, named .zip: the grader unpacks zip archives only; pack the files again as a zip"
            if found
            else _why(exc)
        )
        out.add("archive.corrupt", "error", label, f"{what}: expected a readable zip archive, found {advice}")
        return
    with zf:
        # The data the grader serves itself is left out, and the notebooks, scripts and PDFs come
        # first: a limit reached by the team's data folder (or anything else big) must not cost the
        # notebook. Within each kind, the archive's order.
        infos = [info for info in zf.infolist() if not served_data(entry_name(info), budget.data_folder)]
        infos = [infos[k] for k in sorted(range(len(infos)), key=lambda k: (_rank(infos[k]), k))]
        if budget.entries + len(infos) > limits.max_entries:
            out.add(
                "archive.too_large",
                "error",
                label,
                f"{len(infos)} entries, more than the limit of {limits.max_entries} "
                f"(archive.max_entries); only {max(0, limits.max_entries - budget.entries)} are unpacked "
                "(notebooks and PDFs first)",
            )
        room = limits.max_compressed_mb * 1024 * 1024
        over = size > room and sum(info.compress_size for info in infos) > room
        rooted_before = len(budget.rooted)
        for info in infos:
            budget.entries += 1
            if budget.entries > limits.max_entries:
                break
            if over:
                if info.compress_size > room:
                    out.add(
                        "archive.too_large",
                        "error",
                        label,
                        f"entry {entry_name(info)!r} ({info.compress_size / 1024 / 1024:.1f} MB) left out: {what} "
                        f"is {size / 1024 / 1024:.1f} MB, more than the limit of {limits.max_compressed_mb:g} MB "
                        "(archive.max_compressed_mb); notebooks and PDFs are unpacked first",
                    )
                    continue
                room -= info.compress_size
            _unpack_entry(zf, info, label, dest, prefix, budget, depth, out, size, inner)
        if rooted := budget.rooted[rooted_before:]:
            out.add("archive.absolute_path", "warning", label, _rooted_note(rooted, what))


def _rooted_note(rooted: list[tuple[str, str]], what: str) -> str:
    """What was done with the entries of an archive whose names have a root."""
    shown = ", ".join(f"{_shown(name)!r} as {rel!r}" for name, rel in rooted[:ROOTED_SHOWN])
    more = f" and {len(rooted) - ROOTED_SHOWN} more" if len(rooted) > ROOTED_SHOWN else ""
    roots = sorted({entry_root(name).rstrip("/\\") or "/" for name, _ in rooted})
    many = len(rooted) > 1
    return (
        f"{len(rooted)} {'entries have absolute paths' if many else 'entry has an absolute path'} in "
        f"{what} (as some zip tools store them); unpacked inside the submission folder with "
        f"{'the root' if len(roots) == 1 else 'the roots'} {', '.join(repr(r) for r in roots[:ROOTED_SHOWN])} "
        f"and any '..' taken off, as zip tools do: {shown}{more}. Nothing is lost; to avoid this note, "
        "zip the folder itself (Windows: right-click, Send to, Compressed folder)"
    )


def _shown(name: str) -> str:
    return name if len(name) <= 200 else f"{name[:100]}…{name[-60:]}"  # a report, not a dump


def _unpack_entry(
    zf: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    label: str,
    dest: Path,
    prefix: tuple[str, ...],
    budget: _Budget,
    depth: int,
    out: _Violations,
    archive_size: int,
    inner: str,
) -> None:
    name = entry_name(info)
    entry = f"entry {_shown(name)!r}" + (f" of the inner archive '{inner}'" if inner else "")
    if name.endswith(("/", "\\")) and not _is_symlink(info):
        return  # folders are made when their files are written
    raw = tuple(p for p in name.replace("\\", "/").split("/") if p)
    if raw and is_junk(raw):
        return  # skipped before its name is judged: Finder's 'Icon\r' is junk, not an unsafe name
    root = entry_root(name)
    parts = (None if _has_control(name) else rooted_parts(name)) if root else safe_parts(name)
    if parts == ():
        out.add(
            "archive.unsafe_path",
            "error",
            label,
            f"{entry} names no file once its root {root!r} and any '..' are taken off; skipped",
        )
        return
    if parts is not None and any(len(p.encode("utf-8", "surrogateescape")) > 255 for p in parts):
        parts = None
    if parts is None and (too_long := _too_long(name)):
        out.add("archive.unsafe_path", "error", label, f"{entry}: {too_long}; skipped")
        return
    if parts is None and _has_control(name):
        out.add(
            "archive.unsafe_path",
            "error",
            label,
            f"{entry} has a control character in its name (expected a name of printable characters); skipped",
        )
        return
    if parts is None:
        out.add(
            "archive.unsafe_path",
            "error",
            label,
            f"{entry} points outside the submission folder (expected a path without '..' that "
            "leads out of it); skipped",
        )
        return
    if is_junk(parts):
        return
    if _is_symlink(info):
        out.add("archive.symlink", "error", label, f"{entry} is a symbolic link (expected regular files only); skipped")
        return
    if info.flag_bits & 0x1:
        out.add(
            "archive.encrypted", "error", label, f"{entry} is password-protected (expected an unencrypted zip); skipped"
        )
        return
    rel_parts = prefix + parts
    rel = "/".join(rel_parts)
    if too_long := _too_long(rel, _room(dest)):
        out.add("archive.unsafe_path", "error", label, f"{entry}: {too_long}; skipped")
        return
    key = unicodedata.normalize("NFC", rel.casefold())
    if key in budget.seen:
        where = f" ({rel!r} once its root is taken off)" if root else ""
        out.add(
            "archive.duplicate_name",
            "warning",
            label,
            f"{entry}{where} has the same name as {budget.seen[key]!r} (names compared ignoring "
            "case and Unicode normalisation); the first one is kept",
        )
        return
    budget.seen[key] = name
    try:
        parent = _make_dirs(dest, rel_parts[:-1])
        target = parent / rel_parts[-1]
        if not _inside(dest, parent):
            raise NotADirectoryError("the folder leads outside the workspace")
        with _open_member(zf, info) as src:
            _stream(src, target, budget, max(1, min(info.compress_size, archive_size)))
    except _Stop:
        raise
    except (FileExistsError, NotADirectoryError, IsADirectoryError) as exc:
        # The reason without the grader's own folders (an OSError's text names the full path).
        why = (
            exc.args[0]
            if isinstance(exc, NotADirectoryError) and len(exc.args) == 1
            else f"'{rel_parts[-1]}' exists as a folder"
            if os.path.isdir(dest.joinpath(*rel_parts))
            else f"'{rel_parts[-1]}' exists already"
        )
        out.add(
            "archive.duplicate_name",
            "warning",
            label,
            f"{entry} clashes with another file or folder of the same name ({why}); skipped",
        )
        return
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError, OSError) as exc:
        out.add(
            "archive.corrupt",
            "error",
            label,
            f"{entry} cannot be read ({_why(exc)}); expected intact zip data; skipped",
        )
        return
    budget.files.append(rel)
    if root:
        budget.rooted.append((name, rel))
    if rel_parts[-1].lower().endswith(".zip") and depth < budget.limits.nested_depth:
        folder = _free_folder(parent, rel_parts[-1][:-4] or "archive")
        _unpack_zip(target, label, dest, rel_parts[:-1] + (folder,), budget, depth + 1, out, inner=rel)


def _open_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo):
    """zf.open(info), also for an entry whose local header names it otherwise than the central
    directory (some Windows tools write `Abgabe\\x.ipynb` in one and `Abgabe/x.ipynb` in the other):
    zipfile refuses it, Info-ZIP and 7-Zip go on with the directory's name. So does the grader: the
    name is the directory's (checked above, and the only one written to); the data is where the
    directory says."""
    try:
        return zf.open(info)
    except zipfile.BadZipFile:
        local = _local_name(zf, info)
        if local is None or local == info.orig_filename:
            raise
    alias = copy.copy(info)
    alias.orig_filename = local
    return zf.open(alias)


def _local_name(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> str | None:
    """The entry's name in its local header, decoded as zipfile decodes it; None when unreadable."""
    z: Any = zipfile  # its layout of a local header: undocumented names (there since Python 2), not in typeshed
    size, signature, layout = z.sizeFileHeader, z.stringFileHeader, z.structFileHeader
    name_length, flag_bits = z._FH_FILENAME_LENGTH, z._FH_GENERAL_PURPOSE_FLAG_BITS
    if zf.fp is None:
        return None
    try:
        zf.fp.seek(info.header_offset)
        header = zf.fp.read(size)
        if len(header) != size or header[:4] != signature:
            return None
        fields = struct.unpack(layout, header)
        name = zf.fp.read(fields[name_length])
        if fields[flag_bits] & 0x800:
            return name.decode("utf-8")
        return name.decode(getattr(zf, "metadata_encoding", None) or "cp437")
    except (OSError, ValueError, AttributeError, struct.error):
        return None


# What a file that is not a zip starts with, for a message that says what it is instead.
_MAGIC = (
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"\x1f\x8b", "a gzip archive (.gz, .tar.gz)"),
    (b"BZh", "a bzip2 archive"),
    (b"\xfd7zXZ\x00", "an xz archive"),
    (b"\x28\xb5\x2f\xfd", "a zstd archive"),
    (b"%PDF", "a PDF"),
    (b"\xd0\xcf\x11\xe0", "an old Office document"),
)


def _what_it_is(path: Path) -> str | None:
    """What a file that is not a zip is, from its first bytes; None when it cannot be told."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError:
        return None
    if not head:
        return "an empty file (0 bytes): the upload may have failed"
    for magic, what in _MAGIC:
        if head.startswith(magic):
            return what
    if len(head) > 262 and head[257:262] == b"ustar":
        return "a tar archive"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<!doctype html", b"<html", b"<?xml", b"<head", b"<body")):
        return "a web page (HTML), not the file: save the file itself, not the page that links to it"
    if text.startswith(b"{"):
        return "text in JSON (a notebook?), not an archive"
    return None


def _team_archives(files: list[str]) -> int:
    """How many of the unpacked files are zips whose names name a team with a student id."""
    from grader.config import Naming
    from grader.intake.naming import parse_name

    names = [f.rsplit("/", 1)[-1] for f in files if f.lower().endswith(".zip")]
    return sum(1 for name in names if any(m.student_id for m in parse_name(name, Naming()).team))


def _why(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) < 200 else text[:197] + "..."


def _copy_single(source: Path, dest: Path, budget: _Budget, out: _Violations, label: str) -> None:
    name = unicodedata.normalize("NFC", source.name)
    key = name.casefold()
    if key in budget.seen:
        return
    budget.seen[key] = name
    with open(source, "rb") as src:
        _stream(src, dest / name, budget, None)
    budget.files.append(name)


def unpack(submission: Submission, dest: Path, limits: Archive, hints: SheetHints) -> Workspace:
    """Unpack (or copy) the submission into dest, a fresh empty folder, and find what to grade
    (`hints`: what the sheet's notebook looks like; the configured sheet's by default)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    label = submission.rel
    out = _Violations()
    budget = _Budget(limits=limits, data_folder=hints.data_folder)
    source = Path(submission.path)
    try:
        if not source.is_dir() and not stat.S_ISREG(os.stat(source).st_mode):
            # A named pipe would block the reader forever (the batch and the pre-flight with it).
            out.add(
                "archive.corrupt",
                "error",
                label,
                "cannot be read (it is a named pipe or a device, not a regular file); expected a readable file",
            )
        elif submission.kind == "zip" or (submission.kind == "other" and zipfile.is_zipfile(source)):
            _unpack_zip(source, label, dest, (), budget, 0, out)
        elif submission.kind in ("ipynb", "py", "pdf"):
            _copy_single(source, dest, budget, out, label)
            if submission.kind in ("ipynb", "py"):
                for paired in paired_pdfs(source, subfolder="/" in submission.rel):
                    _copy_single(paired, dest, budget, out, label)
    except _Stop as stop:
        out.add("archive.too_large", "error", label, str(stop))
    except OSError as exc:
        out.add("archive.corrupt", "error", label, f"cannot be read ({_why(exc)})")
    if submission.kind == "zip" and (teams := _team_archives(budget.files)) >= 2:
        out.add(
            "archive.bulk_download",
            "error",
            label,
            f"holds {teams} teams' submissions (zips named Name1_id1_Name2_id2...): expected one team's "
            "zip, found what looks like the course system's whole download; unpack it into the folder "
            "being graded and grade again, so that every team gets its own report",
        )
    notebook, pdf, found = find_content(dest, budget.files, label, preferred_stem=submission.stem, hints=hints)
    files = sorted(budget.files)
    if notebook is not None:
        rel_nb = notebook.relative_to(dest).as_posix()
        if rel_nb not in files:
            files = sorted(files + [rel_nb])
    return Workspace(dir=dest, notebook=notebook, pdf=pdf, files=tuple(files), violations=tuple(out.result() + found))
