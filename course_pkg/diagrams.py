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

import io
import re
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
#: The diagrams' one font size, in points.  The figures are sized so that the page shows this
#: at 9 CSS px or more at a desktop width (1280 px) and at a phone's (420 px): see each figure.
FONT_PT = 10


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


def _box(ax, x, y, text, colour, width=0.9, height=0.62, fontsize=FONT_PT, weight="normal", gid=None):
    ax.add_patch(FancyBboxPatch((x - width / 2, y - height / 2), width, height,
                                boxstyle="round,pad=0.02,rounding_size=0.06",
                                facecolor=COLOURS.get(colour, colour), edgecolor="#333", lw=0.8))
    label = ax.text(x, y, text, ha="center", va="center", fontsize=fontsize, fontweight=weight)
    if gid:
        label.set_gid(gid)
    return label


def _arrow(ax, start, end, colour="#333"):
    ax.annotate("", xy=end, xytext=start, arrowprops=dict(arrowstyle="->", color=colour, lw=0.8,
                                                          shrinkA=0, shrinkB=0))


def draw_inception(module: Inception | InceptionNaive, ax=None, title: str | None = None,
                   fontsize: float = FONT_PT):
    """Draw one inception module on ``ax`` (a new figure if None); returns the axes.

    Bottom to top as in the paper's Figure 2: the previous layer, each branch's layers (a branch
    with one layer sits on the top row, like the paper's), the filter concatenation.
    """
    if not isinstance(module, (Inception, InceptionNaive)):
        raise TypeError(f"draw_inception draws an Inception or InceptionNaive module, got {type(module).__name__}")
    if ax is None:
        _, ax = plt.subplots(figsize=(5.6, 3.0))
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
            _box(ax, x, level, label, colour, fontsize=fontsize)
            if i:
                _arrow(ax, (x, level - 1 + height / 2), (x, level - height / 2))
        _arrow(ax, (x, top - 1 + height / 2), (x, top - 0.2))  # into the concatenation
    _box(ax, 1.5, 0, f"previous layer: {in_channels} channels", "other", width=3.9, height=0.4, fontsize=fontsize)
    total = " + ".join(str(w) for w in widths)
    _box(ax, 1.5, top, f"filter concatenation: {total} = {module.out_channels} channels", "other",
         width=3.9, height=0.4, fontsize=fontsize)
    ax.set_xlim(-0.5, 3.5)
    ax.set_ylim(-0.3, top + 0.3)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=fontsize + 1)
    return ax


def _branch_width(layers: list[nn.Module], in_channels: int) -> int:
    """Output channels of a branch: its last convolution's filters, or its input for a bare pool."""
    convs = [layer for layer in layers if isinstance(layer, nn.Conv2d)]
    return convs[-1].out_channels if convs else in_channels


def inception_figure(naive: InceptionNaive, reduced: Inception, name: str = "3a"):
    """The naive module (Figure 2a) above the module with dimension reductions (Figure 2b).

    Stacked, not side by side, so that the figure is narrow (5.6 inches): shown at its own size
    on a wide screen its text is 13 CSS px, and shrunk to a phone's 388-px column still 9.6 px.
    """
    fig, axes = plt.subplots(2, 1, figsize=(5.6, 6.0))
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
    """(label, colour key) of one row of the network that is not an inception module."""
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


def _inception_cells(filters: dict[str, int]) -> list[tuple[str, str, str]]:
    """(Table 1 column, text, colour key) of an inception row's four branch cells."""
    f = filters
    return [("#1x1", f"{f['#1x1']}", 1),
            ("#3x3", f"{f['#3x3 reduce']}→{f['#3x3']}", 3),
            ("#5x5", f"{f['#5x5 reduce']}→{f['#5x5']}", 5),
            ("pool proj", f"{f['pool proj']}", "pool")]


#: The column heads above the first row of inception modules.
INCEPTION_HEADS = ("module", "1x1", "reduce\n→ 3x3", "reduce\n→ 5x5", "pool\nproj")


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


