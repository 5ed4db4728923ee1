"""The benchmark results the book shows: read them, tabulate them, plot them.

The benchmarks write JSON under ``benchmarks/results/`` (each run naming its device, date and
commit). Chapters 7, 8 and 10 read them through this module, so that every figure and table of a
result is drawn from those files and nothing is typed in.

The files the book needs (:data:`SHIPPED`) are also copied into the package
(``course_pkg/pretrained/results/``) by the benchmark that writes them, so an installed copy — a
Colab session — shows the same figures as a checkout.

>>> from course_pkg import results
>>> runs = results.reference_runs()                # the CPU reference runs, by name
>>> sorted(runs)                                    # doctest: +SKIP
['bn', 'faithful', 'init_caffe', 'init_he', 'init_pytorch']
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import statistics
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# In a checkout (the book build, an editable install) the results lie beside the package. An
# installed copy carries the shipped ones inside it. $COURSE_RESULTS points elsewhere.
REPO_RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
SHIPPED_RESULTS = Path(__file__).resolve().parent / "pretrained" / "results"
WHERE_ONLINE = "benchmarks/results/ in the course repository"
# The results files the book reads, which therefore travel with the package (glob patterns).
SHIPPED = ("reference_*.json", "cpu_speed.json", "table3_cifar.json", "table3_timing.json", "grade_hostile.json")
# The runs of benchmarks/reference_cpu.py, each written to reference_<run>.json.
REFERENCE_RUNS = ("bn", "bn_restart", "faithful", "faithful_restart", "faithful_chunk2", "faithful_chunk3",
                  "bn_scale_ft", "bn_scale_ft_s1", "bn_scale_ft_s2", "bn_scale", "bn_scale_s1", "bn_scale_s2",
                  "faithful_noaux", "init_pytorch", "init_he", "init_caffe")


def _folders(folder: str | os.PathLike | None) -> list[Path]:
    if folder is not None:
        return [Path(folder)]
    if os.environ.get("COURSE_RESULTS"):
        return [Path(os.environ["COURSE_RESULTS"])]
    return [REPO_RESULTS, SHIPPED_RESULTS]


def load(name: str, folder: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """``<name>.json`` as a dict, or None when it does not exist (yet).

    Looked up in ``folder`` if given, else in ``$COURSE_RESULTS`` if set, else in the checkout's
    ``benchmarks/results/`` and then in the copies shipped with the package. A file that exists
    but is not valid JSON is an error that says which file to regenerate.
    """
    for where in _folders(folder):
        path = where / f"{name}.json"
        if path.is_file():
            try:
                return json.loads(path.read_text())
            except (OSError, json.JSONDecodeError) as err:
                raise ValueError(f"{path} is not a readable results file ({err}); regenerate it with the "
                                 "benchmark command named in benchmarks/README.md") from None
    return None


def reference_runs(folder: str | os.PathLike | None = None) -> dict[str, dict[str, Any]]:
    """The CPU reference runs (``benchmarks/reference_cpu.py``) found, by run name, in the
    first folder of :func:`load`'s search that has any."""
    for where in _folders(folder):
        found = sorted(where.glob("reference_*.json"))
        if found:
            return {p.stem.removeprefix("reference_"): load(p.stem, where) for p in found}
    return {}


def ship(source: str | os.PathLike = REPO_RESULTS, target: str | os.PathLike = SHIPPED_RESULTS) -> list[Path]:
    """Copy the results the book reads (:data:`SHIPPED`) from ``source`` into the package, so that
    an installed copy shows them too; files no longer in ``source`` are removed. Returns the
    copies. The benchmarks that write such a file call this after writing it."""
    source, target = Path(source), Path(target)
    names = sorted({p.name for pattern in SHIPPED for p in source.glob(pattern)})
    target.mkdir(parents=True, exist_ok=True)
    for stale in target.glob("*.json"):
        if stale.name not in names:
            stale.unlink()
    return [Path(shutil.copyfile(source / name, target / name)) for name in names]


def is_shipped(name: str) -> bool:
    """Whether a results file named ``name`` (``reference_bn.json``) travels with the package."""
    return any(fnmatch.fnmatch(name, pattern) for pattern in SHIPPED)


# NVIDIA T4 datasheet: 65 TFLOPS of mixed-precision (fp16) tensor-core math; a multiply-add is
# two FLOPs. Colab's free GPU is a T4; it has no bf16.
T4_FP16_MACS_PER_S = 65e12 / 2
# a training step costs about three forward passes (forward, and the two products of backward)
TRAIN_STEP_FORWARDS = 3


