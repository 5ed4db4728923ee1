"""Whole networks compared with the reference layer by layer: LeNet-5, AlexNet, GoogLeNet."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from .inception import BRANCHES, _compare_convs, _torch_type, diagnose_inception
from .feedback import Finding
from .handover import probe_input
from .param_counts import _fmt, _kernel, _shape, explain_conv_count, n_params


# --------------------------------------------------------------------------------------------
def _layers_with_params(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if any(True for _ in m.parameters(recurse=False))]


def _describe(m: nn.Module) -> str:
    if isinstance(m, nn.Conv2d):
        g = f", groups {m.groups}" if m.groups != 1 else ""
        return (f"Conv2d {m.in_channels}→{m.out_channels} {_kernel(m)}/{m.stride[0]} pad {m.padding[0]}{g}"
                f"{'' if m.bias is not None else ' no bias'}")
    if isinstance(m, nn.Linear):
        return f"Linear {m.in_features}→{m.out_features}{'' if m.bias is not None else ' no bias'}"
    return f"{type(m).__name__} ({_fmt(n_params(m))} parameters)"


_POOLS = (nn.MaxPool2d, nn.AvgPool2d)


def _pool_text(m: nn.Module) -> str:
    if not isinstance(m, _POOLS):
        return type(m).__name__
    k, s, p = (v if isinstance(v, int) else v[0] for v in (m.kernel_size, m.stride, m.padding))
    return (f"{type(m).__name__} {k}x{k}/{s}" + (f" pad {p}" if p else "")
            + (", ceil_mode=True" if m.ceil_mode else ""))


def _compare_pools(where: str, mine: nn.Module, ref: nn.Module) -> list[Finding]:
    """A pool layer against the reference: type, kernel, stride, padding and ceil_mode (which decides
    whether a 28x28 map becomes 14x14 or 13x13)."""
    if _torch_type(mine) is not _torch_type(ref):
        return [Finding(where, "shape", f"{_pool_text(mine)}, expected {_pool_text(ref)}")]
    if not isinstance(ref, _POOLS):
        return []
    if mine.ceil_mode != ref.ceil_mode:
        return [Finding(where, "shape", f"{_pool_text(mine)} without ceil_mode: the paper's pools round the output "
                                        "size up (ceil_mode=True), so this one loses a row and a column"
                        if ref.ceil_mode else f"{_pool_text(mine)}: ceil_mode=True, expected the default (False)")]
    if _pool_text(mine) != _pool_text(ref):
        return [Finding(where, "shape", f"{_pool_text(mine)}, expected {_pool_text(ref)}")]
    return []


def state_dict_findings(student: nn.Module, reference: nn.Module, name: str, grader_model: str) -> list[Finding]:
    """What goes wrong when the grader loads ``student.state_dict()`` into ``reference`` (strictly):
    for each layer, the parameter names it expects and the ones the student's network saves."""
    mine, ref = student.state_dict(), reference.state_dict()
    missing = [k for k in ref if k not in mine]
    unexpected = [k for k in mine if k not in ref]
    findings = []
    for layer in dict.fromkeys(k.split(".")[0] for k in missing + unexpected):
        want = [k for k in missing if k.split(".")[0] == layer]
        have = [k for k in unexpected if k.split(".")[0] == layer]
        text = (f"the grader loads your weights into the course's {grader_model!r}, which reads "
                f"{', '.join(want[:2]) or 'nothing here'}; your network saves {', '.join(have[:2]) or 'nothing here'}")
        if any(k.endswith(".conv.weight") for k in want) and have:
            text += f" — build `{layer}` as BasicConv2d (its convolution is named `conv`), as the assignment asks"
        findings.append(Finding(f"{name}.{layer}" if layer else name, "structure", text))
    for k in ref:
        if k in mine and tuple(mine[k].shape) != tuple(ref[k].shape):
            findings.append(Finding(name, "structure", f"{k} has shape {tuple(mine[k].shape)}, the course's "
                                                       f"{grader_model!r} expects {tuple(ref[k].shape)}"))
    return findings


def _trace_shapes(model: nn.Module, x: torch.Tensor, names: Sequence[str]) -> tuple[dict[str, str], str | None]:
    shapes: dict[str, str] = {}
    hooks = []
    modules = dict(model.named_modules())
    for n in names:
        if n in modules:
            hooks.append(modules[n].register_forward_hook(
                lambda _m, _i, out, n=n: shapes.__setitem__(n, _shape(out if not isinstance(out, tuple) else out[0]))))
    error = None
    try:
        with torch.no_grad():
            model(x)
    except Exception as err:  # noqa: BLE001
        error = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    finally:
        for h in hooks:
            h.remove()
    return shapes, error


