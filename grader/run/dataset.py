"""Data staging: the Fashion-MNIST files a student's notebook loads, offline.

Students load ``torchvision.datasets.FashionMNIST('data/', train=..., download=True,
transform=transforms.ToTensor())``. torchvision (checked for 0.29, ``datasets/mnist.py``) first looks
for the four *uncompressed* files ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` in ``<root>/FashionMNIST/raw/``:
``_check_exists`` calls ``check_integrity(path)`` without an MD5, so when the four files exist
``download()`` returns at once and ``_load_data`` parses them. No MD5 check, no network. We therefore
stage these four uncompressed IDX files, and may stage a subset or a generated stand-in. Beside them
go the same four as ``.gz`` (what a real download leaves there too), for notebooks that read the raw
files themselves. (The kernel's set-up step also points torchvision's ``FashionMNIST`` at the staged
folder whatever root a notebook passes; see ``setup_kernel.py``.)

Staging (``stage_dataset``), once per batch:

* ``source`` is ``None`` (no ``[data] source`` configured): a generated stand-in (``kind="generated"``).
* ``source`` is configured but the folder does not exist at all: the normal case on a fresh machine.
  The generated stand-in is used, and the description says ``source folder <path> not found``.
* ``source`` exists: it must hold the four files, each as ``<name>`` or ``<name>.gz`` (also accepted:
  the ``train-images.idx3-ubyte`` spelling, and the torchvision layout ``<source>/FashionMNIST/raw/``).
  Anything wrong with it is an error, never a silent fallback: a ``source`` that is not a folder, a
  missing file, a file that is not IDX (bad magic, bad gzip), whose size does not match its header,
  images that are not N x 28 x 28 uint8, labels outside 0..9, image and label counts that differ, or
  fewer images than ``train_size``/``test_size`` ask for all raise ``DataError`` naming the file.
  Then ``train_size``/``test_size`` images (0 = all) are chosen, class-stratified, with ``seed``: the
  same subset on every call and every machine (``kind="real-subset"``, or ``"real"`` when both sizes
  are the whole set).
* For the generated stand-in, size 0 means 60000 / 10000.

The result is written to ``cache_dir/<fingerprint>/FashionMNIST/raw/`` through a temporary folder
renamed into place (atomic; when two processes stage at once one rename wins and the other uses the
winner's folder). ``manifest.json`` beside ``FashionMNIST/`` records the DataInfo and each file's
sha256; a cached folder is reused when its files match the manifest, and restaged when they do not.
The fingerprint is ``sha256(kind, source files' MD5s or the generator version, sizes, seed)[:16]``.

``link_into`` puts symlinks to the staged (read-only, 0o444) files into a workspace, falling back to
hard links and then copies. ``probe_batch`` returns a fixed, class-balanced batch of staged test
images as ToTensor would give them.

This module needs numpy only (the grader process never imports torch).
"""
from __future__ import annotations

import errno
import gzip
import hashlib
import json
import os
import shutil
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from grader.config import Data
from grader.fsclean import remove_tree
from grader.locks import hold
from grader.report.models import DataInfo

__all__ = [
    "DataError", "StagedData", "stage_dataset", "link_into", "probe_batch", "read_idx", "write_idx",
    "generate_standin", "RAW_NAMES", "GZ_NAMES", "STAGED_NAMES", "GENERATOR_VERSION",
]

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
RAW_NAMES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)
# The same files gzipped, as torchvision's download leaves them beside the uncompressed ones.
GZ_NAMES = tuple(name + ".gz" for name in RAW_NAMES)
STAGED_NAMES = RAW_NAMES + GZ_NAMES
FULL_TRAIN, FULL_TEST = 60000, 10000
N_CLASSES = 10
IMAGE_SHAPE = (28, 28)

# Bump when the generated images change; it is part of the fingerprint, so old caches are not reused.
GENERATOR_VERSION = "fashion-standin-1"
# Bump when the choice of a real subset changes.
SUBSET_VERSION = "stratified-1"
MANIFEST = "manifest.json"