def lineage(name: str, runs: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The runs whose schedules led to run ``name``'s weights, first to last: a continued run
    (``starts_from``) follows its parent's (``faithful_chunk3`` -> faithful, chunk2, chunk3)."""
    chain = [name]
    while "starts_from" in runs[chain[0]] and runs[chain[0]]["starts_from"]["run"] in runs:
        chain.insert(0, runs[chain[0]]["starts_from"]["run"])
        if len(chain) > len(runs):
            raise ValueError(f"the reference runs' starts_from records form a circle through {name}")
    return chain


def reference_rows(runs: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per CPU reference run: what it is, its epochs, the schedules behind its weights,
    final test accuracy and minutes.  The epochs and peak learning rates of every schedule that led to
    the weights are in the row, so two rows compared are seen to differ in their training too."""
    rows = []
    for name, r in runs.items():
        chain = lineage(name, runs)
        total = sum(len(runs[c]["history"]) for c in chain)
        rows.append({
            "run": name, "what": r["what"],
            "epochs": f"{len(r['history'])}" + (f" ({total} in all)" if len(chain) > 1 else ""),
            "schedules (epochs x peak lr)": " then ".join(
                f"{len(runs[c]['history'])} x {runs[c]['recipe']['lr']:g}" if runs[c].get("recipe") else
                f"{len(runs[c]['history'])} x ?" for c in chain),
            "test accuracy": f"{100 * r['test_acc']:.2f}% of {r['test_n']:,}",
            "CPU minutes": f"{r['cpu_minutes']:.0f}",
            "measured on": f"{r['cpu']}, {r['date']}, commit {r['commit']}",
        })
    return rows


def paired_runs(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any] | None:
    """``after``'s accuracy minus ``before``'s on the same test images, with the paired 95% interval
    (:func:`course_pkg.compare.paired_difference`), from the per-image results the two records carry
    (``test_correct``); None when either lacks them (records written before they were kept)."""
    from .compare import from_bits, paired_difference

    a, b = before.get("test_correct"), after.get("test_correct")
    if not a or not b:
        return None
    if a["images"] != b["images"] or a.get("order") != b.get("order"):
        raise ValueError(f"the two records hold results on different test images ({a['images']} in "
                         f"{a.get('order')!r}, {b['images']} in {b.get('order')!r}): not a paired comparison")
    return paired_difference(from_bits(a["bits"], a["images"]), from_bits(b["bits"], b["images"]))


# An epoch counts as having had the machine to itself when it ran at least this fraction of the
# run's fastest epoch (a run that is resumed, or shares the cores for a while, has slow epochs).
UNSHARED = 0.9


def unshared_epochs(run: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The epochs of a reference run that had the CPU to themselves (see :data:`UNSHARED`)."""
    fastest = max(r["images_per_s"] for r in run["history"])
    return [r for r in run["history"] if r["images_per_s"] >= UNSHARED * fastest]


def epoch_times(run: Mapping[str, Any], cpu_speed: Mapping[str, Any] | None = None,
                images: int = 50_000) -> dict[str, Any]:
    """How long an epoch of ``run`` takes: measured on its CPU (the median of its unshared epochs,
    training and the test pass apart), and estimated for a Colab T4 from measured ratios when
    ``cpu_speed`` (``benchmarks/cpu_speed.py``) is given.

    The estimate assumes the T4 reaches the same fraction of its fp16 tensor-core peak as the CPU
    reached of its own measured bf16 matmul rate in ``fit``. A network this small usually uses a
    GPU less well than that, so the estimate is optimistic: a lower bound on the T4's time.
    """
    alone = unshared_epochs(run)
    train = statistics.median(r["seconds"] for r in alone)
    test = statistics.median(r.get("test_seconds", 0.0) for r in alone)
    out: dict[str, Any] = {"cpu_epoch_minutes": train / 60, "cpu_test_seconds": test, "cpu": run["cpu"],
                           "cpu_images_per_s": images / train, "unshared_epochs": len(alone),
                           "epochs": len(run["history"]),
                           "run_minutes_unshared": len(run["history"]) * (train + test) / 60}
    if cpu_speed:
        layout = "bn" if (run.get("model_kwargs") or {}).get("batch_norm") else "faithful"
        fit = next(f for f in cpu_speed["fit"] if f["layout"] == layout and f["config"] == "auto")
        macs = TRAIN_STEP_FORWARDS * cpu_speed["forward_macs"][layout]
        t4_images_per_s = fit["matmul_fraction"] * T4_FP16_MACS_PER_S / macs
        out.update(matmul_fraction=fit["matmul_fraction"], t4_images_per_s=t4_images_per_s,
                   t4_epoch_seconds=images / t4_images_per_s)
    return out


def plot_cpu_frontier(run: Mapping[str, Any], target: float | None = None, ax=None,
                      continued: Mapping[str, Any] | None = None):
    """Test accuracy against CPU minutes, one point per epoch of a reference run, with the target
    accuracy as a dashed line. Minutes are epochs times the run's unshared epoch time (training
    and test, :func:`epoch_times`), so epochs slowed by other work do not bend the curve. The
    points of one run with a fixed schedule: the epochs before the last are at a high learning
    rate, so a run planned to be that short does better. ``continued``: a run that started from
    ``run``'s last weights, drawn on from its end; its epochs are the same work, so they are
    placed at ``run``'s epoch time too (whichever CPU they ran on)."""
    fig, ax = _figure(ax, (6, 3.5))
    times = epoch_times(run)
    per_epoch = times["cpu_epoch_minutes"] + times["cpu_test_seconds"] / 60
    minutes = [r["epoch"] * per_epoch for r in run["history"]]
    ax.plot(minutes, [100 * r["test_acc"] for r in run["history"]], "o-", markersize=3, label=run["run"])
    if continued:
        ax.plot([minutes[-1]] + [minutes[-1] + r["epoch"] * per_epoch for r in continued["history"]],
                [100 * run["test_acc"]] + [100 * r["test_acc"] for r in continued["history"]],
                "s-", markersize=3, label=f"{continued['run']} (from {run['run']}'s last epoch)")
    if target:
        ax.axhline(100 * target, ls="--", c="grey", label=f"target {100 * target:.0f}%")
    ax.set_xlabel(f"minutes of a 2-core CPU ({run['cpu'].split(',')[0]}), unshared")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


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


__all__ = ["REFERENCE_RUNS", "REPO_RESULTS", "SHIPPED", "SHIPPED_RESULTS", "T4_FP16_MACS_PER_S", "WHERE_ONLINE",
           "epoch_times", "is_shipped", "load", "markdown_table", "plot_cpu_frontier", "plot_learning_curves",
           "lineage", "paired_runs", "reference_rows", "reference_runs", "ship", "unshared_epochs"]
