"""Where the data come from: MNIST and CIFAR-10, offline copies or torchvision's download.

Checked in this order:

1. ``$COURSE_DATA`` — a folder holding the offline copies ``mnist.npz`` and ``cifar10_jpeg.npz``
   (the course's machines and CI have no internet). CIFAR-10 is stored there as JPEG files
   (quality 75): they are decoded once with Pillow and cached as ``.npy`` arrays.
2. The same two files placed in ``root`` (default ``~/.cache/course_pkg``).
3. torchvision's ``datasets.MNIST`` / ``datasets.CIFAR10`` in ``root``, downloaded when missing
   (``download=True``, the default for real users; tests never download).

:func:`load_arrays` returns the images as stored (uint8, no padding, no normalisation);
:mod:`course_pkg.data.conventions` turns them into network inputs.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np

from .._io import atomic_write
from .conventions import convention

log = logging.getLogger("course_pkg.data")  # the package's logger: one name to filter on

DATA_ENV = "COURSE_DATA"  # folder with the offline copies
CACHE_ENV = "COURSE_CACHE"  # folder for the decoded-JPEG cache
DEFAULT_ROOT = Path("~/.cache/course_pkg")  # torchvision downloads (and optional offline files)
OFFLINE_FILES = {"mnist": "mnist.npz", "cifar10": "cifar10_jpeg.npz"}
SPLITS = ("train", "test")
SPLIT_SIZES = {"mnist": {"train": 60_000, "test": 10_000}, "cifar10": {"train": 50_000, "test": 10_000}}
CACHE_FORMAT = 1  # bump when the cache layout changes: old caches are then rebuilt


class DataNotFoundError(FileNotFoundError):
    """No copy of a data set was found; the message says where to put it or what to set."""


class CorruptDataError(ValueError):
    """A data file exists but cannot be read; the message says which file and what to do."""


# ---------------------------------------------------------------------------------------------
# Finding the data
# ---------------------------------------------------------------------------------------------

def _check_split(name: str, split: str) -> None:
    convention(name)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose 'train' or 'test'")


def _offline_file(name: str, root: Path) -> Path | None:
    """The offline copy to use, or None to fall back to torchvision. ``$COURSE_DATA`` is strict."""
    folder = os.environ.get(DATA_ENV)
    if folder:
        path = Path(folder).expanduser() / OFFLINE_FILES[name]
        if not path.is_file():
            raise DataNotFoundError(
                f"{DATA_ENV}={folder} has no {OFFLINE_FILES[name]}. Put the offline copies "
                f"{' and '.join(OFFLINE_FILES.values())} in that folder (see the data README), "
                f"or unset {DATA_ENV} to use torchvision's download into {root}.")
        return path
    path = root / OFFLINE_FILES[name]
    return path if path.is_file() else None


def data_source(name: str, root: str | os.PathLike | None = None) -> str:
    """Which copy of ``name`` :func:`load_arrays` would read — say it next to every result
    (accuracies on the JPEG copy of CIFAR-10 run lower than on the official files)."""
    root = Path(root or DEFAULT_ROOT).expanduser()
    path = _offline_file(name, root)
    if path is None:
        return f"torchvision {name} files under {root}"
    kind = " (JPEG quality 75 copy)" if name == "cifar10" else " (lossless copy)"
    return f"{path}{kind}"


def load_arrays(
    name: str,
    split: str,
    limit: int | None = None,
    *,
    root: str | os.PathLike | None = None,
    download: bool = True,
    cache_dir: str | os.PathLike | None = None,
    workers: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of one split, as stored: no padding, no normalisation.

    Returns ``(images, labels)``: uint8 ``[N, 28, 28]`` for MNIST or ``[N, 32, 32, 3]`` for
    CIFAR-10, and int64 ``[N]``. ``limit`` keeps ``limit`` images spread evenly over the split
    (:func:`subset_indices`), not its first ones: the CIFAR-10 JPEG copy is stored sorted by
    class, so its first 1,000 test images are all airplanes, while the evenly spaced 1,000 hold
    100 of each class.  The subset is the same on every call.  For the JPEG copy only those images
    are decoded when no full cache exists yet (fast, for quick tests and grading).  ``download``
    lets torchvision fetch missing files into ``root``.
    """
    _check_split(name, split)
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0 or None, got {limit}")
    root = Path(root or DEFAULT_ROOT).expanduser()
    path = _offline_file(name, root)
    if path is None:
        images, labels = _load_torchvision(name, split, root, download)
    elif name == "mnist":
        images, labels = _load_mnist_npz(path, split)
    else:
        return _load_cifar_jpeg(path, split, limit, Path(cache_dir) if cache_dir else cache_folder(),
                                workers)
    if limit is not None:
        keep = subset_indices(len(labels), limit)
        images, labels = images[keep], labels[keep]
    return images, labels


