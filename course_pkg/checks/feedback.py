"""Failures that read like feedback, not like a traceback.

A hidden test finds what differs from the reference (a list of :class:`Finding`) and fails with
:func:`fail_on` or :func:`require`, which raise :class:`CheckFailed`: in Jupyter it shows as its
message alone, without a traceback that would reveal the test's source.  :func:`build` and
:func:`defined` turn a student's crash or missing answer into one such sentence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import torch


class CheckFailed(AssertionError):
    """A failed check.  In Jupyter it shows as its message only (no traceback, no test source)."""

    def _render_traceback_(self) -> list[str]:  # IPython calls this instead of formatting a traceback
        # One entry: nbgrader's LimitOutput would cut a longer list down to its first and last lines.
        return [f"CheckFailed: {self}"]


class HiddenWhileGrading(RuntimeError):
    """Raised by a reference implementation that ``course grade`` hides from the notebook it grades
    (the sandbox's ``course_pkg`` holds a placeholder in its place: :mod:`course_pkg.grading.sandbox`).
    Self-checks that need the reference say so and skip; a solution that uses it fails its test."""


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
