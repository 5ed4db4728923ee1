"""Training augmentation as batched tensor operations (any device, no Python loop over images).

:func:`random_crop` (padded random crop), :func:`random_flip` (horizontal mirror) and
:func:`cutout`; :class:`Augment` says which of them a loader applies, :data:`DEFAULT_AUGMENT`
what each data set uses by default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

# GoogLeNet's training patches (Szegedy et al. 2015, section 6): "patches of the image whose size
# is distributed evenly between 8% and 100% of the image area with aspect ratio constrained to the
# interval [3/4, 4/3]".
PAPER_SCALE = (0.08, 1.0)
PAPER_RATIO = (3 / 4, 4 / 3)


def _randint(high: int, n: int, generator: torch.Generator | None, device: torch.device):
    where = generator.device if generator is not None else device
    return torch.randint(0, high, (n,), generator=generator, device=where).to(device)


def _rand(n: int, generator: torch.Generator | None, device: torch.device):
    where = generator.device if generator is not None else device
    return torch.rand((n,), generator=generator, device=where).to(device)


def _padded_index(size: int, padding: int, mode: str, device: torch.device):
    """For each position of the padded axis: the source index, and whether it is inside the image."""
    i = torch.arange(-padding, size + padding, device=device)
    inside = (i >= 0) & (i < size)
    if mode == "reflect":  # mirror without repeating the edge pixel, like numpy/PyTorch "reflect"
        i = i.abs()
        i = torch.where(i >= size, 2 * (size - 1) - i, i)
    elif mode == "zeros":
        i = i.clamp(0, size - 1)
    else:
        raise ValueError(f"padding_mode must be 'reflect' or 'zeros', got {mode!r}")
    return i, inside


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator | None = None,
                padding_mode: str = "reflect") -> torch.Tensor:
    """Padded random crop: pad each NCHW image by ``padding`` on every side and cut out an
    ``H x W`` window at an offset drawn uniformly from ``0 .. 2*padding`` per axis, per image.

    ``padding_mode``: "reflect" (mirror, edge pixel not repeated; the CIFAR-10 default) or
    "zeros". One gather for the whole batch; works for any dtype and device. The result has
    channels_last strides.
    """
    if padding == 0:
        return x
    n, _, h, w = x.shape
    if padding_mode == "reflect" and padding >= min(h, w):
        raise ValueError(f"reflect padding {padding} needs images larger than {padding} pixels")
    rows, rows_inside = _padded_index(h, padding, padding_mode, x.device)
    cols, cols_inside = _padded_index(w, padding, padding_mode, x.device)
    top = _randint(2 * padding + 1, n, generator, x.device)
    left = _randint(2 * padding + 1, n, generator, x.device)
    r = top[:, None] + torch.arange(h, device=x.device)  # [N, H] positions in the padded image
    c = left[:, None] + torch.arange(w, device=x.device)  # [N, W]
    batch = torch.arange(n, device=x.device)[:, None, None]
    out = x[batch, :, rows[r][:, :, None], cols[c][:, None, :]]  # [N, H, W, C]
    if padding_mode == "zeros":
        inside = rows_inside[r][:, :, None] & cols_inside[c][:, None, :]
        out = torch.where(inside[..., None], out, torch.zeros((), dtype=x.dtype, device=x.device))
    return out.permute(0, 3, 1, 2)


def resized_crop_boxes(n: int, height: int, width: int, scale: tuple[float, float] = PAPER_SCALE,
                       ratio: tuple[float, float] = PAPER_RATIO, generator: torch.Generator | None = None,
                       device: torch.device | str = "cpu", tries: int = 10) -> torch.Tensor:
    """``n`` random boxes ``[top, left, h, w]`` (integer pixels, int64 ``[n, 4]``) inside a
    ``height x width`` image: area a fraction of the image drawn uniformly from ``scale``, aspect
    ratio ``w / h`` log-uniformly from ``ratio``.

    A draw whose box does not fit the image is drawn again, up to ``tries`` times for all images at
    once; an image with no fitting draw gets the largest centred box of an aspect ratio inside
    ``ratio`` (the rule of torchvision's ``RandomResizedCrop``, so the boxes follow the same law)."""
    device = torch.device(device)
    area = height * width
    where = generator.device if generator is not None else device
    fraction = torch.empty(n, tries, device=where).uniform_(*scale, generator=generator).to(device)
    log_ratio = torch.empty(n, tries, device=where).uniform_(math.log(ratio[0]), math.log(ratio[1]),
                                                              generator=generator).to(device)
    aspect = log_ratio.exp()
    w = (fraction * area * aspect).sqrt().round().long()
    h = (fraction * area / aspect).sqrt().round().long()
    fits = (w >= 1) & (h >= 1) & (w <= width) & (h <= height)
    first = torch.where(fits.any(1), fits.float().argmax(1), torch.full((n,), -1, device=device))
    # the fallback: the whole image if its own aspect lies inside ``ratio``, else the widest or
    # tallest box of the nearest allowed aspect
    own = width / height
    if own < ratio[0]:
        fb_w, fb_h = width, int(round(width / ratio[0]))
    elif own > ratio[1]:
        fb_w, fb_h = int(round(height * ratio[1])), height
    else:
        fb_w, fb_h = width, height
    pick = first.clamp(min=0)[:, None]
    ok = first >= 0
    h = torch.where(ok, h.gather(1, pick)[:, 0], torch.full_like(first, fb_h))
    w = torch.where(ok, w.gather(1, pick)[:, 0], torch.full_like(first, fb_w))
    u = torch.rand((n, 2), generator=generator, device=where).to(device)
    top = torch.where(ok, (u[:, 0] * (height - h + 1)).long().clamp(max=height - 1), (height - h) // 2)
    left = torch.where(ok, (u[:, 1] * (width - w + 1)).long().clamp(max=width - 1), (width - w) // 2)
    return torch.stack([top, left, h, w], 1)


def random_resized_crop(x: torch.Tensor, scale: tuple[float, float] = PAPER_SCALE,
                        ratio: tuple[float, float] = PAPER_RATIO, generator: torch.Generator | None = None,
                        size: tuple[int, int] | None = None) -> torch.Tensor:
    """The paper's scale augmentation: cut a random box out of each NCHW image
    (:func:`resized_crop_boxes`: area fraction in ``scale``, aspect ratio in ``ratio``) and resize
    it to ``size`` (default: the image's own size), bilinearly.

    One ``grid_sample`` for the whole batch, on any device; an integer input (uint8 images) comes
    back rounded to its own dtype, a floating one in its own dtype.  So an object fills between
    ``1 / sqrt(max scale)`` and ``1 / sqrt(min scale)`` times its size in the image: the range of
    sizes a network trained this way has seen, and so the test scales it can use (chapter 8)."""
    n, _, height, width = x.shape
    out_h, out_w = size or (height, width)
    top, left, h, w = resized_crop_boxes(n, height, width, scale, ratio, generator, x.device).T
    # the affine map from the output's [-1, 1] square onto the box (align_corners=False: -1 and 1
    # are the outer edges of the border pixels)
    theta = torch.zeros(n, 2, 3, device=x.device)
    theta[:, 0, 0] = w / width
    theta[:, 0, 2] = (2 * left + w) / width - 1
    theta[:, 1, 1] = h / height
    theta[:, 1, 2] = (2 * top + h) / height - 1
    grid = F.affine_grid(theta, [n, x.shape[1], out_h, out_w], align_corners=False)
    source = x if x.is_floating_point() else x.float()
    out = F.grid_sample(source, grid.to(source.dtype), mode="bilinear", padding_mode="border", align_corners=False)
    if not x.is_floating_point():
        info = torch.iinfo(x.dtype)
        out = out.round_().clamp_(info.min, info.max)
    return out.to(x.dtype)


def random_flip(x: torch.Tensor, generator: torch.Generator | None = None,
                p: float = 0.5) -> torch.Tensor:
    """Mirror each NCHW image left-right with probability ``p``."""
    flip = _rand(x.shape[0], generator, x.device) < p
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def cutout(x: torch.Tensor, size: int, generator: torch.Generator | None = None,
           fill: float = 0.0) -> torch.Tensor:
    """Cutout (DeVries & Taylor 2017): set a ``size x size`` square at a random centre of each
    image to ``fill`` (the square may be clipped at the border). Applied after normalisation, so
    ``fill=0`` is the mean colour."""
    if size == 0:
        return x
    n, _, h, w = x.shape
    cy = _randint(h, n, generator, x.device)[:, None]
    cx = _randint(w, n, generator, x.device)[:, None]
    ys = torch.arange(h, device=x.device)[None, :] - (cy - size // 2)  # [N, H]
    xs = torch.arange(w, device=x.device)[None, :] - (cx - size // 2)
    hole = ((ys >= 0) & (ys < size))[:, :, None] & ((xs >= 0) & (xs < size))[:, None, :]
    return x.masked_fill(hole[:, None], fill)


@dataclass(frozen=True)
class Augment:
    """Training augmentation: padded random crop or random-resized crop (``scale``, the paper's
    scale augmentation), horizontal flip, cutout (0 / False / None = off)."""

    crop_padding: int = 0
    padding_mode: str = "reflect"
    scale: tuple[float, float] | None = None
    ratio: tuple[float, float] = PAPER_RATIO
    flip: bool = False
    cutout: int = 0

    def __post_init__(self) -> None:
        if self.scale is not None:
            lo, hi = self.scale
            if not 0 < lo <= hi <= 1:
                raise ValueError(f"scale is a range of area fractions 0 < low <= high <= 1, got {self.scale}")
            if self.crop_padding:
                raise ValueError("choose one crop: crop_padding (padded random crop) or scale (random-resized crop)")
        if not 0 < self.ratio[0] <= self.ratio[1]:
            raise ValueError(f"ratio is a range of aspect ratios 0 < low <= high, got {self.ratio}")


# Digits must not be mirrored; their background is 0, so MNIST pads with zeros.
DEFAULT_AUGMENT = {
    "cifar10": Augment(crop_padding=4, padding_mode="reflect", flip=True),
    "mnist": Augment(crop_padding=2, padding_mode="zeros"),
}


def _resolve_augment(augment: bool | Augment | None, name: str) -> Augment | None:
    if augment is None or augment is False:
        return None
    if augment is True:
        return DEFAULT_AUGMENT[name]
    if isinstance(augment, Augment):
        return augment
    raise TypeError(f"augment must be True, False or an Augment(...), got {augment!r}")