def subset_indices(total: int, limit: int | None) -> np.ndarray:
    """``min(limit, total)`` indices spread evenly over ``range(total)``, first one included.

    The course's one rule for "a part of a split" (quick runs, tests, grading subsets): with the
    class-sorted CIFAR-10 JPEG copy it gives every class in equal shares.
    """
    if limit is None or limit >= total:
        return np.arange(total, dtype=np.int64)
    if limit < 0:
        raise ValueError(f"limit must be >= 0 or None, got {limit}")
    return (np.arange(limit, dtype=np.int64) * total) // limit


def _load_torchvision(name: str, split: str, root: Path, download: bool):
    import torchvision

    dataset_cls = {"mnist": torchvision.datasets.MNIST, "cifar10": torchvision.datasets.CIFAR10}[name]
    train = split == "train"
    try:
        ds = dataset_cls(str(root), train=train, download=False)
    except RuntimeError:  # torchvision: "Dataset not found ..."
        if not download:
            raise DataNotFoundError(
                f"no {name} data found: set {DATA_ENV} to a folder holding {OFFLINE_FILES[name]}, "
                f"put {OFFLINE_FILES[name]} in {root}, or allow download=True "
                f"(torchvision then downloads into {root}).") from None
        try:
            ds = dataset_cls(str(root), train=train, download=True)
        except Exception as exc:  # network errors come in many types
            raise DataNotFoundError(
                f"downloading {name} into {root} failed ({exc}). Without internet, set "
                f"{DATA_ENV} to a folder holding {OFFLINE_FILES[name]}.") from exc
    images = np.asarray(ds.data, dtype=np.uint8)
    labels = np.asarray(ds.targets, dtype=np.int64)
    return images, labels


def _open_npz(path: Path, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """Read ``keys`` from an npz, turning every way it can be broken into one clear error."""
    advice = f"replace {path.name} with a fresh copy (the data README lists its sha256)"
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in keys if k not in npz.files]
            if missing:
                raise CorruptDataError(f"{path} lacks {', '.join(missing)}: {advice}.")
            return {k: npz[k] for k in keys}
    except CorruptDataError:
        raise
    except Exception as exc:  # BadZipFile, zlib.error, EOFError, ValueError, OSError ...
        raise CorruptDataError(f"{path} is corrupt or incomplete ({type(exc).__name__}: {exc}): "
                               f"{advice}.") from exc


def _load_mnist_npz(path: Path, split: str):
    arrays = _open_npz(path, [f"x_{split}", f"y_{split}"])
    images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
    if images.dtype != np.uint8 or images.shape[1:] != (28, 28) or len(images) != len(labels):
        raise CorruptDataError(f"{path}: x_{split} has shape {images.shape} and dtype {images.dtype}, "
                               f"y_{split} {labels.shape}; expected uint8 [N, 28, 28] and [N]. "
                               "Replace the file with a fresh copy.")
    return images, labels.astype(np.int64)


# ---------------------------------------------------------------------------------------------
# CIFAR-10 JPEG copy: decode once, cache as .npy
# ---------------------------------------------------------------------------------------------

