"""Checks that explain themselves — shared by students' self-checks and the hidden tests.

Everything here compares a student's network with the course's reference implementation in
:mod:`course_pkg.models` (the single source of truth) and returns *findings*: sentences that name
the module, the branch, the layer, and what would explain the difference ("branch5x5, convolution
2 of 2: 3x3 kernel, the paper's is 5x5 ...").  Nothing here knows how many points a check is worth
or which accuracy earns credit: those live only in the hidden test cells of the instructor
notebooks, never in this installable package.

Students (in Colab or anywhere) call the ``self_check_*`` functions; they print what is right and
what is wrong.  Hidden tests call the same ``diagnose_*`` functions and :func:`require`, which
raises :class:`CheckFailed`: a failure that shows as its message alone, without a traceback that
would reveal the test's source.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch
import torch.nn as nn

from .handover import probe_input

__all__ = [
    "CheckFailed",
    "Finding",
    "require",
    "fail_on",
    "build",
    "defined",
    "partial_credit",
    "n_params",
    "conv_params",
    "explain_conv_count",
    "diagnose_inception",
    "diagnose_model",
    "diagnose_answers",
    "describe_view",
    "diagnose_views",
    "load_student_checkpoint",
    "cifar10_test_subset",
    "subset_accuracy",
    "table1_modules",
    "inception_findings",
    "self_check_inception",
    "self_check_model",
    "self_check_checkpoint",
    "self_check_answers",
]

BRANCHES = ("branch1x1", "branch3x3", "branch5x5", "branch_pool")
TORCHVISION_5X5 = (
    "torchvision's GoogLeNet has exactly this deviation (a 3x3 kernel in the '5x5' branch, kept "
    "for weight compatibility, pytorch/vision issue #906); the paper and the Caffe model use 5x5"
)


# --------------------------------------------------------------------------------------------
# Failures that read like feedback, not like a traceback
# --------------------------------------------------------------------------------------------
class CheckFailed(AssertionError):
    """A failed check.  In Jupyter it shows as its message only (no traceback, no test source)."""

    def _render_traceback_(self) -> list[str]:  # IPython calls this instead of formatting a traceback
        # One entry: nbgrader's LimitOutput would cut a longer list down to its first and last lines.
        return [f"CheckFailed: {self}"]


@dataclass(frozen=True)
class Finding:
    """One thing that differs from the reference: ``where`` (e.g. ``"inception 3a, branch5x5"``),
    ``kind`` (``"params"``, ``"shape"``, ``"order"``, ``"structure"``, ``"value"``), ``message``."""

    where: str
    kind: str
    message: str
    branch: str | None = None

    def __str__(self) -> str:
        where = ", ".join(w for w in (self.where, self.branch) if w)
        return f"{where}: {self.message}" if where else self.message


def require(condition: Any, message: str) -> None:
    """Raise :class:`CheckFailed` with ``message`` unless ``condition`` is true."""
    if not condition:
        raise CheckFailed(message)


def fail_on(findings: Iterable[Finding], what: str = "", limit: int = 12) -> None:
    """Raise :class:`CheckFailed` listing ``findings`` (at most ``limit``), if there are any."""
    findings = list(findings)
    if not findings:
        return
    head = f"{what}: " if what else ""
    lines = [f"{head}{len(findings)} problem{'s' if len(findings) != 1 else ''} found"]
    lines += [f"  - {f}" for f in findings[:limit]]
    if len(findings) > limit:
        lines.append(f"  ... and {len(findings) - limit} more of the same kind")
    raise CheckFailed("\n".join(lines))


def build(factory: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``factory(*args, **kwargs)``, with a failure turned into a :class:`CheckFailed` that says
    what to do (e.g. for the unchanged ``raise NotImplementedError()``)."""
    name = getattr(factory, "__name__", None) or type(factory).__name__

    def short(value: Any) -> str:
        if isinstance(value, torch.Tensor):
            return f"<tensor {'x'.join(map(str, value.shape))}>"
        if isinstance(value, (tuple, list)) and any(isinstance(v, torch.Tensor) for v in value):
            return "(" + ", ".join(short(v) for v in value) + ")"
        text = repr(value)
        return text if len(text) <= 40 else text[:37] + "..."

    shown = ", ".join([short(a) for a in args] + [f"{k}={short(v)}" for k, v in kwargs.items()])
    try:
        return factory(*args, **kwargs)
    except NotImplementedError:
        raise CheckFailed(f"{name}({shown}) raises NotImplementedError: replace `raise NotImplementedError()` "
                          "with your code") from None
    except Exception as err:  # noqa: BLE001 -- a student's error, reported in one line
        first = str(err).splitlines()[0] if str(err) else ""
        raise CheckFailed(f"{name}({shown}) fails: {type(err).__name__}: {first}") from None


