"""The paper's views of an image: one centre crop, ten crops, or GoogLeNet's 144.

Szegedy et al., "Going Deeper with Convolutions" (CVPR 2015), section 7 and Table 3: the winning
ILSVRC 2014 entry classified each image from 144 views and averaged the softmax probabilities over
the views and over 7 models.  This module makes those views, exactly and in one batched pass
(:mod:`course_pkg.evaluate` scores them, :mod:`course_pkg.multicrop_figures` draws them):

- :func:`multicrop_views`   the views of an image or a batch (``"center"``, ``"ten"``, ``"googlenet144"``)
- :func:`view_order`        the order of the views: (scale, square, position, mirror) of each
- :func:`multicrop_boxes`   where each view comes from, for tests and figures
- :func:`n_views`           how many views a scheme makes
- :func:`distinct_views`    which views are the same pixels (a square image's three squares)

The protocol, made precise (every rule below is what the code does):

1. **Resize** so that the shorter side is ``s``: bilinear with antialiasing
   (``torch.nn.functional.interpolate(mode="bilinear", antialias=True, align_corners=False)``,
   the same call as ``torchvision.transforms.functional.resize`` on tensors).  The longer side
   becomes ``int(s * long / short)`` (truncated, torchvision's rule).  A resize to the size the
   image already has is skipped.  ``uint8`` images are resized in float32 and rounded back to
   ``uint8`` (torchvision's rule); floating images keep their dtype.
2. **Centre offset** of a length ``c`` window in a length ``L`` side: ``int(round((L - c) / 2))``
   with Python's ``round`` (halves to even), as in torchvision's ``center_crop``.
3. ``"center"`` (1 view): resize the shorter side to ``scales[0]`` (the usual single-crop
   protocol: 256 then the centre 224x224), take the centre ``crop x crop``.
   ``scales=None`` uses the image as given.
4. ``"ten"`` (10 views): resize the shorter side to ``scales[0]`` (``scales=None``: the image as
   given), then exactly ``torchvision.transforms.functional.ten_crop``: views 0-4 are the
   top-left, top-right, bottom-left, bottom-right and centre crops; views 5-9 are the same five
   crops taken from the horizontally mirrored image.  So view 5 is the mirror of view 1, 6 of 0,
   7 of 3, 8 of 2, and 9 is the mirror of the centre (shifted by one pixel when ``W - crop`` is
   odd, because of rule 2).
5. ``"googlenet144"`` (36 views per scale, 144 for the paper's 4 scales): for each scale ``s`` in
   ``scales`` resize the shorter side to ``s``; take three ``s x s`` squares — left, centre,
   right (top, centre, bottom for portrait images; a square image gives three identical
   squares); from each square the four corner and the centre ``crop x crop`` crops (rule 2 for the
   centre) and the whole square resized to ``crop x crop`` (rule 1); and the horizontal mirror of
   each of those 6.  Order: scale, square, position (top-left, top-right, bottom-left,
   bottom-right, centre, whole), mirror (unmirrored first), the last varying fastest: view
   ``((scale * 3 + square) * 6 + position) * 2 + mirror``.

A batch comes back image-major: ``views[i * V + v]`` is view ``v`` of image ``i``.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
SCHEMES = ("center", "ten", "googlenet144")
PAPER_SCALES = (256, 288, 320, 352)  # section 7: shorter side resized to these
PAPER_CROP = 224
FIVE_POSITIONS = ("top_left", "top_right", "bottom_left", "bottom_right", "center")
POSITIONS_144 = FIVE_POSITIONS + ("whole",)
SQUARES_LANDSCAPE = ("left", "center", "right")
SQUARES_PORTRAIT = ("top", "center", "bottom")


class ViewBox(NamedTuple):
    """Where one view comes from.

    ``x0, y0, x1, y1`` is the pixel box (end exclusive) in the image resized to ``resized_height x
    resized_width`` (shorter side ``scale``); ``ox0 .. oy1`` is the same box in the original
    image's coordinates (``x * width / resized_width``).  A mirrored view shows its box flipped
    left-right.  ``square`` is ``None`` for schemes without squares; ``position`` is one of
    :data:`POSITIONS_144` (for the mirrored half of ``"ten"`` it names the position in the mirrored
    image, as torchvision does).
    """

    scale: int
    square: str | None
    position: str
    mirror: bool
    x0: int
    y0: int
    x1: int
    y1: int
    resized_height: int
    resized_width: int
    ox0: float
    oy0: float
    ox1: float
    oy1: float


# ----------------------------------------------------------------------------------------------
# Geometry (pure Python, shared by the views, the boxes and the figure)


def resized_size(height: int, width: int, shorter_side: int | None) -> tuple[int, int]:
    """``(height, width)`` after resizing the shorter side to ``shorter_side`` (rule 1)."""
    if shorter_side is None or shorter_side == min(height, width):
        return height, width
    if width <= height:
        return int(shorter_side * height / width), shorter_side
    return shorter_side, int(shorter_side * width / height)


def centre_offset(length: int, window: int) -> int:
    """Start of a centred window (rule 2: Python's round, as torchvision's ``center_crop``)."""
    return int(round((length - window) / 2.0))


def _five_origins(height: int, width: int, crop: int) -> list[tuple[int, int]]:
    """``(x0, y0)`` of the five crops in torchvision's ``five_crop`` order."""
    return [
        (0, 0),
        (width - crop, 0),
        (0, height - crop),
        (width - crop, height - crop),
        (centre_offset(width, crop), centre_offset(height, crop)),
    ]


