"""Assignments and grading.

- :mod:`course_pkg.grading.checks` — checks that explain themselves, used by students'
  self-checks (they run anywhere, Colab included) and by the hidden tests of the instructor
  notebooks.  No points and no thresholds live here.  One module per kind of check behind it:
  ``feedback`` (failures as sentences), ``param_counts``, ``check_inception``, ``check_model``,
  ``check_answers``, ``check_checkpoint``, ``check_views``, ``self_check``.
- :mod:`course_pkg.grading.grade` — ``course grade <assignment>`` for instructors: collect,
  autograde each student in a sandbox, merge, feedback without hidden tests, CSV + histogram.
  Its steps: ``course`` (the course folder, running nbgrader), ``submissions``, ``autograde``,
  ``gradebook``, ``reports``.
- :mod:`course_pkg.grading.handover` — what a test cell hands to the grader (data only) and the
  replicas the hidden tests run on.
- :mod:`course_pkg.grading.sandbox` and :mod:`course_pkg.grading.harness` — bubblewrap around one
  student's notebook, and the cell-by-cell runner inside it.
- :mod:`course_pkg.grading.verdict` — nbgrader's execution step replaced: student code in the
  sandbox, hidden tests in the grader's process.
"""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """``course grade ...`` (``argv`` without the leading ``grade``)."""
    from .grade import main as _main

    return _main(argv)


__all__ = ["main"]
