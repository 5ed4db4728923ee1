"""Where the parameters and the multiply-adds of a network are.

- :func:`count_params`, :func:`count_macs` — totals for any ``nn.Module``;
- :func:`layer_table` — one row per layer: type, kernel/stride, output shape, parameters,
  multiply-adds.  Multiply-adds come from PyTorch's own ``torch.utils.flop_counter`` (one
  multiply-add = two FLOPs), not from a hand-written formula per layer type;
- :func:`compare_modules` — two networks side by side, module by module (e.g. the paper's
  GoogLeNet against torchvision's);
- :func:`paper_table1` — the paper's printed Table 1 beside the values its own filter numbers give,
  with the rows where the paper is wrong flagged and explained.

>>> import course_pkg.profile as p
>>> print(p.paper_table1())
"""

from __future__ import annotations

import copy
import html
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = [
    "Table",
    "count_params",
    "count_macs",
    "layer_table",
    "compare_modules",
    "paper_table1",
    "PAPER_TABLE1",
]


# --------------------------------------------------------------------------------------------
# A small table type: prints as text, renders as HTML in a notebook, exports rows.
# --------------------------------------------------------------------------------------------
@dataclass
class Table:
    """Rows of dicts with a fixed column order; ``print()`` it or show it in a notebook."""

    columns: list[str]
    rows: list[dict[str, Any]]
    title: str = ""
    notes: list[str] = field(default_factory=list)

    def column(self, name: str) -> list[Any]:
        return [row[name] for row in self.rows]

    def row(self, key: str, column: str | None = None) -> dict[str, Any]:
        """The first row whose first column (or ``column``) equals ``key``."""
        column = column or self.columns[0]
        for row in self.rows:
            if row[column] == key:
                return row
        raise KeyError(f"no row with {column} == {key!r}; have {self.column(column)}")

    def __len__(self) -> int:
        return len(self.rows)

    @staticmethod
    def _fmt(value: Any) -> str:
        if value is None:
            return "—"
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, int):
            return f"{value:,}"
        if isinstance(value, float):
            return f"{value:,.1f}"
        if isinstance(value, (tuple, list)):
            return "x".join(str(v) for v in value)
        return str(value)

    def _cells(self) -> list[list[str]]:
        return [[self._fmt(row.get(c)) for c in self.columns] for row in self.rows]

    def __str__(self) -> str:
        cells = self._cells()
        widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(self.columns)]

        def line(values: Sequence[str]) -> str:
            out = []
            for i, v in enumerate(values):
                numeric = v[:1].isdigit() or v[:1] == "-" and v[1:2].isdigit()
                out.append(v.rjust(widths[i]) if numeric else v.ljust(widths[i]))
            return "  ".join(out).rstrip()

        parts = [self.title] if self.title else []
        parts.append(line(self.columns))
        parts.append("  ".join("-" * w for w in widths))
        parts.extend(line(r) for r in cells)
        parts.extend(self.notes)
        return "\n".join(parts)

    __repr__ = __str__

    def to_markdown(self) -> str:
        cells = self._cells()
        out = ["| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in cells]
        return "\n".join(out)

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in r) + "</tr>" for r in self._cells()
        )
        caption = f"<caption>{html.escape(self.title)}</caption>" if self.title else ""
        notes = "".join(f"<p>{html.escape(n)}</p>" for n in self.notes)
        return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{notes}"


# --------------------------------------------------------------------------------------------
# Counting
# --------------------------------------------------------------------------------------------
def count_params(model: nn.Module, trainable_only: bool = False, weights_only: bool = False) -> int:
    """Number of parameters; ``weights_only`` leaves out biases (the paper's Table 1 convention)."""
    total = 0
    for name, p in model.named_parameters():
        if trainable_only and not p.requires_grad:
            continue
        if weights_only and name.rsplit(".", 1)[-1] == "bias":
            continue
        total += p.numel()
    return total


def _example_input(model: nn.Module, input_size: Sequence[int]) -> torch.Tensor:
    size = tuple(int(s) for s in input_size)
    if len(size) == 3:
        size = (1,) + size
    if len(size) != 4 or size[0] != 1:
        raise ValueError(
            f"input_size must be (C, H, W) or (1, C, H, W) for one image, got {tuple(input_size)}"
        )
    try:
        param = next(model.parameters())
        device, dtype = param.device, param.dtype
    except StopIteration:
        device, dtype = torch.device("cpu"), torch.float32
    return torch.zeros(size, device=device, dtype=dtype)


