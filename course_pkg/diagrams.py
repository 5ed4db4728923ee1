"""Diagrams of the inception module and of GoogLeNet, drawn from the modules themselves.

Nothing here is typed in: every box reads its kernel size, filter number, stride or output size
from the ``nn.Module`` it draws, so a changed filter number changes the picture.

- :func:`draw_inception` — one module as the paper's Figure 2 draws it: the previous layer at the
  bottom, the four branches (1x1, 3x3, 5x5, pool) side by side, the filter concatenation on top.
- :func:`inception_figure` — the naive module (Figure 2a) and the one with dimension reductions
  (Figure 2b) side by side.
- :func:`googlenet_figure` — the whole network (cf. the paper's Figure 3 and Table 1): the stem,
  the nine modules with their filter numbers and output sizes, the pools, and the two auxiliary
  classifiers where the forward pass attaches them.
- :func:`inception_filters` — a module's six Table 1 numbers, read from its layers.

``python -m course_pkg.diagrams OUT_DIR`` writes both figures as PNG files.
Matplotlib only, so it runs unchanged in Colab.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib.pyplot as plt
import matplotlib.text
import torch
import torch.nn as nn
from matplotlib.patches import FancyBboxPatch

from .models.googlenet import InceptionAux
from .models.inception import Inception, InceptionNaive
from .models.layers import BasicConv2d

BRANCHES = ("branch1x1", "branch3x3", "branch5x5", "branch_pool")
#: Table 1's column names, in the order of ``Inception``'s arguments.
TABLE1_COLUMNS = ("#1x1", "#3x3 reduce", "#3x3", "#5x5 reduce", "#5x5", "pool proj")
# Colours after the paper's Figure 2: 1x1 yellow, 3x3 orange, 5x5 blue, max pool red.
COLOURS = {1: "#f6e27a", 3: "#f4a460", 5: "#8fb8de", "pool": "#e8898b", "other": "#e6e6e6"}


def _layers(branch: nn.Module) -> list[nn.Module]:
    """The drawable layers of a branch, in order: convolutions (as nn.Conv2d) and pools."""
    if isinstance(branch, BasicConv2d):
        return [branch.conv]
    if isinstance(branch, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
        return [branch]
    return [layer for child in branch.children() for layer in _layers(child)]


def _size(value) -> int:
    return value[0] if isinstance(value, tuple) else int(value)


def _describe(layer: nn.Module) -> tuple[str, str]:
    """(label, colour key) of one layer, read from its attributes."""
    if isinstance(layer, nn.Conv2d):
        k, s = _size(layer.kernel_size), _size(layer.stride)
        stride = f"/{s}" if s > 1 else ""
        return f"{k}x{k}{stride} conv\n{layer.out_channels} filters", k if k in COLOURS else "other"
    if isinstance(layer, (nn.MaxPool2d, nn.AvgPool2d)):
        k, s = _size(layer.kernel_size), _size(layer.stride or layer.kernel_size)
        kind = "max" if isinstance(layer, nn.MaxPool2d) else "avg"
        return f"{k}x{k} {kind} pool\nstride {s}", "pool"
    return type(layer).__name__, "other"


def inception_filters(module: Inception) -> dict[str, int]:
    """The six numbers of Table 1 (``#1x1 … pool proj``) read from the module's convolutions."""
    convs = [conv for name in BRANCHES for conv in _layers(getattr(module, name)) if isinstance(conv, nn.Conv2d)]
    b1, b3r, b3, b5r, b5, bp = convs
    return dict(zip(TABLE1_COLUMNS, (b1.out_channels, b3r.out_channels, b3.out_channels,
                                     b5r.out_channels, b5.out_channels, bp.out_channels)))


def _box(ax, x, y, text, colour, width=0.9, height=0.62, fontsize=8, weight="normal"):
    ax.add_patch(FancyBboxPatch((x - width / 2, y - height / 2), width, height,
                                boxstyle="round,pad=0.02,rounding_size=0.06",
                                facecolor=COLOURS.get(colour, colour), edgecolor="#333", lw=0.8))
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize, fontweight=weight)


def _arrow(ax, start, end):
    ax.annotate("", xy=end, xytext=start, arrowprops=dict(arrowstyle="->", color="#333", lw=0.8,
                                                          shrinkA=0, shrinkB=0))


