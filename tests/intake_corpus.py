"""Crafting submissions for the intake tests: zips, notebooks and PDFs, made at test time in tmp_path.

`make_pdf(path, lines)` writes a valid one-page PDF whose text pypdf extracts; other test modules may
use it too.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import zipfile
import zlib
from pathlib import Path

TEMPLATE_CODE = """import torch
import torch.nn as nn

class FashionNetwork(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))

    def forward(self, x):
        return self.net(x.view(x.shape[0], -1))

    def optimize(self, train_loader, test_loader):
        return []

class FashionNetworkBatchNorm(FashionNetwork):
    pass

fashion_network = FashionNetwork()
accs = fashion_network.optimize(fashion_train_loader, fashion_test_loader)
fashion_network_batch_norm = FashionNetworkBatchNorm()
"""


def _pdf_escape(text: str) -> bytes:
    out = bytearray()
    for byte in text.encode("cp1252", errors="replace"):
        ch = bytes([byte])
        if ch in (b"(", b")", b"\\"):
            out += b"\\" + ch
        elif byte < 32 or byte > 126:
            out += b"\\%03o" % byte
        else:
            out += ch
    return bytes(out)


def make_pdf(path: Path | str, lines: list[str]) -> Path:
    """A one-page PDF (Helvetica, WinAnsiEncoding) with one text line per entry of `lines`."""
    path = Path(path)
    stream = bytearray(b"BT /F1 12 Tf 14 TL 72 760 Td\n")
    for line in lines:
        stream += b"(" + _pdf_escape(line) + b") Tj T*\n"
    stream += b"ET\n"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + bytes(stream) + b"endstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(out))
    return path


def notebook_json(cells: list[tuple[str, str]]) -> str:
    """A minimal nbformat-4 notebook from (cell_type, source) pairs."""
    nb_cells = []
    for kind, source in cells:
        cell = {"cell_type": kind, "metadata": {}, "source": source}
        if kind == "code":
            cell.update(execution_count=None, outputs=[])
        nb_cells.append(cell)
    return json.dumps({"cells": nb_cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 4}, indent=1)


def team_markdown(members: list[tuple[str, str]]) -> str:
    return "# Sheet 6\n" + "\n".join(
        f"- {name}, {sid}, {name.split()[0].lower()}@stud.uni-saarland.de" for name, sid in members
    )


def solution_notebook(members: list[tuple[str, str]] | None = None, extra_code: str = "") -> str:
    cells = []
    if members is not None:
        cells.append(("markdown", team_markdown(members)))
    cells.append(("code", TEMPLATE_CODE + extra_code))
    cells.append(("markdown", "Your Answer: BatchNorm converges faster."))
    return notebook_json(cells)


def template_notebook() -> str:
    """The sheet's template: names the classes once, solves nothing."""
    return notebook_json([("code", "class FashionNetwork(nn.Module):\n    pass\n")])


def pdf_bytes(lines: list[str], tmp: Path) -> bytes:
    return make_pdf(tmp / f"_pdf_{hashlib.sha1(repr(lines).encode()).hexdigest()[:8]}.pdf", lines).read_bytes()