def defined(namespace: dict[str, Any], *names: str) -> None:
    """Raise :class:`CheckFailed` naming the answers that the notebook never defined."""
    missing = [n for n in names if n not in namespace]
    if missing:
        raise CheckFailed(f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not defined: write "
                          "your answer in the cell above (replacing `raise NotImplementedError()`) and run it")


def partial_credit(fraction: float, points: float) -> float:
    """Credit for a test cell whose last expression it is: ``fraction`` of ``points``, clamped.

    nbgrader crashes the whole submission if a cell reports more than its points, so the value is
    clamped to ``[0, points]``; nbgrader reads 0 as "no credit" only for a float, hence ``float``.
    """
    value = float(fraction) * float(points)
    if not math.isfinite(value):
        return 0.0
    return float(min(max(value, 0.0), float(points)))


# --------------------------------------------------------------------------------------------
# Counting and explaining parameter counts
# --------------------------------------------------------------------------------------------
def n_params(module: nn.Module) -> int:
    """Number of parameters of ``module`` (trainable or not)."""
    return sum(p.numel() for p in module.parameters())


def conv_params(in_channels: int, out_channels: int, kernel: int | Sequence[int], bias: bool = True,
                groups: int = 1) -> int:
    """Parameters of one convolution: ``k_h * k_w * in/groups * out (+ out biases)``."""
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else tuple(kernel)
    return kh * kw * (in_channels // groups) * out_channels + (out_channels if bias else 0)


def _fmt(n: int | float) -> str:
    return f"{n:,}" if isinstance(n, int) else f"{n:,.4g}"


def _kernel(conv: nn.Conv2d) -> str:
    return "x".join(str(k) for k in conv.kernel_size)


def explain_conv_count(in_channels: int, out_channels: int, count: int) -> str | None:
    """What square kernel (with or without bias) gives ``count`` parameters for in→out channels.

    Returns e.g. ``"a 3x3 kernel with bias (3*3*16*32 + 32 = 4,640)"`` or None if none fits.
    """
    for bias in (True, False):
        rest = count - (out_channels if bias else 0)
        per = in_channels * out_channels
        if per <= 0 or rest <= 0 or rest % per:
            continue
        k = math.isqrt(rest // per)
        if k * k * per == rest:
            tail = f" + {out_channels}" if bias else ""
            return (f"a {k}x{k} kernel {'with' if bias else 'without'} bias "
                    f"({k}*{k}*{in_channels}*{out_channels}{tail} = {_fmt(count)})")
    return None


def _torch_type(module: nn.Module) -> type:
    """The torch layer class a module is (or derives from), else its own class."""
    return next((t for t in type(module).__mro__ if t.__module__.startswith("torch.nn")
                 and t is not nn.Module), type(module))


def _convs(module: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    return [(n, m) for n, m in module.named_modules() if isinstance(m, nn.Conv2d)]


def _pools(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d))]


def _ordinal(i: int, n: int) -> str:
    return f"convolution {i + 1} of {n}"


def _compare_convs(where: str, branch: str, mine: nn.Conv2d, ref: nn.Conv2d, label: str) -> list[Finding]:
    out: list[Finding] = []

    def add(kind: str, text: str) -> None:
        out.append(Finding(where, kind, f"{label}: {text}", branch))

    if mine.kernel_size != ref.kernel_size:
        k, r = _kernel(mine), _kernel(ref)
        # (for networks other than GoogLeNet "the paper" is the reference implementation's source)
        text = (f"{k} kernel, the paper's is {r} (padding {ref.padding[0]}). That changes the parameters "
                f"from {_fmt(n_params(ref))} to {_fmt(n_params(mine))}")
        if branch == "branch5x5" and mine.kernel_size == (3, 3) and ref.kernel_size == (5, 5):
            text += f" — {TORCHVISION_5X5}"
        add("params", text)
    if (mine.in_channels, mine.out_channels) != (ref.in_channels, ref.out_channels):
        text = (f"maps {mine.in_channels}→{mine.out_channels} channels, expected "
                f"{ref.in_channels}→{ref.out_channels}")
        if mine.out_channels != ref.out_channels and mine.in_channels == ref.in_channels:
            text += " (check which constructor argument you used for its out_channels)"
        add("params", text)
    if (mine.bias is None) != (ref.bias is None):
        if mine.bias is None:
            add("params", f"has no bias; the paper's convolutions have one (+{ref.out_channels} "
                          "parameters: set bias=True, or leave the default)")
        else:
            add("params", f"has a bias the reference does not have ({mine.out_channels} extra parameters)")
    if mine.groups != ref.groups:
        add("params", f"groups={mine.groups}, expected groups={ref.groups}")
    if mine.stride != ref.stride:
        add("shape", f"stride {mine.stride[0]}, expected {ref.stride[0]} (stride changes the output size, "
                     "not the parameters)")
    same_size = mine.kernel_size != ref.kernel_size and mine.stride == (1, 1) and all(
        isinstance(p, int) and 2 * p == k - 1 for p, k in zip(mine.padding, mine.kernel_size))
    if mine.padding != ref.padding and not same_size:
        keeps = 2 * ref.padding[0] == ref.kernel_size[0] - 1 and ref.stride == (1, 1)
        add("shape", f"padding {mine.padding[0] if isinstance(mine.padding, tuple) else mine.padding}, "
                     f"expected {ref.padding[0]}" + (f" — a {_kernel(ref)} kernel keeps height and width only "
                                                     f"with padding {ref.padding[0]}" if keeps else ""))
    return out


def _diagnose_branch(where: str, branch: str, mine: nn.Module, ref: nn.Module) -> list[Finding]:
    """Findings for one branch: parameter counts, then layer by layer why they differ."""
    findings: list[Finding] = []
    mine_convs, ref_convs = _convs(mine), _convs(ref)
    count_m, count_r = n_params(mine), n_params(ref)
    if len(mine_convs) != len(ref_convs):
        kinds = " then ".join(_kernel(c) for _, c in ref_convs) or "none"
        findings.append(Finding(where, "params",
                                f"has {len(mine_convs)} convolution(s), the paper's has {len(ref_convs)} "
                                f"({kinds}); {_fmt(count_m)} parameters instead of {_fmt(count_r)}", branch))
    else:
        n = len(ref_convs)
        for i, ((_, cm), (_, cr)) in enumerate(zip(mine_convs, ref_convs)):
            findings += _compare_convs(where, branch, cm, cr, _ordinal(i, n))
        if count_m != count_r and not any(f.kind == "params" for f in findings):
            extra = [type(m).__name__ for m in mine.modules()
                     if not isinstance(m, nn.Conv2d) and any(True for _ in m.parameters(recurse=False))]
            why = f" (layers with parameters besides convolutions: {', '.join(extra)})" if extra else ""
            findings.append(Finding(where, "params",
                                    f"{_fmt(count_m)} parameters instead of {_fmt(count_r)} although its "
                                    f"convolutions match{why}", branch))
    if not ref_convs and count_m:
        findings.append(Finding(where, "params", f"has {_fmt(count_m)} parameters; this branch has none in "
                                                 "the paper (it is a max pool only)", branch))
    # The pool of the pool branch: 3x3, stride 1, padding 1 (keeps the size).
    ref_pools, mine_pools = _pools(ref), _pools(mine)
    if ref_pools and not mine_pools:
        findings.append(Finding(where, "structure", "has no max pool; the paper's pool branch starts with a "
                                                    "3x3 max pool, stride 1, padding 1", branch))
    for pm, pr in zip(mine_pools, ref_pools):
        if _torch_type(pm) is not _torch_type(pr):
            findings.append(Finding(where, "structure", f"uses {type(pm).__name__}, the paper uses "
                                                        f"{type(pr).__name__}", branch))
        elif (pm.kernel_size, pm.stride, pm.padding) != (pr.kernel_size, pr.stride, pr.padding):
            findings.append(Finding(where, "shape",
                                    f"pool kernel {pm.kernel_size}, stride {pm.stride}, padding {pm.padding}; "
                                    f"expected {pr.kernel_size}, {pr.stride}, {pr.padding}", branch))
    if not findings and count_m != count_r:  # no Conv2d to compare: explain by the count alone
        findings.append(Finding(where, "params", f"{_fmt(count_m)} parameters instead of {_fmt(count_r)}",
                                branch))
    return findings


def _shape(t: Any) -> str:
    return "x".join(str(s) for s in t.shape) if isinstance(t, torch.Tensor) else type(t).__name__


def diagnose_inception(student: nn.Module, reference: nn.Module, name: str = "module",
                       spatial: int = 7) -> list[Finding]:
    """Compare an inception module with the reference one built with the same arguments.

    Looks at each branch (attributes ``branch1x1``, ``branch3x3``, ``branch5x5``, ``branch_pool``):
    its parameter count and, layer by layer, the kernel size, channels, bias, stride and padding
    that explain a difference; then the output shape of each branch and of the module; then the
    order in which the branches are concatenated (1x1, 3x3, 5x5, pool).  Returns the findings
    (an empty list means "matches the reference").
    """
    where = name
    findings: list[Finding] = []
    missing = [b for b in BRANCHES if hasattr(reference, b) and not isinstance(getattr(student, b, None), nn.Module)]
    for b in missing:
        findings.append(Finding(where, "structure", f"no submodule named `{b}`: name the four branches "
                                                    f"{', '.join(BRANCHES)} (as in the paper's Figure 2)", b))
    for b in BRANCHES:
        if b in missing or not hasattr(reference, b):
            continue
        findings += _diagnose_branch(where, b, getattr(student, b), getattr(reference, b))
    if n_params(student) != n_params(reference):
        findings.append(Finding(where, "total", f"{_fmt(n_params(student))} parameters, expected "
                                                f"{_fmt(n_params(reference))}"))
    if not missing and n_params(student) != n_params(reference):
        branch_total = sum(n_params(getattr(student, b)) for b in BRANCHES if hasattr(reference, b))
        if branch_total != n_params(student):
            findings.append(Finding(where, "params", f"{_fmt(n_params(student) - branch_total)} parameters "
                                                     "outside the four branches; the module has no others"))

    # Shapes and order, from one forward pass of a small input.
    ref_conv = _convs(reference)
    in_channels = ref_conv[0][1].in_channels if ref_conv else 3
    x = probe_input(2, in_channels, spatial, spatial)
    student.eval(), reference.eval()
    with torch.no_grad():
        ref_out = reference(x)
        branch_out: dict[str, torch.Tensor] = {}
        for b in BRANCHES:
            if b in missing or not hasattr(reference, b):
                continue
            expected = getattr(reference, b)(x)
            try:
                got = getattr(student, b)(x)
            except Exception as err:  # noqa: BLE001 -- report, do not crash the check
                findings.append(Finding(where, "shape", f"{b}(x) fails for an input of shape {_shape(x)}: "
                                                        f"{type(err).__name__}: {str(err).splitlines()[0]}", b))
                continue
            branch_out[b] = got
            if not isinstance(got, torch.Tensor) or got.shape != expected.shape:
                hint = ""
                if isinstance(got, torch.Tensor) and got.ndim == 4 and got.shape[-2:] != expected.shape[-2:]:
                    hint = (" — every branch must keep the height and width (stride 1, padding (k-1)/2: "
                            "1 for 3x3, 2 for 5x5)")
                elif isinstance(got, torch.Tensor) and got.ndim == 4 and got.shape[1] != expected.shape[1]:
                    hint = " — wrong number of output channels"
                findings.append(Finding(where, "shape", f"{b} gives {_shape(got)} for input {_shape(x)}, "
                                                        f"expected {_shape(expected)}{hint}", b))
        try:
            out = student(x)
        except Exception as err:  # noqa: BLE001
            findings.append(Finding(where, "shape", f"the forward pass fails for an input of shape {_shape(x)}: "
                                                    f"{type(err).__name__}: {str(err).splitlines()[0]}"))
            return findings
        if not isinstance(out, torch.Tensor) or out.shape != ref_out.shape:
            findings.append(Finding(where, "shape", f"output {_shape(out)} for input {_shape(x)}, expected "
                                                    f"{_shape(ref_out)}"))
            return findings
        if len(branch_out) == len([b for b in BRANCHES if hasattr(reference, b)]):
            paper = torch.cat([branch_out[b] for b in BRANCHES if b in branch_out], 1)
            if not torch.allclose(out, paper, atol=1e-5):
                order = _find_order(out, branch_out)
                if order:
                    findings.append(Finding(where, "order", "branches concatenated as " + ", ".join(order)
                                            + "; the paper's order is " + ", ".join(branch_out)))
                else:
                    findings.append(Finding(where, "order", "the output is not the channel-wise concatenation "
                                                            "(torch.cat(..., dim=1)) of the four branch outputs "
                                                            "in the order 1x1, 3x3, 5x5, pool"))
    return findings


#: Table 1's inception modules with their input channels and map size at 224x224 input.
def table1_modules() -> list[tuple[str, int, tuple[int, ...], int]]:
    """``[(name, in_channels, filters, size), ...]`` for 3a … 5b, from the reference network's
    filter table (``filters`` = ``#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj``)."""
    from ..models.googlenet import INCEPTION_FILTERS

    rows, in_channels = [], 192
    for key, filters in INCEPTION_FILTERS.items():
        rows.append((key, in_channels, tuple(filters), {"3": 28, "4": 14, "5": 7}[key[0]]))
        in_channels = filters[0] + filters[2] + filters[4] + filters[5]
    return rows


_CACHE: dict[tuple[Any, ...], list[Finding]] = {}


def inception_findings(inception_cls: type, naive: bool = False,
                       modules: Sequence[str] | None = None) -> list[Finding]:
    """:func:`diagnose_inception` for the student's class built as every Table 1 module (3a … 5b,
    or ``modules``).  ``naive=True`` builds ``cls(in_channels, ch1x1, ch3x3, ch5x5)`` instead.

    Results are cached per class, so several test cells can share one diagnosis.  A constructor
    that raises (e.g. the unchanged ``raise NotImplementedError()``) raises :class:`CheckFailed`.
    """
    from ..models.inception import Inception, InceptionNaive

    key = (inception_cls, naive, tuple(modules or ()))
    if key in _CACHE:
        return _CACHE[key]
    findings: list[Finding] = []
    for name, in_channels, f, _size in table1_modules():
        if modules and name not in modules:
            continue
        args = (in_channels, f[0], f[2], f[4]) if naive else (in_channels, *f)
        torch.manual_seed(0)
        reference = InceptionNaive(*args) if naive else Inception(*args)
        try:
            student = inception_cls(*args)
        except NotImplementedError:
            raise CheckFailed(f"{inception_cls.__name__}{args} raises NotImplementedError: "
                              "replace `raise NotImplementedError()` with your code") from None
        except Exception as err:  # noqa: BLE001
            raise CheckFailed(f"{inception_cls.__name__}{args} fails: {type(err).__name__}: {err}") from None
        findings += diagnose_inception(student, reference, name=f"inception {name}")
    _CACHE[key] = findings
    return findings


def _find_order(out: torch.Tensor, parts: dict[str, torch.Tensor]) -> list[str] | None:
    from itertools import permutations

    for perm in permutations(parts):
        cand = torch.cat([parts[p] for p in perm], 1)
        if cand.shape == out.shape and torch.allclose(out, cand, atol=1e-5):
            return list(perm)
    return None


# --------------------------------------------------------------------------------------------
# Whole networks, layer by layer (LeNet-5, AlexNet, GoogLeNet)
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
            if isinstance(mr, nn.Conv2d) and isinstance(ms, nn.Conv2d):
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


def diagnose_answers(answers: dict[str, Any], expected: dict[str, Any], what: str = "answer",
                     hint: Callable[[str, Any, Any], str | None] | None = None) -> list[Finding]:
    """Compare named numeric answers with expected values (computed by the caller from course_pkg).

    Missing keys, non-numbers and wrong values each give a finding; ``hint(key, got, expected)``
    may add a sentence that explains a typical mistake.
    """
    findings = []
    if not isinstance(answers, dict):
        return [Finding(what, "value", f"expected a dict, got {type(answers).__name__}")]
    for key, exp in expected.items():
        if key not in answers:
            findings.append(Finding(what, "value", f"no entry {key!r}"))
            continue
        got = answers[key]
        if isinstance(exp, tuple):
            if not isinstance(got, (tuple, list)) or tuple(got) != exp:
                findings.append(Finding(what, "value", f"{key!r}: {got!r} is wrong"
                                        + (f" — {hint(key, got, exp)}" if hint and hint(key, got, exp) else "")))
            continue
        if isinstance(got, bool) or not isinstance(got, (int, float)):
            findings.append(Finding(what, "value", f"{key!r} should be a number, got {type(got).__name__}"))
        elif got != exp:
            extra = hint(key, got, exp) if hint else None
            findings.append(Finding(what, "value", f"{key!r}: {got!r} is wrong" + (f" — {extra}" if extra else "")))
    return findings


# --------------------------------------------------------------------------------------------
# Checkpoints and accuracy (assignment 3)
# --------------------------------------------------------------------------------------------
def load_student_checkpoint(model: nn.Module, path: str | os.PathLike) -> dict[str, Any]:
    """Load a submitted checkpoint into the student's own model, safely (``weights_only=True``).

    Raises :class:`CheckFailed` with a message that says what is wrong: missing file, corrupt file,
    a pickle that would run code, something that is not a state_dict, or weights that do not fit
    the model (missing/unexpected keys, shape differences).
    """
    from ..checkpoint import CheckpointError, load_into

    path = Path(path)
    if not path.exists():
        raise CheckFailed(f"no checkpoint file {path.name} next to the notebook: train the network, save it "
                          f"with torch.save(model.state_dict(), '{path.name}') and submit that file with the "
                          "notebook")
    try:
        return load_into(model, path)
    except CheckpointError as err:
        raise CheckFailed(f"checkpoint {path.name}: {err}") from None


def cifar10_test_subset(n: int, seed: int, download: bool = False,
                        pool: int = 2000) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed, seeded subset of ``n`` CIFAR-10 test images, normalised exactly as in training
    (``course_pkg.data.to_tensor``), and their labels.

    Drawn from ``pool`` images spread evenly over the official test split
    (``course_pkg.data.subset_indices``: 200 of each class for the default 2,000, although the
    JPEG copy is stored sorted by class), so that grading decodes only those when no decoded cache
    exists yet.  Offline through
    ``$COURSE_DATA``; ``download=True`` lets torchvision fetch the data (Colab).
    """
    from .. import data as course_data

    if not 0 < n <= pool:
        raise ValueError(f"n must be between 1 and pool={pool}, got {n}")
    images, labels = course_data.load_arrays("cifar10", "test", limit=pool, download=download)
    index = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))[:n].numpy()
    return course_data.to_tensor(images[index], "cifar10"), torch.as_tensor(labels[index]).long()


def subset_accuracy(model: nn.Module, n: int, seed: int, batch_size: int = 250,
                         device: str | None = None, download: bool = False) -> float:
    """Top-1 accuracy of ``model`` (eval mode) on :func:`cifar10_test_subset` ``(n, seed)``."""
    from ..train import evaluate_accuracy, pick_device

    images, labels = cifar10_test_subset(n, seed, download=download)
    device = pick_device(device)
    model = model.to(device).eval()
    batches = [(images[i:i + batch_size], labels[i:i + batch_size]) for i in range(0, len(labels), batch_size)]
    # fp32 and the input's own memory layout: a student's model may flatten with .view()
    accuracy, _ = evaluate_accuracy(model, batches, device, precision="fp32", channels_last=False)
    return accuracy

# --------------------------------------------------------------------------------------------
# Multi-crop views (assignment 4)
# --------------------------------------------------------------------------------------------
_FIVE = ("top-left", "top-right", "bottom-left", "bottom-right", "centre")


def describe_view(index: int, scheme: str) -> str:
    """Where view ``index`` comes from in ``course_pkg.evaluate``'s order, in words."""
    if scheme == "ten":
        return f"{_FIVE[index % 5]} crop{' of the mirrored image' if index >= 5 else ''}"
    if scheme == "googlenet144":
        mirror, pos = index % 2, (index // 2) % 6
        square, scale = (index // 12) % 3, index // 36
        where = (_FIVE + ("whole square",))[pos]
        return (f"scale {scale + 1}, square {square + 1} of 3, {where}{', mirrored' if mirror else ''}")
    return f"view {index}"


def diagnose_views(mine: Any, reference: torch.Tensor, scheme: str, atol: float = 1e-4,
                   limit: int = 4) -> list[Finding]:
    """Compare a student's views ``[V, C, crop, crop]`` with the reference views, view by view.

    Names the views that differ and, when a view equals another one of the protocol, says which
    (a wrong order), e.g. "your view 5 is the top-left crop of the mirrored image".
    """
    where = f"{scheme} views"
    if not isinstance(mine, torch.Tensor):
        return [Finding(where, "value", f"expected a tensor [V, C, crop, crop], got {type(mine).__name__}")]
    if mine.ndim != 4 or mine.shape[1:] != reference.shape[1:]:
        return [Finding(where, "shape", f"shape {tuple(mine.shape)}, expected {tuple(reference.shape)} "
                                        "(views, channels, crop, crop)")]
    if mine.shape[0] != reference.shape[0]:
        why = ("5 positions x 2 (mirror)" if scheme == "ten" else
               "scales x 3 squares x 6 crops (4 corners, centre, whole square) x 2 (mirror)")
        return [Finding(where, "shape", f"{mine.shape[0]} views, expected {reference.shape[0]}: {why}")]
    mine = mine.to(reference.dtype)
    same = [bool(torch.allclose(mine[v], reference[v], atol=atol)) for v in range(len(reference))]
    wrong = [v for v, ok in enumerate(same) if not ok]
    findings = []
    for v in wrong[:limit]:
        match = next((j for j in range(len(reference)) if torch.allclose(mine[v], reference[j], atol=atol)), None)
        if match is not None:
            text = (f"your view {v} is the {describe_view(match, scheme)}; view {v} should be the "
                    f"{describe_view(v, scheme)} (check the order)")
        else:
            err = (mine[v] - reference[v]).abs().max().item()
            text = (f"view {v} ({describe_view(v, scheme)}) differs from the protocol's by up to {err:.3g} "
                    "and matches no other view: check the resize (bilinear, antialias=True), the sizes "
                    "(int(s * long / short)) and the centre offset (int(round((L - c) / 2)))")
        findings.append(Finding(where, "value", text))
    if len(wrong) > limit:
        findings.append(Finding(where, "value", f"... {len(wrong)} of {len(reference)} views differ in all"))
    return findings


# --------------------------------------------------------------------------------------------
# Self-checks for students: print what matches and what does not; no points, no thresholds
# --------------------------------------------------------------------------------------------
def _report(title: str, findings: list[Finding]) -> bool:
    if findings:
        print(f"✗ {title}")
        for f in findings:
            print(f"    - {f}")
        return False
    print(f"✓ {title}")
    return True


def self_check_inception(inception_cls: type, naive: bool = False) -> bool:
    """Build your inception module for all nine modules of Table 1 (3a … 5b) and compare each with
    the course's reference.  Prints one line per module; returns True when everything matches."""
    modules = ("3a", "4a", "5b") if naive else None  # naive modules get big: three are enough
    try:
        findings = inception_findings(inception_cls, naive=naive, modules=modules)
    except CheckFailed as err:
        print(f"✗ {err}")
        return False
    ok = True
    for name, *_ in table1_modules():
        if modules and name not in modules:
            continue
        where = f"inception {name}"
        ok &= _report(where, [f for f in findings if f.where == where])
    return ok


def self_check_model(model: nn.Module, reference_name: str, input_size: Sequence[int],
                     children: Sequence[str] | None = None, **kwargs: Any) -> bool:
    """Compare ``model`` with ``course_pkg.models.create(reference_name, **kwargs)`` layer by layer."""
    from ..models import create

    reference = create(reference_name, **kwargs)
    return _report(f"{type(model).__name__} against {reference_name} ({n_params(model):,} parameters)",
                   diagnose_model(model, reference, input_size, name=type(model).__name__, children=children))


def self_check_checkpoint(model: nn.Module, path: str | os.PathLike, n: int = 500, seed: int = 0,
                          course_model: str | None = None) -> float | None:
    """Load your checkpoint the way the grader does and print its accuracy on ``n`` test images.

    ``course_model``: the grader loads the file into this network of ``course_pkg.models``
    (not into yours), so the check also tries that.  The grader uses its own subset and its own
    credit rules; this only tells you that the file loads and roughly how well it does."""
    try:
        load_student_checkpoint(model, path)
    except CheckFailed as err:
        print(f"✗ {err}")
        return None
    print(f"✓ {Path(path).name} loads into your {type(model).__name__} (weights_only=True)")
    if course_model:
        from ..models import create

        try:
            load_student_checkpoint(create(course_model), path)
        except CheckFailed as err:
            print(f"✗ the grader loads it into the course's {course_model!r}, and there: {err} "
                  "(rename your layers as the assignment asks)")
            return None
        print(f"✓ it also loads into the course's {course_model!r}, which the grader measures")
    if os.environ.get("NBGRADER_EXECUTION"):
        return None  # the grader measures accuracy in its own test; do not pay for it twice
    try:
        acc = subset_accuracy(model, n, seed, download=True)
    except Exception as err:  # noqa: BLE001 -- e.g. no data available offline
        print(f"  (accuracy not measured: {type(err).__name__}: {err})")
        return None
    print(f"  accuracy on {n} CIFAR-10 test images: {acc:.1%}")
    return acc


def self_check_answers(answers: dict[str, Any], keys: Iterable[str], what: str = "answers") -> bool:
    """Check the *form* of your answers (all keys there, all whole numbers) — not their values."""
    findings = []
    if not isinstance(answers, dict):
        findings.append(Finding(what, "value", f"expected a dict, got {type(answers).__name__}"))
    else:
        for k in keys:
            if k not in answers:
                findings.append(Finding(what, "value", f"no entry {k!r}"))
            elif isinstance(answers[k], bool) or not isinstance(answers[k], int):
                findings.append(Finding(what, "value", f"{k!r} should be a whole number (int), "
                                                       f"got {type(answers[k]).__name__}"))
    return _report(f"{what}: all present and whole numbers (values are checked by the grader)", findings)
