"""Training augmentation as batched tensor operations (any device, no Python loop over images).

:func:`random_crop` (padded random crop), :func:`random_flip` (horizontal mirror) and
:func:`cutout`; :class:`Augment` says which of them a loader applies, :data:`DEFAULT_AUGMENT`
what each data set uses by default.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


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
    """Training augmentation: padded random crop, horizontal flip, cutout (0 / False = off)."""

    crop_padding: int = 0
    padding_mode: str = "reflect"
    flip: bool = False
    cutout: int = 0


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

