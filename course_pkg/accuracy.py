"""Accuracy: one way to count, for every accuracy of the course.

- :func:`count_correct`       the one counting loop: ``({k: correct}, seen)`` of a model's main head
- :func:`accuracy`            top-k of a model on a loader or on a pair of tensors
- :func:`topk_hits`, :func:`topk_accuracy`   top-k of scores already computed
- :func:`evaluate_accuracy`   top-1 over a loader, the validation pass of ``fit`` (DDP-aware)

The multi-crop evaluation of the paper's Table 3 builds on these in :mod:`course_pkg.evaluate`,
which also re-exports them (``evaluate.accuracy``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from typing import Callable

import torch
import torch.nn as nn

from .device import default_channels_last, pick_device, pick_precision
from .distributed import all_reduce_sum
from .models.googlenet import main_logits

#: autocast dtype of each precision of :func:`course_pkg.device.pick_precision`
AUTOCAST_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def _autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def _device_of(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


def _check_topk(n_scores: int, n_classes: int, labels: torch.Tensor, ks: tuple[int, ...]) -> None:
    if labels.shape[0] != n_scores:
        raise ValueError(f"{n_scores} score rows but {labels.shape[0]} labels; they must match")
    too_big = [kk for kk in ks if kk < 1 or kk > n_classes]
    if too_big:
        raise ValueError(f"top-k with k={too_big} is impossible for {n_classes} classes; use 1 <= k <= classes")


def topk_hits(scores: torch.Tensor, labels: torch.Tensor, ks: Sequence[int] = (1,)) -> dict[int, torch.Tensor]:
    """How many rows of ``scores [N, classes]`` have their label among the ``k`` highest scores,
    for each ``k`` (0-dim int64 tensors on the scores' device, so counting never waits for the GPU).

    Top-1 is ``argmax`` (the first of tied maxima); top-k for k > 1 uses ``topk``."""
    ks = tuple(ks)
    if scores.ndim != 2:
        raise ValueError(f"scores must be [N, classes], got shape {tuple(scores.shape)}")
    labels = torch.as_tensor(labels, device=scores.device).long().reshape(-1)
    _check_topk(scores.shape[0], scores.shape[1], labels, ks)
    hits = {}
    for kk in ks:
        if kk == 1:
            hits[kk] = (scores.argmax(1) == labels).sum()
        else:
            hits[kk] = (scores.topk(kk, dim=1).indices == labels[:, None]).any(1).sum()
    return hits


def topk_accuracy(scores: torch.Tensor, labels: torch.Tensor, k: Sequence[int] | int = (1, 5)) -> dict[int, float]:
    """Fraction of rows whose label is among the ``k`` highest scores, for each ``k``."""
    ks = (k,) if isinstance(k, int) else tuple(k)
    hits = topk_hits(scores, labels, ks)
    if scores.shape[0] == 0:
        raise ValueError("no samples: scores and labels are empty")
    return {kk: hits[kk].item() / scores.shape[0] for kk in ks}


def count_correct(
    model: nn.Module,
    batches: Iterable,
    ks: Sequence[int] = (1,),
    *,
    device: torch.device | None = None,
    preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
    autocast: torch.dtype | None = None,
    channels_last: bool = False,
) -> tuple[dict[int, int], int]:
    """``({k: correct}, seen)`` of ``model``'s main head over ``batches`` of ``(images, labels)``.

    The one counting loop behind every accuracy of the course: eval mode (the train/eval flag is
    restored afterwards), inference mode, images moved to ``device`` (default: the model's),
    then ``preprocess``, then NHWC if ``channels_last``, then the forward pass under ``autocast``.
    """
    ks = tuple(ks)
    device = device if device is not None else _device_of(model)
    hits = {kk: torch.zeros((), dtype=torch.int64, device=device) for kk in ks}
    seen = 0
    was_training = model.training
    try:
        model.eval()
        with torch.inference_mode(), _autocast(device, autocast):
            for batch in batches:
                x, y = batch[0].to(device, non_blocking=True), batch[1]
                if preprocess is not None:
                    x = preprocess(x)
                if channels_last and x.ndim == 4:
                    x = x.contiguous(memory_format=torch.channels_last)
                for kk, n in topk_hits(main_logits(model(x)), y, ks).items():
                    hits[kk] += n
                seen += len(y)
    finally:
        model.train(was_training)
    return {kk: int(h.item()) for kk, h in hits.items()}, seen


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
        batches: Iterable = ((images[i: i + batch_size], labels[i: i + batch_size])
                             for i in range(0, len(images), batch_size))
    else:
        batches = data
    hits, total = count_correct(model, batches, ks, preprocess=preprocess, autocast=autocast)
    if total == 0:
        raise ValueError("data yielded no samples")
    return {kk: hits[kk] / total for kk in ks}


def evaluate_accuracy(
    model: nn.Module, loader: Iterable, device: str | torch.device | None = None,
    precision: str = "auto", channels_last: bool | None = None,
) -> tuple[float, int]:
    """Top-1 accuracy of ``model`` over ``loader``: returns ``(accuracy, n)``, all-reduced under DDP.

    The validation pass of :func:`course_pkg.train.fit`: ``precision`` as in
    :func:`course_pkg.device.pick_precision`; ``channels_last=None`` follows
    :func:`course_pkg.device.default_channels_last` for evaluation (NHWC on GPUs and CPUs)."""
    device = pick_device(device) if device is None or not isinstance(device, torch.device) else device
    precision = pick_precision(device, precision)
    if channels_last is None:
        channels_last = default_channels_last(device)
    hits, seen = count_correct(model, loader, (1,), device=device, autocast=AUTOCAST_DTYPES[precision],
                               channels_last=channels_last)
    total_correct, total_seen = all_reduce_sum([float(hits[1]), float(seen)], device)
    if total_seen == 0:
        raise ValueError("the evaluation loader yielded no batches")
    return total_correct / total_seen, int(total_seen)
