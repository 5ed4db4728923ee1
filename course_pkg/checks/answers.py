"""Named numeric answers (parameter counts, multiply-adds) compared with the expected values."""

from __future__ import annotations

from typing import Any, Callable

from .feedback import Finding


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