# Generator knobs (part of GENERATOR_VERSION): texture depth, brightness range, noise level.
TEXTURE = (0.1, 0.5)
BRIGHT = (0.5, 1.6)
NOISE = 0.15

_IDX_TYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_IDX_CODES = {np.dtype(v).newbyteorder("=").str[1:]: k for k, v in _IDX_TYPES.items()}


class DataError(Exception):
    """The configured data cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True)
class StagedData:
    root: Path          # holds FashionMNIST/raw/<the four uncompressed IDX files>; shared, read-only
    info: DataInfo

    @property
    def raw_dir(self) -> Path:
        return self.root / "FashionMNIST" / "raw"


# --------------------------------------------------------------------------------------------- IDX

def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{path}: not a valid gzip file ({exc})") from exc
    return raw


def read_idx(path: Path | str) -> np.ndarray:
    """Read an IDX file (plain or gzipped, recognised by content) into a native-endian array."""
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES or not 1 <= data[3] <= 4:
        raise DataError(f"{path}: not an IDX file (magic {data[:4].hex() or 'missing'}, "
                        f"expected 00000801 for labels or 00000803 for images)")
    dtype, ndim = _IDX_TYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header ({len(data)} bytes)")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise DataError(f"{path}: size does not match the IDX header: shape {shape} needs {expected} bytes "
                        f"of data, the file has {len(data) - header}")
    arr = np.frombuffer(data, dtype=dtype, count=expected // dtype.itemsize, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def write_idx(path: Path | str, array: np.ndarray) -> None:
    """Write `array` as an IDX file (gzipped when the name ends in .gz)."""
    path = Path(path)
    arr = np.asarray(array)
    code = _IDX_CODES.get(arr.dtype.newbyteorder("=").str[1:])
    if code is None:
        raise ValueError(f"IDX cannot hold dtype {arr.dtype}")
    if not 1 <= arr.ndim <= 4:
        raise ValueError(f"IDX holds 1 to 4 dimensions, got {arr.ndim}")
    header = bytes([0, 0, code, arr.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape)
    payload = header + np.ascontiguousarray(arr, dtype=_IDX_TYPES[code]).tobytes()
    if path.name.endswith(".gz"):
        payload = gzip.compress(payload, compresslevel=6, mtime=0)
    path.write_bytes(payload)


# ----------------------------------------------------------------------------------- real source

def _find_source_files(source: Path) -> dict[str, Path]:
    if not source.is_dir():
        raise DataError(f"data source {source} is not a folder")
    folders = [source]
    nested = source / "FashionMNIST" / "raw"
    if nested.is_dir():
        folders.append(nested)
    found: dict[str, Path] = {}
    for name in RAW_NAMES:
        dotted = name.replace("-idx", ".idx")
        candidates = [f / n for f in folders for n in (name, name + ".gz", dotted, dotted + ".gz")]
        hit = next((c for c in candidates if c.is_file()), None)
        if hit is None:
            raise DataError(f"data source {source}: {name} (or {name}.gz) is missing")
        found[name] = hit
    return found


def _digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)   # hashlib.file_digest is Python 3.11+; the checker runs on 3.10
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _idx_header(path: Path, ndim: int) -> tuple[int, ...]:
    """The shape in an IDX header (uint8 data of `ndim` dimensions), reading only the first bytes."""
    try:
        with open(path, "rb") as f:
            head = f.read(2)
            f.seek(0)
            stream = gzip.GzipFile(fileobj=f) if head == b"\x1f\x8b" else f
            data = stream.read(4 + 4 * ndim)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot read the IDX header ({exc})") from exc
    magic = bytes([0, 0, 0x08, ndim])
    if data[:4] != magic or len(data) < 4 + 4 * ndim:
        raise DataError(f"{path}: not an IDX file of {'images' if ndim == 3 else 'labels'} "
                        f"(magic {data[:4].hex() or 'missing'}, expected {magic.hex()})")
    return tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))


def _load_split(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
        raise DataError(f"{images_path}: expected uint8 images of shape (N, 28, 28) (magic 00000803), "
                        f"got {images.dtype} {images.shape}")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DataError(f"{labels_path}: expected uint8 labels of shape (N,) (magic 00000801), "
                        f"got {labels.dtype} {labels.shape}")
    if len(labels) != len(images):
        raise DataError(f"{labels_path}: {len(labels)} labels for {len(images)} images in {images_path.name}")
    if len(labels) and labels.max() >= N_CLASSES:
        raise DataError(f"{labels_path}: label {int(labels.max())} outside 0..9")
    return images, labels


def _stratified_subset(labels: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of `size` items, classes in proportion to their counts (largest remainder), sorted."""
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts * size / len(labels)
    take = np.floor(quota).astype(int)
    rest = size - take.sum()
    order = np.lexsort((classes, -(quota - take)))  # largest remainder first, ties by class
    take[order[:rest]] += 1
    chosen = [rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, take)]
    return np.sort(np.concatenate(chosen))


