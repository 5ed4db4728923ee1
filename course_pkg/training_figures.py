"""Figures, tables and numbers of book chapter 7, training GoogLeNet on CIFAR-10.

The chapter calls one function per figure or table and glues the numbers its text quotes from
the dicts the ``*_facts`` functions return (name -> the text to show), so the chapter shows the
code it teaches and the bookkeeping is here, where the tests run it.

- the stem: :func:`measure_stems`, :func:`plot_stems`, :func:`stem_facts`
- the recipe: :func:`plot_schedules_and_augmentation`, :func:`recipe_table`
- initialisation: :func:`signal_spread`, :func:`plot_signal_spread`, :func:`spread_facts`
- a trained network: :func:`predict`, :func:`plot_confusion_and_mistakes`, :func:`shipped_facts`,
  :func:`fine_tune_table`
- the reference runs (``benchmarks/reference_cpu.py``, read with :mod:`course_pkg.results`):
  :func:`plot_reference_curves`, :func:`faithful_facts`, :func:`aux_facts`, :func:`plot_init_runs`,
  :func:`init_facts`, :func:`bn_facts`

Comparisons of two networks on the same test images are paired (:mod:`course_pkg.compare`): their
interval comes from the images one network gets right and the other wrong.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from . import results
from .compare import Z95

#: The course's targets for single-view test accuracy on the full CIFAR-10 test split.
FAITHFUL_TARGET = 0.85
BN_TARGET = 0.90
#: The paper's estimate of what the auxiliary classifiers are worth (section 5: "around 0.5%").
PAPER_AUX_GAIN = 0.005


def _pct(x: float, digits: int = 2) -> str:
    return f"{100 * x:.{digits}f}"


# --------------------------------------------------------------------------------------------
# The stem
# --------------------------------------------------------------------------------------------
def measure_stems(stems: Sequence[str] = ("16", "32"), images: int = 4, repeats: int = 2) -> dict[str, dict]:
    """Parameters, multiply-adds per 32x32 image and forward speed (best of ``repeats`` passes over
    ``images`` random images, after a warm-up) of ``googlenet_cifar`` with each stem, on this CPU."""
    from .models import create
    from .profile import count_macs, count_params

    measured = {}
    for stem in stems:
        model = create("googlenet_cifar", stem=stem, aux_logits=False).eval()
        x = torch.randn(images, 3, 32, 32)
        with torch.no_grad():
            model(x[:1])
            timings = []
            for _ in range(repeats):
                start = time.perf_counter()
                model(x)
                timings.append(time.perf_counter() - start)
        measured[stem] = dict(params=count_params(model), macs=count_macs(model, (3, 32, 32)),
                              images_per_s=images / min(timings))
    return measured


def plot_stems(measured: Mapping[str, Mapping[str, float]]):
    """Two bar charts: multiply-adds per image and images per second, one bar per stem."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    labels = [f"{s}x{s} before 3a" for s in measured]
    colours = ["#48c", "#c44", "#888"][: len(measured)]
    axes[0].bar(labels, [m["macs"] / 1e9 for m in measured.values()], color=colours)
    axes[0].set_ylabel("billion multiply-adds per image")
    axes[1].bar(labels, [m["images_per_s"] for m in measured.values()], color=colours)
    axes[1].set_ylabel("images per second (this CPU)")
    fig.suptitle("GoogLeNet on 32x32 images: the cost of the stem")
    fig.tight_layout()
    return fig


def stem_facts(measured: Mapping[str, Mapping[str, float]], test_images: int | None = None) -> dict[str, str]:
    """The numbers chapter 7 quotes about the two stems (``measured`` from :func:`measure_stems`)."""
    from .data import SPLIT_SIZES

    n = test_images or SPLIT_SIZES["cifar10"]["test"]
    small, large = measured["16"], measured["32"]
    return {"stem16_gmacs": f"{small['macs'] / 1e9:.2f}", "stem32_gmacs": f"{large['macs'] / 1e9:.2f}",
            "stem_ratio": f"{large['macs'] / small['macs']:.1f}",
            "stem16_speed": f"{small['images_per_s']:.1f}", "stem32_speed": f"{large['images_per_s']:.1f}",
            "cifar_params": f"{small['params']:,}", "n_test": f"{n:,}",
            "test_minutes_16": f"{n / small['images_per_s'] / 60:.0f}",
            "test_minutes_32": f"{n / large['images_per_s'] / 60:.0f}"}