def _check_scheme(scheme: str, crop: int, scales) -> tuple[int | None, ...]:
    if scheme not in SCHEMES:
        raise ValueError(f"unknown multi-crop scheme {scheme!r}; choose one of {', '.join(SCHEMES)}")
    if not isinstance(crop, int) or crop < 1:
        raise ValueError(f"crop must be a positive int (the view's side in pixels), got {crop!r}")
    if scales is None:
        if scheme == "googlenet144":
            raise ValueError(
                "the 'googlenet144' scheme needs scales (shorter sides to resize to), e.g. "
                "scales=(256, 288, 320, 352); scales=None is only for 'center' and 'ten'"
            )
        return (None,)
    if isinstance(scales, int):
        scales = (scales,)
    scales = tuple(scales)
    if not scales or not all(isinstance(s, int) and s > 0 for s in scales):
        raise ValueError(f"scales must be a non-empty sequence of positive ints, got {scales!r}")
    small = [s for s in scales if s < crop]
    if small:
        raise ValueError(
            f"scale(s) {small} are smaller than crop={crop}: a {crop}x{crop} view cannot be cut from a "
            f"shorter side of {small[0]} pixels; use scales >= crop (the paper: crop 224, scales "
            "256-352; CIFAR-sized images: e.g. crop 32, scales (37, 41, 46, 50))"
        )
    return scales if scheme == "googlenet144" else scales[:1]


def n_views(scheme: str, scales: Sequence[int] | int | None = PAPER_SCALES) -> int:
    """Views per image: 1, 10, or 36 per scale (144 for the paper's four scales)."""
    if scheme == "center":
        return 1
    if scheme == "ten":
        return 10
    if scheme == "googlenet144":
        return 36 * len(_check_scheme(scheme, 1, scales))
    raise ValueError(f"unknown multi-crop scheme {scheme!r}; choose one of {', '.join(SCHEMES)}")



def view_order(scheme: str, n_scales: int = len(PAPER_SCALES)) -> list[tuple[int, int | None, str, bool]]:
    """``(scale, square, position, mirror)`` of every view, in the views' order (module docstring):
    ``scale`` and ``square`` are 0-based numbers (``square`` is ``None`` for schemes without
    squares), ``position`` one of :data:`POSITIONS_144`, ``mirror`` a bool.  The one definition of
    the order: :func:`multicrop_boxes` (hence the views) and the grader's descriptions follow it."""
    if scheme == "center":
        return [(0, None, "center", False)]
    if scheme == "ten":  # torchvision's ten_crop: five crops, then the same five of the mirror
        return [(0, None, position, mirror) for mirror in (False, True) for position in FIVE_POSITIONS]
    if scheme == "googlenet144":  # the last varying fastest
        return list(itertools.product(range(n_scales), range(3), POSITIONS_144, (False, True)))
    raise ValueError(f"unknown multi-crop scheme {scheme!r}; choose one of {', '.join(SCHEMES)}")