def cache_folder() -> Path:
    """Where decoded arrays are cached: ``$COURSE_CACHE``, else ``.cache/`` of the source checkout
    (git-ignored), else ``~/.cache/course_pkg/decoded``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    repo = Path(__file__).resolve().parents[2]
    if (repo / "pyproject.toml").is_file() and os.access(repo, os.W_OK):
        return repo / ".cache"
    return (DEFAULT_ROOT / "decoded").expanduser()


def _decode_chunk(header: bytes, scan: bytes, offsets: np.ndarray) -> np.ndarray:
    """Decode JPEGs ``header + scan[offsets[k]:offsets[k+1]]`` with Pillow into [n, H, W, 3]."""
    from PIL import Image

    out = None
    for k in range(len(offsets) - 1):
        data = header + scan[offsets[k]:offsets[k + 1]]
        with Image.open(io.BytesIO(data)) as im:
            pixels = np.asarray(im.convert("RGB"))
        if out is None:
            out = np.empty((len(offsets) - 1, *pixels.shape), dtype=np.uint8)
        out[k] = pixels
    return out if out is not None else np.empty((0, 32, 32, 3), dtype=np.uint8)


def decode_jpegs(header: bytes, scan: np.ndarray, offsets: np.ndarray,
                 workers: int | None = None) -> np.ndarray:
    """Decode ``len(offsets) - 1`` JPEGs that share one header (the layout of cifar10_jpeg.npz).

    Pillow's decoder holds the GIL, so large batches are split over worker *processes*
    (``workers``, default: all cores up to 8); fewer than 2,000 images are decoded in-process.
    """
    n = len(offsets) - 1
    workers = workers or min(8, os.cpu_count() or 1)
    offsets = np.asarray(offsets, dtype=np.int64)

    def piece(a: int, b: int):
        lo, hi = int(offsets[a]), int(offsets[b])
        return header, scan[lo:hi].tobytes(), offsets[a:b + 1] - lo

    if n < 2000 or workers < 2:
        return _decode_chunk(*piece(0, n))
    bounds = np.linspace(0, n, 4 * workers + 1).astype(int)
    pieces = [piece(a, b) for a, b in zip(bounds[:-1], bounds[1:])]
    try:
        with ProcessPoolExecutor(workers) as pool:
            chunks = list(pool.map(_decode_chunk, *zip(*pieces)))
    except (OSError, RuntimeError) as exc:  # no process support (some sandboxes): decode here
        log.warning("parallel JPEG decoding unavailable (%s); decoding in one process", exc)
        chunks = [_decode_chunk(*p) for p in pieces]
    return np.concatenate(chunks)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _crc(array: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(array).data)


def _cache_paths(cache_dir: Path, split: str) -> dict[str, Path]:
    stem = f"cifar10_jpeg-{split}"
    return {"images": cache_dir / f"{stem}-images.npy", "labels": cache_dir / f"{stem}-labels.npy",
            "meta": cache_dir / f"{stem}-meta.json"}


def _read_cache(source: Path, split: str, cache_dir: Path):
    """The cached (images, labels) if they are complete and belong to ``source``, else None."""
    paths = _cache_paths(cache_dir, split)
    try:
        meta = json.loads(paths["meta"].read_text())
        if meta.get("format") != CACHE_FORMAT:
            return None
        stat = source.stat()
        if (meta["source_size"], meta["source_mtime_ns"]) != (stat.st_size, stat.st_mtime_ns):
            # Same file copied elsewhere (new mtime)? Then the content hash still matches.
            if meta["source_size"] != stat.st_size or meta["source_sha256"] != _file_sha256(source):
                return None
        images = np.load(paths["images"], allow_pickle=False)
        labels = np.load(paths["labels"], allow_pickle=False)
    except (OSError, ValueError, KeyError, EOFError):  # missing, partial or unreadable
        return None
    if (list(images.shape) != meta["images_shape"] or images.dtype != np.uint8
            or labels.dtype != np.int64 or len(labels) != len(images)
            or _crc(images) != meta["images_crc32"] or _crc(labels) != meta["labels_crc32"]):
        log.warning("decoded cache %s is corrupt; rebuilding it", paths["images"])
        return None
    return images, labels


def _write_cache(source: Path, split: str, cache_dir: Path, images: np.ndarray, labels: np.ndarray):
    paths = _cache_paths(cache_dir, split)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        paths["meta"].unlink(missing_ok=True)  # the meta file is written last: it marks completion
        atomic_write(paths["images"], lambda f: np.save(f, images))
        atomic_write(paths["labels"], lambda f: np.save(f, labels))
        stat = source.stat()
        meta = {"format": CACHE_FORMAT, "source": str(source), "source_size": stat.st_size,
                "source_mtime_ns": stat.st_mtime_ns, "source_sha256": _file_sha256(source),
                "images_shape": list(images.shape), "images_crc32": _crc(images),
                "labels_crc32": _crc(labels)}
        atomic_write(paths["meta"], lambda f: f.write(json.dumps(meta, indent=1).encode()))
    except OSError as exc:
        log.warning("could not write the decoded cache in %s (%s); set %s to a writable folder "
                    "to avoid decoding again next time", cache_dir, exc, CACHE_ENV)


def _load_cifar_jpeg(path: Path, split: str, limit: int | None, cache_dir: Path,
                     workers: int | None):
    cached = _read_cache(path, split, cache_dir)
    if cached is not None:
        images, labels = cached
        keep = subset_indices(len(labels), limit)
        return (images, labels) if limit is None else (images[keep], labels[keep])
    arrays = _open_npz(path, ["jpeg_header", f"{split}_scan", f"{split}_offsets", f"{split}_labels"])
    header = arrays["jpeg_header"].tobytes()
    scan, offsets = arrays[f"{split}_scan"], arrays[f"{split}_offsets"]
    labels = arrays[f"{split}_labels"].astype(np.int64)
    if (len(offsets) != len(labels) + 1 or offsets[0] != 0 or offsets[-1] != len(scan)
            or np.any(np.diff(offsets) <= 0)):
        raise CorruptDataError(f"{path}: {split}_offsets do not index {split}_scan "
                               f"({len(offsets)} offsets, {len(labels)} labels, {len(scan)} bytes); "
                               "replace the file with a fresh copy.")
    keep = subset_indices(len(labels), limit)
    n = len(keep)
    if n < len(labels):  # gather the chosen images' scan data into one contiguous buffer
        starts, ends = offsets[keep], offsets[keep + 1]
        scan = np.concatenate([scan[a:b] for a, b in zip(starts, ends)])
        offsets = np.concatenate([[0], np.cumsum(ends - starts)])
    try:
        images = decode_jpegs(header, scan, offsets, workers)
    except OSError as exc:  # Pillow: "cannot identify image file", truncated data
        raise CorruptDataError(f"{path}: cannot decode the {split} JPEGs ({exc}); "
                               "replace the file with a fresh copy.") from exc
    if n < len(labels):
        return images, labels[keep]  # a subset is never cached: the cache always holds a whole split
    log.info("decoded %d CIFAR-10 %s images from %s; caching them in %s", n, split, path, cache_dir)
    _write_cache(path, split, cache_dir, images, labels)
    return images, labels

