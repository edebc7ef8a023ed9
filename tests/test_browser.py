"""The feedback page and summary.html in a real browser: headless Chromium renders both without a
console error, and the screenshots show a page with a chart (not a blank or broken page).

Needs Debian's `chromium` (and `fonts-dejavu-core` for text); skipped when it is not installed.
Run alone with `pytest -m browser`.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path

import pytest
from test_report_outputs import ALICE, BOB, CALIBRATION, HOSTILE, make_report

from grader.report.feedback import network_colors, write_feedback
from grader.report.overview import write_overview
from grader.sheets.sheet6 import SHEET as SHEET6

CHROMIUM = next(
    (shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome") if shutil.which(name)), None
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)"),
]

WIDTH, HEIGHT = 1200, 2400


def read_png(data: bytes) -> tuple[int, int, int, bytes]:
    """(width, height, bytes per pixel, raw pixel bytes) of an 8-bit RGB/RGBA/grey PNG, unfiltered."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + length
    width, height, depth, color, _, _, interlace = header
    assert depth == 8 and interlace == 0, f"unsupported PNG (depth {depth}, interlace {interlace})"
    bpp = {0: 1, 2: 3, 4: 2, 6: 4}[color]
    raw = zlib.decompress(b"".join(idat))
    stride = width * bpp
    out = bytearray(height * stride)
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind = raw[start]
        line = bytearray(raw[start + 1 : start + 1 + stride])
        if kind == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif kind == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prev))
        elif kind == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        out[y * stride : (y + 1) * stride] = line
        prev = line
    return width, height, bpp, bytes(out)


def pixels(png: tuple[int, int, int, bytes]) -> list[tuple[int, ...]]:
    _width, _height, bpp, raw = png
    return [tuple(raw[i : i + 3]) for i in range(0, len(raw), bpp)]


def render(page: Path, shot: Path) -> str:
    """Screenshot `page` with headless Chromium; returns its log (stderr)."""
    profile = tempfile.mkdtemp(prefix="chromium-")
    try:
        run = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--hide-scrollbars",
                "--enable-logging=stderr",
                "--v=0",
                f"--user-data-dir={profile}",
                f"--screenshot={shot}",
                f"--window-size={WIDTH},{HEIGHT}",
                page.resolve().as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "HOME": profile},
        )
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert shot.exists(), f"no screenshot written:\n{run.stderr[-2000:]}"
    return run.stderr


def hex_rgb(color: str) -> tuple[int, int, int]:
    return tuple(int(color[i : i + 2], 16) for i in (1, 3, 5))


def near(p: tuple[int, ...], q: tuple[int, int, int], tolerance: int = 40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(p, q))


def assert_clean(log: str) -> None:
    bad = [
        line
        for line in log.splitlines()
        if "Uncaught" in line or "ERROR:CONSOLE" in line or (":CONSOLE(" in line and "error" in line.lower())
    ]
    assert not bad, "\n".join(bad)


def assert_not_blank(shot: Path) -> list[tuple[int, ...]]:
    png = read_png(shot.read_bytes())
    assert png[0] == WIDTH and png[1] >= 1000
    seen = pixels(png)
    distinct = set(seen)
    assert len(distinct) > 50, f"only {len(distinct)} distinct colours: a blank page?"
    return seen


def test_feedback_page_renders_with_its_chart(tmp_path):
    stem, report = make_report([(HOSTILE, "7000009"), ("Jürgen Müller", "7000010")], status="errors", stem="hostile")
    page = write_feedback(report, tmp_path, CALIBRATION, stem=stem, sheet=SHEET6)
    shot = tmp_path / "feedback.png"
    assert_clean(render(page, shot))
    seen = assert_not_blank(shot)
    # the chart's lines are drawn in the networks' colours
    for key in ("baseline", "batchnorm"):
        color = hex_rgb(network_colors(SHEET6)[key])
        assert sum(1 for p in seen if near(p, color)) > 200, f"no {key} curve in the screenshot"


def test_summary_page_renders_with_its_histogram(tmp_path):
    broken = make_report([("Ida Igel", "7000011"), ("Jan Jung", "7000012")], status="errors")
    page = write_overview([ALICE, BOB, broken], tmp_path, key="key: h = (9, 0)", pairs=[], sheet=SHEET6)
    shot = tmp_path / "summary.png"
    assert_clean(render(page, shot))
    seen = assert_not_blank(shot)
    assert sum(1 for p in seen if near(p, hex_rgb(network_colors(SHEET6)["baseline"]))) > 500, "no histogram bars"
