"""Figures and tables of multi-crop evaluation: every view of one photograph, where the views lie
in it, and a table of results in the layout of the paper's Table 3.

Drawn from :mod:`course_pkg.multicrop`'s own views and boxes, so a figure cannot disagree with
what the evaluation feeds the network.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch

from .multicrop import (PAPER_CROP, PAPER_SCALES, POSITIONS_144, _check_scheme, multicrop_boxes,
                        multicrop_views, resized_size)


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
        outer = fig.add_gridspec(n_scales, 1, hspace=0.12, left=1.1 / (ncols * thumb_inches + 1.3), right=0.99,
                                 top=1 - 0.65 / fig.get_figheight(), bottom=0.01)
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
                             figsize=(max(7.5, panel_inches * aspect * len(cols) + 0.8),
                                      panel_inches * len(rows) + 0.9))
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


# Table 3 of the paper: top-5 error (%) on the ILSVRC 2014 validation set, by (models, crops).
PAPER_TABLE3_TOP5_ERROR = {(1, 1): 10.07, (1, 10): 9.15, (1, 144): 7.89, (7, 1): 8.09, (7, 10): 7.62, (7, 144): 6.67}


def format_table3(rows: list[dict]) -> str:
    """Markdown table in the layout of the paper's Table 3 (plus top-1, the averaging rule, the
    measured time per image, and the paper's top-5 error for the same numbers of crops: its one
    model, or its ensemble of seven for an ensemble)."""
    lines = [
        "| models | crops | scheme | averaging | cost | ms / image | top-1 error | top-5 error | top-1 vs base "
        "| paper's top-5 error |",
        "|---:|---:|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    quoted = set()
    for r in rows:
        err = f"{r['top5_error']:.2f}%" if "top5_error" in r else "—"
        vs = "base" if r is rows[0] else (f"{r['vs_base']:+.2f}" if "vs_base" in r else "—")
        ms = f"{r['ms_per_image']:.1f}" if "ms_per_image" in r else "—"
        key = (1 if r["models"] == 1 else 7, r["crops"])
        forwards = r.get("forwards", r["cost"])  # fewer when views coincide (a square image's squares)
        cost = f"{r['cost']} ({forwards} run)" if forwards < r["cost"] else f"{r['cost']}"
        paper = "—"
        if r["reduce"] == "softmax_mean" and key in PAPER_TABLE3_TOP5_ERROR and (r["models"], r["crops"]) not in quoted:
            quoted.add((r["models"], r["crops"]))
            paper = f"{PAPER_TABLE3_TOP5_ERROR[key]:.2f}% ({key[0]} model{'s' if key[0] > 1 else ''})"
        lines.append(
            f"| {r['models']} | {r['crops']} | {r['label']} | {r['reduce']} | {cost} | {ms} | "
            f"{100 * (1 - r['top1']):.2f}% | {err} | {vs} | {paper} |"
        )
    return "\n".join(lines)
