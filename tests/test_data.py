"""course_pkg.data: offline loading, the decoded-JPEG cache, the preprocessing convention, the
GPU-resident loader and its augmentation (semantics checked on the CPU), ImageFolder loaders.

Expected values are computed here independently: Pillow decodes the JPEGs, numpy's ``np.pad``
defines reflect/zero padding, ``np.flip`` defines mirroring, pixel statistics come from histograms.
"""

from __future__ import annotations

import io
import logging
import math
import shutil
import time

import numpy as np
import pytest
import torch
from PIL import Image

from course_pkg import data

LOGGER = "course_pkg.data"
# Augmentation runs on the GPU in training: check the same semantics there when one is present.
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                                reason="no CUDA device"))]


# ---------------------------------------------------------------------------------------------
# helpers and fixtures
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def cifar_npz(course_data):
    with np.load(course_data / "cifar10_jpeg.npz") as npz:
        return {k: npz[k] for k in ("jpeg_header", "test_scan", "test_offsets", "test_labels",
                                    "train_scan", "train_offsets", "classes")}


def pillow_decode(npz, split, k):
    """The data README's recipe, independent of course_pkg."""
    header = npz["jpeg_header"].tobytes()
    o = npz[f"{split}_offsets"]
    scan = npz[f"{split}_scan"][o[k]:o[k + 1]].tobytes()
    return np.asarray(Image.open(io.BytesIO(header + scan)).convert("RGB"))


@pytest.fixture(scope="module")
def test_split_cache(course_data, tmp_path_factory):
    """Decode the CIFAR-10 *test* split once into a fresh cache folder (10,000 images)."""
    cache = tmp_path_factory.mktemp("cache")
    start = time.perf_counter()
    images, labels = data.load_arrays("cifar10", "test", cache_dir=cache)
    return cache, images, labels, time.perf_counter() - start


def decoded(caplog) -> bool:
    return any("decoded" in r.getMessage() for r in caplog.records if r.name == LOGGER)


def channel_stats(images: np.ndarray, channels: int):
    """Per-channel mean and std in [0, 1] units via 256-bin histograms (exact, little memory)."""
    flat = images.reshape(-1, channels)
    values = np.arange(256) / 255.0
    means, stds = [], []
    for c in range(channels):
        counts = np.bincount(flat[:, c], minlength=256).astype(np.float64)
        mean = (counts * values).sum() / counts.sum()
        means.append(mean)
        stds.append(np.sqrt((counts * (values - mean) ** 2).sum() / counts.sum()))
    return np.array(means), np.array(stds)


# ---------------------------------------------------------------------------------------------
# real data: shapes, dtypes, labels, balance
# ---------------------------------------------------------------------------------------------

def test_mnist_arrays(course_data):
    x, y = data.load_arrays("mnist", "train")
    assert x.shape == (60_000, 28, 28) and x.dtype == np.uint8
    assert y.shape == (60_000,) and y.dtype == np.int64
    counts = np.bincount(y, minlength=10)
    assert len(counts) == 10 and counts.sum() == 60_000 and (counts > 5000).all()
    xt, yt = data.load_arrays("mnist", "test")
    assert xt.shape == (10_000, 28, 28) and yt.min() == 0 and yt.max() == 9
    x5, y5 = data.load_arrays("mnist", "test", limit=5)
    np.testing.assert_array_equal(x5, xt[::2000])
    np.testing.assert_array_equal(y5, yt[::2000])


def test_cifar_test_split(test_split_cache, cifar_npz):
    _, x, y, _ = test_split_cache
    assert x.shape == (10_000, 32, 32, 3) and x.dtype == np.uint8
    assert y.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(y, minlength=10), [1000] * 10)
    np.testing.assert_array_equal(y, cifar_npz["test_labels"])
    assert data.class_names("cifar10") == list(cifar_npz["classes"])
    assert data.class_names("mnist") == [str(d) for d in range(10)]


def test_decoded_equals_pillow(test_split_cache, cifar_npz):
    _, x, _, _ = test_split_cache
    for k in np.random.default_rng(0).choice(10_000, size=6, replace=False):
        np.testing.assert_array_equal(x[k], pillow_decode(cifar_npz, "test", k))