def draw_inception(module: Inception | InceptionNaive, ax=None, title: str | None = None):
    """Draw one inception module on ``ax`` (a new figure if None); returns the axes.

    Bottom to top as in the paper's Figure 2: the previous layer, each branch's layers (a branch
    with one layer sits on the top row, like the paper's), the filter concatenation.
    """
    if not isinstance(module, (Inception, InceptionNaive)):
        raise TypeError(f"draw_inception draws an Inception or InceptionNaive module, got {type(module).__name__}")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.6))
    branches = [_layers(getattr(module, name)) for name in BRANCHES]
    first_conv = next(layer for layer in branches[0] if isinstance(layer, nn.Conv2d))
    in_channels = first_conv.in_channels
    widths = []
    top, height = 3, 0.62
    for x, layers in enumerate(branches):
        widths.append(_branch_width(layers, in_channels))
        levels = range(top - len(layers), top)
        _arrow(ax, (x, 0.2), (x, levels[0] - height / 2))  # from the previous layer
        for i, (level, layer) in enumerate(zip(levels, layers)):
            label, colour = _describe(layer)
            _box(ax, x, level, label, colour)
            if i:
                _arrow(ax, (x, level - 1 + height / 2), (x, level - height / 2))
        _arrow(ax, (x, top - 1 + height / 2), (x, top - 0.2))  # into the concatenation
    _box(ax, 1.5, 0, f"previous layer: {in_channels} channels", "other", width=3.6, height=0.4)
    total = " + ".join(str(w) for w in widths)
    _box(ax, 1.5, top, f"filter concatenation: {total} = {module.out_channels} channels", "other",
         width=3.6, height=0.4)
    ax.set_xlim(-0.55, 3.55)
    ax.set_ylim(-0.35, top + 0.35)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def _branch_width(layers: list[nn.Module], in_channels: int) -> int:
    """Output channels of a branch: its last convolution's filters, or its input for a bare pool."""
    convs = [layer for layer in layers if isinstance(layer, nn.Conv2d)]
    return convs[-1].out_channels if convs else in_channels


def inception_figure(naive: InceptionNaive, reduced: Inception, name: str = "3a"):
    """The naive module (Figure 2a) beside the module with dimension reductions (Figure 2b)."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    draw_inception(naive, axes[0], f"(a) naive inception {name}")
    draw_inception(reduced, axes[1], f"(b) inception {name} with dimension reductions")
    fig.tight_layout()
    return fig


def _trace(model: nn.Module, input_size: tuple[int, int, int]):
    """Run one forward pass in training mode (so the auxiliary heads run) and record, for every
    direct child, its output shape, and for every auxiliary head, which child's output it read."""
    outputs, aux_inputs, hooks = {}, {}, []
    for name, child in model.named_children():
        if isinstance(child, InceptionAux):
            hooks.append(child.register_forward_hook(
                lambda m, inp, out, name=name: aux_inputs.__setitem__(name, inp[0])))
        else:
            hooks.append(child.register_forward_hook(
                lambda m, inp, out, name=name: outputs.__setitem__(name, out)))
    was_training = model.training
    try:
        model.train()
        with torch.no_grad():
            model(torch.zeros(2, *input_size))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    shapes = {name: tuple(out.shape[1:]) for name, out in outputs.items()}
    attached = {aux: next(name for name, out in outputs.items() if out is tensor)
                for aux, tensor in aux_inputs.items()}
    return shapes, attached


def _shape_text(shape: tuple[int, ...]) -> str:
    if len(shape) == 3:
        return f"{shape[1]}x{shape[2]}x{shape[0]}"
    return "x".join(str(s) for s in shape)


def _node_label(name: str, child: nn.Module) -> tuple[str, str]:
    if isinstance(child, Inception):
        f = list(inception_filters(child).values())
        return (f"inception {name.removeprefix('inception')}   1x1: {f[0]} | 3x3: {f[1]}→{f[2]} | "
                f"5x5: {f[3]}→{f[4]} | pool: {f[5]}"), "#cfe3c3"
    if isinstance(child, BasicConv2d):
        label, colour = _describe(child.conv)
        return f"{name}: {label.replace(chr(10), ', ')}", colour
    if isinstance(child, (nn.MaxPool2d, nn.AvgPool2d)):
        label, colour = _describe(child)
        return f"{name}: {label.replace(chr(10), ', ')}", colour
    if isinstance(child, nn.AdaptiveAvgPool2d):
        return f"{name}: global average pool", "pool"
    if isinstance(child, nn.LocalResponseNorm):
        return f"{name}: local response norm, size {child.size}", "other"
    if isinstance(child, nn.Dropout):
        return f"{name}: dropout {child.p:.0%}", "other"
    if isinstance(child, nn.Linear):
        return f"{name}: linear {child.in_features} → {child.out_features}", "other"
    return f"{name}: {type(child).__name__}", "other"


