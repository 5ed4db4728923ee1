"""The inception module checked against the reference, branch by branch (assignment 2).

:func:`diagnose_inception` names the branch, the layer and what would explain a difference
("branch5x5, convolution 2 of 2: 3x3 kernel, the paper's is 5x5 ..."); :func:`inception_findings`
runs it for the student's class built as every module of the paper's Table 1.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn as nn

from .feedback import CheckFailed, Finding
from .handover import probe_input
from ..models.googlenet import table1_modules
from .param_counts import _fmt, _kernel, _shape, n_params

BRANCHES = ("branch1x1", "branch3x3", "branch5x5", "branch_pool")
TORCHVISION_5X5 = (
    "torchvision's GoogLeNet has exactly this deviation (a 3x3 kernel in the '5x5' branch, kept "
    "for weight compatibility, pytorch/vision issue #906); the paper and the Caffe model use 5x5"
)


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


# Table 1's column for each convolution of a branch: what its out_channels should be.
ARGUMENTS = {"branch1x1": ("ch1x1",), "branch3x3": ("ch3x3red", "ch3x3"), "branch5x5": ("ch5x5red", "ch5x5"),
             "branch_pool": ("pool_proj",)}


def _compare_convs(where: str, branch: str, mine: nn.Conv2d, ref: nn.Conv2d, label: str,
                   arg: str | None = None, source: str | None = None) -> list[Finding]:
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
            text += (f" (its out_channels should be `{arg}`)" if arg else
                     " (check which constructor argument you used for its out_channels)")
        elif mine.in_channels != ref.in_channels and mine.out_channels == ref.out_channels and source:
            text += f" (its input is {source})"
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
            args = ARGUMENTS.get(branch, ()) if len(ARGUMENTS.get(branch, ())) == n else (None,) * n
            source = "the module's input, `in_channels`" if i == 0 else (
                f"the `{args[i - 1]}` channels of the convolution before it" if args[i - 1] else None)
            findings += _compare_convs(where, branch, cm, cr, _ordinal(i, n), args[i], source)
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


def _own_weights_output(mine: nn.Module, ref: nn.Module, x: torch.Tensor) -> torch.Tensor | str:
    """What the paper's branch ``ref`` computes on ``x`` with the weights of the student's branch
    ``mine`` (convolution by convolution, in order), or why that cannot be computed.  The grader
    compares it with what the student's own forward gave: a forward that is not the paper's, or an
    output that was not computed (forged), differs."""
    import copy

    mine_convs, ref_convs = _convs(mine), _convs(ref)
    if len(mine_convs) != len(ref_convs):
        return "its convolutions differ from the paper's"
    ref = copy.deepcopy(ref)
    ref_convs = _convs(ref)
    with torch.no_grad():
        for i, ((_, cm), (_, cr)) in enumerate(zip(mine_convs, ref_convs)):
            for what in ("weight", "bias"):
                theirs, ours = getattr(cm, what, None), getattr(cr, what, None)
                if (theirs is None) != (ours is None):
                    return "its convolutions differ from the paper's"
                if theirs is None:
                    continue
                if theirs.is_meta:
                    return f"the weights of its {_ordinal(i, len(ref_convs))} were not handed over"
                if theirs.shape != ours.shape:
                    return "its convolutions differ from the paper's"
                ours.copy_(theirs.detach().to(ours.dtype))
            if not cm.weight.detach().abs().sum():
                return (f"the weights of its {_ordinal(i, len(ref_convs))} are all zero, not what the constructor's "
                        "default initialisation gives")
        return ref.eval()(x)


def _output_findings(where: str, branch: str, mine: nn.Module, ref: nn.Module, x: torch.Tensor,
                     got: torch.Tensor) -> list[Finding]:
    """The branch's output ``got`` against what its own layers compute (:func:`_own_weights_output`)."""
    expected = _own_weights_output(mine, ref, x)
    if isinstance(expected, str):
        return [Finding(where, "output", f"its output could not be checked against its layers: {expected}", branch)]
    if expected.shape != got.shape or not torch.allclose(got.float(), expected.float(), atol=1e-4, rtol=1e-4):
        diff = ((got.float() - expected.float()).abs().max().item() if expected.shape == got.shape else float("nan"))
        return [Finding(where, "output", f"its output is not what its own layers compute (largest difference "
                                         f"{diff:.3g} on the probe input): its forward must apply them as Figure 2 "
                                         "draws the branch, each convolution followed by a ReLU", branch)]
    return []


def diagnose_inception(student: nn.Module, reference: nn.Module, name: str = "module",
                       spatial: int = 7) -> list[Finding]:
    """Compare an inception module with the reference one built with the same arguments.

    Looks at each branch (attributes ``branch1x1``, ``branch3x3``, ``branch5x5``, ``branch_pool``):
    its parameter count and, layer by layer, the kernel size, channels, bias, stride and padding
    that explain a difference; then the output shape of each branch and of the module; then the
    order in which the branches are concatenated (1x1, 3x3, 5x5, pool); and whether each branch's
    output is what its own layers compute (findings of kind ``"output"``).  Returns the findings
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
            elif not any(f.branch == b and f.kind in ("params", "structure") for f in findings):
                # the values, not only the shape: recomputed from the branch's own weights
                findings += _output_findings(where, b, getattr(student, b), getattr(reference, b), x, got)
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
