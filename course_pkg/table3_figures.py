"""Chapter 8's CIFAR-10 Table 3: its tables, its figure and the numbers its text quotes.

All of it reads one results file, ``table3_cifar.json`` (``benchmarks/table3_cifar.py``, one run on
the full test split; :mod:`course_pkg.table3` computes it), so the chapter's words cannot drift from
its tables; what 144 views cost may come from a run of its own on the full split,
``table3_timing.json`` (``--timing-only``):

- :func:`load`             the results file, or None in a copy without it
- :func:`load_timing`      the timing file, or None
- :func:`tables_markdown`  each table with a caption naming its networks
- :func:`plot`             top-1 error by views, the scale-augmented network beside the pad-crop one,
                           and one model against three
- :func:`facts`            the values the text glues: errors, each change with its paired interval,
                           and the direction word the interval allows (:func:`course_pkg.table3.direction`)

A direction word is "falls" or "rises" only where the paired 95% interval of the change excludes
zero; otherwise the text says the change is not measurable on these images.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from statistics import NormalDist
from typing import Any

from . import results
from .compare import Z95
from .data.augment import PAPER_RATIO, PAPER_SCALE
from .multicrop import PAPER_SCALES
from .multicrop_figures import PAPER_TABLE3_TOP5_ERROR
from .recipes import CIFAR10_SCALE
from .table3 import CIFAR_SCALES, format_rows

NAME = "table3_cifar"
TIMING_NAME = "table3_timing"
COMMAND = "python benchmarks/table3_cifar.py"
CAPTIONS = {
    "views": "One network trained on random-resized crops (the paper's scale augmentation): views",
    "counter_example": "The pad-crop network (no scale augmentation, the shipped googlenet_cifar): the same views",
    "models": "One scale-augmented network against three (seeds 0, 1, 2), softmax averaged",
    "unequal": "Ensembles of two networks of unequal accuracy",
}
# the verb a sentence uses for each direction of :func:`course_pkg.table3.direction`
VERBS = {"falls": "falls", "rises": "rises", "no change shown": "does not change measurably"}
CROPS = (1, 10, 144)
VIEWS = {"1 crop": "centre", "10 crops": "ten", "144 crops": "144", "the image": "image",
         "+ mirror": "mirror", "padded ten-crop": "padded_ten"}


def load(folder=None) -> dict[str, Any] | None:
    """``table3_cifar.json`` (:func:`course_pkg.results.load`), or None in a copy without it."""
    return results.load(NAME, folder)


def load_timing(folder=None) -> dict[str, Any] | None:
    """``table3_timing.json``: the 144-view timing of a run of its own, or None in a copy without it."""
    return results.load(TIMING_NAME, folder)


def missing_message() -> str:
    return (f"No {NAME}.json in this copy: `{COMMAND}` measures it (about two hours on a 2-core CPU; "
            "it needs the reference runs bn_scale_ft, bn_scale_ft_s1 and bn_scale_ft_s2 of "
            "benchmarks/reference_cpu.py).")


def tables_markdown(result: Mapping[str, Any]) -> dict[str, str]:
    """``{table name: caption + markdown table}`` (:func:`course_pkg.table3.format_rows`)."""
    return {name: f"**{CAPTIONS.get(name, name)}** ({result['images']:,} test images)\n\n{format_rows(rows)}"
            for name, rows in result["tables"].items()}


def _rows(result: Mapping[str, Any], table: str) -> dict[str, dict]:
    """A table's rows by their view-set key (views tables) or label (the others)."""
    rows = result["tables"][table]
    return {r["views"]: r for r in rows} if table in ("views", "counter_example") else {r["label"]: r for r in rows}


def _change(vs: Mapping[str, Any]) -> str:
    d, low, high = (round(vs[k], 2) + 0.0 for k in ("difference", "low", "high"))
    return f"{d:+.2f} points, paired 95% interval {low:+.2f} to {high:+.2f}"


