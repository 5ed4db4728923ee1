"""Self-checks for students: right or wrong, the cause, and the points at stake.

Each ``self_check_*`` function runs the same diagnoses as the graded tests of one part of an
assignment and prints them, the cause first: the first line of its output names what is wrong
("✗ inception 3a, branch3x3: convolution 2 of 2: maps 96→96 channels, expected 96→128 ...") or
says that the part is right.  A self-check says *which* answer is wrong, never the right value;
``points`` (given by the notebook) is what the graded tests of that part are worth.  They print
and return None, so a self-check cell shows nothing but its report.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn as nn

from .answers import diagnose_by_hand
from .checkpoint import load_student_checkpoint, subset_accuracy
from .inception import inception_findings
from .model import diagnose_model, state_dict_findings
from .feedback import CheckFailed, Finding, HiddenWhileGrading, build
from .param_counts import n_params

GOOGLENET_LAYERS = ("conv1", "maxpool1", "conv2", "conv3", "maxpool2", "inception3a", "inception3b", "maxpool3",
                    "inception4a", "inception4b", "inception4c", "inception4d", "inception4e", "maxpool4",
                    "inception5a", "inception5b", "fc", "aux1", "aux2")


def _outside_grading(check: Callable[..., None]) -> Callable[..., None]:
    """A self-check compares with the course's reference, which ``course grade`` hides from the
    notebook it grades: there the self-check says so in one line instead of failing the cell (it
    is not graded; the graded test cells check the same on the grader's side)."""
    import functools

    @functools.wraps(check)
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            check(*args, **kwargs)
        except HiddenWhileGrading:
            print(f"{check.__name__}: not available while grading (the grader checks the same in the test cells)")

    return run


def _stake(points: float | None) -> str:
    return "" if points is None else f" ({points:g} point{'s' if points != 1 else ''} at stake)"


def _report(title: str, findings: Sequence[Finding | str], points: float | None = None, right: str = "right") -> None:
    """Print the cause on the first line, then the other findings; or one line saying it is right."""
    if findings:
        first, *rest = [str(f) for f in findings]
        print(f"✗ {first}{_stake(points)}")
        for f in rest[:11]:
            print(f"    - {f}")
        if len(rest) > 11:
            print(f"    ... and {len(rest) - 11} more")
        print(f"  ({title})")
    else:
        worth = "" if points is None else f" ({points:g} point{'s' if points != 1 else ''})"
        print(f"✓ {title}: {right}{worth}")


def _attempt(check: Callable[[], list[Finding]]) -> list[Finding | str]:
    try:
        return list(check())
    except CheckFailed as err:
        return [str(err)]


@_outside_grading
def self_check_inception(inception_cls: type, naive: bool = False, points: float | None = None) -> None:
    """Build your inception module as the modules of Table 1 (3a … 5b; 3a, 4a and 5b when naive)
    and compare each with the course's reference, branch by branch."""
    modules = ("3a", "4a", "5b") if naive else None  # naive modules get big: three are enough
    which = "inception 3a, 4a, 5b" if naive else "inception 3a … 5b"
    _report(f"{inception_cls.__name__} as {which} (Table 1)",
            _attempt(lambda: inception_findings(inception_cls, naive=naive, modules=modules)), points,
            "every branch matches the paper")


@_outside_grading
def self_check_model(model: nn.Module, reference: str, input_size: Sequence[int],
                     children: Sequence[str] | None = None, points: float | None = None, **kwargs: Any) -> None:
    """Compare ``model`` with ``course_pkg.models.create(reference, **kwargs)`` layer by layer:
    parameters, output shapes, pools.  ``"googlenet.aux1"`` names a sub-module of a course network."""
    from ..models import create

    network, _, sub = reference.partition(".")
    ref = create(network, **kwargs).get_submodule(sub) if sub else create(network, **kwargs)
    name = type(model).__name__
    _report(f"{name} against the course's {reference} ({n_params(model):,} parameters)",
            diagnose_model(model, ref, input_size, name=name, children=children), points,
            "every layer matches")


def _aux_output_findings(net_cls: type) -> list[Finding]:
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    where, findings = "GoogLeNet(num_classes=10, cifar=True)", []
    net = build(net_cls, num_classes=10, cifar=True).train()
    out = build(net, x)
    if not (isinstance(out, tuple) and len(out) == 3):
        findings.append(Finding(where, "structure", "in training mode forward must return (logits, aux1, aux2), "
                                                    f"got {type(out).__name__}: are the auxiliary heads built?"))
    elif not all(isinstance(o, torch.Tensor) and tuple(o.shape) == (2, 10) for o in out):
        findings.append(Finding(where, "shape", "the three outputs of training mode should each be 2x10 here"))
    if not isinstance(build(net.eval(), x), torch.Tensor):
        findings.append(Finding(where, "structure", "in eval mode forward must return the logits only"))
    plain = build(net_cls, num_classes=10, aux_logits=False, cifar=True).train()
    if not isinstance(build(plain, x), torch.Tensor):
        findings.append(Finding(where, "structure", "with aux_logits=False forward must return the logits only"))
    return findings


@_outside_grading
def self_check_googlenet(net_cls: type, points: float | None = None) -> None:
    """Your ``GoogLeNet`` class against the paper's network (224x224) and the course's CIFAR version
    (32x32), layer by layer and pool by pool; its training/eval outputs; and whether the grader can
    load its weights (a state_dict round trip into ``googlenet_cifar``) — before you train it."""
    from ..models import create

    def findings() -> list[Finding]:
        out = diagnose_model(build(net_cls), create("googlenet", init="pytorch"), (3, 224, 224),
                             name="GoogLeNet", children=GOOGLENET_LAYERS)
        out += _aux_output_findings(net_cls)
        cifar, ref = build(net_cls, num_classes=10, cifar=True), create("googlenet_cifar", stem="16")
        out += diagnose_model(cifar, ref, (3, 32, 32), name="GoogLeNet(cifar=True)", children=GOOGLENET_LAYERS)
        return out + state_dict_findings(cifar, ref, "GoogLeNet(cifar=True)", "googlenet_cifar")

    _report("GoogLeNet: the paper's network, its outputs, the CIFAR version and its weights' names",
            _attempt(findings), points, "every layer matches and the grader can load its weights")


@_outside_grading
def self_check_loss(loss_fn: Callable[..., Any], points: float | None = None) -> None:
    """``googlenet_loss`` on three heads' logits and on plain logits: which weight it gives the
    auxiliary losses, and whether eval-mode logits work."""
    import torch.nn.functional as F

    def findings() -> list[Finding]:
        g = torch.Generator().manual_seed(1)
        logits, a1, a2 = (torch.randn(8, 10, generator=g) for _ in range(3))
        y = torch.randint(0, 10, (8,), generator=g)
        main, l1, l2 = (float(F.cross_entropy(t, y)) for t in (logits, a1, a2))
        out = []
        got = build(loss_fn, (logits, a1, a2), y)
        if not isinstance(got, torch.Tensor) or got.numel() != 1:
            return [Finding("googlenet_loss", "value", f"should return one scalar tensor, got {type(got).__name__}")]
        weight = (float(got) - main) / (l1 + l2)
        if abs(float(got) - (main + 0.3 * (l1 + l2))) > 1e-4:
            leaves = " — the auxiliary terms are missing" if abs(weight) < 1e-3 else ""
            out.append(Finding("googlenet_loss", "value", f"behaves like main + {weight:.3g} x (aux1 + aux2){leaves}; "
                                                          "the paper adds 0.3 x each auxiliary cross-entropy"))
        if abs(float(build(loss_fn, logits, y)) - main) > 1e-4:
            out.append(Finding("googlenet_loss", "value", "for plain logits (eval mode) it should be their "
                                                          "cross-entropy alone"))
        return out

    _report("googlenet_loss", _attempt(findings), points, "main loss + 0.3 x each auxiliary loss")


@_outside_grading
def self_check_answers(namespace: dict[str, Any], part: str, points: float | None = None) -> None:
    """Your answers of a "by hand" part (``lenet_by_hand``, ``alexnet_by_hand``, ``bottleneck``,
    ``answers_3a``, ``channel_source``), read from the notebook's ``globals()``, against values
    computed from the course's own networks.  Says which entries are wrong, not their values."""
    _report(f"{part}", diagnose_by_hand(namespace, part), points, "every answer is correct")


@_outside_grading
def self_check_branch_costs(branch_costs: Callable[..., Any], points: float | None = None) -> None:
    """``branch_costs`` for every module of Table 1, against counts of the course's inception modules."""
    from ..models.googlenet import table1_modules
    from ..models.inception import Inception
    from ..profile import count_macs, count_params
    from .answers import diagnose_answers

    def findings() -> list[Finding]:
        out: list[Finding] = []
        for name, cin, f, size in table1_modules():
            ref = Inception(cin, *f)
            expected = {b: (count_params(getattr(ref, b)), count_macs(getattr(ref, b), (cin, size, size)))
                        for b in ("branch1x1", "branch3x3", "branch5x5", "branch_pool")}
            got = build(branch_costs, cin, *f, size)
            got = {k: tuple(v) for k, v in got.items()} if isinstance(got, dict) else got
            out += diagnose_answers(got, expected, f"branch_costs for inception {name}")
        return out

    _report("branch_costs for inception 3a … 5b", _attempt(findings), points, "every count is correct")


@_outside_grading
def self_check_views(views_fn: Callable[..., Any], scheme: str, points: float | None = None) -> None:
    """``ten_crop`` (``scheme="ten"``) or ``views_144`` (``"googlenet144"``) on small random images,
    view by view against the protocol (``course_pkg.evaluate.multicrop_views``)."""
    from ..evaluate import multicrop_views
    from .views import diagnose_views

    cases = ([(36, 44, None, 28), (41, 33, None, 24)] if scheme == "ten"
             else [(36, 46, (36, 42), 28), (41, 30, (30, 34), 24)])

    def findings() -> list[Finding]:
        g, out = torch.Generator().manual_seed(1), []
        for h, w, scales, crop in cases:
            image = torch.rand(3, h, w, generator=g)
            ref, _ = multicrop_views(image, scheme, crop=crop, scales=scales)
            mine = build(views_fn, image, crop) if scheme == "ten" else build(views_fn, image, scales, crop)
            out += [Finding(f"{f.where} of a {h}x{w} image", f.kind, f.message)
                    for f in diagnose_views(mine, ref, scheme)]
        return out

    name = getattr(views_fn, "__name__", "views")
    _report(f"{name} on a landscape and a portrait image", _attempt(findings), points,
            "every view matches the protocol, in its order")


@_outside_grading
def self_check_average(average_fn: Callable[..., Any], points: float | None = None) -> None:
    """``average_softmax`` on the logits of 10 views: the paper's rule, or which other rule it is."""
    from ..evaluate import reduce_views

    def findings() -> list[Finding]:
        logits = torch.randn(10, 7, generator=torch.Generator().manual_seed(2)) * 3
        got = build(average_fn, logits)
        if not isinstance(got, torch.Tensor) or tuple(got.shape) != (7,):
            return [Finding("average_softmax", "shape", "should return one probability per class, shape (7,) here")]
        for rule, why in (("logit_mean", "the softmax of the mean logits (torchvision's TenCrop example)"),
                          ("max", "the largest probability over views")):
            if torch.allclose(got, reduce_views(logits[None], rule)[0], atol=1e-5):
                return [Finding("average_softmax", "value", f"computes {why}; the paper averages the softmax "
                                                            "probabilities over views")]
        if not torch.allclose(got, reduce_views(logits[None], "softmax_mean")[0], atol=1e-5):
            return [Finding("average_softmax", "value", "take the softmax of each view's logits, then the mean "
                                                        "over views")]
        return []

    _report("average_softmax", _attempt(findings), points, "the mean of the views' softmax probabilities")


def points_for_accuracy(accuracy: float, steps: Sequence[tuple[float, float]], points: float) -> float:
    """The points ``accuracy`` earns under ``steps`` ((threshold, fraction of the points), highest first)."""
    return next((fraction for threshold, fraction in steps if accuracy >= threshold), 0.0) * points


@_outside_grading
def self_check_checkpoint(model: nn.Module, path: str | os.PathLike, n: int = 500, seed: int = 0,
                          course_model: str | None = None, points: float | None = None,
                          steps: Sequence[tuple[float, float]] | None = None,
                          accuracy_points: float | None = None) -> None:
    """Load your checkpoint the way the grader does, and measure it on ``n`` public CIFAR-10 test images.

    ``course_model``: the grader loads the file into this network of ``course_pkg.models`` (not into
    yours), so the check does too.  With ``steps`` (the accuracy steps the assignment states) it says
    how many of ``accuracy_points`` that accuracy would earn; the grader measures other images."""
    name = Path(path).name
    try:
        load_student_checkpoint(model, path)
        if course_model:
            from ..models import create

            try:
                load_student_checkpoint(create(course_model), path)
            except CheckFailed as err:
                raise CheckFailed(f"the grader loads it into the course's {course_model!r}, and there: {err} "
                                  "(name your layers as the assignment asks)") from None
    except CheckFailed as err:
        _report(f"{name} loads", [str(err)], (points or 0) + (accuracy_points or 0) or None)
        return
    _report(f"{name} loads into your {type(model).__name__}"
            + (f" and into the course's {course_model!r}, which the grader measures" if course_model else ""),
            [], points, "right")
    if os.environ.get("NBGRADER_EXECUTION"):
        return  # the grader measures accuracy in its own test; do not pay for it twice
    try:
        acc = subset_accuracy(model, n, seed, download=True)
    except Exception as err:  # noqa: BLE001 -- e.g. no data available offline
        print(f"  accuracy not measured ({type(err).__name__}: {err}): set COURSE_DATA to the folder holding "
              "cifar10_jpeg.npz, or allow the download")
        return
    line = f"  accuracy on {n} public CIFAR-10 test images: {acc:.1%}"
    if steps and accuracy_points:
        earned = points_for_accuracy(acc, steps, accuracy_points)
        line += (f" -> {earned:g} of {accuracy_points:g} points at the stated steps (the grader measures "
                 "250 images of its own, so expect a point or two of difference near a step)")
    print(line)
