"""What every chapter of the book starts with, in one import.

    from course_pkg.book import QUICK, glue, plt, torch

- ``glue(name, value, display=False)`` puts a number computed in a cell into the chapter's text
  (``{glue:text}`name```): myst-nb's ``glue`` in the book build.  Outside the build (Colab, a
  plain Jupyter) the text cannot change, so it prints ``name: value`` instead; the Colab copies of
  the chapters already hold the numbers and import :func:`quiet_glue` under the same name.
- ``QUICK`` is True without a GPU: the chapters then train and evaluate on small subsets so that
  the book builds on a 2-core CPU in minutes.  With a GPU (Colab: Runtime > Change runtime type >
  GPU) they use the full settings.
- ``plt`` and ``torch``: every chapter draws and computes.  Importing this module also seeds
  PyTorch's generator with 0, so a chapter run from the top draws the same numbers each time.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import torch

try:
    from myst_nb import glue  # the book build
except ImportError:  # Colab or a plain Jupyter: show the value instead
    def glue(name: str, value: Any, display: bool = True) -> None:
        """Outside the book build: print the value a chapter's text would show."""
        print(f"{name}: {value}")


def quiet_glue(name: str, value: Any, display: bool = True) -> None:
    """For the Colab copies of the chapters, whose text already holds every glued value."""


QUICK: bool = not torch.cuda.is_available()
torch.manual_seed(0)

__all__ = ["QUICK", "glue", "plt", "quiet_glue", "torch"]