# --------------------------------------------------------------------------------------------
# The recipe
# --------------------------------------------------------------------------------------------
def _image_grid(pictures: torch.Tensor, rows: int) -> torch.Tensor:
    """``(rows * cols, 3, h, w)`` images in [0, 1] as one ``(rows * h, cols * w, 3)`` picture."""
    n, c, h, w = pictures.shape
    cols = n // rows
    return pictures.clamp(0, 1).reshape(rows, cols, c, h, w).permute(0, 3, 1, 4, 2).reshape(rows * h, cols * w, c)


def plot_schedules_and_augmentation(steps: int = 1000, images: int = 8, padding: int = 4):
    """Left: the learning-rate schedules of :func:`course_pkg.train.fit`; right: CIFAR-10 training
    images and the same images after the recipe's augmentation (random crop of the reflect-padded
    image, random flip), drawn by the package's own functions."""
    import matplotlib.pyplot as plt

    from . import data
    from .train import lr_factor

    fig, axes = plt.subplots(1, 2, figsize=(11, 3), gridspec_kw={"width_ratios": [1, 1.6]})
    for schedule in ("onecycle", "cosine", "step"):
        axes[0].plot([lr_factor(schedule, s, steps) for s in range(steps)], label=schedule)
    axes[0].set_xlabel("training step")
    axes[0].set_ylabel("learning rate / peak")
    axes[0].legend()
    axes[0].set_title("schedules of fit()")
    x, y = data.load_arrays("cifar10", "train", limit=images)
    batch = data.to_tensor(x, "cifar10")
    generator = torch.Generator().manual_seed(0)
    augmented = data.random_flip(data.random_crop(batch, padding, generator=generator), generator=generator)
    pictures = torch.cat([data.denormalize(batch, "cifar10"), data.denormalize(augmented, "cifar10")])
    axes[1].imshow(_image_grid(pictures, 2).numpy())
    axes[1].set_yticks([16, 48], ["original", "augmented"])
    names = data.class_names("cifar10")
    axes[1].set_xticks([16 + 32 * i for i in range(len(y))], [names[int(c)] for c in y], fontsize=8)
    axes[1].set_title(f"random crop (reflect padding {padding}) and flip")
    fig.tight_layout()
    return fig


def recipe_table(recipe) -> str:
    """A recipe (:class:`course_pkg.recipes.Recipe`) as a markdown table of its settings."""
    return "| setting | value |\n|---|---|\n" + "\n".join(
        f"| `{name}` | `{value}` |" for name, value in recipe.as_dict().items())


# --------------------------------------------------------------------------------------------
# Initialisation
# --------------------------------------------------------------------------------------------
def signal_spread(inits: Sequence[str] = ("pytorch", "caffe", "he"), images: int = 16,
                  seed: int = 0) -> dict[str, list[tuple[str, float]]]:
    """The standard deviation of every top-level module's output of the untrained faithful
    ``googlenet_cifar`` (no batch norm), one CIFAR-10 batch through it, for each initialisation."""
    from . import data
    from .models import create

    x, _ = data.load_arrays("cifar10", "train", limit=images)
    batch = data.to_tensor(x, "cifar10")
    spread = {}
    for init in inits:
        torch.manual_seed(seed)
        model = create("googlenet_cifar", stem="16", init=init, aux_logits=False).eval()
        stds: list[tuple[str, float]] = []
        hooks = [module.register_forward_hook(lambda m, i, o, name=name: stds.append((name, o.std().item())))
                 for name, module in model.named_children()]
        with torch.no_grad():
            model(batch)
        for hook in hooks:
            hook.remove()
        spread[init] = stds
    return spread