def _spread(centres: list[float], height: float, gap: float = 0.1) -> list[float]:
    """Move boxes of one height, centred at ``centres`` (top to bottom, y downwards smaller), apart
    until they do not overlap; each box still covers its own centre if the overlap was small."""
    placed = list(centres)
    for _ in range(len(placed)):
        for i in range(len(placed) - 1):
            overlap = (height + gap) - (placed[i] - placed[i + 1])
            if overlap > 0:
                placed[i] += overlap / 2
                placed[i + 1] -= overlap / 2
    return placed


def googlenet_figure(model: nn.Module, input_size: tuple[int, int, int] = (3, 224, 224)):
    """The whole network, top to bottom, from one traced forward pass of ``model``.

    Each row is one child module of the main path (identity placeholders are left out) with its
    output size on the left; an inception module's row shows its four branches with Table 1's
    filter numbers (each text's gid is ``<module>/<Table 1 column>``, so a test can read them back).
    The auxiliary heads are drawn beside the module whose output they read, their arrows starting
    at that module's box.  The axes are in inches: 7.1 inches wide, so the page shows the figure
    at its own size (text 12-13 CSS px) and a phone scrolls it sideways at that size.
    """
    shapes, attached = _trace(model, input_size)
    rows = [(name, child) for name, child in model.named_children()
            if name in shapes and not isinstance(child, nn.Identity)]
    width, pitch, box_h, head_h = 7.1, 0.36, 0.26, 0.42
    sizes_right, main_left, main_right = 0.95, 1.05, 4.75
    aux_left, aux_right = 4.95, width - 0.05
    first_inception = next((i for i, (_, child) in enumerate(rows) if isinstance(child, Inception)), None)
    height = 0.45 + pitch * (len(rows) + 1) + (head_h if first_inception is not None else 0) + 0.15
    fig = plt.figure(figsize=(width, height))
    ax = fig.add_axes((0, 0, 1, 1))
    y = height - 0.45 - pitch / 2
    ax.text(width / 2, height - 0.22, f"{type(model).__name__}: {len(rows)} stages of the main path, "
            "drawn from its own layers", ha="center", va="center", fontsize=FONT_PT + 1)
    centre = (main_left + main_right) / 2
    name_w, gap = 0.55, 0.05  # an inception row: its name, then its four branches
    spine = main_left + name_w + gap / 2  # the arrows down the main path pass between the column heads
    _box(ax, centre, y, f"input {_shape_text(input_size)}", "other", width=main_right - main_left, height=box_h)
    ax.text(sizes_right, y, "output size", ha="right", va="center", fontsize=FONT_PT, color="#444", style="italic")
    previous_bottom = y - box_h / 2
    y_of = {}
    for i, (name, child) in enumerate(rows):
        y -= pitch
        if i == first_inception:  # the column heads, once, above the first module
            y -= head_h
            heads_y = y + box_h / 2 + 0.2
        y_of[name] = y
        _arrow(ax, (spine, previous_bottom), (spine, y + box_h / 2))
        previous_bottom = y - box_h / 2
        ax.text(sizes_right, y, _shape_text(shapes[name]), ha="right", va="center", fontsize=FONT_PT, color="#444")
        if isinstance(child, Inception):
            cells = _inception_cells(inception_filters(child))
            cell_w = (main_right - main_left - name_w - gap * len(cells)) / len(cells)
            _box(ax, main_left + name_w / 2, y, name.removeprefix("inception"), "#cfe3c3", width=name_w,
                 height=box_h, weight="bold", gid=f"{name}/module")
            xs = [main_left + name_w + gap * (j + 1) + cell_w * (j + 0.5) for j in range(len(cells))]
            for x, (column, text, colour) in zip(xs, cells):
                _box(ax, x, y, text, colour, width=cell_w, height=box_h, gid=f"{name}/{column}")
            if i == first_inception:
                for x, head in zip([main_left + name_w / 2, *xs], INCEPTION_HEADS):
                    ax.text(x, heads_y, head, ha="center", va="center", fontsize=FONT_PT, style="italic")
        else:
            label, colour = _node_label(name, child)
            _box(ax, centre, y, label, colour, width=main_right - main_left, height=box_h)
    aux_names = sorted(attached, key=lambda aux: -y_of[attached[aux]])
    aux_h = 1.1
    placed = _spread([y_of[attached[aux]] for aux in aux_names], aux_h)
    for aux, aux_y in zip(aux_names, placed):
        source = attached[aux]
        _box(ax, (aux_left + aux_right) / 2, aux_y, _aux_label(aux, getattr(model, aux), source), "#f3d9ef",
             width=aux_right - aux_left, height=aux_h)
        # from the right edge of the module the head reads, to the head's box
        _arrow(ax, (main_right, y_of[source]), (aux_left, y_of[source]), colour="#a05")
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.axis("off")
    return fig