def multicrop_boxes(
    height: int,
    width: int,
    scheme: str = "googlenet144",
    crop: int = PAPER_CROP,
    scales: Sequence[int] | int | None = PAPER_SCALES,
) -> list[ViewBox]:
    """The box of every view of a ``height x width`` image, in the views' order (module docstring)."""
    used_scales = _check_scheme(scheme, crop, scales)
    boxes: list[ViewBox] = []

    def add(scale, rh, rw, square, position, mirror, x0, y0, size):
        sx, sy = width / rw, height / rh
        x1, y1 = x0 + size, y0 + size
        boxes.append(
            ViewBox(scale, square, position, mirror, x0, y0, x1, y1, rh, rw, x0 * sx, y0 * sy, x1 * sx, y1 * sy)
        )

    for s in used_scales:
        rh, rw = resized_size(height, width, s)
        scale = min(rh, rw)
        if min(rh, rw) < crop:
            raise ValueError(
                f"image of {height}x{width} is smaller than the {crop}x{crop} crop; resize it first "
                f"(pass scales=({crop},) or larger) or use a smaller crop"
            )
        five = _five_origins(rh, rw, crop)
        side = min(rh, rw)
        if rw >= rh:
            names = SQUARES_LANDSCAPE
            corners = [(x, 0) for x in (0, centre_offset(rw, side), rw - side)]
        else:
            names = SQUARES_PORTRAIT
            corners = [(0, y) for y in (0, centre_offset(rh, side), rh - side)]
        for _, square, pos, mirror in view_order(scheme, n_scales=1):  # the views of this scale
            if square is None:  # "center" and "ten": crops of the resized image
                x0, y0 = five[FIVE_POSITIONS.index(pos)]
                if mirror:  # torchvision: the same five crops of the mirrored image; x there = rw - x here
                    x0 = rw - (x0 + crop)
                add(scale, rh, rw, None, pos, mirror, x0, y0, crop)
            elif pos == "whole":
                add(scale, rh, rw, names[square], pos, mirror, *corners[square], side)
            else:
                sx0, sy0 = corners[square]
                x0, y0 = _five_origins(side, side, crop)[FIVE_POSITIONS.index(pos)]
                add(scale, rh, rw, names[square], pos, mirror, sx0 + x0, sy0 + y0, crop)
    return boxes


def distinct_views(
    height: int,
    width: int,
    scheme: str = "googlenet144",
    crop: int = PAPER_CROP,
    scales: Sequence[int] | int | None = PAPER_SCALES,
) -> tuple[list[int], list[int]]:
    """Which views of a ``height x width`` image hold the same pixels: ``(keep, inverse)``.

    ``keep`` lists the first view of each distinct box (in the views' order); ``inverse[v]`` is the
    position in ``keep`` of view ``v``'s box, so ``views[keep][inverse]`` gives back every view.
    Two views are the same pixels when they cut the same box, mirrored or not, from the same
    resized image: a square image's three ``"googlenet144"`` squares coincide (48 distinct views
    of 144), and a whole square of side ``crop`` is its own centre crop.  A model need only see
    ``keep``; averaging its scores over ``inverse`` is exactly the average over all the views.
    """
    keys = [(b.resized_height, b.resized_width, b.x0, b.y0, b.x1, b.y1, b.mirror)
            for b in multicrop_boxes(height, width, scheme, crop, scales)]
    first: dict[tuple, int] = {}
    keep: list[int] = []
    inverse: list[int] = []
    for v, key in enumerate(keys):
        if key not in first:
            first[key] = len(keep)
            keep.append(v)
        inverse.append(first[key])
    return keep, inverse


# ----------------------------------------------------------------------------------------------
# Views


def _as_batch(images) -> tuple[torch.Tensor, bool]:
    if not isinstance(images, torch.Tensor):
        raise TypeError(
            f"images must be a torch.Tensor [C, H, W] or [N, C, H, W], got {type(images).__name__}; "
            "for a numpy/PIL/skimage image use torch.as_tensor(array).permute(2, 0, 1)"
        )
    if images.ndim not in (3, 4):
        raise ValueError(
            f"images must be [C, H, W] or [N, C, H, W], got shape {tuple(images.shape)}; "
            "add or remove the batch dimension (unsqueeze(0) / squeeze(0))"
        )
    single = images.ndim == 3
    batch = images.unsqueeze(0) if single else images
    n, c, h, w = batch.shape
    if c not in (1, 3):
        hint = " (it looks channels-last: use .permute(0, 3, 1, 2))" if w in (1, 3) else ""
        raise ValueError(
            f"images must have 1 or 3 channels in dim -3, got shape {tuple(images.shape)}{hint}"
        )
    if n == 0:
        raise ValueError("images is an empty batch (N = 0); pass at least one image")
    if not (batch.dtype == torch.uint8 or batch.is_floating_point()):
        raise TypeError(f"images must be uint8 or floating point, got {batch.dtype}")
    return batch, single


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Rule 1 on a batch [..., C, H, W]: bilinear + antialias; uint8 rounded back."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    lead = x.shape[:-3]
    x4 = x.reshape(-1, *x.shape[-3:])
    half_on_cpu = x.device.type == "cpu" and x.dtype in (torch.float16, torch.bfloat16)
    work = x4.float() if (x.dtype == torch.uint8 or half_on_cpu) else x4
    out = F.interpolate(work, size=size, mode="bilinear", align_corners=False, antialias=True)
    if x.dtype == torch.uint8:
        out = out.round().clamp_(0, 255)
    return out.to(x.dtype).reshape(*lead, *out.shape[-3:])