def make_zip(
    path: Path | str,
    entries: dict[str, bytes | str] | list[tuple[str, bytes | str]],
    compression: int = zipfile.ZIP_DEFLATED,
) -> Path:
    """A zip with the given (name, content) entries, names stored as given (UTF-8 flag when needed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    items = entries.items() if isinstance(entries, dict) else entries
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, content in items:
            zf.writestr(
                zipfile.ZipInfo(name, date_time=(2024, 12, 1, 12, 0, 0)),
                content.encode() if isinstance(content, str) else content,
                compress_type=compression,
            )
    return path


def add_symlink(path: Path, name: str, target: str) -> None:
    """Append an entry that unzip would create as a symlink (unix mode S_IFLNK)."""
    with zipfile.ZipFile(path, "a") as zf:
        info = zipfile.ZipInfo(name, date_time=(2024, 12, 1, 12, 0, 0))
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, target)


def add_cp437_utf8_name(path: Path, name: str, content: bytes) -> None:
    """An entry whose UTF-8 name is stored without the UTF-8 flag (as old Windows/Mac tools do)."""

    class _RawName(zipfile.ZipInfo):
        def _encodeFilenameFlags(self):  # zipfile's name
            return name.encode("utf-8"), self.flag_bits & ~0x800

    with zipfile.ZipFile(path, "a") as zf:
        info = _RawName(name.encode("utf-8").decode("cp437"), date_time=(2024, 12, 1, 12, 0, 0))
        zf.writestr(info, content)


def mark_encrypted(path: Path, name: str) -> None:
    """Set the 'encrypted' flag bit of one entry in both its local and central headers."""
    data = bytearray(path.read_bytes())
    encoded = name.encode("utf-8")
    for sig, flag_off, name_len_off, name_off in ((b"PK\x03\x04", 6, 26, 30), (b"PK\x01\x02", 8, 28, 46)):
        pos = 0
        while (pos := data.find(sig, pos)) >= 0:
            n = int.from_bytes(data[pos + name_len_off : pos + name_len_off + 2], "little")
            if bytes(data[pos + name_off : pos + name_off + n]) == encoded:
                flags = int.from_bytes(data[pos + flag_off : pos + flag_off + 2], "little") | 0x1
                data[pos + flag_off : pos + flag_off + 2] = flags.to_bytes(2, "little")
            pos += 4
    path.write_bytes(bytes(data))


def corrupt_crc(path: Path, name: str) -> None:
    """Flip the stored CRC of one entry (central directory), so reading it fails the CRC check."""
    data = bytearray(path.read_bytes())
    encoded = name.encode("utf-8")
    for sig, crc_off, name_len_off, name_off in ((b"PK\x03\x04", 14, 26, 30), (b"PK\x01\x02", 16, 28, 46)):
        pos = 0
        while (pos := data.find(sig, pos)) >= 0:
            n = int.from_bytes(data[pos + name_len_off : pos + name_len_off + 2], "little")
            if bytes(data[pos + name_off : pos + name_off + n]) == encoded:
                data[pos + crc_off] ^= 0xFF
            pos += 4
    path.write_bytes(bytes(data))


def make_zero_bomb(path: Path, inflated_bytes: int, name: str = "data.bin", chunk: int = 1 << 20) -> Path:
    """A zip whose single entry inflates to `inflated_bytes` zeros, written in chunks (bounded memory)."""
    zero = bytes(chunk)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        info = zipfile.ZipInfo(name, date_time=(2024, 12, 1, 12, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w", force_zip64=True) as out:
            left = inflated_bytes
            while left > 0:
                out.write(zero[: min(chunk, left)])
                left -= chunk
    return path


def make_lying_bomb(path: Path, inflated_bytes: int, claimed: int = 100, name: str = "small.txt") -> Path:
    """A zip whose headers claim `claimed` bytes, but whose deflate stream inflates to much more.

    Built by hand (raw deflate of zeros, chunk by chunk) so that no library fixes up the sizes.
    """
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = bytearray()
    zero = bytes(1 << 20)
    left = inflated_bytes
    crc = 0
    while left > 0:
        part = zero[: min(len(zero), left)]
        crc = zlib.crc32(part, crc)
        body += comp.compress(part)
        left -= len(part)
    body += comp.flush()
    encoded = name.encode()
    common = (
        b"\x14\x00"
        + b"\x00\x00"
        + b"\x08\x00"
        + b"\x00\x00\x21\x00"
        + crc.to_bytes(4, "little")
        + len(body).to_bytes(4, "little")
        + claimed.to_bytes(4, "little")
        + len(encoded).to_bytes(2, "little")
        + b"\x00\x00"
    )
    local = b"PK\x03\x04" + common + encoded
    central = (
        b"PK\x01\x02"
        + b"\x14\x03"
        + common
        + b"\x00\x00\x00\x00\x00\x00"
        + b"\x00\x00\xa4\x81"
        + (0).to_bytes(4, "little")
        + encoded
    )
    cd_offset = len(local) + len(body)
    end = (
        b"PK\x05\x06"
        + b"\x00\x00\x00\x00"
        + b"\x01\x00\x01\x00"
        + len(central).to_bytes(4, "little")
        + cd_offset.to_bytes(4, "little")
        + b"\x00\x00"
    )
    path.write_bytes(local + bytes(body) + central + end)
    return path


def tree_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under root (symlinks not followed), to prove originals are untouched."""
    out = {}
    for folder, _dirs, files in os.walk(root):
        for name in files:
            p = Path(folder) / name
            if p.is_symlink():
                out[p.relative_to(root).as_posix()] = "symlink->" + os.readlink(p)
            else:
                out[p.relative_to(root).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def all_paths(root: Path) -> set[str]:
    return {(Path(f) / n).relative_to(root).as_posix() for f, ds, fs in os.walk(root) for n in ds + fs}