def test_normalization_constants_match_training_split(course_data):
    """The convention's mean/std are the training split's statistics (decodes the train split
    once per cache folder)."""
    for name, channels in (("mnist", 1), ("cifar10", 3)):
        x, _ = data.load_arrays(name, "train")
        mean, std = channel_stats(x, channels)
        conv = data.convention(name)
        np.testing.assert_allclose(conv.mean, mean, atol=1e-3)
        np.testing.assert_allclose(conv.std, std, atol=1e-3)


def test_data_source_names_the_copy(course_data):
    assert "cifar10_jpeg.npz" in data.data_source("cifar10") and "JPEG" in data.data_source("cifar10")
    assert "mnist.npz" in data.data_source("mnist")


# ---------------------------------------------------------------------------------------------
# the decoded cache
# ---------------------------------------------------------------------------------------------

def test_cache_is_reused(test_split_cache, caplog):
    cache, x, y, first_seconds = test_split_cache
    files = sorted(p.name for p in cache.iterdir())
    assert files == ["cifar10_jpeg-test-images.npy", "cifar10_jpeg-test-labels.npy",
                     "cifar10_jpeg-test-meta.json"]  # no temporary files left behind
    mtime = (cache / files[0]).stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger=LOGGER):
        start = time.perf_counter()
        x2, y2 = data.load_arrays("cifar10", "test", cache_dir=cache)
        seconds = time.perf_counter() - start
    assert not decoded(caplog)
    assert seconds < first_seconds / 3, (seconds, first_seconds)
    assert (cache / files[0]).stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(x2, x)
    np.testing.assert_array_equal(y2, y)
    # A limited request is served from the full cache.
    x3, _ = data.load_arrays("cifar10", "test", limit=8, cache_dir=cache)
    np.testing.assert_array_equal(x3, x[::1250])


def test_cache_survives_a_copied_source(course_data, test_split_cache, tmp_path, monkeypatch, caplog):
    """The same npz copied elsewhere (new mtime) matches by content hash: no re-decode."""
    cache, x, _, _ = test_split_cache
    folder = tmp_path / "copy"
    folder.mkdir()
    shutil.copy(course_data / "cifar10_jpeg.npz", folder / "cifar10_jpeg.npz")
    monkeypatch.setenv("COURSE_DATA", str(folder))
    with caplog.at_level(logging.INFO, logger=LOGGER):
        x2, _ = data.load_arrays("cifar10", "test", limit=4, cache_dir=cache)
    assert not decoded(caplog)
    np.testing.assert_array_equal(x2, x[::2500])


def write_mini_cifar(folder, npz, n):
    """A cifar10_jpeg.npz holding only the first ``n`` test images (same format)."""
    o = npz["test_offsets"]
    np.savez(folder / "cifar10_jpeg.npz", jpeg_header=npz["jpeg_header"],
             test_scan=npz["test_scan"][: o[n]], test_offsets=o[: n + 1],
             test_labels=npz["test_labels"][:n], classes=npz["classes"])


