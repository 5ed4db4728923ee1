"""Figures, tables and numbers of book chapter 7, training GoogLeNet on CIFAR-10: the stem, the
recipe, initialisation and a trained network.

The chapter calls one function per figure or table and glues the numbers its text quotes from
the dicts the ``*_facts`` functions return (name -> the text to show), so the chapter shows the
code it teaches and the bookkeeping is here, where the tests run it.  The reference runs the
chapter compares are read by :mod:`course_pkg.reference_runs`.

- the stem: :func:`measure_stems`, :func:`plot_stems`, :func:`stem_facts`
- the recipe: :func:`plot_schedules_and_augmentation`, :func:`recipe_table`
- initialisation: :func:`signal_spread`, :func:`plot_signal_spread`, :func:`spread_facts`
- a trained network: :func:`predict`, :func:`plot_confusion_and_mistakes`, :func:`shipped_facts`,
  :func:`fine_tune_table`
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import torch

from . import results


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


__all__ = ["confusion_matrix", "fine_tune_table", "first_mistakes", "measure_stems", "plot_confusion_and_mistakes",
           "plot_schedules_and_augmentation", "plot_signal_spread", "plot_stems", "predict", "recipe_table",
           "shipped_facts", "signal_spread", "spread_facts", "stem_facts"]