#: The steps of chapter 10's "moving parts": (column, row, text); row 0 is the book, row 1 grading.
WORKFLOW = ((0, 0, "book/*.ipynb\n(chapters)"), (1, 0, "make book\n(jupyter-book)"), (2, 0, "_build/html\n(publish)"),
            (0, 1, "solutions/\n(instructor)"), (1, 1, "assignments/\n(students,\nColab)"), (2, 1, "submissions"),
            (3, 1, "course grade:\ngrades.csv,\nfeedback"))


def workflow_figure(steps=WORKFLOW):
    """Chapter 10's diagram: the book's build and the assignments' path, in two rows of boxes
    joined by arrows, with ``course_pkg`` behind both.  5.6 inches wide: shrunk to a phone's
    388-px column its 10-pt text is still 9.6 CSS px."""
    columns = 1 + max(c for c, _, _ in steps)
    width, height, box_w, box_h = 5.6, 2.9, 1.25, 0.72
    pitch = (width - 0.1 - box_w) / (columns - 1)
    fig = plt.figure(figsize=(width, height))
    ax = fig.add_axes((0, 0, 1, 1))
    row_y = {0: height - 0.5, 1: 0.6}
    where = {}
    for column, row, text in steps:
        x, y = 0.05 + box_w / 2 + column * pitch, row_y[row]
        where[(column, row)] = (x, y)
        _box(ax, x, y, text, "#e8eef8", width=box_w, height=box_h + (0.2 if text.count("\n") > 1 else 0))
    for (column, row, _), (next_column, next_row, _) in zip(steps, steps[1:]):
        if row == next_row:
            (x0, y0), (x1, y1) = where[(column, row)], where[(next_column, next_row)]
            _arrow(ax, (x0 + box_w / 2, y0), (x1 - box_w / 2, y1))
    ax.text(width / 2, height / 2 + 0.02, "course_pkg: one package behind\nthe book, the assignments and the grader",
            ha="center", va="center", fontsize=FONT_PT, style="italic")
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.axis("off")
    return fig


def figure_texts(fig) -> list[str]:
    """Every string drawn on a figure (what a test can compare)."""
    return [t.get_text() for t in fig.findobj(matplotlib.text.Text) if t.get_text()]


def svg(fig) -> str:
    """The figure as SVG, its text kept as text (``svg.fonttype`` none): sharp at any zoom,
    selectable, and measurable by the browser test.  No date, fixed ids: the same figure gives
    the same file."""
    buffer = io.StringIO()
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "course_pkg.diagrams"}):
        fig.savefig(buffer, format="svg", bbox_inches="tight", pad_inches=0.02, metadata={"Date": None})
    return buffer.getvalue()


def show(fig) -> None:
    """Display a diagram as SVG in the notebook (the book's page shows that file) and close it,
    so that the notebook does not draw it a second time as a PNG."""
    from IPython.display import SVG, display

    display(SVG(svg(fig)))
    plt.close(fig)


def smallest_text_px(fig, displayed_width_px: float) -> float:
    """The smallest font size of the figure, in CSS px, when its SVG is shown ``displayed_width_px``
    wide (what the browser test measures on the page; an SVG user unit is one point)."""
    document = svg(fig)
    view_width = float(re.search(r'viewBox="[\d.]+ [\d.]+ ([\d.]+) [\d.]+"', document).group(1))
    sizes = [float(s) for s in re.findall(r"font-size: ([\d.]+)px", document)]
    return min(sizes) * displayed_width_px / view_width


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
