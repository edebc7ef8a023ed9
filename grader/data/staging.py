"""Data staging: the files of the sheet's data set (a `DatasetSpec`) a student's notebook loads, offline.

The data sets of the MNIST family come as four IDX files (``train-images-idx3-ubyte``,
``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``), which
torchvision looks for in ``<root>/<folder>/raw/`` (checked for 0.29, ``datasets/mnist.py``):
``_check_exists`` calls ``check_integrity(path)`` without an MD5, so when the four *uncompressed*
files exist ``download()`` returns at once and ``_load_data`` parses them. No MD5 check, no network.
We therefore stage these four uncompressed IDX files, and may stage a subset or a generated stand-in
(the sheet's generator). Beside them go the same four as ``.gz`` (what a real download leaves there
too), for notebooks that read the raw files themselves. (The kernel's set-up step also points the
sheet's torchvision class at the staged folder whatever root a notebook passes; see ``setup_kernel.py``.)

Staging (``stage_dataset``), once per batch:

* ``source`` is ``None`` (no ``[data] source`` configured): a generated stand-in (``kind="generated"``).
* ``source`` is configured but the folder does not exist at all: the normal case on a fresh machine.
  The generated stand-in is used, and the description says ``source folder <path> not found``.
* ``source`` exists: it must hold the four files, each as ``<name>`` or ``<name>.gz`` (also accepted:
  the ``train-images.idx3-ubyte`` spelling, and the torchvision layout ``<source>/<folder>/raw/``).
  Anything wrong with it is an error, never a silent fallback: a ``source`` that is not a folder, a
  missing file, a file that is not IDX (bad magic, bad gzip), whose size does not match its header,
  images that are not uint8 of the sheet's image shape, labels outside the sheet's classes, image and label counts that differ, or
  fewer images than ``train_size``/``test_size`` ask for all raise ``DataError`` naming the file.
  Then ``train_size``/``test_size`` images (0 = all) are chosen, class-stratified, with ``seed``: the
  same subset on every call and every machine (``kind="real-subset"``, or ``"real"`` when both sizes
  are the whole set).
* For the generated stand-in, size 0 means the real set's sizes (``DatasetSpec.full_sizes``).

The result is written to ``cache_dir/<fingerprint>/<folder>/raw/`` through a temporary folder
renamed into place (atomic; when two processes stage at once one rename wins and the other uses the
winner's folder). ``manifest.json`` beside ``<folder>/`` records the DataInfo and each file's
sha256; a cached folder is reused when its files match the manifest, and restaged when they do not.
The fingerprint is ``sha256(kind, source files' MD5s or the generator version, sizes, seed)[:16]``.

``link_into`` puts symlinks to the staged (read-only, 0o444) files into a workspace, falling back to
hard links and then copies. ``probe_batch`` returns a fixed, class-balanced batch of staged test
images as ToTensor would give them.

This module needs numpy only (the grader process never imports torch).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from grader.config import Data
from grader.data.idx import DataError, digest, idx_header, read_idx, write_idx
from grader.models import DataInfo
from grader.sheet import DatasetSpec
from grader.util.fsclean import remove_tree
from grader.util.locks import hold

__all__ = [
    "GZ_NAMES",
    "RAW_NAMES",
    "STAGED_NAMES",
    "DataError",
    "StagedData",
    "link_into",
    "no_data",
    "probe_batch",
    "read_idx",
    "stage_dataset",
    "write_idx",
]

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
RAW_NAMES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)
# The same files gzipped, as torchvision's download leaves them beside the uncompressed ones.
GZ_NAMES = tuple(name + ".gz" for name in RAW_NAMES)
STAGED_NAMES = RAW_NAMES + GZ_NAMES
# Bump when the choice of a real subset changes.
SUBSET_VERSION = "stratified-1"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class StagedData:
    root: Path | None  # holds <folder>/raw/<the four uncompressed IDX files>; shared, read-only (None: nothing staged)
    info: DataInfo
    folder: str  # the data set's folder (DatasetSpec.folder)

    @property
    def raw_dir(self) -> Path | None:
        return None if self.root is None else self.root / self.folder / "raw"

    def staged_raw_dir(self) -> Path:
        """raw_dir, for what needs staged files: an error where nothing is staged."""
        if self.root is None:
            raise DataError(f"no data is staged for {self.info.description}")
        return self.root / self.folder / "raw"


def no_data(sheet_name: str, inputs: dict[str, np.ndarray]) -> StagedData:
    """For a sheet without a data set (its notebooks make their own data): nothing is staged. Its
    fingerprint (what calibrations are kept by) is that of the probe's inputs, which stand for the data."""
    digest_ = hashlib.sha256(json.dumps({"kind": "none", "sheet": sheet_name}).encode())
    for name in sorted(inputs):
        array = np.ascontiguousarray(inputs[name])
        digest_.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
        digest_.update(array.tobytes())
    info = DataInfo(
        kind="none",
        description="none staged: the notebook makes its own data",
        train_size=0,
        test_size=0,
        fingerprint=digest_.hexdigest()[:16],
    )
    return StagedData(root=None, info=info, folder="")


