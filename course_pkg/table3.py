"""The paper's Table 3 on CIFAR-10: views and models averaged, each difference with a paired interval.

Szegedy et al. (CVPR 2015), section 7 and Table 3: averaging the softmax over more views (1, 10,
144 crops) and over more models (1, 7) lowered the error.  Its views lay inside what its networks
saw in training: patches of 8%-100% of the image, so objects at many sizes.  Here a *view set* is
one protocol (:data:`VIEW_SETS`); every view of every set is one box of the image, so the views
that several sets share (the centre crop of the 10 and of the 144) run once:

- :func:`view_key`, :func:`render_view`  one view of the whole test split, by its box
- :func:`view_probabilities`             a network's softmax for every view a table needs, each
                                          view one batched pass over the images (timed)
- :func:`set_probabilities`              a view set's average, exactly as
                                          :func:`course_pkg.evaluate.predict_multicrop` averages it
- :func:`table_rows`                     the rows: error, and the difference from a base row with
                                          its paired 95% interval (:mod:`course_pkg.compare`)
- :func:`format_rows`                    the markdown table the book shows

A padded view set (``pad``) cuts its views from the image padded by reflection, as the pad-crop
training does (:func:`course_pkg.data.augment.random_crop`): the views a network trained that way
has seen.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

from .accuracy import _autocast
from .compare import paired_difference
from .models.googlenet import main_logits
from .multicrop import PAPER_CROP, PAPER_SCALES, _resize, multicrop_boxes

CROP = 32
# the paper's shorter sides 256 / 288 / 320 / 352 for 224-pixel crops, scaled to 32-pixel crops
CIFAR_SCALES = tuple(round(s * CROP / PAPER_CROP) for s in PAPER_SCALES)  # (37, 41, 46, 50)


class ViewSet(NamedTuple):
    """One test protocol: ``scheme``, ``crop`` and ``scales`` as in
    :func:`course_pkg.multicrop.multicrop_views`, cut from the image padded by ``pad`` pixels."""

    label: str
    scheme: str
    scales: tuple[int, ...] | None = None
    pad: int = 0
    crop: int = CROP


VIEW_SETS: dict[str, ViewSet] = {
    "image": ViewSet("the image", "center"),
    "mirror": ViewSet("the image + its mirror", "ten"),  # ten-crop of a 32-px image: 5x each
    "padded_ten": ViewSet("ten crops of the image padded by 4 + mirrors", "ten", pad=4),
    "centre": ViewSet(f"centre of {CIFAR_SCALES[0]} px (1 crop)", "center", CIFAR_SCALES[:1]),
    "ten": ViewSet(f"ten-crop at {CIFAR_SCALES[0]} px (10 crops)", "ten", CIFAR_SCALES[:1]),
    "144": ViewSet(f"{'/'.join(map(str, CIFAR_SCALES))} px (144 crops)", "googlenet144", CIFAR_SCALES),
}

Key = tuple[int, int, int, int, int, int, int, bool]  # pad, resized h, w, box x0, y0, x1, y1, mirror


def view_keys(view_set: ViewSet, size: int = CROP) -> list[Key]:
    """The box of each of the set's views of a ``size x size`` image, in the views' order."""
    pad, side = view_set.pad, size + 2 * view_set.pad
    keys = []
    for b in multicrop_boxes(side, side, view_set.scheme, view_set.crop, view_set.scales):
        if (b.resized_height, b.x0, b.y0, b.x1, b.y1) == (side, pad, pad, pad + size, pad + size):
            keys.append((0, size, size, 0, 0, size, size, b.mirror))  # the image itself, not resized: one key
        else:
            keys.append((pad, b.resized_height, b.resized_width, b.x0, b.y0, b.x1, b.y1, b.mirror))
    return keys


def render_view(images: torch.Tensor, key: Key, crop: int = CROP) -> torch.Tensor:
    """One view ``[N, C, crop, crop]`` of a batch ``[N, C, H, W]`` (uint8 or float): pad by
    reflection, resize (:mod:`course_pkg.multicrop`'s rule 1), cut the box, resize a larger box
    (a whole square) to ``crop``, mirror."""
    pad, rh, rw, x0, y0, x1, y1, mirror = key
    x = images
    if pad:
        x = F.pad(x.float(), (pad,) * 4, mode="reflect").to(images.dtype)
    x = _resize(x, (rh, rw))[..., y0:y1, x0:x1]
    if x1 - x0 != crop:
        x = _resize(x, (crop, crop))
    return x.flip(-1) if mirror else x


def view_probabilities(model: torch.nn.Module, images: torch.Tensor, keys: Sequence[Key], *,
                       preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
                       batch_size: int = 500, autocast: torch.dtype | None = None,
                       channels_last: bool = True, crop: int = CROP,
                       done: Mapping[Key, torch.Tensor] | None = None,
                       on_view: Callable[[Key, torch.Tensor, float], None] | None = None) -> dict[Key, torch.Tensor]:
    """``{key: softmax [N, classes]}`` for every distinct key, each one batched pass over ``images``.

    Keys already in ``done`` are taken from it (a run resumed); ``on_view(key, probs, seconds)``
    is called after each new pass (to save it, or to time it)."""
    out = dict(done or {})
    device = next(model.parameters()).device
    model.eval()
    for key in dict.fromkeys(keys):
        if key in out:
            continue
        start = time.perf_counter()
        parts = []
        with torch.inference_mode(), _autocast(device, autocast):
            for i in range(0, images.shape[0], batch_size):
                x = render_view(images[i:i + batch_size].to(device), key, crop)
                x = preprocess(x) if preprocess is not None else x.float()
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                parts.append(main_logits(model(x)).float().softmax(-1).cpu())
        out[key] = torch.cat(parts)
        if on_view is not None:
            on_view(key, out[key], time.perf_counter() - start)
    return out


def set_probabilities(probs: Mapping[Key, torch.Tensor], view_set: ViewSet, size: int = CROP) -> torch.Tensor:
    """The set's softmax averaged over its views, each counted as often as it occurs (as
    :func:`course_pkg.evaluate.predict_multicrop` counts a square image's three squares)."""
    keys = view_keys(view_set, size)
    return torch.stack([probs[k] for k in keys]).mean(0)


class Row(NamedTuple):
    """A table row: ``networks`` averaged (their names), at ``views`` (a key of :data:`VIEW_SETS`);
    compared with the table's first row, and also with the row labelled ``against`` if given."""

    label: str
    networks: tuple[str, ...]
    views: str
    against: str | None = None


def table_rows(rows: Sequence[Row], probs: Mapping[str, Mapping[Key, torch.Tensor]], labels: torch.Tensor,
               size: int = CROP) -> list[dict[str, Any]]:
    """Each row's top-1 / top-5 error and the change of its top-1 error from the first row
    (``vs_base``) and from the row it names (``vs``): a paired 95% interval and McNemar's test on the
    same images (:func:`course_pkg.compare.paired_difference`), and the word it allows (:func:`direction`)."""
    labels = torch.as_tensor(labels).long().cpu()
    scored: dict[str, dict[str, Any]] = {}
    out = []
    for row in rows:
        if row.views not in VIEW_SETS:
            raise ValueError(f"row {row.label!r}: unknown view set {row.views!r}; choose from {', '.join(VIEW_SETS)}")
        missing = [n for n in row.networks if n not in probs]
        if missing:
            raise ValueError(f"row {row.label!r}: no probabilities for network(s) {', '.join(missing)}")
        view_set = VIEW_SETS[row.views]
        p = torch.stack([set_probabilities(probs[n], view_set, size) for n in row.networks]).mean(0)
        top5 = p.topk(5, dim=1).indices
        right = top5[:, 0] == labels
        entry = {"label": row.label, "networks": list(row.networks), "models": len(row.networks),
                 "views": row.views, "view_set": view_set.label, "crops": len(view_keys(view_set, size)),
                 "forwards": len(row.networks) * len(set(view_keys(view_set, size))),
                 "top1_error": 100 * (1 - float(right.float().mean())),
                 "top5_error": 100 * (1 - float((top5 == labels[:, None]).any(1).float().mean())),
                 "images": int(labels.numel())}
        for field, base in (("vs_base", rows[0].label if out else None), ("vs", row.against)):
            if base is None:
                continue
            if base not in scored:
                raise ValueError(f"row {row.label!r} is compared with {base!r}, which is not an earlier row")
            entry[field] = _change_of_error(scored[base]["right"], right, base)
        scored[row.label] = {"right": right}
        out.append(entry)
    return out


def _change_of_error(right_before: torch.Tensor, right_after: torch.Tensor, against: str) -> dict[str, Any]:
    """The change of top-1 error (points) from one row to another on the same images."""
    d = paired_difference(right_before, right_after)
    out = {"against": against, "difference": -100 * d["difference"], "low": -100 * d["high"],
           "high": -100 * d["low"], "mcnemar_p": d["mcnemar_p"], "real": d["real"],
           "only_against": d["only_a"], "only_this": d["only_b"]}
    out["direction"] = direction(out)
    return out


def direction(vs: Mapping[str, Any]) -> str:
    """What a difference of error says: "falls" or "rises" when its interval excludes 0, else "no
    change shown" — the words the book may use about it."""
    if vs["high"] < 0:
        return "falls"
    if vs["low"] > 0:
        return "rises"
    return "no change shown"


def format_rows(rows: Sequence[Mapping[str, Any]]) -> str:
    """A markdown table of :func:`table_rows`' output: each change of top-1 error with its paired 95%
    interval and the word it allows (falls / rises / no change shown)."""

    def change(v: Mapping[str, Any] | None) -> str:
        if v is None:
            return "—"
        d, low, high = (round(v[k], 2) + 0.0 for k in ("difference", "low", "high"))  # no "-0.00"
        return f"{d:+.2f} ({low:+.2f} to {high:+.2f}): {v['direction']}"

    lines = ["| row | networks | views | crops (run) | top-1 error | top-5 error | change vs the first row | "
             "compared with | change |", "|---|---|---|---:|---:|---:|---:|---|---:|"]
    for r in rows:
        vs = r.get("vs")
        lines.append(f"| {r['label']} | {' + '.join(r['networks'])} | {r['view_set']} | "
                     f"{r['crops']} ({r['forwards']}) | {r['top1_error']:.2f}% | {r['top5_error']:.2f}% | "
                     f"{change(r.get('vs_base')) if 'vs_base' in r else 'base'} | "
                     f"{vs['against'] if vs else '—'} | {change(vs)} |")
    return "\n".join(lines)


__all__ = ["CIFAR_SCALES", "CROP", "Row", "VIEW_SETS", "ViewSet", "direction", "format_rows", "render_view",
           "set_probabilities", "table_rows", "view_keys", "view_probabilities"]
