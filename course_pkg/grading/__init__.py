"""``course grade``: the instructor's side of grading.  No notebook imports this package.

- :mod:`course_pkg.grading.grade` — ``course grade <assignment>``: collect, autograde each student
  in a sandbox, merge, feedback without hidden tests, CSV + histogram.  Its steps: ``course`` (the
  course folder, running nbgrader), ``submissions``, ``autograde``, ``gradebook``, ``reports``.
- :mod:`course_pkg.grading.sandbox` and :mod:`course_pkg.grading.harness` — bubblewrap around one
  student's notebook, and the cell-by-cell runner inside it.
- :mod:`course_pkg.grading.verdict` — nbgrader's execution step replaced: student code in the
  sandbox, hidden tests in the grader's process.
- :mod:`course_pkg.grading.replicas` — the data a notebook handed over
  (:mod:`course_pkg.checks.handover`) read back as stand-ins for the student's classes and functions.

The checks the hidden tests call, and the students' self-checks, are the student's side:
:mod:`course_pkg.checks`.
"""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """``course grade ...`` (``argv`` without the leading ``grade``)."""
    from .grade import main as _main

    return _main(argv)


__all__ = ["main"]