def _subset(images, labels, size, rng, path) -> tuple[np.ndarray, np.ndarray]:
    if size == 0 or size == len(labels):
        return images, labels
    if size > len(labels):
        raise DataError(f"{path}: holds {len(labels)} images, the configuration asks for {size}")
    idx = _stratified_subset(labels, size, rng)
    return images[idx], labels[idx]


# ------------------------------------------------------------------------------- generated stand-in

def _sig(z):
    return 1.0 / (1.0 + np.exp(-z))


def _trap(X, Y, cx, y0, y1, w0, w1, s=0.7):
    """Soft trapezoid centred on cx from y0 to y1, half-width w0 at the top and w1 at the bottom."""
    t = np.clip((Y - y0) / (y1 - y0), 0, 1)
    w = w0 + (w1 - w0) * t
    return _sig((w - np.abs(X - cx)) / s) * _sig((Y - y0) / s) * _sig((y1 - Y) / s)


def _box(X, Y, x0, x1, y0, y1, s=0.7):
    return _sig((X - x0) / s) * _sig((x1 - X) / s) * _sig((Y - y0) / s) * _sig((y1 - Y) / s)


def _seg(X, Y, x0, y0, x1, y1, r, s=0.7):
    """Soft thick line segment (capsule) of radius r."""
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((X - x0) * dx + (Y - y0) * dy) / (dx * dx + dy * dy + 1e-9), 0, 1)
    d = np.hypot(X - x0 - t * dx, Y - y0 - t * dy)
    return _sig((r - d) / s)


def _ellipse(X, Y, cx, cy, rx, ry, s=0.7):
    d = np.sqrt(((X - cx) / rx) ** 2 + ((Y - cy) / ry) ** 2)
    return _sig((1 - d) * np.minimum(rx, ry) / s)


def _union(*parts):
    out = parts[0]
    for p in parts[1:]:
        out = np.maximum(out, p)
    return out


