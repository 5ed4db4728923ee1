"""Whole networks compared with the reference layer by layer: LeNet-5, AlexNet, GoogLeNet."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from .inception import BRANCHES, _compare_convs, _torch_type, diagnose_inception
from .feedback import Finding
from .handover import call_key, fixed_value, fixed_weights_output, probe_input
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


def _match_keys(theirs: list[tuple[str, tuple[int, ...]]], ours: dict[str, torch.Tensor]) -> dict[str, str] | str:
    """Which of the student's ``state_dict`` keys stands for each floating-point tensor of the
    reference's: the same name and shape, else, within the same top-level submodule, the next
    unmatched tensor of the same shape in order (``c1.0.weight`` for ``c1.weight``).  A string
    says why the two cannot be matched."""
    ours_f = {k: tuple(v.shape) for k, v in ours.items() if v.is_floating_point()}
    shape_of = dict(theirs)
    match = {k: k for k, s in ours_f.items() if shape_of.get(k) == s}
    used = set(match)
    for key, shape in ours_f.items():
        if key in match:
            continue
        top = key.split(".")[0]
        found = next((k for k, s in theirs if k not in used and k.split(".")[0] == top and s == shape), None)
        if found is None:
            return f"nothing in your network's weights stands for {key} {list(shape)}"
        match[key] = found
        used.add(found)
    return match


def recomputed_output_findings(student: nn.Module, reference: nn.Module, x: torch.Tensor,
                               name: str = "network") -> list[Finding]:
    """Whether ``student``'s output on ``x`` is what its layers compute: both networks get the same
    fixed weights (:func:`course_pkg.checks.handover.fixed_value`, matched by ``state_dict`` key)
    and their outputs must agree.  For a network handed over by the grader's sandbox, its output
    there with those weights is compared; a network that does not apply its layers as the paper
    does (a forgotten ReLU, a skipped layer, an output that was never computed) differs.  The
    reference's weights are overwritten."""
    import copy

    if getattr(type(student), "handed_over", False):
        record = getattr(student, "fixed_record", None)
        if not isinstance(record, dict) or record.get("key") != call_key([x], None, False):
            return [Finding(name, "output", "its output with the checks' fixed weights was not handed over, "
                                            "so what its layers compute could not be checked")]
        got = record.get("out")
        items = record.get("filled")
        filled = [(item[0], tuple(item[1])) for item in (items if isinstance(items, (list, tuple)) else [])
                  if isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str)
                  and isinstance(item[1], (list, tuple))]
        if isinstance(got, dict) and "__error__" in got:
            return [Finding(name, "output", f"with the checks' fixed weights the forward pass fails: "
                                            f"{got['__error__']}: {got.get('message', '')}")]
    else:
        try:
            filled, got = fixed_weights_output(copy.deepcopy(student), x)
        except Exception as err:  # noqa: BLE001 -- report, do not crash the check
            return [Finding(name, "output", f"with the checks' fixed weights the forward pass fails: "
                                            f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")]
        filled = [(k, tuple(s)) for k, s in filled]
    state = reference.state_dict()
    match = _match_keys(filled, state)
    if isinstance(match, str):
        return [Finding(name, "output", f"its output could not be checked against its layers: {match}")]
    with torch.no_grad():
        for key, theirs in match.items():
            state[key].copy_(fixed_value(theirs, state[key]))
        expected = reference.eval()(x)
    if not isinstance(got, torch.Tensor) or got.shape != expected.shape:
        return [Finding(name, "output", f"with the checks' fixed weights its output is {_shape(got)}, expected "
                                        f"{_shape(expected)}")]
    diff = (got.float() - expected).abs().max().item()
    if not diff <= 1e-4 + 1e-3 * expected.abs().max().item():  # (NaN fails too)
        return [Finding(name, "output", f"its output is not what its own layers compute (largest difference "
                                        f"{diff:.3g}, both with the checks' fixed weights, on the probe input): its "
                                        "forward must apply every layer as the table above says, in order, with "
                                        "each ReLU, pool and normalisation")]
    return []


def diagnose_model(student: nn.Module, reference: nn.Module, input_size: Sequence[int],
                   name: str = "network", children: Sequence[str] | None = None) -> list[Finding]:
    """Compare a network with the reference, layer by layer (a "summary comparator").

    ``input_size`` is one image's (C, H, W).  ``children``: top-level submodule names the student
    was asked to use (e.g. ``["conv1", ..., "fc8"]``); for each, parameter count and output shape
    are compared, and inception modules are diagnosed branch by branch.  Without ``children`` the
    layers with parameters are compared in order.  When all of that matches, the output must be
    what the layers compute (:func:`recomputed_output_findings`, findings of kind ``"output"``;
    it overwrites ``reference``'s weights).  Returns findings (empty: matches).
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
    if not findings:  # last: it overwrites the reference's weights
        findings += recomputed_output_findings(student, reference, x, name)
    return findings
