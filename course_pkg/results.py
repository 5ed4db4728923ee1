"""The benchmark results the book shows: read them, tabulate them, plot them.

The GPU runs of ``benchmarks/`` write JSON under ``benchmarks/results/`` (each run naming its
device, date and commit). Chapters 7 and 8 read them through this module, so that every figure
and table of a GPU result is drawn from those files and nothing is typed in.

>>> from course_pkg import results
>>> summary = results.load("cifar_summary")        # None until the GPU runs are committed
>>> if summary:                                     # doctest: +SKIP
...     rows = results.ablation_rows(summary, ["bn_noaugment", "bn_nosmoothing"], base="bn")
...     print(results.markdown_table(rows))
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

# In a checkout (the book build, an editable install) the results lie beside the package; an
# installed copy has none of them. $COURSE_RESULTS points elsewhere.
REPO_RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
WHERE_ONLINE = "benchmarks/results/ in the course repository"


def results_folder() -> Path:
    return Path(os.environ.get("COURSE_RESULTS") or REPO_RESULTS)


def load(name: str, folder: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """``<folder>/<name>.json`` as a dict, or None when it does not exist (yet).

    A file that exists but is not valid JSON is an error that says which file to regenerate.
    """
    path = Path(folder or results_folder()) / f"{name}.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not a readable results file ({err}); regenerate it with the "
                         "benchmark command named in benchmarks/README.md") from None


def runs_by_name(summary: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The runs of a benchmark results file, by their names (``bn``, ``init_he``, ``bn[epochs=20]``)."""
    return {r["name"]: r for r in summary.get("runs", [])}


def _stamp(run: Mapping[str, Any]) -> str:
    env = run.get("environment") or {}
    if not env:
        return ""
    return f"{env.get('device_name', '?')}, {str(env.get('date', '?'))[:10]}, commit {env.get('commit', '?')}"


def ablation_rows(summary: Mapping[str, Any], names: Iterable[str], base: str = "bn") -> list[dict[str, Any]]:
    """One row per run: its final test accuracy and the change against ``base`` in percentage
    points, its training time and throughput. Runs missing from the summary are left out; the
    base comes first."""
    runs = runs_by_name(summary)
    if base not in runs:
        raise KeyError(f"the results have no run named {base!r} (they have: {', '.join(runs) or 'none'})")
    ref = runs[base]["final_test_acc"]
    rows = []
    for name in [base, *[n for n in names if n != base]]:
        if name not in runs:
            continue
        r = runs[name]
        rows.append({
            "run": name, "what": r.get("what", ""), "epochs": r.get("epochs"),
            "test accuracy": f"{100 * r['final_test_acc']:.2f}%",
            f"vs {base}": "—" if name == base else f"{100 * (r['final_test_acc'] - ref):+.2f} pp",
            "training s": r.get("train_seconds"),
            "images/s": f"{r['images_per_s_median']:,.0f}" if r.get("images_per_s_median") else "—",
            "measured on": _stamp(r),
        })
    return rows


def markdown_table(rows: list[Mapping[str, Any]]) -> str:
    """A markdown table of dicts with the same keys (display it with IPython's ``Markdown``)."""
    if not rows:
        return "(no rows)"
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(k, "")) for k in keys) + " |")
    return "\n".join(lines)


def _figure(ax, figsize: tuple[float, float]):
    """``(figure, axes)``: the given axes and their figure, or a new figure of ``figsize``."""
    if ax is not None:
        return ax.figure, ax
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=figsize)


def plot_learning_curves(histories: Mapping[str, list[Mapping[str, Any]]], ax=None,
                         metric: str = "val_acc", ylabel: str = "test accuracy"):
    """One line per run: ``metric`` of each epoch's record (the ``history`` of a checkpoint's JSON
    or of a benchmark run). Returns the figure."""
    fig, ax = _figure(ax, (6.5, 3.5))
    for name, history in histories.items():
        points = [(r["epoch"], r[metric]) for r in history if r.get(metric) is not None]
        if points:
            ax.plot(*zip(*points), "o-", markersize=3, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def plot_frontier(runs: Iterable[Mapping[str, Any]], ax=None, target: tuple[float, float] | None = None):
    """Final test accuracy against training seconds, one point per run (labelled), with the
    issue's target as a dashed corner if given as ``(accuracy, seconds)``."""
    fig, ax = _figure(ax, (6, 3.5))
    runs = sorted(runs, key=lambda r: r["train_seconds"])
    xs = [r["train_seconds"] for r in runs]
    ys = [100 * r["final_test_acc"] for r in runs]
    ax.plot(xs, ys, "o-")
    for r, x, y in zip(runs, xs, ys):
        ax.annotate(r["name"], (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
    if target:
        acc, seconds = target
        ax.axhline(100 * acc, ls="--", c="grey")
        ax.axvline(seconds, ls="--", c="grey")
    ax.set_xlabel("training seconds")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    return fig


def plot_table3(rows: list[Mapping[str, Any]], ax=None):
    """Top-1 accuracy per multi-crop row (``benchmarks/multicrop_cifar.py``), one bar group per
    scheme and one bar per ensemble size."""
    fig, ax = _figure(ax, (8, 3.5))
    labels = list(dict.fromkeys(r["label"] for r in rows))
    sizes = sorted({r["models"] for r in rows})
    width = 0.8 / len(sizes)
    for i, size in enumerate(sizes):
        acc = {r["label"]: 100 * r["top1"] for r in rows if r["models"] == size}
        xs = [j + i * width for j, label in enumerate(labels) if label in acc]
        ax.bar(xs, [acc[label] for label in labels if label in acc], width,
               label=f"{size} model{'s' if size > 1 else ''}")
    ax.set_xticks([j + width * (len(sizes) - 1) / 2 for j in range(len(labels))], labels, rotation=20,
                  ha="right", fontsize=8)
    ax.set_ylabel("top-1 accuracy (%)")
    low = min(100 * r["top1"] for r in rows)
    ax.set_ylim(max(0, low - 3), min(100, max(100 * r["top1"] for r in rows) + 1))
    ax.legend(fontsize=8)
    return fig


__all__ = ["REPO_RESULTS", "WHERE_ONLINE", "ablation_rows", "load", "markdown_table", "plot_frontier",
           "plot_learning_curves", "plot_table3", "results_folder", "runs_by_name"]