def _prototypes(rng: np.random.Generator, per_class: int) -> np.ndarray:
    """(10, per_class, 28, 28) float32 garment-like silhouettes in [0, 1], jittered per variant."""
    V = per_class
    Y, X = np.mgrid[0:28, 0:28].astype(np.float64)
    X, Y = X[None], Y[None]

    def u(lo, hi):
        return rng.uniform(lo, hi, size=(V, 1, 1))

    cx = 13.5 + u(-0.5, 0.5)
    protos = []
    # 0 T-shirt/top: torso, short sleeves, neck cut-out
    top, bot, hw = u(4.5, 6.5), u(23, 26), u(5.5, 7.5)
    shape = _union(_trap(X, Y, cx, top, bot, hw, hw + u(-1, 0.5)),
                   _seg(X, Y, cx - hw + 1, top + 2, cx - hw - u(3, 5), top + u(5, 8), u(2, 3)),
                   _seg(X, Y, cx + hw - 1, top + 2, cx + hw + u(3, 5), top + u(5, 8), u(2, 3)))
    shape = shape * (1 - _ellipse(X, Y, cx, top, u(2, 3.5), u(1.2, 2.5)))
    protos.append(shape * u(0.75, 1.0))
    # 1 Trouser: waistband and two legs with a gap
    top, bot, gap = u(1.5, 3.5), u(24.5, 27), u(0.4, 1.2)
    lw = u(2.3, 3.5)
    shape = _union(_box(X, Y, cx - lw * 2 - gap, cx + lw * 2 + gap, top, top + u(4, 7)),
                   _trap(X, Y, cx - lw - gap, top + 2, bot, lw, lw * u(0.7, 1.1)),
                   _trap(X, Y, cx + lw + gap, top + 2, bot, lw, lw * u(0.7, 1.1)))
    protos.append(shape * u(0.6, 1.0))
    # 2 Pullover: torso, long sleeves hanging down at the sides
    top, bot, hw = u(3, 5), u(23, 26), u(5.5, 7)
    ang = u(2, 4)
    shape = _union(_trap(X, Y, cx, top, bot, hw, hw + u(-1, 0.5)),
                   _seg(X, Y, cx - hw + 0.5, top + 2, cx - hw - ang, bot - u(0, 3), u(1.8, 2.6)),
                   _seg(X, Y, cx + hw - 0.5, top + 2, cx + hw + ang, bot - u(0, 3), u(1.8, 2.6)))
    shape = shape * (1 - 0.8 * _ellipse(X, Y, cx, top, u(1.5, 3), u(0.8, 1.5)))
    protos.append(shape * u(0.6, 1.0))
    # 3 Dress: narrow top, wide hem
    top, bot = u(1, 4), u(25, 27)
    waist = u(9, 13)
    shape = _union(_trap(X, Y, cx, top, waist, u(3, 5), u(2.5, 4)),
                   _trap(X, Y, cx, waist - 0.5, bot, u(2.5, 4), u(6.5, 10)))
    protos.append(shape * u(0.6, 1.0))
    # 4 Coat: long torso, long sleeves, dark opening down the middle
    top, bot, hw = u(1.5, 3.5), u(25, 27), u(6, 7.5)
    ang = u(2, 4)
    shape = _union(_trap(X, Y, cx, top, bot, hw, hw + u(0, 1.5)),
                   _seg(X, Y, cx - hw + 0.5, top + 2, cx - hw - ang, bot - u(1, 4), u(1.8, 2.6)),
                   _seg(X, Y, cx + hw - 0.5, top + 2, cx + hw + ang, bot - u(1, 4), u(1.8, 2.6)))
    shape = shape * (1 - u(0.3, 0.7) * _box(X, Y, cx - 0.6, cx + 0.6, top + 3, bot, 0.5))
    protos.append(shape * u(0.6, 1.0))
    # 5 Sandal: thin sole and a few straps, sparse
    y0 = u(17, 20)
    x0, x1 = u(1, 4), u(24, 27)
    straps = [_seg(X, Y, x0 + k * (x1 - x0) / 4 + u(0, 2), y0, x0 + (k + 0.6) * (x1 - x0) / 4, y0 - u(4, 9),
                   u(0.6, 1.2)) for k in range(4)]
    shape = _union(_box(X, Y, x0, x1, y0, y0 + u(1.5, 2.5)), *straps)
    protos.append(shape * u(0.5, 0.95))
    # 6 Shirt: like a pullover/T-shirt mix with a collar and a button line
    top, bot, hw = u(3, 5.5), u(23, 26), u(5.5, 7.5)
    sleeve = u(6, 18)
    ang = u(2, 4.5)
    shape = _union(_trap(X, Y, cx, top, bot, hw, hw + u(-0.5, 1)),
                   _seg(X, Y, cx - hw + 0.5, top + 2, cx - hw - ang, top + sleeve, u(1.8, 2.8)),
                   _seg(X, Y, cx + hw - 0.5, top + 2, cx + hw + ang, top + sleeve, u(1.8, 2.8)))
    shape = shape * (1 - u(0.2, 0.5) * _box(X, Y, cx - 0.5, cx + 0.5, top + 2, bot, 0.5))
    shape = _union(shape, 0.9 * _seg(X, Y, cx - 3, top, cx, top + 3, 0.9), 0.9 * _seg(X, Y, cx + 3, top, cx, top + 3, 0.9))
    protos.append(shape * u(0.55, 1.0))
    # 7 Sneaker: low, dense shoe, higher at the heel (left), toe to the right
    y1 = u(20, 23)
    x0, x1 = u(1, 3), u(25, 27)
    shape = _union(_box(X, Y, x0, x1, y1 - u(3, 4.5), y1),
                   _ellipse(X, Y, x0 + u(5, 8), y1 - u(4, 6), u(5, 7), u(2.5, 4)),
                   _box(X, Y, x0, x1, y1 - 1, y1 + u(0.8, 1.6)))
    protos.append(shape * u(0.6, 1.0))
    # 8 Bag: wide body and a handle ring
    bx0, bx1 = u(2, 5), u(22, 26)
    by0, by1 = u(8, 12), u(23, 26)
    ring = _ellipse(X, Y, cx, by0, u(5, 8), u(4, 6)) * (1 - _ellipse(X, Y, cx, by0, u(3.5, 5), u(2.5, 4)))
    shape = _union(_box(X, Y, bx0, bx1, by0, by1), ring * (Y < by0 + 1))
    protos.append(shape * u(0.55, 1.0))
    # 9 Ankle boot: shaft on the left, foot to the right, heavy sole
    y1 = u(22, 25)
    x0, x1 = u(2, 5), u(24, 27)
    shaft_top = u(3, 8)
    shape = _union(_box(X, Y, x0, x0 + u(9, 12), shaft_top, y1),
                   _box(X, Y, x0, x1, y1 - u(6, 9), y1),
                   _ellipse(X, Y, x1 - u(3, 5), y1 - u(3, 5), u(4, 6), u(3, 5)))
    shape = _union(shape * u(0.6, 0.9), _box(X, Y, x0, x1, y1 - u(1, 2), y1 + 1) * u(0.8, 1.0))
    protos.append(shape * u(0.6, 1.0))
    return np.stack(protos).astype(np.float32)


