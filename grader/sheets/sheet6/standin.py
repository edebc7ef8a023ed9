"""A generated stand-in for Fashion-MNIST, of the same format: what notebooks run on where the real
files are not there (a fresh machine, a student's laptop). Deterministic given (sizes, seed).
Needs numpy only.
"""

from __future__ import annotations

import numpy as np

N_CLASSES = 10
# Bump when the generated images change; it is part of the fingerprint, so old caches are not reused.
GENERATOR_VERSION = "fashion-standin-1"
# Generator knobs (part of the fingerprint too): texture depth, brightness range, noise level.
TEXTURE = (0.1, 0.5)
BRIGHT = (0.5, 1.6)
NOISE = 0.15
FINGERPRINT = [GENERATOR_VERSION, TEXTURE, BRIGHT, NOISE]


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
    shape = _union(
        _trap(X, Y, cx, top, bot, hw, hw + u(-1, 0.5)),
        _seg(X, Y, cx - hw + 1, top + 2, cx - hw - u(3, 5), top + u(5, 8), u(2, 3)),
        _seg(X, Y, cx + hw - 1, top + 2, cx + hw + u(3, 5), top + u(5, 8), u(2, 3)),
    )
    shape = shape * (1 - _ellipse(X, Y, cx, top, u(2, 3.5), u(1.2, 2.5)))
    protos.append(shape * u(0.75, 1.0))
    # 1 Trouser: waistband and two legs with a gap
    top, bot, gap = u(1.5, 3.5), u(24.5, 27), u(0.4, 1.2)
    lw = u(2.3, 3.5)
    shape = _union(
        _box(X, Y, cx - lw * 2 - gap, cx + lw * 2 + gap, top, top + u(4, 7)),
        _trap(X, Y, cx - lw - gap, top + 2, bot, lw, lw * u(0.7, 1.1)),
        _trap(X, Y, cx + lw + gap, top + 2, bot, lw, lw * u(0.7, 1.1)),
    )
    protos.append(shape * u(0.6, 1.0))
    # 2 Pullover: torso, long sleeves hanging down at the sides
    top, bot, hw = u(3, 5), u(23, 26), u(5.5, 7)
    ang = u(2, 4)
    shape = _union(
        _trap(X, Y, cx, top, bot, hw, hw + u(-1, 0.5)),
        _seg(X, Y, cx - hw + 0.5, top + 2, cx - hw - ang, bot - u(0, 3), u(1.8, 2.6)),
        _seg(X, Y, cx + hw - 0.5, top + 2, cx + hw + ang, bot - u(0, 3), u(1.8, 2.6)),
    )
    shape = shape * (1 - 0.8 * _ellipse(X, Y, cx, top, u(1.5, 3), u(0.8, 1.5)))
    protos.append(shape * u(0.6, 1.0))
    # 3 Dress: narrow top, wide hem
    top, bot = u(1, 4), u(25, 27)
    waist = u(9, 13)
    shape = _union(
        _trap(X, Y, cx, top, waist, u(3, 5), u(2.5, 4)), _trap(X, Y, cx, waist - 0.5, bot, u(2.5, 4), u(6.5, 10))
    )
    protos.append(shape * u(0.6, 1.0))
    # 4 Coat: long torso, long sleeves, dark opening down the middle
    top, bot, hw = u(1.5, 3.5), u(25, 27), u(6, 7.5)
    ang = u(2, 4)
    shape = _union(
        _trap(X, Y, cx, top, bot, hw, hw + u(0, 1.5)),
        _seg(X, Y, cx - hw + 0.5, top + 2, cx - hw - ang, bot - u(1, 4), u(1.8, 2.6)),
        _seg(X, Y, cx + hw - 0.5, top + 2, cx + hw + ang, bot - u(1, 4), u(1.8, 2.6)),
    )
    shape = shape * (1 - u(0.3, 0.7) * _box(X, Y, cx - 0.6, cx + 0.6, top + 3, bot, 0.5))
    protos.append(shape * u(0.6, 1.0))
    # 5 Sandal: thin sole and a few straps, sparse
    y0 = u(17, 20)
    x0, x1 = u(1, 4), u(24, 27)
    straps = [
        _seg(X, Y, x0 + k * (x1 - x0) / 4 + u(0, 2), y0, x0 + (k + 0.6) * (x1 - x0) / 4, y0 - u(4, 9), u(0.6, 1.2))
        for k in range(4)
    ]
    shape = _union(_box(X, Y, x0, x1, y0, y0 + u(1.5, 2.5)), *straps)
    protos.append(shape * u(0.5, 0.95))
    # 6 Shirt: like a pullover/T-shirt mix with a collar and a button line
    top, bot, hw = u(3, 5.5), u(23, 26), u(5.5, 7.5)
    sleeve = u(6, 18)
    ang = u(2, 4.5)
    shape = _union(
        _trap(X, Y, cx, top, bot, hw, hw + u(-0.5, 1)),
        _seg(X, Y, cx - hw + 0.5, top + 2, cx - hw - ang, top + sleeve, u(1.8, 2.8)),
        _seg(X, Y, cx + hw - 0.5, top + 2, cx + hw + ang, top + sleeve, u(1.8, 2.8)),
    )
    shape = shape * (1 - u(0.2, 0.5) * _box(X, Y, cx - 0.5, cx + 0.5, top + 2, bot, 0.5))
    shape = _union(
        shape, 0.9 * _seg(X, Y, cx - 3, top, cx, top + 3, 0.9), 0.9 * _seg(X, Y, cx + 3, top, cx, top + 3, 0.9)
    )
    protos.append(shape * u(0.55, 1.0))
    # 7 Sneaker: low, dense shoe, higher at the heel (left), toe to the right
    y1 = u(20, 23)
    x0, x1 = u(1, 3), u(25, 27)
    shape = _union(
        _box(X, Y, x0, x1, y1 - u(3, 4.5), y1),
        _ellipse(X, Y, x0 + u(5, 8), y1 - u(4, 6), u(5, 7), u(2.5, 4)),
        _box(X, Y, x0, x1, y1 - 1, y1 + u(0.8, 1.6)),
    )
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
    shape = _union(
        _box(X, Y, x0, x0 + u(9, 12), shaft_top, y1),
        _box(X, Y, x0, x1, y1 - u(6, 9), y1),
        _ellipse(X, Y, x1 - u(3, 5), y1 - u(3, 5), u(4, 6), u(3, 5)),
    )
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
    img *= uniform(BRIGHT[0], BRIGHT[1])  # brightness
    img[img < f32(0.03)] = 0  # real backgrounds are black
    img += (img > 0) * (f32(NOISE) * rng.standard_normal(img.shape, dtype=f32))  # noise on the garment
    np.clip(img, 0, 1, out=img)
    return np.rint(img * 255).astype(np.uint8).reshape(n, 28, 28)


def _balanced_labels(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(np.arange(n) % N_CLASSES).astype(np.uint8)


def generate_standin(
    train_size: int, test_size: int, seed: int
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
    ss = np.random.SeedSequence([seed, 0x5EED6])
    r_proto, r_train, r_test = (np.random.default_rng(s) for s in ss.spawn(3))
    protos = _prototypes(r_proto, 64)
    out = []
    for n, rng in ((train_size, r_train), (test_size, r_test)):
        labels = _balanced_labels(n, rng)
        chunks = [_render(protos, labels[i : i + 4000], rng) for i in range(0, n, 4000)]
        out += [np.concatenate(chunks) if chunks else np.zeros((0, 28, 28), np.uint8), labels]
    return out[0], out[1], out[2], out[3]