def _aux_label(name: str, head: InceptionAux, source: str) -> str:
    pool = head.pool
    if isinstance(pool, nn.AvgPool2d):
        k, s = _size(pool.kernel_size), _size(pool.stride)
        pool_text = f"{k}x{k}/{s} avg pool"
    else:
        pool_text = f"adaptive avg pool to {_size(pool.output_size)}x{_size(pool.output_size)}"
    return (f"{name} (on {source.removeprefix('inception')}, training only)\n{pool_text}\n"
            f"1x1 conv, {head.conv.conv.out_channels} filters\n"
            f"linear {head.fc1.in_features} → {head.fc1.out_features}\n"
            f"dropout {head.dropout.p:.0%}\nlinear {head.fc2.in_features} → {head.fc2.out_features}")


def googlenet_figure(model: nn.Module, input_size: tuple[int, int, int] = (3, 224, 224)):
    """The whole network, top to bottom, from one traced forward pass of ``model``.

    Each row is one child module of the main path (identity placeholders are left out) with its
    output size; the auxiliary heads are drawn beside the module whose output they read.
    """
    shapes, attached = _trace(model, input_size)
    rows = [(name, child) for name, child in model.named_children()
            if name in shapes and not isinstance(child, nn.Identity)]
    n = len(rows)
    fig, ax = plt.subplots(figsize=(11, 0.42 * n + 1.0))
    y_of = {}
    for i, (name, child) in enumerate(rows):
        y = n - i
        y_of[name] = y
        label, colour = _node_label(name, child)
        _box(ax, 0, y, label, colour, width=6.4, height=0.7, fontsize=8)
        ax.text(3.4, y, _shape_text(shapes[name]), ha="left", va="center", fontsize=8, color="#444")
        if i:
            _arrow(ax, (0, y + 1 - 0.35), (0, y + 0.35))
    _box(ax, 0, n + 1, f"input {_shape_text(input_size)}", "other", width=2.4, height=0.6)
    _arrow(ax, (0, n + 1 - 0.3), (0, n + 0.35))
    ax.text(3.4, n + 0.75, "output size", ha="left", va="center", fontsize=8, color="#444", style="italic")
    for aux, source in attached.items():
        y = y_of[source]
        _box(ax, 6.6, y - 1.6, _aux_label(aux, getattr(model, aux), source), "#f3d9ef",
             width=3.0, height=2.6, fontsize=7.5)
        ax.annotate("", xy=(6.6, y - 1.6 + 1.3), xytext=(4.7, y),
                    arrowprops=dict(arrowstyle="->", color="#a05", lw=0.9, connectionstyle="angle,angleA=0,angleB=90"))
        # (the arrow starts right of the output-size column)
    ax.set_xlim(-3.4, 8.3)
    ax.set_ylim(0.3, n + 1.5)
    ax.axis("off")
    ax.set_title(f"{type(model).__name__}: {n} stages of the main path, from the module's own layers", fontsize=10)
    fig.tight_layout()
    return fig


def figure_texts(fig) -> list[str]:
    """Every string drawn on a figure (what a test can compare)."""
    return [t.get_text() for t in fig.findobj(matplotlib.text.Text) if t.get_text()]


def main(argv: list[str] | None = None) -> list[Path]:
    """``python -m course_pkg.diagrams OUT_DIR``: the paper's module 3a and GoogLeNet as PNG files."""
    from .models import create
    from .models.googlenet import INCEPTION_FILTERS

    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0] if argv else "diagrams")
    out.mkdir(parents=True, exist_ok=True)
    f = INCEPTION_FILTERS["3a"]
    naive = create("inception_naive", in_channels=192, ch1x1=f[0], ch3x3=f[2], ch5x5=f[4])
    reduced = create("inception", in_channels=192, ch1x1=f[0], ch3x3red=f[1], ch3x3=f[2],
                     ch5x5red=f[3], ch5x5=f[4], pool_proj=f[5])
    written = []
    for name, fig in (("inception_module.png", inception_figure(naive, reduced)),
                      ("googlenet.png", googlenet_figure(create("googlenet", aux_logits=True)))):
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        written.append(out / name)
        print(out / name)
    return written


if __name__ == "__main__":
    main()