def _interp_matrix(n_out: int, n_in: int) -> np.ndarray:
    """Linear interpolation from n_in grid points to n_out pixels (n_out x n_in)."""
    pos = np.linspace(0, n_in - 1, n_out)
    lo = np.clip(np.floor(pos).astype(int), 0, n_in - 2)
    frac = pos - lo
    m = np.zeros((n_out, n_in))
    m[np.arange(n_out), lo] = 1 - frac
    m[np.arange(n_out), lo + 1] = frac
    return m


def _render(protos: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Images (n, 28, 28) uint8: each a random variant of its class, warped, textured, noisy."""
    n = len(labels)
    f32 = np.float32
    n_var = protos.shape[1]
    grid = np.zeros((protos.shape[0] * n_var, 30, 30), f32)
    grid[:, 1:29, 1:29] = protos.reshape(-1, 28, 28)  # one pixel of zero border all round
    table = grid.reshape(-1)
    variant = labels.astype(np.int32) * n_var + rng.integers(0, n_var, n, dtype=np.int32)

    def uniform(lo, hi):
        return rng.uniform(lo, hi, (n, 1)).astype(f32)

    # Affine warp: output pixel p maps to source pixel A (p - c - t) + c.
    sx, sy = uniform(0.88, 1.15), uniform(0.88, 1.15)
    rot = np.deg2rad(uniform(-7, 7))
    shear = uniform(-0.08, 0.08)
    tx, ty = uniform(-1.5, 1.5), uniform(-1.5, 1.5)
    cos, sin = np.cos(rot), np.sin(rot)
    gy, gx = np.mgrid[0:28, 0:28].astype(f32)
    px = gx.reshape(1, -1) - f32(13.5) - tx
    py = gy.reshape(1, -1) - f32(13.5) - ty
    src_x = (cos / sx) * px + ((sin + shear) / sx) * py + f32(14.5)
    src_y = (cos / sy) * py - (sin / sy) * px + f32(14.5)
    np.clip(src_x, 0, f32(28.999), out=src_x)
    np.clip(src_y, 0, f32(28.999), out=src_y)
    x0 = src_x.astype(np.int32)
    y0 = src_y.astype(np.int32)
    fx = src_x - x0
    fy = src_y - y0
    del src_x, src_y, px, py
    idx = y0 * 30 + x0 + variant[:, None] * 900
    del x0, y0
    top = table.take(idx) * (1 - fx) + table.take(idx + 1) * fx
    bottom = table.take(idx + 30) * (1 - fx) + table.take(idx + 31) * fx
    img = top * (1 - fy) + bottom * fy
    del top, bottom, idx, fx, fy
    # Texture: a smooth random field (5x5 grid interpolated), multiplicative.
    m = _interp_matrix(28, 5).astype(f32)
    field = (m @ rng.random((n, 5, 5), dtype=f32) @ m.T).reshape(n, -1)
    img *= 1 - uniform(TEXTURE[0], TEXTURE[1]) * field
    img *= uniform(BRIGHT[0], BRIGHT[1])                           # brightness
    img[img < f32(0.03)] = 0                                        # real backgrounds are black
    img += (img > 0) * (f32(NOISE) * rng.standard_normal(img.shape, dtype=f32))  # noise on the garment
    np.clip(img, 0, 1, out=img)
    return np.rint(img * 255).astype(np.uint8).reshape(n, 28, 28)


def _balanced_labels(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(np.arange(n) % N_CLASSES).astype(np.uint8)


def generate_standin(train_size: int, test_size: int, seed: int
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A generated stand-in for Fashion-MNIST: (train images, train labels, test images, test labels).

    uint8 images (N, 28, 28), uint8 labels 0..9, classes balanced. Ten garment-like silhouette
    families (each with 64 jittered variants shared by train and test) under random affine warps,
    smooth texture, brightness and noise; the top garments overlap like the real ones do.
    Deterministic given (sizes, seed). With the students' recipe (784-64-32-10 MLP, SGD lr 0.001,
    batch 64, 5 epochs) at 6000/1000 images it gives learning curves like the real data's: the
    plain network barely leaves chance (about 0.10 -> 0.17), the BatchNorm one reaches about 0.69
    (real: 0.10 -> 0.18 and 0.65). 60000 + 10000 images take about 3 s.
    """
    train_size = train_size or FULL_TRAIN
    test_size = test_size or FULL_TEST
    ss = np.random.SeedSequence([seed, 0x5EED6])
    r_proto, r_train, r_test = (np.random.default_rng(s) for s in ss.spawn(3))
    protos = _prototypes(r_proto, 64)
    out = []
    for n, rng in ((train_size, r_train), (test_size, r_test)):
        labels = _balanced_labels(n, rng)
        chunks = [_render(protos, labels[i:i + 4000], rng) for i in range(0, n, 4000)]
        out += [np.concatenate(chunks) if chunks else np.zeros((0, 28, 28), np.uint8), labels]
    return out[0], out[1], out[2], out[3]


# -------------------------------------------------------------------------------------- staging

def _fingerprint(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]



def _valid_cache(final: Path) -> DataInfo | None:
    try:
        manifest = json.loads((final / MANIFEST).read_text())
        raw = final / "FashionMNIST" / "raw"
        for name in STAGED_NAMES:
            if _digest(raw / name, "sha256") != manifest["sha256"][name]:
                return None
        return DataInfo.model_validate(manifest["info"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_stage(final: Path, info: DataInfo, arrays: dict[str, np.ndarray]) -> None:
    """Write into a temporary sibling folder, then rename it to `final` (atomic)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{final.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    raw = tmp / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    try:
        sums = {}
        for name in RAW_NAMES:
            for staged in (name, name + ".gz"):   # write_idx gzips by the name (reproducibly: mtime 0)
                write_idx(raw / staged, arrays[name])
                os.chmod(raw / staged, 0o444)
                sums[staged] = _digest(raw / staged, "sha256")
        (tmp / MANIFEST).write_text(json.dumps({"info": info.model_dump(), "sha256": sums}, indent=2))
        os.chmod(tmp / MANIFEST, 0o444)
        try:
            os.rename(tmp, final)
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY) or not final.is_dir():
                raise
            # Another process staged the same data first: use theirs.
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _discard(final: Path) -> None:
    trash = final.parent / f".trash-{final.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        os.rename(final, trash)
    except OSError:
        return
    shutil.rmtree(trash, ignore_errors=True)


def stage_dataset(data: Data, source: Path | None, cache_dir: Path) -> StagedData:
    """Stage the four raw files for `data` (see the module docstring) and return where they are."""
    cache_dir = Path(cache_dir).resolve()
    seed = int(data.seed)
    missing_note = None
    if source is not None and not os.path.lexists(source):
        missing_note = f"source folder {source} not found"
        source = None

    if source is None:
        n_train, n_test = data.train_size or FULL_TRAIN, data.test_size or FULL_TEST
        kind = "generated"
        fp = _fingerprint({"kind": kind, "generator": [GENERATOR_VERSION, TEXTURE, BRIGHT, NOISE],
                           "train_size": n_train, "test_size": n_test, "seed": seed})
        why = missing_note or "no data source configured"
        description = (f"generated stand-in for Fashion-MNIST ({why}), "
                       f"{n_train} train / {n_test} test images, seed {seed}")
        loader = None
    else:
        source = Path(source)
        files = _find_source_files(source)
        md5s = {name: _digest(path, "md5") for name, path in files.items()}
        loaded: dict[str, tuple[np.ndarray, np.ndarray]] = {}

        def load() -> dict[str, np.ndarray]:
            if not loaded:
                loaded["train"] = _load_split(files[TRAIN_IMAGES], files[TRAIN_LABELS])
                loaded["test"] = _load_split(files[TEST_IMAGES], files[TEST_LABELS])
            return loaded

        # The full sizes come from the headers: a cached stage is found without decoding the images.
        full_train = _idx_header(files[TRAIN_IMAGES], 3)[0]
        full_test = _idx_header(files[TEST_IMAGES], 3)[0]
        for name in (TRAIN_LABELS, TEST_LABELS):
            _idx_header(files[name], 1)
        n_train, n_test = data.train_size or full_train, data.test_size or full_test
        for n, full, name in ((n_train, full_train, TRAIN_IMAGES), (n_test, full_test, TEST_IMAGES)):
            if n > full:
                raise DataError(f"{files[name]}: holds {full} images, the configuration asks for {n}")
        kind = "real" if (n_train, n_test) == (full_train, full_test) else "real-subset"
        fp = _fingerprint({"kind": kind, "md5": md5s, "subset": SUBSET_VERSION,
                           "train_size": n_train, "test_size": n_test, "seed": seed})
        description = (f"Fashion-MNIST (real), {n_train} of {full_train} training and {n_test} of {full_test} "
                       f"test images, seed {seed}, from {source}")
        if kind == "real":
            description = (f"Fashion-MNIST (real), all {full_train} training and {full_test} test images, "
                           f"from {source}")
        loader = load

    info = DataInfo(kind=kind, description=description, train_size=n_train, test_size=n_test, fingerprint=fp)
    final = cache_dir / fp
    if _valid_cache(final) is None:
        # One process stages a data set at a time (shards starting together share the cache): the
        # others wait, then find it staged.
        with hold(cache_dir / f".{fp}.lock", command="staging data", what=f"the staged data {final}", wait=True):
            if _valid_cache(final) is None:
                if final.exists():
                    _discard(final)
                if loader is None:
                    tr_x, tr_y, te_x, te_y = generate_standin(n_train, n_test, seed)
                else:
                    d = loader()
                    tr_x, tr_y = _subset(*d["train"], n_train, np.random.default_rng([seed, 0]), files[TRAIN_IMAGES])
                    te_x, te_y = _subset(*d["test"], n_test, np.random.default_rng([seed, 1]), files[TEST_IMAGES])
                _write_stage(final, info, {TRAIN_IMAGES: tr_x, TRAIN_LABELS: tr_y, TEST_IMAGES: te_x,
                                           TEST_LABELS: te_y})
                if _valid_cache(final) is None:
                    raise DataError(f"{final}: staged data failed its check right after staging")
    # The description names this call's source; everything else is what the cache holds.
    return StagedData(root=final, info=info)


# ------------------------------------------------------------------------------------ workspaces

def _force_dir(path: Path) -> None:
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        path.unlink()
    path.mkdir(exist_ok=True)


def link_into(staged: StagedData, workspace: Path, roots: tuple[str, ...] = ("data",)) -> None:
    """Give `workspace/<root>/FashionMNIST/raw/` the staged files (the four IDX files, plain and
    gzipped), for each root (default `data`).

    Symlinks to the staged files (absolute paths), falling back to hard links, then to read-only
    copies. Whatever was there under these names is replaced, and a `processed/` folder beside
    `raw/` is removed (torchvision would load its `training.pt`/`test.pt` instead of the raw files).
    """
    src_raw = staged.raw_dir.resolve()
    for name in STAGED_NAMES:
        src = src_raw / name
        try:
            if src.stat().st_mode & 0o777 != 0o444:
                os.chmod(src, 0o444)
        except OSError:
            pass
    workspace = Path(workspace)
    workspace.mkdir(parents=True, exist_ok=True)
    for root in roots:
        folder = workspace
        for part in (*Path(root).parts, "FashionMNIST", "raw"):
            folder = folder / part
            _force_dir(folder)
        processed = folder.parent / "processed"
        if processed.is_symlink() or processed.is_file():
            processed.unlink()
        elif processed.is_dir():
            remove_tree(processed)   # the team's own folder: any depth, never raises
        for name in STAGED_NAMES:
            src, dest = src_raw / name, folder / name
            if dest.is_symlink() or dest.is_file():
                dest.unlink()
            elif dest.is_dir():
                remove_tree(dest)
            try:
                os.symlink(src, dest)
                continue
            except (OSError, NotImplementedError):
                pass
            try:
                os.link(src, dest)
                continue
            except OSError:
                pass
            shutil.copyfile(src, dest)
            os.chmod(dest, 0o444)


# ----------------------------------------------------------------------------------------- probes

def probe_batch(staged: StagedData, n: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A fixed batch of staged test images: float32 (n, 1, 28, 28) = uint8 / 255 (as ToTensor), int64 labels.

    Class-balanced as far as the test set allows (round robin over the classes, each class's images
    in a seeded random order), then shuffled with the same seed. Same staged data and seed, same batch.
    """
    images = read_idx(staged.raw_dir / TEST_IMAGES)
    labels = read_idx(staged.raw_dir / TEST_LABELS)
    if n > len(labels):
        raise DataError(f"{staged.raw_dir / TEST_IMAGES}: {len(labels)} test images, probe asks for {n}")
    rng = np.random.default_rng([seed, 0x9B0BE])
    per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in range(N_CLASSES)]
    index = np.concatenate(per_class)
    rank = np.concatenate([np.arange(len(p)) for p in per_class])
    klass = np.concatenate([np.full(len(p), c) for c, p in enumerate(per_class)])
    order = index[np.lexsort((klass, rank))]          # round robin: rank 0 of every class, then rank 1, ...
    idx = rng.permutation(order[:n].astype(np.int64))
    x = images[idx].astype(np.float32)[:, None] / np.float32(255)
    return x.astype(np.float32), labels[idx].astype(np.int64)