def facts(result: Mapping[str, Any], timing: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The glue values of chapter 8's CIFAR-10 section, named ``t3_*``.

    Per network (``s`` the scale-augmented one, ``p`` the pad-crop one): ``t3_<n>_err_<view>`` the
    top-1 error, and for each comparison ``..._dir`` (falls / rises / does not change measurably) and
    ``..._change`` (the change in points with its paired interval): 10 and 144 crops against 1 crop,
    144 against 10, the image against 1 crop, the mirror and the padded ten-crop against the image.
    ``t3_m<crops>_*``: one model against three at 1, 10, 144 crops; ``t3_u_*``: the unequal
    ensembles; ``t3_ratio`` etc.: the cost of 144 views batched against 48 single-view passes, from
    ``timing`` (a run of :data:`TIMING_NAME`) when given, else from the table's own run;
    ``t3_timing_where``: that run's device, date and commit."""
    out = {"t3_images": f"{result['images']:,}", "t3_device": result["device"], "t3_date": result["date"],
           "t3_commit": result["commit"], "t3_minutes": f"{result['minutes']:.0f}"}
    for n, table in (("s", "views"), ("p", "counter_example")):
        for view, row in _rows(result, table).items():
            out[f"t3_{n}_err_{view}"] = f"{row['top1_error']:.2f}"
    for name, vs in claims(result).items():  # each direction word, and its change with the interval
        out[name] = VERBS[vs["direction"]]
        out[name.removesuffix("_dir") + "_change"] = _change(vs)
    models = _rows(result, "models")
    for crops in CROPS:
        label = "1 crop" if crops == 1 else f"{crops} crops"
        out[f"t3_m{crops}_one"] = f"{models[f'1 model, {label}']['top1_error']:.2f}"
        out[f"t3_m{crops}_three"] = f"{models[f'3 models, {label}']['top1_error']:.2f}"
    unequal = result["tables"]["unequal"]
    out["t3_u_base"] = f"{unequal[0]['top1_error']:.2f}"
    source = timing if timing and timing.get("timing_144") else result
    t = source.get("timing_144") or {}
    if t:
        out["t3_timing_where"] = f"{source['device']}; {source['date']}, commit {source['commit']}"
        out["t3_ratio"] = f"{t['ratio']:.2f}"
        out["t3_batched_s"] = f"{t['predict_multicrop_seconds']:.0f}"
        out["t3_single_s"] = f"{t['single_view_passes_seconds']:.0f}"
        out["t3_distinct"] = str(t["distinct"])
        out["t3_timing_images"] = f"{t['images']:,}"
    out["t3_level"] = f"{2 * NormalDist().cdf(Z95) - 1:.0%}"  # the confidence of every interval
    out["t3_paper_area"] = f"{PAPER_SCALE[0]:.0%}–{PAPER_SCALE[1]:.0%}"
    out["t3_cifar_area"] = f"{CIFAR10_SCALE.scale[0]:.0%}–{CIFAR10_SCALE.scale[1]:.0%}"
    out["t3_ratio_range"] = "–".join(str(Fraction(r).limit_denominator(10)) for r in PAPER_RATIO)
    out["t3_scales"] = "/".join(map(str, CIFAR_SCALES))
    out["t3_paper_scales"] = "/".join(map(str, PAPER_SCALES))
    paper = PAPER_TABLE3_TOP5_ERROR
    out["t3_paper_views"] = f"{paper[(1, 1)]:.2f}% → {paper[(1, 10)]:.2f}% → {paper[(1, 144)]:.2f}%"
    out["t3_paper_models"] = f"{paper[(1, 144)]:.2f}% → {paper[(7, 144)]:.2f}%"
    return out


def claims(result: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each direction the chapter states: ``{glue name of its word: the change it is read from}``
    (a row's ``vs_base`` or ``vs``, with the row's label added), for a test that the built page
    says what its table shows."""
    out = {}
    for n, table in (("s", "views"), ("p", "counter_example")):
        rows = _rows(result, table)
        for name, row, field in (("10", "ten", "vs_base"), ("144", "144", "vs_base"), ("144_10", "144", "vs"),
                                 ("image", "image", "vs_base"), ("mirror", "mirror", "vs"),
                                 ("padded", "padded_ten", "vs")):
            out[f"t3_{n}_{name}_dir"] = {**rows[row][field], "row": f"{table}: {rows[row]['label']}"}
    models = _rows(result, "models")
    for crops in CROPS:
        label = f"3 models, {'1 crop' if crops == 1 else f'{crops} crops'}"
        out[f"t3_m{crops}_dir"] = {**models[label]["vs"], "row": f"models: {label}"}
    for key, row in (("faithful", result["tables"]["unequal"][1]), ("scale", result["tables"]["unequal"][2])):
        out[f"t3_u_{key}_dir"] = {**row["vs_base"], "row": f"unequal: {row['label']}"}
    return out


def plot(result: Mapping[str, Any]):
    """Left: top-1 error of the scale-augmented and the pad-crop network at each view set. Right:
    one scale-augmented network against three at 1, 10 and 144 crops. Bars start at zero."""
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [2, 1]})
    x = np.arange(len(VIEWS))
    for i, (table, name, color) in enumerate((("views", "scale-augmented", "#48c"),
                                             ("counter_example", "pad-crop", "#c84"))):
        rows = _rows(result, table)
        errors = [rows[v]["top1_error"] for v in VIEWS.values()]
        bars = left.bar(x + (i - 0.5) * 0.38, errors, 0.38, label=name, color=color)
        left.bar_label(bars, fmt="%.1f", fontsize=8)
    left.set_xticks(x, list(VIEWS), fontsize=9)
    left.set_ylabel("top-1 error (%)")
    left.set_title("one network, by views")
    models = _rows(result, "models")
    x = np.arange(len(CROPS))
    for i, (k, color) in enumerate(((1, "#9bd"), (3, "#237"))):
        errors = [models[f"{k} model{'s' if k > 1 else ''}, {'1 crop' if c == 1 else f'{c} crops'}"]["top1_error"]
                  for c in CROPS]
        bars = right.bar(x + (i - 0.5) * 0.38, errors, 0.38, label=f"{k} model{'s' if k > 1 else ''}", color=color)
        right.bar_label(bars, fmt="%.1f", fontsize=8)
    right.set_xticks(x, [f"{c} crop{'s' if c > 1 else ''}" for c in CROPS], fontsize=9)
    right.set_title("scale-augmented: models")
    for ax in (left, right):
        ax.legend(fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, frameon=False)
        ax.set_ylim(0, max(b.get_height() for b in ax.patches) * 1.18)
        ax.spines[["top", "right"]].set_visible(False)
    fig.suptitle(f"CIFAR-10, {result['images']:,} test images: top-1 error", fontsize=11)
    fig.tight_layout()
    return fig


__all__ = ["CAPTIONS", "VERBS", "claims", "facts", "load", "missing_message", "plot", "tables_markdown"]
