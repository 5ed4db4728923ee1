"""Shared fixtures.

Data-dependent tests use ``course_data``: locally they skip (with the reason) when COURSE_DATA is
unset, but in CI (``CI=true``) a missing data folder is an error — CI must run them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

# Two cores shared by everything: keep torch from oversubscribing them.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def course_data() -> Path:
    """The offline data folder (``$COURSE_DATA``) with mnist.npz and cifar10_jpeg.npz."""
    value = os.environ.get("COURSE_DATA")
    problem = None
    if not value:
        problem = "COURSE_DATA is not set (point it at the folder holding mnist.npz and cifar10_jpeg.npz)"
    else:
        path = Path(value)
        missing = [f for f in ("mnist.npz", "cifar10_jpeg.npz") if not (path / f).is_file()]
        if missing:
            problem = f"COURSE_DATA={value} lacks {', '.join(missing)}"
    if problem:
        if _in_ci():
            pytest.fail(f"CI must run the data-dependent tests: {problem}")
        pytest.skip(problem)
    return Path(value)


def import_benchmark(name: str):
    """A script of benchmarks/ as a module (the scripts import their neighbour ``_meta``)."""
    import importlib
    import sys

    folder = str(REPO / "benchmarks")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module(name)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO
