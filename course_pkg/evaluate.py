"""Accuracy and the paper's multi-crop evaluation.

Szegedy et al., "Going Deeper with Convolutions" (CVPR 2015), section 7 and Table 3: the winning
ILSVRC 2014 entry classified each image from 144 views and averaged the softmax probabilities over
the views and over 7 models.  This module makes those views, exactly and in one batched pass, and
scores them:

- :func:`multicrop_views`   the views of an image or a batch (``"center"``, ``"ten"``, ``"googlenet144"``)
- :func:`multicrop_boxes`   where each view comes from, for tests and figures
- :func:`predict_multicrop` class probabilities averaged over views (and over an ensemble)
- :func:`topk_accuracy`, :func:`accuracy`   top-1 / top-5
- :func:`evaluate_multicrop`, :func:`format_table3`   a table shaped like the paper's Table 3
- :func:`plot_multicrop_views`   all views of one photograph, laid out by scale, square, position
- :func:`plot_multicrop_boxes`   where those views lie in the photograph

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
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import nullcontext
from typing import Callable, NamedTuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

SCHEMES = ("center", "ten", "googlenet144")
PAPER_SCALES = (256, 288, 320, 352)  # section 7: shorter side resized to these
PAPER_CROP = 224
# Table 3 of the paper: top-5 error (%) on the ILSVRC 2014 validation set, by (models, crops).
PAPER_TABLE3_TOP5_ERROR = {(1, 1): 10.07, (1, 10): 9.15, (1, 144): 7.89, (7, 1): 8.09, (7, 10): 7.62, (7, 144): 6.67}
FIVE_POSITIONS = ("top_left", "top_right", "bottom_left", "bottom_right", "center")
POSITIONS_144 = FIVE_POSITIONS + ("whole",)
SQUARES_LANDSCAPE = ("left", "center", "right")
SQUARES_PORTRAIT = ("top", "center", "bottom")
REDUCES = ("softmax_mean", "logit_mean", "max")

ModelOrModels = Union[nn.Module, Sequence[nn.Module]]


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
        if scheme == "center":
            add(scale, rh, rw, None, "center", False, *_five_origins(rh, rw, crop)[4], crop)
        elif scheme == "ten":
            five = _five_origins(rh, rw, crop)
            for pos, (x0, y0) in zip(FIVE_POSITIONS, five):
                add(scale, rh, rw, None, pos, False, x0, y0, crop)
            # torchvision: the same five crops of the mirrored image; x in the mirror = rw - x here
            for pos, (x0, y0) in zip(FIVE_POSITIONS, five):
                add(scale, rh, rw, None, pos, True, rw - (x0 + crop), y0, crop)
        else:
            side = min(rh, rw)
            if rw >= rh:
                names = SQUARES_LANDSCAPE
                corners = [(x, 0) for x in (0, centre_offset(rw, side), rw - side)]
            else:
                names = SQUARES_PORTRAIT
                corners = [(0, y) for y in (0, centre_offset(rh, side), rh - side)]
            for name, (sx0, sy0) in zip(names, corners):
                for pos in POSITIONS_144:
                    for mirror in (False, True):
                        if pos == "whole":
                            add(scale, rh, rw, name, pos, mirror, sx0, sy0, side)
                        else:
                            x0, y0 = _five_origins(side, side, crop)[FIVE_POSITIONS.index(pos)]
                            add(scale, rh, rw, name, pos, mirror, sx0 + x0, sy0 + y0, crop)
    return boxes


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


# ----------------------------------------------------------------------------------------------
# Prediction


def _model_list(models: ModelOrModels) -> list[nn.Module]:
    if isinstance(models, nn.Module):
        return [models]
    models = list(models)
    if not models or not all(isinstance(m, nn.Module) for m in models):
        raise TypeError("models must be an nn.Module or a non-empty sequence of nn.Modules")
    return models


def _device_of(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


def _logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = model(x)
    if isinstance(out, torch.Tensor):
        return out
    if hasattr(out, "logits"):
        return out.logits
    if isinstance(out, (tuple, list)):
        return out[0]
    raise TypeError(f"model returned {type(out).__name__}; expected a logits tensor [batch, classes]")


def reduce_views(logits: torch.Tensor, reduce: str = "softmax_mean") -> torch.Tensor:
    """Combine per-view logits ``[N, V, classes]`` into one score per class ``[N, classes]``.

    ``"softmax_mean"``: mean of the softmax probabilities (the paper's rule); ``"logit_mean"``:
    softmax of the mean logits (what torchvision's TenCrop docstring does); ``"max"``: per class,
    the largest probability over views (the paper tried it and found it worse) — these scores rank
    classes but do not sum to 1.
    """
    if reduce not in REDUCES:
        raise ValueError(f"unknown reduce {reduce!r}; choose one of {', '.join(REDUCES)}")
    if logits.ndim != 3:
        raise ValueError(f"logits must be [N, views, classes], got shape {tuple(logits.shape)}")
    logits = logits.float()
    if reduce == "softmax_mean":
        return logits.softmax(-1).mean(1)
    if reduce == "logit_mean":
        return logits.mean(1).softmax(-1)
    return logits.softmax(-1).amax(1)


def predict_multicrop_per_model(
    models: ModelOrModels,
    images: torch.Tensor,
    scheme: str = "googlenet144",
    *,
    crop: int = PAPER_CROP,
    scales: Sequence[int] | int | None = PAPER_SCALES,
    reduce: str = "softmax_mean",
    chunk_size: int | None = None,
    preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
    autocast: torch.dtype | None = None,
    channels_last: bool = False,
) -> torch.Tensor:
    """Like :func:`predict_multicrop` but one row per model: ``[models, N, classes]``."""
    models = _model_list(models)
    if reduce not in REDUCES:
        raise ValueError(f"unknown reduce {reduce!r}; choose one of {', '.join(REDUCES)}")
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive int (views per forward pass) or None, got {chunk_size!r}")
    batch, _ = _as_batch(images)
    v = n_views(scheme, scales if scheme == "googlenet144" else None)
    device = _device_of(models[0])
    per_forward = chunk_size or batch.shape[0] * v
    per_views = max(1, per_forward // v)  # images whose views are made at once
    was_training = [m.training for m in models]
    results: list[list[torch.Tensor]] = [[] for _ in models]
    amp = torch.autocast(device.type, dtype=autocast) if autocast is not None else nullcontext()
    try:
        for m in models:
            m.eval()
        with torch.inference_mode(), amp:
            for i in range(0, batch.shape[0], per_views):
                chunk = batch[i : i + per_views].to(device, non_blocking=True)
                views, _ = multicrop_views(chunk, scheme, crop, scales)
                if preprocess is not None:
                    views = preprocess(views)
                if channels_last:
                    views = views.contiguous(memory_format=torch.channels_last)
                for k, m in enumerate(models):
                    logits = torch.cat(
                        [_logits(m, views[j : j + per_forward]).float() for j in range(0, views.shape[0], per_forward)]
                    )
                    results[k].append(reduce_views(logits.reshape(chunk.shape[0], v, -1), reduce))
    finally:
        for m, flag in zip(models, was_training):
            m.train(flag)
    return torch.stack([torch.cat(r) for r in results])


def predict_multicrop(
    models: ModelOrModels,
    images: torch.Tensor,
    scheme: str = "googlenet144",
    *,
    crop: int = PAPER_CROP,
    scales: Sequence[int] | int | None = PAPER_SCALES,
    reduce: str = "softmax_mean",
    chunk_size: int | None = None,
    preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
    autocast: torch.dtype | None = None,
    channels_last: bool = False,
) -> torch.Tensor:
    """Class probabilities ``[N, classes]`` from the views of each image (section 7, Table 3).

    ``models``: one model or a list (an ensemble; its scores are averaged over models, as the
    paper averages over crops and models).  Each model runs in eval mode under
    ``torch.inference_mode`` (its train/eval flag is restored afterwards) on its own device; the
    images are moved there chunk by chunk.  ``reduce``: see :func:`reduce_views`.
    ``chunk_size``: at most this many views per forward pass (``None``: everything at once);
    views are made for ``max(1, chunk_size // V)`` images at a time.  ``preprocess`` runs on each
    chunk of views before the model (e.g. uint8 -> normalised float: normalising after cropping
    is the same as before, it is per-pixel).  ``autocast``: e.g. ``torch.bfloat16``.
    """
    return predict_multicrop_per_model(
        models,
        images,
        scheme,
        crop=crop,
        scales=scales,
        reduce=reduce,
        chunk_size=chunk_size,
        preprocess=preprocess,
        autocast=autocast,
        channels_last=channels_last,
    ).mean(0)


# ----------------------------------------------------------------------------------------------
# Accuracy


def topk_accuracy(scores: torch.Tensor, labels: torch.Tensor, k: Sequence[int] | int = (1, 5)) -> dict[int, float]:
    """Fraction of rows whose label is among the ``k`` highest scores, for each ``k``."""
    ks = (k,) if isinstance(k, int) else tuple(k)
    if scores.ndim != 2:
        raise ValueError(f"scores must be [N, classes], got shape {tuple(scores.shape)}")
    labels = torch.as_tensor(labels, device=scores.device).long().reshape(-1)
    if labels.shape[0] != scores.shape[0]:
        raise ValueError(f"{scores.shape[0]} score rows but {labels.shape[0]} labels; they must match")
    if labels.numel() == 0:
        raise ValueError("no samples: scores and labels are empty")
    too_big = [kk for kk in ks if kk < 1 or kk > scores.shape[1]]
    if too_big:
        raise ValueError(f"top-k with k={too_big} is impossible for {scores.shape[1]} classes; use 1 <= k <= classes")
    top = scores.topk(max(ks), dim=1).indices
    hit = top == labels[:, None]
    return {kk: hit[:, :kk].any(1).float().mean().item() for kk in ks}


def accuracy(
    model: nn.Module,
    data,
    topk: Sequence[int] | int = (1, 5),
    *,
    batch_size: int = 256,
    preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
    autocast: torch.dtype | None = None,
) -> dict[int, float]:
    """Top-k accuracy of ``model`` (eval mode, restored afterwards) on ``data``.

    ``data``: an iterable of ``(images, labels)`` batches (a DataLoader), or a pair of tensors
    ``(images, labels)`` which is cut into batches of ``batch_size``.
    """
    ks = (topk,) if isinstance(topk, int) else tuple(topk)
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        images, labels = data
        if images.shape[0] != labels.shape[0]:
            raise ValueError(f"{images.shape[0]} images but {labels.shape[0]} labels; they must match")
        batches: Iterable = ((images[i : i + batch_size], labels[i : i + batch_size]) for i in range(0, len(images), batch_size))
    else:
        batches = data
    device = _device_of(model)
    amp = torch.autocast(device.type, dtype=autocast) if autocast is not None else nullcontext()
    hits = {kk: 0.0 for kk in ks}
    total = 0
    was_training = model.training
    try:
        model.eval()
        with torch.inference_mode(), amp:
            for batch in batches:
                x, y = batch[0], batch[1]
                x = x.to(device, non_blocking=True)
                if preprocess is not None:
                    x = preprocess(x)
                scores = _logits(model, x).float()
                acc = topk_accuracy(scores, y, ks)
                for kk in ks:
                    hits[kk] += acc[kk] * len(y)
                total += len(y)
    finally:
        model.train(was_training)
    if total == 0:
        raise ValueError("data yielded no samples")
    return {kk: hits[kk] / total for kk in ks}


# ----------------------------------------------------------------------------------------------
# Table 3


def paper_schemes(crop: int = PAPER_CROP, scales: Sequence[int] = PAPER_SCALES) -> dict[str, dict]:
    """The paper's three settings of Table 3 (1, 10 and 144 crops) as :func:`evaluate_multicrop` input."""
    return {
        "center": dict(scheme="center", crop=crop, scales=scales[:1]),
        "ten": dict(scheme="ten", crop=crop, scales=scales[:1]),
        "googlenet144": dict(scheme="googlenet144", crop=crop, scales=tuple(scales)),
    }


def evaluate_multicrop(
    models: ModelOrModels,
    images: torch.Tensor,
    labels: torch.Tensor,
    schemes: Sequence[str] | Mapping[str, dict] = SCHEMES,
    *,
    ensemble_sizes: Sequence[int] | None = None,
    crop: int = PAPER_CROP,
    scales: Sequence[int] = PAPER_SCALES,
    topk: Sequence[int] = (1, 5),
    **predict_kwargs,
) -> list[dict]:
    """Top-k accuracy per scheme and per ensemble size: the rows of a table like the paper's Table 3.

    ``schemes``: names from :data:`SCHEMES` (using ``crop`` and, as in :func:`paper_schemes`,
    ``scales[:1]`` for "center"/"ten" and all ``scales`` for "googlenet144"), or a mapping
    ``label -> dict(scheme=..., crop=..., scales=..., reduce=...)``.  ``ensemble_sizes``: the
    first ``m`` models form the ensemble of size ``m`` (default: 1 and all).  Each model is run
    once per scheme; ensembles average those per-model scores.  Remaining keyword arguments go to
    :func:`predict_multicrop`.  Rows: ``models, scheme, label, reduce, crops, cost`` (forward
    passes per image), ``top1, top5`` (fractions), ``top5_error`` and ``vs_base`` (change of
    top-5 error against the first row, in percentage points), in the paper's order.
    """
    models = _model_list(models)
    if isinstance(schemes, Mapping):
        configs = {label: dict(cfg) for label, cfg in schemes.items()}
    else:
        base = paper_schemes(crop, scales)
        unknown = [s for s in schemes if s not in base]
        if unknown:
            raise ValueError(f"unknown scheme(s) {unknown}; choose from {', '.join(SCHEMES)} or pass a mapping")
        configs = {s: base[s] for s in schemes}
    sizes = sorted(set(ensemble_sizes or (1, len(models))))
    if sizes[0] < 1 or sizes[-1] > len(models):
        raise ValueError(f"ensemble sizes {sizes} must lie between 1 and the number of models ({len(models)})")
    rows: list[dict] = []
    per_label = {}
    for label, cfg in configs.items():
        cfg = dict(cfg)
        scheme = cfg.pop("scheme", label)
        kwargs = {**predict_kwargs, **cfg}
        start = time.perf_counter()
        per_model = predict_multicrop_per_model(models, images, scheme, **kwargs)
        if images.device.type == "cuda":
            torch.cuda.synchronize(images.device)
        seconds = (time.perf_counter() - start) / (len(models) * len(images))  # per image and model
        per_label[label] = (scheme, kwargs, per_model, seconds)
    for m in sizes:
        for label, (scheme, kwargs, per_model, seconds) in per_label.items():
            probs = per_model[:m].mean(0)
            acc = topk_accuracy(probs, labels, topk)
            crops = n_views(scheme, kwargs.get("scales", PAPER_SCALES) if scheme == "googlenet144" else None)
            row = dict(
                models=m,
                scheme=scheme,
                label=label,
                reduce=kwargs.get("reduce", "softmax_mean"),
                crops=crops,
                cost=m * crops,
                ms_per_image=1000.0 * m * seconds,
                **{f"top{kk}": acc[kk] for kk in topk},
            )
            if 5 in acc:
                row["top5_error"] = 100.0 * (1.0 - acc[5])
            rows.append(row)
    if rows and "top5_error" in rows[0]:
        for row in rows:
            row["vs_base"] = row["top5_error"] - rows[0]["top5_error"]
    return rows


def format_table3(rows: list[dict]) -> str:
    """Markdown table in the layout of the paper's Table 3 (plus top-1, the averaging rule, the
    measured time per image, and the paper's top-5 error for the same numbers of crops: its one
    model, or its ensemble of seven for an ensemble)."""
    lines = [
        "| models | crops | scheme | averaging | cost | ms / image | top-1 error | top-5 error | vs base "
        "| paper's top-5 error |",
        "|---:|---:|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    quoted = set()
    for r in rows:
        err = f"{r['top5_error']:.2f}%" if "top5_error" in r else "—"
        vs = "base" if r is rows[0] else (f"{r['vs_base']:+.2f}" if "vs_base" in r else "—")
        ms = f"{r['ms_per_image']:.1f}" if "ms_per_image" in r else "—"
        key = (1 if r["models"] == 1 else 7, r["crops"])
        paper = "—"
        if r["reduce"] == "softmax_mean" and key in PAPER_TABLE3_TOP5_ERROR and (r["models"], r["crops"]) not in quoted:
            quoted.add((r["models"], r["crops"]))
            paper = f"{PAPER_TABLE3_TOP5_ERROR[key]:.2f}% ({key[0]} model{'s' if key[0] > 1 else ''})"
        lines.append(
            f"| {r['models']} | {r['crops']} | {r['label']} | {r['reduce']} | {r['cost']} | {ms} | "
            f"{100 * (1 - r['top1']):.2f}% | {err} | {vs} | {paper} |"
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Figure


def _as_chw(image) -> torch.Tensor:
    if isinstance(image, torch.Tensor):
        return image
    import numpy as np

    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise ValueError(f"image must be H x W x C (numpy) or C x H x W (tensor), got shape {arr.shape}")
    return torch.as_tensor(np.ascontiguousarray(arr)).permute(2, 0, 1)


def plot_multicrop_views(
    image,
    scheme: str = "googlenet144",
    crop: int = PAPER_CROP,
    scales: Sequence[int] | int | None = PAPER_SCALES,
    thumb_inches: float = 0.85,
):
    """All views of one image laid out on a grid; returns the matplotlib Figure.

    ``image``: a tensor ``[C, H, W]`` (uint8, or float in [0, 1]) or a numpy ``H x W x C`` array
    (e.g. ``skimage.data.chelsea()``).  For ``"googlenet144"`` one row per (scale, square) and one
    column per (position, mirror), a gap between scales; for ``"ten"`` one row per mirror.
    """
    import matplotlib.pyplot as plt

    img = _as_chw(image)
    views, v = multicrop_views(img, scheme, crop, scales)
    boxes = multicrop_boxes(img.shape[-2], img.shape[-1], scheme, crop, scales)
    if views.dtype == torch.uint8:
        views = views.float() / 255.0
    pics = views.clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
    if pics.shape[-1] == 1:
        pics = pics[..., 0]

    if scheme == "googlenet144":
        n_scales, ncols = v // 36, 12
        fig = plt.figure(figsize=(ncols * thumb_inches + 1.3, n_scales * 3 * thumb_inches * 1.12 + 0.9))
        outer = fig.add_gridspec(n_scales, 1, hspace=0.12, left=1.1 / (ncols * thumb_inches + 1.3), right=0.99, top=1 - 0.65 / fig.get_figheight(), bottom=0.01)
        for si in range(n_scales):
            inner = outer[si].subgridspec(3, ncols, wspace=0.04, hspace=0.04)
            for sq in range(3):
                for col in range(ncols):
                    idx = si * 36 + sq * 12 + col
                    b = boxes[idx]
                    ax = fig.add_subplot(inner[sq, col])
                    ax.imshow(pics[idx], cmap="gray" if pics.ndim == 3 else None)
                    ax.set_xticks([])
                    ax.set_yticks([])
                    if col % 2 == 1:
                        for spine in ax.spines.values():
                            spine.set_color("tab:orange")
                            spine.set_linewidth(1.5)
                    if col == 0:
                        ax.set_ylabel(f"{b.scale}\n{b.square}", fontsize=8, rotation=0, ha="right", va="center")
                    if si == 0 and sq == 0:
                        name = "mirrored" if b.mirror else b.position.replace("_", "-")
                        ax.set_title(name, fontsize=7, color="tab:orange" if b.mirror else "black")
        fig.suptitle(
            f"GoogLeNet's {v} views: shorter side {'/'.join(str(s) for s in _check_scheme(scheme, crop, scales))}; "
            f"rows: scale and square; columns: position, orange = mirrored",
            fontsize=10,
        )
        return fig

    ncols = 5 if scheme == "ten" else 1
    nrows = math.ceil(v / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * 1.8, nrows * 1.9), squeeze=False)
    for idx, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if idx >= v:
            ax.set_visible(False)
            continue
        b = boxes[idx]
        ax.imshow(pics[idx], cmap="gray" if pics.ndim == 3 else None)
        ax.set_title(f"{b.position.replace('_', '-')}{' (mirror)' if b.mirror else ''}", fontsize=8)
    fig.suptitle(f"{scheme}: {v} view{'s' if v > 1 else ''} of {crop}x{crop}", fontsize=10)
    fig.tight_layout()
    return fig


def plot_multicrop_boxes(
    image,
    scheme: str = "googlenet144",
    crop: int = PAPER_CROP,
    scales: Sequence[int] | int | None = PAPER_SCALES,
    panel_inches: float = 2.6,
):
    """Where the views come from: their boxes drawn on the original image.

    One row per scale and, for ``"googlenet144"``, one column per square (dashed, thick) with its
    four corner and centre crops (one colour per position).  Mirrored views share their partner's
    box and are not drawn twice.  Returns the matplotlib Figure.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    img = _as_chw(image)
    h, w = img.shape[-2:]
    boxes = [b for b in multicrop_boxes(h, w, scheme, crop, scales) if not b.mirror]
    rows = list(dict.fromkeys(b.scale for b in boxes))
    cols = list(dict.fromkeys(b.square for b in boxes))
    shown = img.float() / 255 if img.dtype == torch.uint8 else img.float()
    shown = shown.clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    aspect = w / h
    fig, axes = plt.subplots(len(rows), len(cols), squeeze=False,
                             figsize=(max(7.5, panel_inches * aspect * len(cols) + 0.8), panel_inches * len(rows) + 0.9))
    colours = dict(zip(POSITIONS_144, ("tab:blue", "tab:orange", "tab:green", "tab:red", "magenta", "yellow")))
    for (r, scale), (c, square) in itertools.product(enumerate(rows), enumerate(cols)):
        ax = axes[r, c]
        ax.imshow(shown[..., 0] if shown.shape[-1] == 1 else shown, cmap="gray")
        for b in boxes:
            if b.scale != scale or b.square != square:
                continue
            whole = b.position == "whole"
            ax.add_patch(Rectangle((b.ox0, b.oy0), b.ox1 - b.ox0, b.oy1 - b.oy0, fill=False,
                                   edgecolor=colours[b.position], linewidth=2.5 if whole else 1.2,
                                   linestyle="--" if whole else "-",
                                   label=b.position.replace("_", "-") + (" (square)" if whole else "")))
        ax.set_xticks([])
        ax.set_yticks([])
        if r == 0 and square is not None:
            ax.set_title(f"{square} square", fontsize=9)
        if c == 0:
            rh, rw = resized_size(h, w, scale)
            ax.set_ylabel(f"shorter side {scale}\n({rh}x{rw})", fontsize=9)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.suptitle(f"{scheme}: boxes of the {crop}x{crop} views on the original {h}x{w} image "
                 "(each also mirrored)", fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig
