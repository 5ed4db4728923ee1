"""course_pkg.diagrams draws the inception module and GoogLeNet from the modules themselves."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

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


def test_googlenet_drawing_has_every_module_its_output_sizes_and_the_aux_heads():
    model = create("googlenet", aux_logits=True)
    fig = diagrams.googlenet_figure(model)
    texts = "\n".join(diagrams.figure_texts(fig))
    plt.close(fig)
    for name, (c1, c3r, c3, c5r, c5, pp) in INCEPTION_FILTERS.items():
        assert f"inception {name}   1x1: {c1} | 3x3: {c3r}→{c3} | 5x5: {c5r}→{c5} | pool: {pp}" in texts
    for size in ("112x112x64", "28x28x256", "14x14x528", "7x7x1024", "1000"):
        assert size in texts
    assert "aux1 (on 4a, training only)" in texts and "aux2 (on 4d, training only)" in texts
    assert model.training, "drawing must leave the model's mode as it was"


def test_googlenet_drawing_follows_a_changed_module():
    model = create("googlenet", aux_logits=False).eval()
    before = png(diagrams.googlenet_figure(model))
    model.inception5b = Inception(832, 384, 192, 384, 48, 128, 256)  # pool proj 128 -> 256
    model.fc = torch.nn.Linear(1152, 1000)
    fig = diagrams.googlenet_figure(model)
    texts = "\n".join(diagrams.figure_texts(fig))
    after = png(fig)
    assert "pool: 256" in texts and "7x7x1152" in texts and after != before
    assert not model.training


def test_command_writes_both_pictures(tmp_path):
    written = diagrams.main([str(tmp_path)])
    assert [p.name for p in written] == ["inception_module.png", "googlenet.png"]
    assert all(p.stat().st_size > 20_000 for p in written)
