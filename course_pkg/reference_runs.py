"""The CPU reference runs (``benchmarks/reference_cpu.py``) compared, for book chapter 7.

Every run was tested on the same 10,000 test images, so two runs are compared pairwise
(:mod:`course_pkg.compare`): the interval comes from the images one network gets right and the
other wrong, and a record without per-image results gets no interval and says so.  The chapter
glues the numbers its text quotes from the dicts the ``*_facts`` functions return.

- the curves: :func:`continued_history`, :func:`plot_reference_curves`, :func:`plot_bn_frontier`,
  :func:`plot_init_runs`
- the numbers: :func:`faithful_facts` (the faithful network's chunks), :func:`aux_facts` (the
  auxiliary-head ablation against the paper's "around 0.5%"; what the heads cost,
  :func:`aux_cost`), :func:`init_facts`, :func:`bn_facts`,
  all of them through :func:`reference_facts`; :func:`missing_runs`
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from . import results
from .compare import Z95

#: The course's targets for single-view test accuracy on the full CIFAR-10 test split.
FAITHFUL_TARGET = 0.85
BN_TARGET = 0.90
#: The paper's estimate of what the auxiliary classifiers are worth (section 5: "around 0.5%").
PAPER_AUX_GAIN = 0.005


def _pct(x: float, digits: int = 2) -> str:
    return f"{100 * x:.{digits}f}"


def continued_history(name: str, runs: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Run ``name``'s epochs numbered after those of the runs its weights continue
    (:func:`course_pkg.results.lineage`): chunk 3's first epoch is the faithful network's 17th."""
    chain = results.lineage(name, runs)
    before = sum(len(runs[c]["history"]) for c in chain[:-1])
    return [{**r, "epoch": r["epoch"] + before} for r in runs[name]["history"]]


def plot_reference_curves(runs: Mapping[str, Mapping[str, Any]],
                          names: Sequence[str] = ("bn", "bn_restart", "faithful", "faithful_chunk2",
                                                  "faithful_chunk3", "faithful_restart", "faithful_noaux")):
    """Test accuracy after every epoch of the reference runs present, each continued run drawn from
    the end of the one it continues."""
    curves = {name: continued_history(name, runs) for name in names if name in runs}
    fig = results.plot_learning_curves(curves, metric="test_acc", ylabel="test accuracy (of 1)")
    fig.axes[0].set_title("Reference runs on 2-core CPUs: test accuracy after each epoch")
    return fig