@pytest.mark.parametrize("damage", ["flip_byte", "truncate", "drop_meta", "source_changed"])
def test_corrupt_or_stale_cache_is_rebuilt(cifar_npz, tmp_path, monkeypatch, caplog, damage):
    # A 300-image source keeps the rebuilds cheap; the mechanism does not depend on the size.
    source, cache = tmp_path / "data", tmp_path / "cache"
    source.mkdir()
    write_mini_cifar(source, cifar_npz, 300)
    monkeypatch.setenv("COURSE_DATA", str(source))
    x, _ = data.load_arrays("cifar10", "test", cache_dir=cache)
    images = cache / "cifar10_jpeg-test-images.npy"
    raw = bytearray(images.read_bytes())
    n = 300
    if damage == "flip_byte":
        raw[len(raw) // 2] ^= 0xFF
        images.write_bytes(bytes(raw))
    elif damage == "truncate":
        images.write_bytes(bytes(raw[: len(raw) // 3]))
    elif damage == "drop_meta":
        (cache / "cifar10_jpeg-test-meta.json").unlink()
    else:
        n = 200
        write_mini_cifar(source, cifar_npz, n)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        x2, y2 = data.load_arrays("cifar10", "test", cache_dir=cache)
    assert decoded(caplog)
    assert len(x2) == len(y2) == n
    np.testing.assert_array_equal(x2, x[:n])
    np.testing.assert_array_equal(np.load(images), x[:n])  # the rebuilt cache is whole again
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        f"cifar10_jpeg-test-{part}" for part in ("images.npy", "labels.npy", "meta.json"))


def test_subset_decoding_is_fast_and_not_cached(course_data, cifar_npz, tmp_path):
    start = time.perf_counter()
    x, y = data.load_arrays("cifar10", "train", limit=50, cache_dir=tmp_path)
    assert time.perf_counter() - start < 10
    assert x.shape == (50, 32, 32, 3) and y.shape == (50,)
    for k in (0, 17, 49):  # 50 of 50,000: every 1,000th image
        np.testing.assert_array_equal(x[k], pillow_decode(cifar_npz, "train", 1000 * k))
    assert np.bincount(y, minlength=10).tolist() == [5] * 10  # the copy is sorted by class
    assert list(tmp_path.iterdir()) == []  # only whole splits are cached


def test_subset_indices_spread_over_a_sorted_split():
    labels = np.repeat(np.arange(10), 1000)  # sorted by class, like the CIFAR-10 JPEG copy
    keep = data.subset_indices(10_000, 1000)
    assert len(set(keep.tolist())) == 1000 and keep[0] == 0 and keep[-1] < 10_000
    assert np.bincount(labels[keep], minlength=10).tolist() == [100] * 10
    assert data.subset_indices(5, 10).tolist() == [0, 1, 2, 3, 4]
    assert data.subset_indices(5, None).tolist() == [0, 1, 2, 3, 4]


# ---------------------------------------------------------------------------------------------
# clear errors
# ---------------------------------------------------------------------------------------------

def test_empty_course_data_folder_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA", str(tmp_path))
    for name in ("mnist", "cifar10"):
        with pytest.raises(data.DataNotFoundError) as err:
            data.load_arrays(name, "test")
        message = str(err.value)
        for needle in ("COURSE_DATA", str(tmp_path), "mnist.npz", "cifar10_jpeg.npz", "download"):
            assert needle in message


def test_no_data_and_no_download_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.delenv("COURSE_DATA", raising=False)
    with pytest.raises(data.DataNotFoundError) as err:
        data.load_arrays("mnist", "test", root=tmp_path, download=False)
    message = str(err.value)
    assert "COURSE_DATA" in message and "download=True" in message and "mnist.npz" in message


def test_offline_file_in_root_is_used(course_data, tmp_path, monkeypatch):
    monkeypatch.delenv("COURSE_DATA", raising=False)
    shutil.copy(course_data / "mnist.npz", tmp_path / "mnist.npz")
    x, _ = data.load_arrays("mnist", "test", limit=4, root=tmp_path, download=False)
    assert x.shape == (4, 28, 28)


def test_corrupt_npz_is_reported(course_data, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA", str(tmp_path))
    (tmp_path / "cifar10_jpeg.npz").write_bytes(b"this is not a zip file")
    with pytest.raises(data.CorruptDataError, match="cifar10_jpeg.npz.*corrupt"):
        data.load_arrays("cifar10", "test", cache_dir=tmp_path / "cache")
    (tmp_path / "mnist.npz").write_bytes((course_data / "mnist.npz").read_bytes()[:1_000_000])
    with pytest.raises(data.CorruptDataError, match="mnist.npz"):
        data.load_arrays("mnist", "train")
    np.savez(tmp_path / "mnist.npz", x_train=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(data.CorruptDataError, match="lacks y_train"):
        data.load_arrays("mnist", "train")


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown data set"):
        data.load_arrays("imagenet", "train")
    with pytest.raises(ValueError, match="'train' or 'test'"):
        data.load_arrays("mnist", "val")


# ---------------------------------------------------------------------------------------------
# the preprocessing convention
# ---------------------------------------------------------------------------------------------

def test_mnist_convention_pads_to_32_and_normalizes():
    conv = data.convention("mnist")
    assert (conv.stored_size, conv.input_size, conv.padding) == (28, 32, 2)
    images = np.random.default_rng(0).integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    x = data.to_tensor(images, "mnist")
    assert x.shape == (3, 1, 32, 32) and x.dtype == torch.float32
    mean, std = conv.mean[0], conv.std[0]
    expected = (images / 255.0 - mean) / std
    np.testing.assert_allclose(x[:, 0, 2:30, 2:30].numpy(), expected, atol=1e-5)
    border = x[:, 0].clone()
    border[:, 2:30, 2:30] = float("nan")
    border = border[~torch.isnan(border)]
    np.testing.assert_allclose(border.numpy(), -mean / std, atol=1e-6)  # padded with background 0
    single = data.to_tensor(images[1], "mnist")  # one image: [28, 28]
    torch.testing.assert_close(single, x[1:2])


def test_cifar_convention_and_denormalize():
    conv = data.convention("cifar10")
    images = np.random.default_rng(1).integers(0, 256, size=(2, 32, 32, 3), dtype=np.uint8)
    x = data.to_tensor(images, "cifar10")
    assert x.shape == (2, 3, 32, 32)
    for c in range(3):
        expected = (images[..., c] / 255.0 - conv.mean[c]) / conv.std[c]
        np.testing.assert_allclose(x[:, c].numpy(), expected, atol=1e-5)
    back = data.denormalize(x, "cifar10").permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(back, images / 255.0, atol=1e-5)
    with pytest.raises(TypeError, match="uint8"):
        data.prepare(images.astype(np.float32), "cifar10")
    with pytest.raises(ValueError, match="expected cifar10 images"):
        data.prepare(images[:, :30], "cifar10")


# ---------------------------------------------------------------------------------------------
# augmentation semantics on the CPU
# ---------------------------------------------------------------------------------------------

def random_images(n, c=3, h=8, w=8, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, size=(n, c, h, w),
                                                                 dtype=np.uint8))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mode,np_mode", [("reflect", "reflect"), ("zeros", "constant")])
def test_random_crop_is_a_window_of_the_padded_image(mode, np_mode, device):
    p, x = 3, random_images(300, h=8, w=10)
    g = torch.Generator(device=device).manual_seed(0)
    out = data.random_crop(x.to(device), p, g, padding_mode=mode).cpu()
    assert out.shape == x.shape and out.dtype == x.dtype
    padded = np.pad(x.numpy(), ((0, 0), (0, 0), (p, p), (p, p)), mode=np_mode)
    offsets = set()
    for i in range(len(x)):
        matches = [(dy, dx) for dy in range(2 * p + 1) for dx in range(2 * p + 1)
                   if np.array_equal(out[i].numpy(), padded[i, :, dy:dy + 8, dx:dx + 10])]
        assert matches, f"crop {i} is not a window of the padded image"
        offsets.update(matches)
    assert len(offsets) == (2 * p + 1) ** 2  # every offset in range shows up, none outside
    again = data.random_crop(x.to(device), p, torch.Generator(device=device).manual_seed(0),
                             padding_mode=mode)
    assert torch.equal(again.cpu(), out)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("scale,ratio,h,w", [(data.PAPER_SCALE, data.PAPER_RATIO, 32, 32),
                                             ((0.25, 1.0), data.PAPER_RATIO, 32, 32),
                                             ((0.3, 0.6), (0.5, 2.0), 24, 40)])
def test_resized_crop_boxes_follow_the_papers_law(scale, ratio, h, w, device):
    n = 20_000
    boxes = data.resized_crop_boxes(n, h, w, scale, ratio, torch.Generator(device=device).manual_seed(0), device)
    assert boxes.shape == (n, 4) and boxes.dtype == torch.int64 and boxes.device.type == device
    top, left, bh, bw = boxes.cpu().T.double()
    assert (top >= 0).all() and (left >= 0).all() and (bh >= 1).all() and (bw >= 1).all()
    assert (top + bh <= h).all() and (left + bw <= w).all()  # every box inside the image
    # drawn boxes (not the rare fallback) have an area and an aspect inside the ranges, up to the
    # rounding to whole pixels
    fraction, aspect = bh * bw / (h * w), bw / bh
    slack = 2.5 / min(h, w)
    assert fraction.min() > scale[0] * (1 - slack) ** 2
    assert fraction.max() < min(1.0, scale[1] * (1 + slack) ** 2) + 1e-9
    assert aspect.min() > ratio[0] * (1 - slack) and aspect.max() < ratio[1] / (1 - slack)
    # the area fraction is uniform where every draw fits (small boxes), the log-aspect symmetric
    # about the centre of its range, and the position uniform over the free room
    third = scale[0] + (scale[1] - scale[0]) / 3
    small = fraction < third
    assert abs(float(fraction[small].mean()) - (scale[0] + third) / 2) < 0.03 * (third - scale[0]) + 1 / (h * w)
    halves = (fraction[small] < (scale[0] + third) / 2).double().mean()
    assert 0.42 < float(halves) < 0.58
    if h == w:  # in a square every small box fits whatever its aspect: no draw of one aspect is redrawn
        centre = (math.log(ratio[0]) + math.log(ratio[1])) / 2
        assert abs((aspect[small].log() - centre).mean()) < 0.05
    room = (h - bh).clamp(min=1)
    assert 0.4 < float((top / room)[bh < h].mean()) < 0.6
    again = data.resized_crop_boxes(n, h, w, scale, ratio, torch.Generator(device=device).manual_seed(0), device)
    assert torch.equal(again, boxes)


def test_resized_crop_boxes_fall_back_to_the_largest_centred_box():
    # nothing of area 100% with aspect 2 fits a square: torchvision's fallback, the whole image
    boxes = data.resized_crop_boxes(5, 10, 10, (1.0, 1.0), (2.0, 3.0), torch.Generator().manual_seed(0))
    assert boxes.tolist() == [[2, 0, 5, 10]] * 5  # widest box of the nearest allowed aspect, centred
    boxes = data.resized_crop_boxes(5, 10, 10, (1.0, 1.0), (0.5, 2.0), torch.Generator().manual_seed(0))
    assert (boxes[:, 2] * boxes[:, 3] <= 100).all()


@pytest.mark.parametrize("device", DEVICES)
def test_random_resized_crop_resamples_the_box(device):
    # an image whose pixel values are their own column index: a resized box shows a linear ramp
    # from the box's left edge to its right edge
    n, h, w = 64, 16, 16
    ramp = torch.arange(w, dtype=torch.float32).expand(n, 1, h, w).contiguous().to(device)
    g = torch.Generator(device=device).manual_seed(1)
    out = data.random_resized_crop(ramp, (0.2, 0.9), data.PAPER_RATIO, g)
    assert out.shape == ramp.shape and out.dtype == torch.float32 and out.device.type == device
    g = torch.Generator(device=device).manual_seed(1)
    boxes = data.resized_crop_boxes(n, h, w, (0.2, 0.9), data.PAPER_RATIO, g, device).cpu()
    out = out.cpu()
    for i in (0, 17, 63):
        _, left, _, bw = boxes[i].tolist()
        centres = left - 0.5 + (torch.arange(w) + 0.5) * bw / w  # output pixel centres in the input
        expected = centres.clamp(0, w - 1)
        torch.testing.assert_close(out[i, 0, 0], expected, atol=1e-4, rtol=0)
        torch.testing.assert_close(out[i, 0], out[i, 0, :1].expand(h, w), atol=1e-4, rtol=0)  # only columns vary
    # uint8 images stay uint8, rounded; a box of the whole image returns the image itself
    x = random_images(8, h=12, w=12).to(device)
    same = data.random_resized_crop(x, (1.0, 1.0), (1.0, 1.0), torch.Generator(device=device).manual_seed(0))
    assert same.dtype == torch.uint8 and torch.equal(same, x)
    bigger = data.random_resized_crop(x, (0.5, 1.0), generator=torch.Generator(device=device).manual_seed(0),
                                      size=(20, 20))
    assert bigger.shape == (8, 3, 20, 20)


def test_augment_rejects_impossible_ranges():
    with pytest.raises(ValueError, match="area fractions"):
        data.Augment(scale=(0.5, 1.5))
    with pytest.raises(ValueError, match="choose one crop"):
        data.Augment(crop_padding=4, scale=(0.25, 1.0))
    with pytest.raises(ValueError, match="aspect ratios"):
        data.Augment(scale=(0.25, 1.0), ratio=(2.0, 1.0))


@pytest.mark.parametrize("device", DEVICES)
def test_random_flip_mirrors_about_half(device):
    x = random_images(400, h=5, w=7)
    out = data.random_flip(x.to(device), torch.Generator(device=device).manual_seed(3)).cpu()
    mirrored = torch.from_numpy(np.flip(x.numpy(), axis=3).copy())
    flipped = [torch.equal(o, m) for o, m in zip(out, mirrored)]
    kept = [torch.equal(o, i) for o, i in zip(out, x)]
    assert all(f != k for f, k in zip(flipped, kept))  # each image exactly one of the two
    assert 0.4 < np.mean(flipped) < 0.6
    again = data.random_flip(x.to(device), torch.Generator(device=device).manual_seed(3))
    assert torch.equal(out, again.cpu())


def test_cutout_masks_one_square():
    x = torch.ones(50, 3, 16, 16)
    out = data.cutout(x, 6, torch.Generator().manual_seed(0))
    holes = out[:, 0] == 0
    assert torch.equal(holes, (out == 0).all(dim=1))  # same square in every channel
    for hole in holes:
        ys, xs = np.nonzero(hole.numpy())
        assert 0 < len(ys) <= 36
        assert len(ys) == (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)  # a rectangle


# ---------------------------------------------------------------------------------------------
# GpuLoader (on the CPU here)
# ---------------------------------------------------------------------------------------------

def synthetic(n=103, seed=0):
    images = np.random.default_rng(seed).integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    return images, np.arange(n)  # label = index, so batches reveal the order


def epoch_labels(loader):
    return torch.cat([y for _, y in loader]).tolist()


def test_loader_batches_and_values():
    images, labels = synthetic()
    loader = data.GpuLoader(images, labels, 10, shuffle=True, device="cpu", seed=1)
    assert len(loader) == 11
    batches = list(loader)
    assert [len(y) for _, y in batches] == [10] * 10 + [3]
    x, y = batches[0]
    assert x.shape == (10, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    torch.testing.assert_close(x, data.to_tensor(images[y.numpy()], "cifar10"))
    seen = torch.cat([y for _, y in batches]).tolist()
    assert sorted(seen) == list(range(103)) and seen != list(range(103))
    dropping = data.GpuLoader(images, labels, 10, shuffle=True, device="cpu", drop_last=True)
    assert len(dropping) == 10 and all(len(y) == 10 for _, y in dropping)
    ordered = data.GpuLoader(images, labels, 50, device="cpu")
    assert epoch_labels(ordered) == list(range(103))


def test_loader_seeds_and_epochs():
    images, labels = synthetic()
    a = data.GpuLoader(images, labels, 16, shuffle=True, augment=True, device="cpu", seed=7)
    b = data.GpuLoader(images, labels, 16, shuffle=True, augment=True, device="cpu", seed=7)
    for (xa, ya), (xb, yb) in zip(a, b):  # same seed, same epoch -> same batches
        assert torch.equal(ya, yb) and torch.equal(xa, xb)
    epoch1 = epoch_labels(a)  # the next iteration is the next epoch
    a.set_epoch(0)
    epoch0 = epoch_labels(a)
    assert epoch1 != epoch0 and sorted(epoch1) == sorted(epoch0)
    b.set_epoch(0)
    assert epoch_labels(b) == epoch0
    other = data.GpuLoader(images, labels, 16, shuffle=True, device="cpu", seed=8)
    assert epoch_labels(other) != epoch0


@pytest.mark.parametrize("device", DEVICES)
def test_loader_augmentation_keeps_labels_and_changes_pixels(device):
    images, labels = synthetic(64)
    plain = data.GpuLoader(images, labels, 64, device=device)
    augmented = data.GpuLoader(images, labels, 64, augment=True, device=device, channels_last=True)
    (x0, y0), (x1, y1) = next(iter(plain)), next(iter(augmented))
    assert x1.device.type == device
    assert torch.equal(y0, y1) and x1.shape == x0.shape
    assert x1.is_contiguous(memory_format=torch.channels_last)
    assert (x1 - x0).abs().flatten(1).amax(1).gt(0).float().mean() > 0.8


def test_loader_mnist_shapes():
    images = np.random.default_rng(0).integers(0, 256, size=(20, 28, 28), dtype=np.uint8)
    loader = data.GpuLoader(images, np.zeros(20), 8, augment=True, device="cpu", dataset="mnist")
    x, y = next(iter(loader))
    assert x.shape == (8, 1, 32, 32) and y.dtype == torch.int64


@pytest.mark.parametrize("n,drop_last", [(99, False), (103, False), (103, True)])
def test_loader_shards_for_ddp(n, drop_last):
    images, labels = synthetic(n)
    ws = 3
    shards = [epoch_labels(data.GpuLoader(images, labels, 8, shuffle=True, device="cpu", seed=5,
                                          drop_last=False, rank=r, world_size=ws))
              if not drop_last else
              data.GpuLoader(images, labels, 8, shuffle=True, device="cpu", seed=5, drop_last=True,
                             rank=r, world_size=ws).indices(0).tolist()
              for r in range(ws)]
    sizes = {len(s) for s in shards}
    assert len(sizes) == 1  # equal size on every rank
    union = [i for s in shards for i in s]
    if drop_last:
        assert sizes == {n // ws} and len(set(union)) == len(union)  # disjoint
    elif n % ws == 0:
        assert sorted(union) == list(range(n))  # disjoint and covering
    else:
        assert set(union) == set(range(n)) and len(union) - n == ws - n % ws  # wrap-around pad
    # The permutation is shared: rank slices come from one shuffled order.
    single = data.GpuLoader(images, labels, 8, shuffle=True, device="cpu", seed=5).indices(0)
    assert union[: n // ws * ws] == single[: n // ws * ws].tolist()


def test_loader_exact_shards_for_evaluation():
    images, labels = synthetic(100)
    shards = [epoch_labels(data.GpuLoader(images, labels, 7, device="cpu", rank=r, world_size=3,
                                          even_shards=False)) for r in range(3)]
    assert sorted(i for s in shards for i in s) == list(range(100))
    assert sorted(len(s) for s in shards) == [33, 33, 34]


def test_loader_rejects_bad_arguments():
    images, labels = synthetic(10)
    with pytest.raises(ValueError, match="rank"):
        data.GpuLoader(images, labels, 4, device="cpu", rank=2, world_size=2)
    with pytest.raises(ValueError, match="labels"):
        data.GpuLoader(images, labels[:5], 4, device="cpu")


def test_get_loaders_on_real_data(course_data):
    train, test = data.get_loaders("cifar10", 32, device="cpu", limit=100)
    x, y = next(iter(train))
    assert x.shape == (32, 3, 32, 32) and 0 <= y.min() and y.max() < 10
    assert len(test) == 4 and test.augment is None and not test.shuffle
    train, test = data.get_loaders("mnist", 16, device="cpu", limit=40, test_limit=20)
    x, _ = next(iter(train))
    assert x.shape == (16, 1, 32, 32) and test.num_samples == 20


# ---------------------------------------------------------------------------------------------
# ImageFolder path
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def tiny_imagefolder(tmp_path):
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for cls in ("cat", "dog"):
            folder = tmp_path / split / cls
            folder.mkdir(parents=True)
            for i in range(3):
                pixels = rng.integers(0, 256, size=(40, 60, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return tmp_path


def test_imagefolder_loaders(tiny_imagefolder):
    train, val = data.imagefolder_loaders(tiny_imagefolder, batch_size=4, workers=0)
    x, y = next(iter(train))
    assert x.shape == (4, 3, 224, 224) and x.dtype == torch.float32 and set(y.tolist()) <= {0, 1}
    assert train.dataset.classes == ["cat", "dog"]
    xv, yv = next(iter(val))
    assert yv.tolist() == [0, 0, 0, 1]
    # Evaluation view computed independently with Pillow: shorter side 256, centre 224 crop.
    img = Image.open(tiny_imagefolder / "val" / "cat" / "0.png").convert("RGB")
    w = int(256 * 60 / 40)
    big = np.asarray(img.resize((w, 256), Image.BILINEAR), dtype=np.float64) / 255
    top, left = round((256 - 224) / 2), round((w - 224) / 2)
    crop = big[top:top + 224, left:left + 224]
    expected = (crop - data.IMAGENET_MEAN) / data.IMAGENET_STD
    np.testing.assert_allclose(xv[0].permute(1, 2, 0).numpy(), expected, atol=1e-5)


def test_imagefolder_training_crop_follows_the_paper():
    from torchvision import transforms as T

    rrc = next(t for t in data.imagefolder_train_transform().transforms
               if isinstance(t, T.RandomResizedCrop))
    assert rrc.scale == (0.08, 1.0)
    assert rrc.ratio == pytest.approx((3 / 4, 4 / 3))
    out = data.imagefolder_train_transform()(Image.new("RGB", (50, 30)))
    assert out.shape == (3, 224, 224)


def test_imagefolder_missing_folder_says_what_to_do(tmp_path):
    with pytest.raises(data.DataNotFoundError, match=r"train/<class>/<image>"):
        data.imagefolder_loaders(tmp_path, batch_size=2, workers=0)
