"""Self-checks for students: print what matches and what does not; no points, no thresholds.

The same diagnoses as the hidden tests, printed as ✓ / ✗ lines; the grader's credit rules live
only in the hidden test cells of the instructor notebooks.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch.nn as nn

from .checkpoint import load_student_checkpoint, subset_accuracy
from ..models.googlenet import table1_modules
from .inception import inception_findings
from .model import diagnose_model
from .feedback import CheckFailed, Finding
from .param_counts import n_params


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