def _trace(model: nn.Module, input_size: Sequence[int], training: bool = False):
    """Run one image through ``model`` in eval mode (``training``: in training mode, on a copy, so
    that batch-norm statistics stay as they were); return (output shapes, MACs per module name)."""
    x = _example_input(model, input_size)
    if training:  # two copies of the image (batch norm needs more than one value); counts halved below
        model, x = copy.deepcopy(model), torch.cat([x, x])
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = []
    for name, module in model.named_modules():
        if name:

            def hook(_m, _inp, out, name=name):
                if isinstance(out, torch.Tensor):
                    shapes[name] = tuple(out.shape[1:])

            hooks.append(module.register_forward_hook(hook))
    was_training = model.training
    model.train(training)
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    root = type(model).__name__
    macs: dict[str, int] = {}
    for key, per_op in counter.get_flop_counts().items():
        flops = sum(per_op.values()) // len(x)
        if key == "Global":
            macs[""] = flops // 2
        elif key.startswith(root + "."):
            macs[key[len(root) + 1 :]] = flops // 2
    return shapes, macs


def count_macs(model: nn.Module, input_size: Sequence[int], training: bool = False) -> int:
    """Multiply-adds of one forward pass of one image: in eval mode (auxiliary heads do not run),
    or with ``training`` in training mode (they do).

    Counted by ``torch.utils.flop_counter`` (convolutions and matrix products; FLOPs / 2).
    """
    return _trace(model, input_size, training)[1].get("", 0)


def _geometry(module: nn.Module) -> str:
    module = getattr(module, "conv", module)  # BasicConv2d: show its convolution's geometry
    k = getattr(module, "kernel_size", None)
    if k is None:
        return ""
    s = getattr(module, "stride", None)
    k = k if isinstance(k, int) else "x".join(map(str, k))
    s = s if isinstance(s, int) else "x".join(map(str, s)) if s is not None else ""
    return f"{k}/{s}" if s not in ("", None) else str(k)


def layer_table(model: nn.Module, input_size: Sequence[int], depth: int | None = None) -> Table:
    """One row per layer for a forward pass of one image of ``input_size`` (C, H, W).

    ``depth=None`` lists leaf modules; ``depth=1`` the top-level children (for GoogLeNet: conv1 …
    inception5b, fc, aux1, aux2), ``depth=2`` one level further, and so on.  Modules that do not
    run in eval mode (auxiliary classifiers) keep their parameters but show no output or MACs.
    """
    shapes, macs = _trace(model, input_size)
    rows = []
    for name, module in model.named_modules():
        if not name:
            continue
        level = name.count(".") + 1
        is_leaf = next(module.children(), None) is None
        if depth is None and not is_leaf:
            continue
        if depth is not None and not (level == depth or (level < depth and is_leaf)):
            continue
        params = count_params(module)
        if is_leaf and params == 0 and name not in shapes:
            continue  # an unused leaf without parameters (e.g. an Identity that never ran)
        rows.append(
            {
                "layer": name,
                "type": type(module).__name__,
                "kernel/stride": _geometry(module),
                "output": shapes.get(name),
                "params": params,
                "MACs": macs.get(name, 0),
            }
        )
    total_params, total_macs = count_params(model), macs.get("", 0)
    title = f"{type(model).__name__} on {tuple(input_size)}"
    notes = [f"total: {total_params:,} parameters, {total_macs:,} multiply-adds per image"]
    return Table(["layer", "type", "kernel/stride", "output", "params", "MACs"], rows, title, notes)


def compare_modules(a: nn.Module, b: nn.Module, names: Iterable[str] | None = None) -> Table:
    """Parameter counts of two networks, module by module (top-level children by default).

    A module present in only one network shows ``None`` on the other side.
    """
    a_children = dict(a.named_children())
    b_children = dict(b.named_children())
    if names is None:
        names = list(a_children) + [n for n in b_children if n not in a_children]
    rows = []
    for name in names:
        pa = count_params(a_children[name]) if name in a_children else None
        pb = count_params(b_children[name]) if name in b_children else None
        rows.append({"module": name, "a": pa, "b": pb, "same": pa == pb})
    return Table(["module", "a", "b", "same"], rows, f"{type(a).__name__} (a) vs {type(b).__name__} (b)")