def plot_signal_spread(spread: Mapping[str, list[tuple[str, float]]]):
    """One line per initialisation: the spread of each module's output, on a log axis."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 3.4))
    for init, stds in spread.items():
        ax.plot([s for _, s in stds], "o-", label=f"init={init!r}")
    names = [n.replace("inception", "") for n, _ in next(iter(spread.values()))]
    ax.set_xticks(range(len(names)), names, rotation=60, fontsize=9)
    ax.set_yscale("log")
    ax.set_ylabel("std of the module's output (log scale)")
    ax.legend()
    ax.set_title("Signal through the untrained faithful GoogLeNet (no batch norm), one CIFAR-10 batch")
    fig.tight_layout()
    return fig


def spread_facts(spread: Mapping[str, list[tuple[str, float]]]) -> dict[str, str]:
    """What reaches the classifier (the input of ``fc``, after dropout) over the output of the first
    convolution, per initialisation: ``shrink_<init>``."""
    return {f"shrink_{init}": f"{dict(stds)['dropout'] / dict(stds)['conv1']:.2g}" for init, stds in spread.items()}


# --------------------------------------------------------------------------------------------
# A trained network
# --------------------------------------------------------------------------------------------
def predict(net: torch.nn.Module, loader) -> tuple[torch.Tensor, torch.Tensor]:
    """``(predicted, truth)`` class indices of ``net`` over ``loader`` (eval mode, no gradients)."""
    net.eval()
    predicted, truth = [], []
    with torch.no_grad():
        for xb, yb in loader:
            predicted.append(net(xb).argmax(1).cpu())
            truth.append(torch.as_tensor(yb).cpu().long())
    return torch.cat(predicted), torch.cat(truth)


def confusion_matrix(predicted: torch.Tensor, truth: torch.Tensor, classes: int = 10) -> torch.Tensor:
    """``[true class, predicted class]`` counts."""
    confusion = torch.zeros(classes, classes, dtype=torch.int64)
    confusion.index_put_((truth.long(), predicted.long()), torch.ones_like(truth, dtype=torch.int64), accumulate=True)
    return confusion


def first_mistakes(predicted: torch.Tensor, truth: torch.Tensor, count: int = 12) -> list[int]:
    """Indices of up to ``count`` wrong predictions, taken in turn from each true class."""
    by_class: dict[int, list[int]] = {}
    for index in (predicted != truth).nonzero().flatten().tolist():
        by_class.setdefault(int(truth[index]), []).append(index)
    longest = max((len(found) for found in by_class.values()), default=0)
    return [found[k] for k in range(longest) for found in by_class.values() if k < len(found)][:count]


def plot_confusion_and_mistakes(predicted: torch.Tensor, truth: torch.Tensor, images, title: str):
    """Left: the confusion matrix; right: up to 12 misclassified test images (true -> predicted).
    ``images``: the uint8 test images (N, 32, 32, 3) in the order of ``predicted``."""
    import matplotlib.pyplot as plt

    from . import data

    classes = data.class_names("cifar10")
    confusion = confusion_matrix(predicted, truth)
    accuracy = (predicted == truth).float().mean().item()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), gridspec_kw={"width_ratios": [1, 1.3]})
    axes[0].imshow(confusion.numpy(), cmap="Blues")
    for i in range(10):
        for j in range(10):
            axes[0].text(j, i, int(confusion[i, j]), ha="center", va="center", fontsize=8,
                         color="white" if confusion[i, j] > confusion.max() / 2 else "black")
    axes[0].set_xticks(range(10), classes, rotation=60, fontsize=9)
    axes[0].set_yticks(range(10), classes, fontsize=9)
    axes[0].set_xlabel("predicted")
    axes[0].set_ylabel("true class")
    axes[0].set_title(f"{title} on {len(truth):,} test images: {100 * accuracy:.1f}% right")
    wrong = first_mistakes(predicted, truth)
    if wrong:
        wrong += [wrong[-1]] * (12 - len(wrong))
        pictures = data.denormalize(data.to_tensor(images[wrong], "cifar10"), "cifar10")
        axes[1].imshow(_image_grid(pictures, 2).numpy())
        for k, index in enumerate(wrong):
            label = f"{classes[truth[index]]}\n→ {classes[predicted[index]]}"
            axes[1].text(32 * (k % 6) + 16, 32 * (k // 6) + 1, label,
                         ha="center", va="top", fontsize=7.5, color="white",
                         bbox=dict(facecolor="black", alpha=0.55, pad=1, linewidth=0))
    axes[1].set_xticks([])
    axes[1].set_yticks([])
    axes[1].set_title("some of its mistakes (true → predicted)")
    fig.tight_layout()
    return fig


def shipped_facts(name: str, predicted: torch.Tensor, truth: torch.Tensor) -> dict[str, str]:
    """What chapter 7 says about a shipped network: its accuracy on the images just predicted and in
    its record, the epochs and CPU behind it, the time of an epoch and of the test pass (from its
    reference run's record), and its most frequent confusion."""
    from . import data, pretrained

    info = pretrained.info(name)
    runs = results.reference_runs()
    chain = results.lineage(info["reference_run"], runs)
    per_epoch = results.epoch_times(runs[info["reference_run"]])
    confusion = confusion_matrix(predicted, truth)
    confusion.fill_diagonal_(-1)
    worst = int(confusion.argmax())
    classes = data.class_names("cifar10")
    return {"shipped_n": f"{len(truth):,}", "shipped_here_acc": _pct((predicted == truth).float().mean().item(), 1),
            "shipped_acc": _pct(info["test_acc"]),
            "shipped_epochs": str(sum(len(runs[c]["history"]) for c in chain)),
            "shipped_cpu": info["cpu"].split(",")[0],
            "shipped_epoch_minutes": f"{per_epoch['cpu_epoch_minutes']:.1f}",
            "shipped_test_seconds": f"{per_epoch['cpu_test_seconds']:.0f}",
            "shipped_confused": f"a {classes[worst // 10]} taken for a {classes[worst % 10]}, "
                                f"{int(confusion.flatten()[worst])} times"}


def fine_tune_table(name: str, train_loader, eval_loader, recipe, lrs: Sequence[float], device) -> str:
    """One pass of :func:`course_pkg.train.fit` over ``train_loader`` at each fixed learning rate,
    starting each time from the shipped network ``name``; its accuracy on ``eval_loader`` before and
    after, as a markdown table."""
    from . import pretrained
    from .accuracy import evaluate_accuracy
    from .train import fit

    before, _ = evaluate_accuracy(pretrained.load(name, device), eval_loader, device)
    rows = [f"| (the shipped network) | | {100 * before:.1f}% |"]
    for lr in lrs:
        tuned = pretrained.load(name, device)
        once = recipe.replace(epochs=1, lr=lr, schedule="constant")  # the recipe, one pass at a fixed rate
        history = fit(tuned, train_loader, **once.fit_kwargs(), val_loader=eval_loader, device=device, progress=False)
        rows.append(f"| {lr:g} | {history.seconds[-1]:.0f} s | {100 * history.val_acc[-1]:.1f}% |")
    return "| learning rate | training time | test accuracy |\n|---|---|---|\n" + "\n".join(rows)


# --------------------------------------------------------------------------------------------
# The reference runs
# --------------------------------------------------------------------------------------------
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
             "aux_minutes": f"{a['cpu_minutes']:.0f} and {b['cpu_minutes']:.0f}",
             "aux_paper": f"{100 * PAPER_AUX_GAIN:.1f}"}
    if pair is None:
        facts["aux_against_paper"] = "cannot be set against the paper's without an interval"
    elif pair["low"] <= PAPER_AUX_GAIN <= pair["high"]:
        facts["aux_against_paper"] = "is consistent with the paper's (its interval holds it)"
    else:
        facts["aux_against_paper"] = ("is larger than the paper's (its interval lies above it)"
                                      if pair["low"] > PAPER_AUX_GAIN else
                                      "is smaller than the paper's (its interval lies below it)")
    return facts


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


__all__ = ["BN_TARGET", "CHAPTER_RUNS", "FAITHFUL_TARGET", "INIT_RUNS", "PAPER_AUX_GAIN", "aux_facts", "bn_facts",
           "missing_runs", "plot_bn_frontier", "reference_facts",
           "confusion_matrix", "continued_history", "faithful_facts", "fine_tune_table", "first_mistakes",
           "init_facts", "measure_stems", "plot_confusion_and_mistakes", "plot_init_runs", "plot_reference_curves",
           "plot_schedules_and_augmentation", "plot_signal_spread", "plot_stems", "predict", "recipe_table",
           "shipped_facts", "signal_spread", "spread_facts", "stem_facts"]