# ----------------------------------------------------------------------------------- real source


def _find_source_files(source: Path, spec: DatasetSpec) -> dict[str, Path]:
    if not source.is_dir():
        raise DataError(f"data source {source} is not a folder")
    folders = [source]
    nested = source / spec.folder / "raw"
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


def _load_split(images_path: Path, labels_path: Path, spec: DatasetSpec) -> tuple[np.ndarray, np.ndarray]:
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != tuple(spec.image_shape):
        rows, cols = spec.image_shape
        raise DataError(
            f"{images_path}: expected uint8 images of shape (N, {rows}, {cols}) (magic 00000803), "
            f"got {images.dtype} {images.shape}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DataError(
            f"{labels_path}: expected uint8 labels of shape (N,) (magic 00000801), got {labels.dtype} {labels.shape}"
        )
    if len(labels) != len(images):
        raise DataError(f"{labels_path}: {len(labels)} labels for {len(images)} images in {images_path.name}")
    if len(labels) and labels.max() >= spec.classes:
        raise DataError(f"{labels_path}: label {int(labels.max())} outside 0..{spec.classes - 1}")
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


# -------------------------------------------------------------------------------------- staging


def _fingerprint(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def _valid_cache(final: Path, folder: str) -> DataInfo | None:
    try:
        manifest = json.loads((final / MANIFEST).read_text())
        raw = final / folder / "raw"
        for name in STAGED_NAMES:
            if digest(raw / name, "sha256") != manifest["sha256"][name]:
                return None
        return DataInfo.model_validate(manifest["info"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_stage(final: Path, folder: str, info: DataInfo, arrays: dict[str, np.ndarray]) -> None:
    """Write into a temporary sibling folder, then rename it to `final` (atomic)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{final.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    raw = tmp / folder / "raw"
    raw.mkdir(parents=True)
    try:
        sums = {}
        for name in RAW_NAMES:
            for staged in (name, name + ".gz"):  # write_idx gzips by the name (reproducibly: mtime 0)
                write_idx(raw / staged, arrays[name])
                os.chmod(raw / staged, 0o444)
                sums[staged] = digest(raw / staged, "sha256")
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


def stage_dataset(data: Data, source: Path | None, cache_dir: Path, spec: DatasetSpec) -> StagedData:
    """Stage the four raw files of the data set `spec` for `data` (see the module docstring) and
    return where they are."""
    full_train_default, full_test_default = spec.full_sizes
    cache_dir = Path(cache_dir).resolve()
    seed = int(data.seed)
    missing_note = None
    if source is not None and not os.path.lexists(source):
        missing_note = f"source folder {source} not found"
        source = None

    if source is None:
        n_train, n_test = data.train_size or full_train_default, data.test_size or full_test_default
        kind = "generated"
        fp = _fingerprint(
            {
                "kind": kind,
                "generator": spec.generator_fingerprint,
                "train_size": n_train,
                "test_size": n_test,
                "seed": seed,
            }
        )
        why = missing_note or "no data source configured"
        description = (
            f"generated stand-in for {spec.title} ({why}), {n_train} train / {n_test} test images, seed {seed}"
        )
        loader: Callable[[], dict[str, tuple[np.ndarray, np.ndarray]]] | None = None
    else:
        source = Path(source)
        files = _find_source_files(source, spec)
        md5s = {name: digest(path, "md5") for name, path in files.items()}
        loaded: dict[str, tuple[np.ndarray, np.ndarray]] = {}

        def load() -> dict[str, tuple[np.ndarray, np.ndarray]]:
            if not loaded:
                loaded["train"] = _load_split(files[TRAIN_IMAGES], files[TRAIN_LABELS], spec)
                loaded["test"] = _load_split(files[TEST_IMAGES], files[TEST_LABELS], spec)
            return loaded

        # The full sizes come from the headers: a cached stage is found without decoding the images.
        full_train = idx_header(files[TRAIN_IMAGES], 3)[0]
        full_test = idx_header(files[TEST_IMAGES], 3)[0]
        for name in (TRAIN_LABELS, TEST_LABELS):
            idx_header(files[name], 1)
        n_train, n_test = data.train_size or full_train, data.test_size or full_test
        for n, full, name in ((n_train, full_train, TRAIN_IMAGES), (n_test, full_test, TEST_IMAGES)):
            if n > full:
                raise DataError(f"{files[name]}: holds {full} images, the configuration asks for {n}")
        kind = "real" if (n_train, n_test) == (full_train, full_test) else "real-subset"
        fp = _fingerprint(
            {
                "kind": kind,
                "md5": md5s,
                "subset": SUBSET_VERSION,
                "train_size": n_train,
                "test_size": n_test,
                "seed": seed,
            }
        )
        description = (
            f"{spec.title} (real), {n_train} of {full_train} training and {n_test} of {full_test} "
            f"test images, seed {seed}, from {source}"
        )
        if kind == "real":
            description = f"{spec.title} (real), all {full_train} training and {full_test} test images, from {source}"
        loader = load

    info = DataInfo(kind=kind, description=description, train_size=n_train, test_size=n_test, fingerprint=fp)
    final = cache_dir / fp
    if _valid_cache(final, spec.folder) is None:
        # One process stages a data set at a time (shards starting together share the cache): the
        # others wait, then find it staged.
        with hold(cache_dir / f".{fp}.lock", command="staging data", what=f"the staged data {final}", wait=True):
            if _valid_cache(final, spec.folder) is None:
                if final.exists():
                    _discard(final)
                if loader is None:
                    tr_x, tr_y, te_x, te_y = spec.generate(n_train, n_test, seed)
                else:
                    d = loader()
                    tr_x, tr_y = _subset(*d["train"], n_train, np.random.default_rng([seed, 0]), files[TRAIN_IMAGES])
                    te_x, te_y = _subset(*d["test"], n_test, np.random.default_rng([seed, 1]), files[TEST_IMAGES])
                _write_stage(
                    final,
                    spec.folder,
                    info,
                    {TRAIN_IMAGES: tr_x, TRAIN_LABELS: tr_y, TEST_IMAGES: te_x, TEST_LABELS: te_y},
                )
                if _valid_cache(final, spec.folder) is None:
                    raise DataError(f"{final}: staged data failed its check right after staging")
    # The description names this call's source; everything else is what the cache holds.
    return StagedData(root=final, info=info, folder=spec.folder)


# ------------------------------------------------------------------------------------ workspaces


def _force_dir(path: Path) -> None:
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        path.unlink()
    path.mkdir(exist_ok=True)


def link_into(staged: StagedData, workspace: Path, roots: tuple[str, ...] = ("data",)) -> None:
    """Give `workspace/<root>/<folder>/raw/` the staged files (the four IDX files, plain and
    gzipped), for each root (default `data`).

    Symlinks to the staged files (absolute paths), falling back to hard links, then to read-only
    copies. Whatever was there under these names is replaced, and a `processed/` folder beside
    `raw/` is removed (torchvision would load its `training.pt`/`test.pt` instead of the raw files).
    """
    if staged.root is None:
        return
    src_raw = staged.staged_raw_dir().resolve()
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
        for part in (*Path(root).parts, staged.folder, "raw"):
            folder = folder / part
            _force_dir(folder)
        processed = folder.parent / "processed"
        if processed.is_symlink() or processed.is_file():
            processed.unlink()
        elif processed.is_dir():
            remove_tree(processed)  # the team's own folder: any depth, never raises
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
    """A fixed batch of staged test images: float32 (n, 1, rows, cols) = uint8 / 255 (as ToTensor), int64 labels.

    Class-balanced as far as the test set allows (round robin over the classes, each class's images
    in a seeded random order), then shuffled with the same seed. Same staged data and seed, same batch.
    """
    raw = staged.staged_raw_dir()
    images = read_idx(raw / TEST_IMAGES)
    labels = read_idx(raw / TEST_LABELS)
    if n > len(labels):
        raise DataError(f"{raw / TEST_IMAGES}: {len(labels)} test images, probe asks for {n}")
    rng = np.random.default_rng([seed, 0x9B0BE])
    classes = int(labels.max()) + 1 if len(labels) else 0
    per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in range(classes)]
    index = np.concatenate(per_class)
    rank = np.concatenate([np.arange(len(p)) for p in per_class])
    klass = np.concatenate([np.full(len(p), c) for c, p in enumerate(per_class)])
    order = index[np.lexsort((klass, rank))]  # round robin: rank 0 of every class, then rank 1, ...
    idx = rng.permutation(order[:n].astype(np.int64))
    x = images[idx].astype(np.float32)[:, None] / np.float32(255)
    return x.astype(np.float32), labels[idx].astype(np.int64)
