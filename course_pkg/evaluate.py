"""Accuracy, and the paper's multi-crop evaluation scored like its Table 3.

Szegedy et al., "Going Deeper with Convolutions" (CVPR 2015), section 7 and Table 3: the winning
ILSVRC 2014 entry classified each image from 144 views and averaged the softmax probabilities over
the views and over 7 models.  :mod:`course_pkg.multicrop` makes the views (the protocol, rule by
rule, is in its docstring); this module scores them:

- :func:`predict_multicrop` class probabilities averaged over views (and over an ensemble)
- :func:`accuracy`, :func:`topk_accuracy`   top-1 / top-5 of a model or of scores
- :func:`evaluate_accuracy`  top-1 over a loader, the validation pass of ``fit`` (DDP-aware)
- :func:`evaluate_multicrop`, :func:`format_table3`   a table shaped like the paper's Table 3

Every accuracy of the course is counted by one function, :func:`course_pkg.accuracy.count_correct`.
The accuracy functions, the views and the figures stay importable from here
(``evaluate.accuracy``, ``evaluate.multicrop_views``, ``evaluate.plot_multicrop_views``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Callable, Union

import torch
import torch.nn as nn

from .accuracy import (AUTOCAST_DTYPES, _autocast, _device_of, accuracy, count_correct,  # noqa: F401 (re-exported)
                       evaluate_accuracy, topk_accuracy, topk_hits)
from .models.googlenet import main_logits
from .multicrop import (FIVE_POSITIONS, PAPER_CROP, PAPER_SCALES, POSITIONS_144,  # noqa: F401 (re-exported)
                        SCHEMES, SQUARES_LANDSCAPE, SQUARES_PORTRAIT, ViewBox, centre_offset,
                        _as_batch, distinct_views, multicrop_boxes, multicrop_views, n_views, resized_size,
                        view_order)
from .multicrop_figures import (PAPER_TABLE3_TOP5_ERROR, format_table3, plot_multicrop_boxes,  # noqa: F401
                                plot_multicrop_views)  # (re-exported: released notebooks import them from here)

REDUCES = ("softmax_mean", "logit_mean", "max")

ModelOrModels = Union[nn.Module, Sequence[nn.Module]]


# ----------------------------------------------------------------------------------------------
# Prediction


def _model_list(models: ModelOrModels) -> list[nn.Module]:
    if isinstance(models, nn.Module):
        return [models]
    models = list(models)
    if not models or not all(isinstance(m, nn.Module) for m in models):
        raise TypeError("models must be an nn.Module or a non-empty sequence of nn.Modules")
    return models


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
    # views with the same pixels run once (a square image: 48 of GoogLeNet's 144); the average
    # over all v views is unchanged, each distinct view counting as often as it occurs
    keep, inverse = distinct_views(batch.shape[-2], batch.shape[-1], scheme, crop, scales)
    k = len(keep)
    keep_t, inverse_t, device = torch.tensor(keep), torch.tensor(inverse), _device_of(models[0])
    per_forward = chunk_size or batch.shape[0] * k
    per_views = max(1, per_forward // k)  # images whose views are made at once
    was_training = [m.training for m in models]
    results: list[list[torch.Tensor]] = [[] for _ in models]
    amp = _autocast(device, autocast)
    try:
        for m in models:
            m.eval()
        with torch.inference_mode(), amp:
            for i in range(0, batch.shape[0], per_views):
                chunk = batch[i : i + per_views].to(device, non_blocking=True)
                views, _ = multicrop_views(chunk, scheme, crop, scales)
                if k < v:
                    views = views.unflatten(0, (chunk.shape[0], v))[:, keep_t.to(views.device)].flatten(0, 1)
                if preprocess is not None:
                    views = preprocess(views)
                if channels_last:
                    views = views.contiguous(memory_format=torch.channels_last)
                for m_i, m in enumerate(models):
                    logits = torch.cat([main_logits(m(views[j: j + per_forward])).float()
                                        for j in range(0, views.shape[0], per_forward)])
                    logits = logits.reshape(chunk.shape[0], k, -1)
                    if k < v:
                        logits = logits[:, inverse_t.to(logits.device)]
                    results[m_i].append(reduce_views(logits, reduce))
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
    views are made for ``max(1, chunk_size // D)`` images at a time, ``D`` the distinct views of
    an image (:func:`~course_pkg.multicrop.distinct_views`: views with the same pixels, such as a
    square image's three squares, run through each model once and count as often as they occur).
    ``preprocess`` runs on each chunk of views before the model (e.g. uint8 -> normalised float:
    normalising after cropping is the same as before, it is per-pixel).  ``autocast``: e.g. ``torch.bfloat16``.
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
    passes per image as the paper counts them), ``forwards`` (those run: same pixels once),
    ``top1, top5`` (fractions), ``top5_error`` and ``vs_base`` (change of
    top-1 error against the first row, in percentage points: on CIFAR-10 the top-5 error is too small
    to show a change), in the paper's order.
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
            distinct = len(distinct_views(images.shape[-2], images.shape[-1], scheme,
                                          kwargs.get("crop", PAPER_CROP), kwargs.get("scales", PAPER_SCALES))[0])
            row = dict(
                models=m,
                scheme=scheme,
                label=label,
                reduce=kwargs.get("reduce", "softmax_mean"),
                crops=crops,
                cost=m * crops,
                forwards=m * distinct,
                ms_per_image=1000.0 * m * seconds,
                **{f"top{kk}": acc[kk] for kk in topk},
            )
            if 5 in acc:
                row["top5_error"] = 100.0 * (1.0 - acc[5])
            rows.append(row)
    if rows and "top1" in rows[0]:
        for row in rows:
            row["vs_base"] = 100.0 * (rows[0]["top1"] - row["top1"])
    return rows
