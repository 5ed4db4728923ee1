"""Checks that explain themselves — shared by students' self-checks and the hidden tests.

Everything here compares a student's network with the course's reference implementation in
:mod:`course_pkg.models` (the single source of truth) and returns *findings*: sentences that name
the module, the branch, the layer, and what would explain the difference ("branch5x5, convolution
2 of 2: 3x3 kernel, the paper's is 5x5 ...").  Nothing here knows how many points a check is worth
or which accuracy earns credit: the notebooks state them and pass them to the self-checks, and the
hidden test cells of the instructor notebooks apply them.

Students (in Colab or anywhere) call the ``self_check_*`` functions, one per graded part; they
print right or wrong, the cause first, and the points at stake.  Hidden tests call the same
``diagnose_*`` functions and :func:`require`, which raises :class:`CheckFailed`: a failure that
shows as its message alone, without a traceback that would reveal the test's source.

This package is the student's side of grading: a notebook imports it (``from course_pkg import
checks``; its test cells also ``from course_pkg.checks import handover``), in the student's kernel
and in the grader's sandbox alike.  The instructor's side, :mod:`course_pkg.grading`, imports
from here; nothing here imports from there.

One module per kind of check, all importable from here (notebooks call ``checks.<name>``):

- :mod:`.feedback`      :class:`CheckFailed`, :class:`Finding`, :func:`require`, :func:`fail_on`,
                        :func:`build`, :func:`defined`, :func:`partial_credit`
- :mod:`.param_counts`  :func:`n_params`, :func:`conv_params`, :func:`explain_conv_count`
- :mod:`.inception`     the inception module against Table 1 (assignment 2)
- :mod:`.model`         whole networks, layer by layer
- :mod:`.answers`       named numeric answers, and the "by hand" parts' values computed from the models
- :mod:`.checkpoint`    a submitted checkpoint and its accuracy (assignment 3)
- :mod:`.views`         multi-crop views (assignment 4)
- :mod:`.self_check`    the students' ``self_check_*`` functions
- :mod:`.handover`      what a graded test cell hands to the grader: data, never code
"""

from __future__ import annotations

from .answers import diagnose_answers, diagnose_by_hand
from .checkpoint import cifar10_test_subset, load_student_checkpoint, subset_accuracy
from ..models.googlenet import table1_modules
from .inception import BRANCHES, TORCHVISION_5X5, diagnose_inception, inception_findings  # noqa: F401
from .model import diagnose_model
from .views import describe_view, diagnose_views
from .feedback import CheckFailed, Finding, HiddenWhileGrading, build, defined, fail_on, partial_credit, require
from .handover import probe_input  # noqa: F401 (hidden tests build their inputs with checks.probe_input)
from .param_counts import conv_params, explain_conv_count, n_params
from .self_check import (points_for_accuracy, self_check_answers, self_check_average, self_check_branch_costs,
                         self_check_checkpoint, self_check_googlenet, self_check_inception, self_check_loss,
                         self_check_model, self_check_views)

__all__ = [
    "CheckFailed",
    "HiddenWhileGrading",
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
    "diagnose_by_hand",
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
    "self_check_googlenet",
    "self_check_loss",
    "self_check_branch_costs",
    "self_check_views",
    "self_check_average",
    "points_for_accuracy",
]