def _paired_reading(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[dict | None, str]:
    """The paired comparison of two records and its sentence; without per-image results, says so."""
    pair = results.paired_runs(before, after)
    if pair is None:
        missing = [r["run"] for r in (before, after) if not r.get("test_correct")]
        whose = (f"the record of {missing[0]} holds" if len(missing) == 1
                 else f"the records of {' and '.join(missing)} hold")
        return None, (f"{100 * (after['test_acc'] - before['test_acc']):+.2f} points; no interval: {whose} "
                      f"no per-image results to pair")
    return pair, (f"{pair['reading']} ({pair['only_b']:,} images only {after['run']} gets right, "
                  f"{pair['only_a']:,} only {before['run']})")


def faithful_facts(runs: Mapping[str, Mapping[str, Any]], last: str = "faithful_chunk3",
                   target: float = FAITHFUL_TARGET) -> dict[str, str]:
    """The faithful network's training in chunks: its final accuracy against the target, every
    schedule, the minutes in all, and each chunk's gain over the last, paired on the same images."""
    chain = results.lineage(last, runs)
    final = runs[last]
    facts = {"faithful_target": f"{100 * target:.0f}%", "faithful_final_acc": _pct(final["test_acc"]),
             "faithful_verdict": "reaches" if final["test_acc"] >= target else "falls short of",
             "faithful_total_epochs": str(sum(len(runs[c]["history"]) for c in chain)),
             "faithful_chunks": str(len(chain)),
             "faithful_schedules": ", then ".join(
                 f"{len(runs[c]['history'])} epochs peaking at {runs[c]['recipe']['lr']:g}" for c in chain),
             "faithful_total_minutes": f"{final.get('cpu_minutes_total', final['cpu_minutes']):.0f}",
             "faithful_cpu": final["cpu"].split(",")[0], "faithful_first_acc": _pct(runs[chain[0]]["test_acc"]),
             "faithful_first_epochs": str(len(runs[chain[0]]["history"]))}
    steps, restarts, pair = [], [], None
    for before, after in zip(chain, chain[1:]):
        pair, reading = _paired_reading(runs[before], runs[after])
        steps.append(f"{after} against {before}: {reading}")
        first, end, start = (runs[after]["history"][0]["test_acc"], runs[after]["test_acc"], runs[before]["test_acc"])
        restarts.append(f"{after} stood at {_pct(first)}% after its first epoch, "
                        f"{'below' if first < start else 'above' if first > start else 'at'} the {_pct(start)}% "
                        f"at which {before} had ended, and ended at {_pct(end)}%")
    facts["faithful_steps"] = "; ".join(steps)
    facts["faithful_restarts"] = "; ".join(restarts)
    if pair is not None:  # the last step's paired interval against the one for independent samples
        p = runs[chain[-2]]["test_acc"]
        facts["faithful_paired_halfwidth"] = f"{100 * (pair['high'] - pair['low']) / 2:.2f}"
        facts["faithful_independent_halfwidth"] = f"{100 * Z95 * math.sqrt(2 * p * (1 - p) / pair['n']):.2f}"
    return facts


def aux_facts(runs: Mapping[str, Mapping[str, Any]], with_aux: str = "faithful",
              without: str = "faithful_noaux") -> dict[str, str]:
    """The auxiliary-head ablation: the faithful network with and without its two heads, same seed
    and schedule, paired on the same test images, beside the paper's "around 0.5%"."""
    a, b = runs[with_aux], runs[without]
    pair, reading = _paired_reading(b, a)  # the change the heads make: with - without
    facts = {"aux_with": _pct(a["test_acc"]), "aux_without": _pct(b["test_acc"]),
             "aux_epochs": str(len(b["history"])), "aux_reading": reading,
             "aux_first_with": _pct(a["history"][0]["test_acc"], 1),
             "aux_first_without": _pct(b["history"][0]["test_acc"], 1),
             "aux_minutes": _minutes_of_two(a, b), "aux_paper": f"{100 * PAPER_AUX_GAIN:.1f}"}
    if "model_kwargs" in a:  # what the heads cost, counted (minutes of two machines do not compare)
        cost = aux_cost(a.get("model", "googlenet_cifar"), a["model_kwargs"])
        facts.update(aux_macs_share=f"{100 * cost['macs_share']:.1f}", aux_params=f"{cost['params'] / 1e6:.2f}")
    if pair is None:
        facts["aux_against_paper"] = "cannot be judged without an interval"
    elif pair["low"] <= PAPER_AUX_GAIN <= pair["high"]:
        facts["aux_against_paper"] = "is consistent with it (the interval holds it)"
    else:
        facts["aux_against_paper"] = ("is larger (its interval lies above it)" if pair["low"] > PAPER_AUX_GAIN
                                      else "is smaller (its interval lies below it)")
    return facts


def _minutes_of_two(a: Mapping[str, Any], b: Mapping[str, Any]) -> str:
    """The wall-clock minutes of two runs, and whether they compare (the same CPU) or not."""
    if a["cpu"] == b["cpu"]:
        return f"{a['cpu_minutes']:.0f} and {b['cpu_minutes']:.0f} minutes on the same CPU"
    return (f"{a['cpu_minutes']:.0f} minutes ({a['cpu'].split(',')[0]}) and {b['cpu_minutes']:.0f} minutes "
            f"({b['cpu'].split(',')[0]}); two machines, so those minutes do not compare")


def aux_cost(model: str, kwargs: Mapping[str, Any]) -> dict[str, float]:
    """What the auxiliary heads add to ``model`` built with ``kwargs``: their share of the multiply-adds
    of a training step's forward pass (one 32-px image; :func:`course_pkg.profile.count_macs`) and
    their parameters."""
    from .models import create
    from .profile import count_macs, count_params

    nets = {aux: create(model, **{**kwargs, "aux_logits": aux}) for aux in (True, False)}
    macs = {aux: count_macs(net, (3, 32, 32), training=True) for aux, net in nets.items()}
    return {"macs_share": (macs[True] - macs[False]) / macs[False],
            "params": count_params(nets[True]) - count_params(nets[False])}


INIT_RUNS = {"pytorch": "init_pytorch", "caffe": "init_caffe", "he": "init_he"}


def plot_init_runs(runs: Mapping[str, Mapping[str, Any]]):
    """Test accuracy after one epoch of the faithful network with each initialisation, and chance."""
    import matplotlib.pyplot as plt

    init = {name: runs[run] for name, run in INIT_RUNS.items() if run in runs}
    fig, ax = plt.subplots(figsize=(5.5, 3))
    ax.bar([f"init={name!r}" for name in init], [100 * r["test_acc"] for r in init.values()],
           color=["#c44", "#888", "#48c"][: len(init)])
    ax.axhline(10, ls="--", c="grey", label="chance: 10 classes")
    ax.set_ylabel("test accuracy after one epoch (%)")
    ax.legend(fontsize=9)
    ax.set_title("Faithful GoogLeNet (no BN), one epoch on the CPU")
    fig.tight_layout()
    return fig


def init_facts(runs: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Accuracy after one epoch per initialisation, PyTorch's training loss, and ln 10 (the
    cross-entropy of a uniform guess over 10 classes)."""
    facts = {f"init_{name}_acc": _pct(runs[run]["test_acc"], 1) for name, run in INIT_RUNS.items() if run in runs}
    if "init_pytorch" in runs:
        facts["init_pytorch_loss"] = f"{runs['init_pytorch']['history'][-1]['train_loss']:.2f}"
    facts["ln10"] = f"{math.log(10):.2f}"
    return facts


def bn_facts(runs: Mapping[str, Mapping[str, Any]], cpu_speed: Mapping[str, Any] | None = None,
             target: float = BN_TARGET) -> dict[str, str]:
    """The batch-normalised run and its warm restart: accuracy, minutes, the restart's change
    (paired when both records hold per-image results), the epoch time on its CPU and, from
    ``cpu_speed`` (``benchmarks/cpu_speed.py``), a Colab T4's estimated epoch time."""
    bn, restart = runs["bn"], runs.get("bn_restart")
    times = results.epoch_times(bn, cpu_speed)
    best = max([bn, restart] if restart else [bn], key=lambda run: run["test_acc"])
    gap = target - best["test_acc"]
    facts = {"bn_target": f"{100 * target:.0f}%", "bn_final_acc": _pct(bn["test_acc"]),
             "bn_epochs": str(len(bn["history"])), "bn_lr": f"{bn['recipe']['lr']:g}",
             "bn_cpu_minutes": f"{times['run_minutes_unshared']:.0f}", "bn_wall_minutes": f"{bn['cpu_minutes']:.0f}",
             "bn_unshared_epochs": str(times["unshared_epochs"]), "bn_best_acc": _pct(best["test_acc"]),
             "bn_verdict": "reaches it" if gap <= 0 else f"falls short of it by {100 * gap:.2f} points",
             "cpu_epoch_minutes": f"{times['cpu_epoch_minutes']:.1f}",
             "cpu_images_per_s": f"{times['cpu_images_per_s']:.0f}", "bn_cpu": bn["cpu"].split(",")[0]}
    if cpu_speed:
        facts.update(cpu_matmul_fraction=f"{100 * times['matmul_fraction']:.0f}",
                     t4_epoch_seconds=f"{times['t4_epoch_seconds']:.0f}")
    if restart:
        facts.update(restart_epochs=str(len(restart["history"])), restart_lr=f"{restart['recipe']['lr']:g}",
                     restart_epoch_minutes=f"{results.epoch_times(restart)['cpu_epoch_minutes']:.0f}",
                     restart_cpu=restart["cpu"].split(",")[0], restart_minutes=f"{restart['cpu_minutes']:.0f}",
                     restart_acc=_pct(restart["test_acc"]),
                     restart_train_acc=_pct(restart["history"][-1]["train_acc"], 1),
                     restart_first_acc=_pct(restart["history"][0]["test_acc"]),
                     restart_reading=_paired_reading(bn, restart)[1])
    return facts


def plot_bn_frontier(runs: Mapping[str, Mapping[str, Any]], target: float = BN_TARGET):
    """The batch-normalised run's accuracy against CPU minutes, its warm restart drawn on from its
    end (:func:`course_pkg.results.plot_cpu_frontier`)."""
    fig = results.plot_cpu_frontier(runs["bn"], target=target, continued=runs.get("bn_restart"))
    fig.axes[0].set_title("BN layout on a 2-core CPU: accuracy against minutes")
    return fig


#: The reference runs chapter 7 reads (chapter 8 reads the scale-augmented fine-tunes).
CHAPTER_RUNS = ("bn", "bn_restart", "faithful", "faithful_chunk2", "faithful_chunk3", "faithful_restart",
                "faithful_noaux", "init_pytorch", "init_he", "init_caffe")


def missing_runs(runs: Mapping[str, Mapping[str, Any]], names: Sequence[str] = CHAPTER_RUNS) -> list[str]:
    """A sentence per run of ``names`` this copy lacks, with the command that makes it."""
    return [f"reference run {name} is not in this copy: `python benchmarks/reference_cpu.py {name}` makes it"
            for name in names if name not in runs]


def reference_facts(runs: Mapping[str, Mapping[str, Any]],
                    cpu_speed: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Every number chapter 7 quotes about the reference runs, for the parts whose runs are present."""
    facts: dict[str, str] = {}
    if "faithful_chunk3" in runs and all(c in runs for c in results.lineage("faithful_chunk3", runs)):
        facts.update(faithful_facts(runs))
    if "faithful" in runs and "faithful_noaux" in runs:
        facts.update(aux_facts(runs))
    if any(run in runs for run in INIT_RUNS.values()):
        facts.update(init_facts(runs))
    if "bn" in runs:
        facts.update(bn_facts(runs, cpu_speed))
    return facts


__all__ = ["BN_TARGET", "CHAPTER_RUNS", "FAITHFUL_TARGET", "INIT_RUNS", "PAPER_AUX_GAIN", "aux_cost", "aux_facts",
           "bn_facts", "continued_history", "faithful_facts", "init_facts", "missing_runs", "plot_bn_frontier",
           "plot_init_runs", "plot_reference_curves", "reference_facts"]