# --------------------------------------------------------------------------------------------
# The paper's Table 1, as printed, against its own filter numbers
# --------------------------------------------------------------------------------------------
#: Rows with parameters of Szegedy et al. 2015, Table 1, as printed: (row, modules of
#: ``course_pkg.models.googlenet``, printed params, printed ops).  Params use K = 1024 weights
#: (biases not counted); ops are weights x output positions.
PAPER_TABLE1: list[tuple[str, tuple[str, ...], str, str]] = [
    ("convolution 7x7/2", ("conv1",), "2.7K", "34M"),
    ("convolution 3x3/1", ("conv2", "conv3"), "112K", "360M"),
    ("inception (3a)", ("inception3a",), "159K", "128M"),
    ("inception (3b)", ("inception3b",), "380K", "304M"),
    ("inception (4a)", ("inception4a",), "364K", "73M"),
    ("inception (4b)", ("inception4b",), "437K", "88M"),
    ("inception (4c)", ("inception4c",), "463K", "100M"),
    ("inception (4d)", ("inception4d",), "580K", "119M"),
    ("inception (4e)", ("inception4e",), "840K", "170M"),
    ("inception (5a)", ("inception5a",), "1072K", "54M"),
    ("inception (5b)", ("inception5b",), "1388K", "71M"),
    ("linear", ("fc",), "1000K", "1M"),
]


def _parse_printed(text: str, unit: str) -> tuple[float, float]:
    """'2.7K' -> (2.7, 0.1): the value and one unit of its last printed digit."""
    number = text.rstrip(unit)
    decimals = len(number.split(".")[1]) if "." in number else 0
    return float(number), 10.0 ** (-decimals)


def paper_table1() -> Table:
    """The paper's Table 1 params/ops columns beside the values its own filter numbers give.

    A printed value is flagged when it differs from the computed one by more than one unit of its
    last printed digit (so 380K for 379.0K passes as rounding, 364K for 366.8K does not).  Where a
    printed ops value is wrong but equals the printed params times the output positions, the note
    says the error was carried over from the params column.
    """
    from .models.googlenet import googlenet  # local: profile must not import every model eagerly

    model = googlenet(num_classes=1000, aux_logits=False)
    shapes, macs = _trace(model, (3, 224, 224))
    children = dict(model.named_children())
    rows = []
    printed_ops_total = computed_ops_total = 0.0
    for label, modules, printed_params, printed_ops in PAPER_TABLE1:
        weights = sum(count_params(children[m], weights_only=True) for m in modules)
        out_shape = shapes[modules[-1]]
        positions = out_shape[1] * out_shape[2] if len(out_shape) == 3 else 1
        ops = sum(macs[m] for m in modules)
        p_val, p_unit = _parse_printed(printed_params, "K")
        o_val, o_unit = _parse_printed(printed_ops, "M")
        params_k, ops_m = weights / 1024, ops / 1e6
        params_ok = abs(p_val - params_k) <= p_unit
        ops_ok = abs(o_val - ops_m) <= o_unit
        why = []
        if not params_ok:
            why.append(f"its filter numbers give {weights:,} weights = {params_k:.1f}K, not {printed_params}")
        if not ops_ok:
            carried = p_val * 1024 * positions / 1e6
            if abs(carried - o_val) <= max(o_unit, 0.02 * o_val):
                why.append(
                    f"printed ops follow the printed params ({printed_params} x {positions:,} "
                    f"positions = {carried:.1f}M); true {ops:,} = {ops_m:.1f}M"
                )
            else:
                why.append(f"true ops {ops:,} = {ops_m:.1f}M")
        printed_ops_total += o_val
        computed_ops_total += ops
        rows.append(
            {
                "row": label,
                "printed params": printed_params,
                "computed params": f"{params_k:.1f}K",
                "printed ops": printed_ops,
                "computed ops": f"{ops_m:.1f}M",
                "ok": params_ok and ops_ok,
                "why": "; ".join(why),
            }
        )
    total_macs = macs[""]
    notes = [
        f"printed ops sum to {printed_ops_total / 1000:.3f}G; the network's true total is "
        f"{total_macs:,} multiply-adds ({total_macs / 1e9:.3f}G) at 224x224",
        "params: weights only, K = 1024; ops: weights x output positions (= multiply-adds)",
    ]
    columns = ["row", "printed params", "computed params", "printed ops", "computed ops", "ok", "why"]
    return Table(columns, rows, "GoogLeNet, Table 1 of Szegedy et al. 2015: printed vs computed", notes)
