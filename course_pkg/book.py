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
- ``precomputed_slider(description, values, outputs)``: a slider that shows, for each position,
  an output computed when the cell ran, so it tells the truth on the published page too.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
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


def precomputed_slider(description: str, values: Sequence, outputs: Sequence[str], value=None):
    """A slider over ``values`` that shows ``outputs[i]`` when it stands at ``values[i]``.

    The published book is static: it keeps the notebook's widgets, but no Python runs behind the
    page, so a slider bound to a function (``ipywidgets.interact``) moves there while its output
    stays the one of the build.  Here every position's output is computed when the cell runs and
    kept with the page; the browser picks the one to show (the slider's index is linked to a
    ``Stack``'s in JavaScript, ``jslink``), so the page, Jupyter and Colab all show the output for
    the position the slider is at.  With ipywidgets 7, which has no ``Stack`` (Colab's), the
    kernel swaps the text instead.  Returns the widget (display it, or leave it last in a cell).
    """
    import ipywidgets as widgets

    values, outputs = list(values), [str(text) for text in outputs]
    if len(values) != len(outputs) or not values:
        raise ValueError(f"precomputed_slider needs one output per value: {len(values)} values, "
                         f"{len(outputs)} outputs")
    slider = widgets.SelectionSlider(options=values, value=values[0] if value is None else value,
                                     description=description, continuous_update=True,
                                     style={"description_width": "initial"})
    pages = [f'<pre class="precomputed-output">{html.escape(text)}</pre>' for text in outputs]
    if not hasattr(widgets, "Stack"):  # ipywidgets 7 (Colab's): a kernel runs there, Python swaps the text
        shown = widgets.HTML(pages[slider.index])
        slider.observe(lambda change: setattr(shown, "value", pages[change["new"]]), names="index")
        return widgets.VBox([slider, shown])
    shown = widgets.Stack([widgets.HTML(page) for page in pages], selected_index=slider.index)
    widgets.jslink((slider, "index"), (shown, "selected_index"))
    return widgets.VBox([slider, shown])


QUICK: bool = not torch.cuda.is_available()
torch.manual_seed(0)

__all__ = ["QUICK", "glue", "plt", "precomputed_slider", "quiet_glue", "torch"]