def diagnose_model(student: nn.Module, reference: nn.Module, input_size: Sequence[int],
                   name: str = "network", children: Sequence[str] | None = None) -> list[Finding]:
    """Compare a network with the reference, layer by layer (a "summary comparator").

    ``input_size`` is one image's (C, H, W).  ``children``: top-level submodule names the student
    was asked to use (e.g. ``["conv1", ..., "fc8"]``); for each, parameter count and output shape
    are compared, and inception modules are diagnosed branch by branch.  Without ``children`` the
    layers with parameters are compared in order.  Returns findings (empty: matches).
    """
    findings: list[Finding] = []
    x = probe_input(1, *input_size)
    student.eval(), reference.eval()
    if children:
        mods_s, mods_r = dict(student.named_children()), dict(reference.named_children())
        names = [c for c in children if c in mods_r]
        for c in names:
            if c not in mods_s:
                findings.append(Finding(name, "structure", f"no submodule named `{c}` (the assignment asks for "
                                                           f"these names: {', '.join(names)})"))
        shapes_s, err_s = _trace_shapes(student, x, names)
        shapes_r, _ = _trace_shapes(reference, x, names)
        first_shape = None
        for c in names:
            if c not in mods_s or mods_s[c] is None or mods_r[c] is None:
                continue
            ms, mr = mods_s[c], mods_r[c]
            if isinstance(mr, _POOLS) or isinstance(ms, _POOLS):
                findings += _compare_pools(c, ms, mr)
            elif isinstance(mr, nn.Conv2d) and isinstance(ms, nn.Conv2d):
                findings += _compare_convs(c, None, ms, mr, _describe(ms))
            elif n_params(ms) != n_params(mr):
                if hasattr(mr, "branch5x5"):
                    sub = diagnose_inception(ms, mr, name=c) if all(hasattr(ms, b) for b in BRANCHES) else []
                    sub = [f for f in sub if f.kind in ("params", "structure")]
                    findings += sub or [Finding(c, "params", f"{_fmt(n_params(ms))} parameters, expected "
                                                             f"{_fmt(n_params(mr))}")]
                else:
                    text = f"{_fmt(n_params(ms))} parameters, expected {_fmt(n_params(mr))} ({_describe(mr)})"
                    if isinstance(mr, nn.Conv2d):
                        guess = explain_conv_count(mr.in_channels, mr.out_channels, n_params(ms))
                        text += f"; yours fits {guess}" if guess else ""
                    findings.append(Finding(c, "params", text))
            if c in shapes_r and shapes_s.get(c) != shapes_r[c] and first_shape is None:
                first_shape = c
                got = shapes_s.get(c, "not reached (the forward pass stopped earlier)" if err_s else "not called")
                later = [n for n in names[names.index(c) + 1:] if n in shapes_r and shapes_s.get(n) != shapes_r[n]]
                findings.append(Finding(c, "shape", f"output {got} for a {'x'.join(map(str, input_size))} "
                                                    f"input, expected {shapes_r[c]}" +
                                        (f" (so {', '.join(later)} differ too)" if later else "")))
        if err_s:
            findings.append(Finding(name, "shape", f"the forward pass fails: {err_s}"))
    else:
        ls, lr = _layers_with_params(student), _layers_with_params(reference)
        if len(ls) != len(lr):
            findings.append(Finding(name, "structure", f"{len(ls)} layers with parameters, expected {len(lr)}: "
                                                       + ", ".join(_describe(m) for _, m in lr)))
        for i, ((ns, ms), (nr, mr)) in enumerate(zip(ls, lr)):
            if n_params(ms) != n_params(mr) or _torch_type(ms) is not _torch_type(mr):
                findings.append(Finding(name, "params", f"layer {i + 1} (`{ns}`): {_describe(ms)}, expected "
                                                        f"{_describe(mr)}"))
        shapes, err = _trace_shapes(student, x, [])
        if err:
            findings.append(Finding(name, "shape", f"the forward pass fails: {err}"))
    if not findings and n_params(student) != n_params(reference):
        findings.append(Finding(name, "params", f"{_fmt(n_params(student))} parameters in total, expected "
                                                f"{_fmt(n_params(reference))}"))
    return findings
