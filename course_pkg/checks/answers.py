"""Named numeric answers (parameter counts, multiply-adds) compared with the expected values.

:func:`diagnose_answers` compares; :data:`BY_HAND` says, for each "by hand" part of the assignments,
which variables the notebook must define and computes their values from the course's own networks
(``course_pkg.models``), so that a self-check can say right or wrong without holding the answers.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn as nn

from .feedback import Finding

Hint = Callable[[str, Any, Any], "str | None"]


def diagnose_answers(answers: dict[str, Any], expected: dict[str, Any], what: str = "answer",
                     hint: Hint | None = None, tolerance: float = 0.0) -> list[Finding]:
    """Compare named numeric answers with expected values (computed by the caller from course_pkg).

    Missing keys, non-numbers and wrong values each give a finding; ``hint(key, got, expected)``
    may add a sentence that explains a typical mistake.  Tuples and strings must match exactly,
    numbers within ``tolerance``.
    """
    findings = []
    if not isinstance(answers, dict):
        return [Finding(what, "value", f"expected a dict, got {type(answers).__name__}")]
    for key, exp in expected.items():
        if key not in answers:
            findings.append(Finding(what, "value", f"no entry {key!r}"))
            continue
        got = answers[key]
        extra = hint(key, got, exp) if hint else None
        wrong = f"{key!r}: {got!r} is wrong" + (f" — {extra}" if extra else "")
        if isinstance(exp, tuple):
            if not isinstance(got, (tuple, list)) or tuple(got) != exp:
                findings.append(Finding(what, "value", wrong))
        elif isinstance(exp, str):
            if got != exp:
                findings.append(Finding(what, "value", wrong))
        elif isinstance(got, bool) or not isinstance(got, (int, float)):
            findings.append(Finding(what, "value", f"{key!r} should be a number, got {type(got).__name__}"))
        elif abs(got - exp) > tolerance:
            findings.append(Finding(what, "value", wrong))
    return findings


# --------------------------------------------------------------------------------------------
# The "by hand" parts: which variables, and their values computed from the course's networks
# --------------------------------------------------------------------------------------------
def _lenet() -> tuple[dict[str, Any], Hint]:
    from ..models import create
    from ..profile import count_params

    ref = create("lenet5", variant="modern").eval()
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = [getattr(ref, n).register_forward_hook(lambda _m, _i, o, n=n: shapes.__setitem__(n, tuple(o.shape[1:])))
             for n in ("c1", "s2", "c3", "s4", "c5")]
    with torch.no_grad():
        ref(torch.zeros(1, 1, 32, 32))
    for h in hooks:
        h.remove()
    params = {n: count_params(getattr(ref, n)) for n in ("c1", "c3", "c5", "f6", "output")}

    def hint(key: str, got: Any, expected: Any) -> str | None:
        layer = getattr(ref, key, None)
        if isinstance(got, int) and getattr(layer, "bias", None) is not None and got == expected - layer.bias.numel():
            return "the biases are missing (one per output channel or unit)"
        return None

    return {"lenet_shapes": shapes, "lenet_params": params}, hint


def _alexnet() -> tuple[dict[str, Any], Hint]:
    from ..models import create
    from ..models.alexnet import param_split

    ref = create("alexnet")
    with torch.no_grad():
        conv1 = tuple(ref.conv1(torch.zeros(1, 3, 227, 227)).shape[1:]) if hasattr(ref, "conv1") else None
    return {"alexnet_fc_fraction": param_split(ref)["fc_fraction"], "alexnet_conv1_shape": conv1}, None


def _bottleneck() -> tuple[dict[str, Any], Hint]:
    from ..profile import count_macs, count_params

    direct = nn.Conv2d(192, 32, 5, padding=2)
    reduced = nn.Sequential(nn.Conv2d(192, 16, 1), nn.Conv2d(16, 32, 5, padding=2))
    expected = {"direct_params": count_params(direct), "direct_macs": count_macs(direct, (192, 28, 28)),
                "reduced_params": count_params(reduced), "reduced_macs": count_macs(reduced, (192, 28, 28))}

    def hint(key: str, got: Any, exp: Any) -> str | None:
        if isinstance(got, (int, float)) and key.endswith("_macs") and got * 28 * 28 == exp:
            return "that is per output position; there are 28 x 28 of them"
        if isinstance(got, (int, float)) and key.endswith("_params") and got > exp:
            return "parameters do not depend on the 28 x 28 map size"
        return None

    return {"bottleneck": expected}, hint


def _inception_3a() -> tuple[dict[str, Any], Hint]:
    from ..models.inception import Inception
    from ..profile import count_macs, count_params

    ref = Inception(192, 64, 96, 128, 16, 32, 32)
    expected, weights = {}, {}
    for b in ("branch1x1", "branch3x3", "branch5x5", "branch_pool"):
        expected[f"{b}_params"] = count_params(getattr(ref, b))
        weights[f"{b}_params"] = count_params(getattr(ref, b), weights_only=True)
        expected[f"{b}_macs"] = count_macs(getattr(ref, b), (192, 28, 28))

    def hint(key: str, got: Any, exp: Any) -> str | None:
        if not isinstance(got, (int, float)):
            return None
        if key.endswith("_params") and got == weights[key]:
            return "that leaves out the biases (one per output channel of each convolution)"
        if key.endswith("_macs") and got == expected[key.replace("_macs", "_params")] * 28 * 28:
            return "that counts the biases as multiply-adds; count only weights x output positions"
        if key.endswith("_macs") and got * 28 * 28 == exp:
            return "that is per output position; multiply by the 28 x 28 positions"
        return None

    return {"answers_3a": expected}, hint


def _channel_source() -> tuple[dict[str, Any], Hint]:
    from ..models.inception import Inception

    ref = Inception(192, 64, 96, 128, 16, 32, 32)
    bounds, start = {}, 0
    for b in ("branch1x1", "branch3x3", "branch5x5", "branch_pool"):
        n = getattr(ref, b)(torch.zeros(1, 192, 4, 4)).shape[1]
        bounds[b], start = range(start, start + n), start + n
    return {"channel_source": {c: next(b for b, r in bounds.items() if c in r) for c in (0, 100, 200, 250)}}, None


#: part -> what computes ``({variable: expected value}, hint)``; numbers within the tolerance.
BY_HAND: dict[str, tuple[Callable[[], tuple[dict[str, Any], Hint]], float]] = {
    "lenet_by_hand": (_lenet, 0.0),
    "alexnet_by_hand": (_alexnet, 5e-4),
    "bottleneck": (_bottleneck, 0.0),
    "answers_3a": (_inception_3a, 0.0),
    "channel_source": (_channel_source, 0.0),
}


def diagnose_by_hand(namespace: dict[str, Any], part: str) -> list[Finding]:
    """The findings for one "by hand" part (:data:`BY_HAND`), reading the notebook's variables
    from ``namespace`` (its ``globals()``): a variable not defined, a missing entry, a wrong value.
    The findings say *which* entry is wrong, never its value."""
    if part not in BY_HAND:
        raise KeyError(f"no by-hand part {part!r}; the parts are {', '.join(BY_HAND)}")
    compute, tolerance = BY_HAND[part]
    expected, hint = compute()
    findings: list[Finding] = []
    for name, exp in expected.items():
        if name not in namespace:
            findings.append(Finding(name, "value", f"{name} is not defined: write it in the answer cell above "
                                                   "(replacing `raise NotImplementedError()`) and run that cell"))
            continue
        got = namespace[name]
        if isinstance(exp, dict):
            if isinstance(got, dict):
                got = {k: tuple(v) if isinstance(v, list) else v for k, v in got.items()}
            findings += diagnose_answers(got, exp, name, hint, tolerance)
        else:
            findings += [Finding(f.where, f.kind, f.message.replace(f"{name!r}: ", "", 1))
                         for f in diagnose_answers({name: got}, {name: exp}, name, hint, tolerance)]
    return findings