class _ScalePlan(NamedTuple):
    """Index tensors for the views cut from one resized image (built once per geometry and device)."""

    size: tuple[int, int]  # resized (height, width)
    crop_dst: torch.Tensor  # [F] view indices of the crop x crop views
    crop_rows: torch.Tensor  # [F, crop]
    crop_cols: torch.Tensor  # [F, crop]; a mirrored view reads its columns right to left
    square_rows: torch.Tensor  # [K, side] the distinct whole squares (unmirrored)
    square_cols: torch.Tensor  # [K, side]
    whole_dst: tuple[torch.Tensor, torch.Tensor]  # view indices: unmirrored, mirrored
    whole_src: tuple[torch.Tensor, torch.Tensor]  # which square each takes


@functools.lru_cache(maxsize=64)
def _plan(height: int, width: int, scheme: str, crop: int, scales, device: str) -> tuple[int, list[_ScalePlan]]:
    boxes = multicrop_boxes(height, width, scheme, crop, scales)

    def tensor(values, dtype=torch.long):
        return torch.tensor(values, dtype=dtype).to(device)

    def ranges(starts, size, reverse=None):
        rows = []
        for i, a in enumerate(starts):
            r = list(range(a, a + size))
            rows.append(r[::-1] if reverse is not None and reverse[i] else r)
        return tensor(rows).reshape(len(starts), size)

    plans = []
    groups: dict[tuple[int, int, int], list[int]] = {}
    for i, b in enumerate(boxes):
        groups.setdefault((b.scale, b.resized_height, b.resized_width), []).append(i)
    for (_, rh, rw), idx in groups.items():
        crops = [i for i in idx if boxes[i].x1 - boxes[i].x0 == crop]
        wholes = [i for i in idx if boxes[i].x1 - boxes[i].x0 != crop]
        side = boxes[wholes[0]].x1 - boxes[wholes[0]].x0 if wholes else crop
        keys = sorted({(boxes[i].x0, boxes[i].y0) for i in wholes})
        src = {False: [], True: []}
        dst = {False: [], True: []}
        for i in wholes:
            dst[boxes[i].mirror].append(i)
            src[boxes[i].mirror].append(keys.index((boxes[i].x0, boxes[i].y0)))
        plans.append(
            _ScalePlan(
                size=(rh, rw),
                crop_dst=tensor(crops),
                crop_rows=ranges([boxes[i].y0 for i in crops], crop),
                crop_cols=ranges([boxes[i].x0 for i in crops], crop, [boxes[i].mirror for i in crops]),
                square_rows=ranges([k[1] for k in keys], side),
                square_cols=ranges([k[0] for k in keys], side),
                whole_dst=(tensor(dst[False]), tensor(dst[True])),
                whole_src=(tensor(src[False]), tensor(src[True])),
            )
        )
    return len(boxes), plans


def _cut(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Square windows from x [N, C, H, W] by one advanced-indexing gather -> [N, B, C, side, side]."""
    return x[:, :, rows[:, :, None], cols[:, None, :]].transpose(1, 2)


def multicrop_views(
    images: torch.Tensor,
    scheme: str = "googlenet144",
    crop: int = PAPER_CROP,
    scales: Sequence[int] | int | None = PAPER_SCALES,
) -> tuple[torch.Tensor, int]:
    """The views of one image ``[C, H, W]`` or a batch ``[N, C, H, W]`` (same size, uint8 or float).

    Returns ``(views, V)``: ``views`` is ``[N * V, C, crop, crop]`` image-major (``[V, C, crop,
    crop]`` for a single image), same dtype and device as ``images``; order and rules in the module
    docstring, boxes from :func:`multicrop_boxes`.  Python loops run over scales only: each scale
    is one resize, one gather of all ``crop x crop`` views, and one resize of the whole squares,
    written straight into the output.
    """
    batch, _ = _as_batch(images)
    n, c, h, w = batch.shape
    if scales is not None and not isinstance(scales, int):
        scales = tuple(int(s) for s in scales)  # hashable, for the plan cache
    v, plans = _plan(h, w, scheme, crop, scales, str(batch.device))
    out = torch.empty(n, v, c, crop, crop, dtype=batch.dtype, device=batch.device)
    for plan in plans:
        resized = _resize(batch, plan.size)
        if plan.crop_dst.numel():
            out[:, plan.crop_dst] = _cut(resized, plan.crop_rows, plan.crop_cols)
        if plan.square_rows.numel():
            squares = _cut(resized, plan.square_rows, plan.square_cols)  # [N, K, C, side, side]
            squares = _resize(squares, (crop, crop))
            out[:, plan.whole_dst[0]] = squares[:, plan.whole_src[0]]
            out[:, plan.whole_dst[1]] = squares[:, plan.whole_src[1]].flip(-1)  # an exact mirror
    return out.reshape(n * v, c, crop, crop), v
