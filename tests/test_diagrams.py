"""course_pkg.diagrams draws the inception module and GoogLeNet from the modules themselves."""

from __future__ import annotations

import io
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.text  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402

from course_pkg import diagrams  # noqa: E402
from course_pkg.models import create  # noqa: E402
from course_pkg.models.googlenet import INCEPTION_FILTERS  # noqa: E402
from course_pkg.models.inception import Inception  # noqa: E402

FILTERS_3A = dict(ch1x1=64, ch3x3red=96, ch3x3=128, ch5x5red=16, ch5x5=32, pool_proj=32)


def png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=60)
    plt.close(fig)
    return buffer.getvalue()


def module_drawing(**changes):
    fig, ax = plt.subplots(figsize=(6, 3.6))
    diagrams.draw_inception(create("inception", in_channels=192, **{**FILTERS_3A, **changes}), ax)
    return diagrams.figure_texts(fig), png(fig)


def test_a_changed_filter_number_changes_the_module_drawing():
    texts, image = module_drawing()
    assert "5x5 conv\n32 filters" in texts and "1x1 conv\n16 filters" in texts
    assert "filter concatenation: 64 + 128 + 32 + 32 = 256 channels" in texts
    changed_texts, changed_image = module_drawing(ch5x5=48)
    assert "5x5 conv\n48 filters" in changed_texts and "5x5 conv\n32 filters" not in changed_texts
    assert "filter concatenation: 64 + 128 + 48 + 32 = 272 channels" in changed_texts
    assert changed_image != image


def test_naive_module_passes_the_input_channels_through_the_pool():
    fig = diagrams.inception_figure(create("inception_naive"), create("inception"))
    texts = diagrams.figure_texts(fig)
    plt.close(fig)
    assert "filter concatenation: 64 + 128 + 32 + 192 = 416 channels" in texts
    assert "3x3 max pool\nstride 1" in texts and "previous layer: 192 channels" in texts


def test_inception_filters_are_read_from_the_layers():
    for name, filters in INCEPTION_FILTERS.items():
        module = Inception(192, *filters)
        assert tuple(diagrams.inception_filters(module).values()) == filters, name


def test_draw_inception_refuses_other_modules():
    with pytest.raises(TypeError, match="Inception"):
        diagrams.draw_inception(create("googlenet"))


@pytest.fixture(scope="module")
def googlenet_drawing():
    model = create("googlenet", aux_logits=True)
    fig = diagrams.googlenet_figure(model)
    yield model, fig
    plt.close(fig)


def drawn_cells(fig) -> dict[str, str]:
    """The texts a figure tagged with a gid (``<module>/<Table 1 column>``), by gid."""
    return {t.get_gid(): t.get_text() for t in fig.findobj(matplotlib.text.Text) if t.get_gid()}


def test_googlenet_drawing_has_every_module_its_output_sizes_and_the_aux_heads(googlenet_drawing):
    model, fig = googlenet_drawing
    texts = "\n".join(diagrams.figure_texts(fig))
    cells = drawn_cells(fig)
    for name, (c1, c3r, c3, c5r, c5, pp) in INCEPTION_FILTERS.items():
        module = f"inception{name}"
        assert cells[f"{module}/module"] == name
        assert (cells[f"{module}/#1x1"], cells[f"{module}/#3x3"], cells[f"{module}/#5x5"],
                cells[f"{module}/pool proj"]) == (str(c1), f"{c3r}→{c3}", f"{c5r}→{c5}", str(pp)), name
    for size in ("112x112x64", "28x28x256", "14x14x528", "7x7x1024", "1000"):
        assert size in texts
    assert "aux1 (on 4a, training only)" in texts and "aux2 (on 4d, training only)" in texts
    assert model.training, "drawing must leave the model's mode as it was"


def test_auxiliary_arrows_start_at_the_module_they_read(googlenet_drawing):
    _, fig = googlenet_drawing
    ax = fig.axes[0]
    boxes = [p.get_bbox() for p in ax.patches if isinstance(p, FancyBboxPatch)]
    arrows = [a for a in ax.texts if isinstance(a, matplotlib.text.Annotation) and a.arrow_patch is not None
              and a.arrow_patch.get_edgecolor()[:3] != (0.2, 0.2, 0.2)]
    assert len(arrows) == 2, "one arrow per auxiliary head"
    for arrow in arrows:
        (x0, y0), (x1, y1) = arrow.xyann, arrow.xy
        starts = [b for b in boxes if abs(b.x1 - x0) < 1e-6 and b.y0 <= y0 <= b.y1]
        ends = [b for b in boxes if abs(b.x0 - x1) < 1e-6 and b.y0 <= y1 <= b.y1]
        assert starts and ends, f"an aux arrow from {(x0, y0)} to {(x1, y1)} does not join two boxes"


