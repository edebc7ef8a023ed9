"""Parsing student files with a time and a memory limit: in a child process that can be killed.

A 15 KB PDF whose page draws a form XObject thousands of times keeps pypdf's text extraction busy
for minutes (its limits are per stream and per page); a crafted file can also make a parser allocate
gigabytes. Neither may stop or starve the grader, so text extraction runs in a child process: one
per grader process, started on first use and kept for the next file (a new Python per PDF would cost
0.2 s each). On Linux the child's address space is capped with `resource.setrlimit`; everywhere, a
call that runs over its time limit gets the child killed (and the next call starts another). A limit
hit is a `ParseLimitHit` naming the limit; the file is then not read, and the grading goes on.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from grader.util.textsafe import valid_text

MAX_PDF_PAGES = 30
MAX_TEXT_CHARS = 2_000_000  # more text than any sheet's PDF has; a bomb's text is cut here
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MEMORY_MB = 1024


PASSWORD_PROTECTED = "the PDF is password-protected"


class ParseLimitHit(Exception):
    """Parsing ran over a limit; str() says which ("took longer than 30 s")."""


class ParseFailed(Exception):
    """The parser raised (a broken file); str() is the parser's own "Type: message"."""


@dataclass(frozen=True)
class ParseLimits:
    timeout_s: float = DEFAULT_TIMEOUT_S
    memory_mb: int = DEFAULT_MEMORY_MB


# ---------------------------------------------------------------- in the child


def _pdf_text(path: str) -> str:
    import logging

    from pypdf import PdfReader

    logging.getLogger("pypdf").setLevel(logging.CRITICAL)
    reader = PdfReader(path, strict=False)
    if reader.is_encrypted and not reader.decrypt(""):  # an owner password alone still opens
        raise PermissionError(PASSWORD_PROTECTED)
    texts, size = [], 0
    for i, page in enumerate(reader.pages):
        if i >= MAX_PDF_PAGES or size >= MAX_TEXT_CHARS:
            break
        text = page.extract_text() or ""
        texts.append(text)
        size += len(text)
    return valid_text("\n".join(texts)[:MAX_TEXT_CHARS])


PARSERS = {"pdf_text": _pdf_text}


def _limit_memory(memory_mb: int) -> None:
    if not sys.platform.startswith("linux"):
        return  # macOS ignores RLIMIT_AS, Windows has no rlimits: the time limit still holds there
    try:
        import resource  # not at module level: the module is imported on Windows too
    except ImportError:  # a Python built without it: the time limit still holds
        return

    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except Exception:  # best effort; the parent kills us anyway when it can
            pass
    if os.getppid() != parent:
        os._exit(0)


MEMORY_EXIT = 75  # the child's exit status when the file's work ran out of memory


def _serve(conn, memory_mb: int, parent: int) -> None:
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the grader's to handle
    import warnings

    warnings.simplefilter("ignore")  # the child's stderr is the tutor's terminal

    _limit_memory(memory_mb)
    while True:
        try:
            kind, path = conn.recv()
        except (EOFError, OSError):
            return
        try:
            answer = ("ok", PARSERS[kind](path))
        except MemoryError:
            # The heap is full (the traceback still holds the file's work): no answer can be
            # built. The exit status says it; the next call gets a fresh child.
            os._exit(MEMORY_EXIT)
        except Exception as exc:  # a broken file is the file's problem, reported
            answer = ("error", f"{type(exc).__name__}: {str(exc)[:300]}")
        try:
            conn.send(answer)
        except MemoryError:
            os._exit(MEMORY_EXIT)


# ---------------------------------------------------------------- in the grader


class ParserChild:
    """One child process serving parse requests, one at a time."""

    def __init__(self) -> None:
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        self._memory_mb: int | None = None
        self._lock = threading.Lock()

    def call(self, kind: str, path: str, limits: ParseLimits) -> str:
        with self._lock:
            if self._process is None or not self._process.is_alive() or self._memory_mb != limits.memory_mb:
                self._start(limits.memory_mb)
            process, conn = self._process, self._conn
            assert process is not None and conn is not None  # _start made them
            try:
                conn.send((kind, os.fspath(path)))
                ready = conn.poll(limits.timeout_s)
                answer = conn.recv() if ready else None
            except (EOFError, OSError, BrokenPipeError):
                answer = ("died", "")
            if answer is None:
                self.stop()
                raise ParseLimitHit(f"took longer than {limits.timeout_s:g} s")
            status, value = answer
            if status == "ok":
                return value
            if status == "died":
                process.join(5)
                code = process.exitcode
                self.stop()
                if code in (MEMORY_EXIT, -getattr(signal, "SIGKILL", 9)):  # the OOM killer sends SIGKILL
                    raise ParseLimitHit(f"needed more than {limits.memory_mb} MB of memory")
                raise ParseFailed(f"the parser process ended unexpectedly (exit status {code})")
            raise ParseFailed(value)

    def _start(self, memory_mb: int) -> None:
        self.stop()
        context = multiprocessing.get_context("spawn")  # no fork of a grader with threads and loops
        ours, theirs = context.Pipe()
        process = context.Process(
            target=_serve, args=(theirs, memory_mb, os.getpid()), daemon=True, name="grader-parser"
        )
        process.start()
        theirs.close()
        self._process, self._conn, self._memory_mb = process, ours, memory_mb

    def stop(self) -> None:
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if conn is not None:
            conn.close()
        if process is not None:
            if process.is_alive():
                process.kill()
            process.join(5)


_CHILD = ParserChild()
_LIMITS = ParseLimits()


def configure(limits: ParseLimits) -> None:
    """The limits of every later parse in this process (the grading configuration's)."""
    global _LIMITS
    _LIMITS = limits


def parse(kind: str, path: os.PathLike | str, limits: ParseLimits | None = None) -> str:
    """Run the parser `kind` ("pdf_text") on the file at `path` in the child, within the limits.
    Raises ParseLimitHit or ParseFailed."""
    return _CHILD.call(kind, os.fspath(path), limits or _LIMITS)
