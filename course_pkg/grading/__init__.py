"""Assignments and grading.

- :mod:`course_pkg.grading.checks` — checks that explain themselves, used by students'
  self-checks (they run anywhere, Colab included) and by the hidden tests of the instructor
  notebooks.  No points and no thresholds live here.
- :mod:`course_pkg.grading.grade` — ``course grade <assignment>`` for instructors: collect,
  autograde each student in its own process, feedback without hidden tests, CSV + histogram.
"""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """``course grade ...`` (``argv`` without the leading ``grade``)."""
    from .grade import main as _main

    return _main(argv)


__all__ = ["main"]