def _misplaced_texts(fig) -> list[str]:
    """Boxes and texts outside the figure or their axes (clipped on the page: chapter 10's first
    diagram cut its left boxes), and texts sticking out of the box they sit in."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [p.get_window_extent(renderer) for p in fig.findobj(FancyBboxPatch)]
    texts = [t for ax in fig.axes for t in (*ax.texts, ax.title)] + list(fig.texts)
    bad = [f"box outside its axes at {box.bounds}" for ax in fig.axes for box in
           (p.get_window_extent(renderer) for p in ax.patches if isinstance(p, FancyBboxPatch))
           if box.x0 < ax.bbox.x0 - 0.5 or box.x1 > ax.bbox.x1 + 0.5 or box.y0 < ax.bbox.y0 - 0.5
           or box.y1 > ax.bbox.y1 + 0.5]
    for text in texts:
        if not text.get_text():
            continue
        e = text.get_window_extent(renderer)
        if e.x0 < fig.bbox.x0 or e.x1 > fig.bbox.x1 or e.y0 < fig.bbox.y0 or e.y1 > fig.bbox.y1:
            bad.append(f"outside the figure: {text.get_text()!r}")
        around = [b for b in boxes if b.contains((e.x0 + e.x1) / 2, (e.y0 + e.y1) / 2)]
        if around:
            box = min(around, key=lambda b: b.width * b.height)
            if e.x0 < box.x0 or e.x1 > box.x1 or e.y0 < box.y0 or e.y1 > box.y1:
                bad.append(f"wider or taller than its box: {text.get_text()!r}")
    return bad


# The book's column is 688 CSS px wide at a 1280-px window and 388 px at 420 (measured in Chromium,
# sphinx-book-theme).  An SVG shows at its own size (1 pt = 4/3 px) unless the column is narrower;
# the network diagram (class diagram-wide, book_site.css) keeps its own size and scrolls on a phone.
DESKTOP_COLUMN, PHONE_COLUMN = 688, 388


def _natural_px(fig) -> float:
    document = diagrams.svg(fig)
    return float(re.search(r'<svg[^>]* width="([\d.]+)pt"', document).group(1)) * 4 / 3


def _module_figure():
    return diagrams.inception_figure(create("inception_naive"), create("inception"))


@pytest.mark.parametrize("make, scrolls", [(_module_figure, False), (diagrams.workflow_figure, False)],
                         ids=["inception_module", "workflow"])
def test_small_diagrams_text_is_9px_or_more_on_desktop_and_phone(make, scrolls):
    fig = make()
    natural = _natural_px(fig)
    assert natural <= DESKTOP_COLUMN, f"{natural:.0f} px: wider than the desktop column, it would shrink"
    assert diagrams.smallest_text_px(fig, natural) >= 9
    assert diagrams.smallest_text_px(fig, min(natural, PHONE_COLUMN)) >= 9, "shrunk to a phone's column"
    assert _misplaced_texts(fig) == []
    plt.close(fig)


def test_network_diagram_text_is_9px_or_more_at_its_own_size(googlenet_drawing):
    _, fig = googlenet_drawing
    natural = _natural_px(fig)
    assert natural <= DESKTOP_COLUMN, f"{natural:.0f} px: wider than the desktop column, it would shrink"
    # on a phone the page keeps it at this size in a box that scrolls sideways (class diagram-wide)
    assert diagrams.smallest_text_px(fig, natural) >= 9
    assert _misplaced_texts(fig) == []


def test_svg_keeps_text_as_text_and_show_closes_the_figure(capsys):
    fig = diagrams.workflow_figure()
    document = diagrams.svg(fig)
    assert "<text" in document and "course_pkg: one package behind" in document
    assert "DejaVuSans-" not in document, "glyphs drawn as paths: the page could not measure or select them"
    assert document == diagrams.svg(fig), "the same figure must give the same file (no date, fixed ids)"
    diagrams.show(fig)
    assert not plt.fignum_exists(fig.number)


def test_googlenet_drawing_follows_a_changed_module():
    model = create("googlenet", aux_logits=False).eval()
    before = png(diagrams.googlenet_figure(model))
    model.inception5b = Inception(832, 384, 192, 384, 48, 128, 256)  # pool proj 128 -> 256
    model.fc = torch.nn.Linear(1152, 1000)
    fig = diagrams.googlenet_figure(model)
    texts = "\n".join(diagrams.figure_texts(fig))
    after = png(fig)
    assert drawn_cells(fig)["inception5b/pool proj"] == "256" and "7x7x1152" in texts and after != before
    assert not model.training


def test_command_writes_both_pictures(tmp_path):
    written = diagrams.main([str(tmp_path)])
    assert [p.name for p in written] == ["inception_module.png", "googlenet.png"]
    assert all(p.stat().st_size > 20_000 for p in written)
