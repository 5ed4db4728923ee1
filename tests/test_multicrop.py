"""Multi-crop evaluation (paper section 7, Table 3): views, boxes, predictions, accuracy, figure.

Expected values come from torchvision's own crop/resize functions or from hand arithmetic on the
protocol text (section 7 of the paper), never from course_pkg.evaluate itself.
"""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn as nn
import torchvision.transforms.functional as TF

from course_pkg import evaluate as ev
from course_pkg.evaluate import (
    multicrop_boxes,
    multicrop_views,
    predict_multicrop,
    reduce_views,
    topk_accuracy,
)

# Small CIFAR-like setting so the tests stay fast: crop 24 from shorter sides 28..40.
CROP = 24
SCALES = (28, 32, 36, 40)


def _image(h, w, dtype=torch.uint8, n=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    shape = (3, h, w) if n is None else (n, 3, h, w)
    x = torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
    return x if dtype == torch.uint8 else x.to(dtype) / 255.0


# ------------------------------------------------------------------------------------------------
# An independent implementation of the protocol, from torchvision primitives, one view at a time.


def _reference_144(img, crop, scales):
    """The paper's section 7, literally: resize shorter side to s; left/centre/right squares
    (top/centre/bottom for portrait); 4 corners + centre + whole square resized; each mirrored.
    Returns views in the order (scale, square, position, mirror) and the squares' labels."""
    h, w = img.shape[-2:]
    views, labels = [], []
    for s in scales:
        r = TF.resize(img, s, antialias=True)  # bilinear by default
        rh, rw = r.shape[-2:]
        if rw >= rh:
            squares = [("left", TF.crop(r, 0, 0, s, s)), ("center", TF.center_crop(r, [s, s])),
                       ("right", TF.crop(r, 0, rw - s, s, s))]
        else:
            squares = [("top", TF.crop(r, 0, 0, s, s)), ("center", TF.center_crop(r, [s, s])),
                       ("bottom", TF.crop(r, rh - s, 0, s, s))]
        for name, sq in squares:
            five = list(TF.five_crop(sq, [crop, crop]))  # tl, tr, bl, br, centre
            six = five + [TF.resize(sq, [crop, crop], antialias=True)]
            for pos, v in zip(ev.POSITIONS_144, six):
                for mirror in (False, True):
                    views.append(TF.hflip(v) if mirror else v)
                    labels.append((s, name, pos, mirror))
    return torch.stack(views), labels


def _coordinate_image(h, w):
    """A 2-channel float image whose pixels hold their own (x, y): crops reveal their boxes."""
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    return torch.stack([xs, ys])


def _reference_boxes_144(h, w, crop, scales):
    """Boxes of the 144 views in resized coordinates, found by applying the protocol's crops
    (torchvision) to a coordinate image of the resized size."""
    out = []
    for s in scales:
        rh, rw = TF.resize(torch.zeros(1, h, w), s, antialias=True).shape[-2:]
        coords = _coordinate_image(rh, rw)
        if rw >= rh:
            squares = [TF.crop(coords, 0, 0, s, s), TF.center_crop(coords, [s, s]), TF.crop(coords, 0, rw - s, s, s)]
        else:
            squares = [TF.crop(coords, 0, 0, s, s), TF.center_crop(coords, [s, s]), TF.crop(coords, rh - s, 0, s, s)]
        for sq in squares:
            for region in list(TF.five_crop(sq, [crop, crop])) + [sq]:
                box = (int(region[0].min()), int(region[1].min()), int(region[0].max()) + 1, int(region[1].max()) + 1)
                for mirror in (False, True):
                    out.append((s, mirror, box, (rh, rw)))
    return out


# ------------------------------------------------------------------------------------------------
# Views


def test_view_counts():
    x = _image(30, 40, n=2)
    assert multicrop_views(x, "center", CROP, SCALES)[0].shape == (2, 3, CROP, CROP)
    assert multicrop_views(x, "ten", CROP, SCALES)[0].shape == (20, 3, CROP, CROP)
    views, v = multicrop_views(x, "googlenet144", CROP, SCALES)
    assert (views.shape, v) == ((2 * 144, 3, CROP, CROP), 4 * 3 * 6 * 2)
    assert multicrop_views(x, "googlenet144", CROP, SCALES[:2])[1] == 2 * 3 * 6 * 2
    # the paper's own sizes on one 375x500 (typical ImageNet) image
    views, v = multicrop_views(_image(375, 500), "googlenet144")
    assert (views.shape, v) == ((144, 3, 224, 224), 144)
    assert [ev.n_views(s) for s in ev.SCHEMES] == [1, 10, 144]


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
@pytest.mark.parametrize("hw", [(40, 50), (37, 29), (33, 33)])
def test_ten_equals_torchvision_ten_crop(dtype, hw):
    x = _image(*hw, dtype=dtype, n=3, seed=1)
    views, v = multicrop_views(x, "ten", CROP, scales=None)
    expected = torch.stack(TF.ten_crop(x, [CROP, CROP]), dim=1).reshape(-1, 3, CROP, CROP)  # image-major
    assert v == 10 and views.dtype == x.dtype
    assert torch.equal(views, expected)
    # with a resize first: the same as ten_crop of torchvision's resize
    views, _ = multicrop_views(x, "ten", CROP, scales=(30,))
    expected = torch.stack(TF.ten_crop(TF.resize(x, 30, antialias=True), [CROP, CROP]), 1).reshape(-1, 3, CROP, CROP)
    assert torch.equal(views, expected)


def test_center_is_resize_then_centre_crop():
    x = _image(45, 60, dtype=torch.float32)
    views, v = multicrop_views(x, "center", CROP, scales=(32,))
    assert v == 1
    assert torch.equal(views[0], TF.center_crop(TF.resize(x, 32, antialias=True), [CROP, CROP]))
    views, _ = multicrop_views(x, "center", CROP, scales=None)
    assert torch.equal(views[0], TF.center_crop(x, [CROP, CROP]))


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
@pytest.mark.parametrize("hw", [(30, 41), (43, 31), (30, 30)])  # landscape, portrait, square
def test_googlenet144_pixels_equal_independent_crops(dtype, hw):
    x = _image(*hw, dtype=dtype, seed=2)
    views, v = multicrop_views(x, "googlenet144", CROP, SCALES)
    expected, _ = _reference_144(x, CROP, SCALES)
    assert v == 144 and views.dtype == dtype
    assert torch.equal(views, expected)


def test_googlenet144_batch_is_image_major():
    x = _image(31, 38, n=3, seed=3)
    views, v = multicrop_views(x, "googlenet144", CROP, SCALES)
    for i in range(3):
        assert torch.equal(views[i * v : (i + 1) * v], multicrop_views(x[i], "googlenet144", CROP, SCALES)[0])


@pytest.mark.parametrize("hw", [(375, 500), (500, 375), (333, 333), (37, 53), (61, 29)])
def test_boxes_of_all_144_views_match_protocol(hw):
    h, w = hw
    crop, scales = (224, ev.PAPER_SCALES) if min(hw) > 100 else (CROP, SCALES)
    boxes = multicrop_boxes(h, w, "googlenet144", crop, scales)
    expected = _reference_boxes_144(h, w, crop, scales)
    assert len(boxes) == len(expected) == 144
    squares = ("left", "center", "right") if w >= h else ("top", "center", "bottom")
    order = list(itertools.product(scales, squares, ev.POSITIONS_144, (False, True)))
    for b, (s, mirror, box, (rh, rw)), (os_, osq, opos, omir) in zip(boxes, expected, order):
        assert (b.scale, b.square, b.position, b.mirror) == (os_, osq, opos, omir)
        assert (b.scale, b.mirror) == (s, mirror)
        assert (b.x0, b.y0, b.x1, b.y1) == box
        assert (b.resized_height, b.resized_width) == (rh, rw)
        assert min(rh, rw) == s
        # original coordinates: the resize maps x -> x * w / rw (align_corners=False)
        assert b.ox0 == pytest.approx(box[0] * w / rw) and b.ox1 == pytest.approx(box[2] * w / rw)
        assert b.oy0 == pytest.approx(box[1] * h / rh) and b.oy1 == pytest.approx(box[3] * h / rh)
        size = b.x1 - b.x0
        assert size == b.y1 - b.y0 == (s if b.position == "whole" else crop)


def test_boxes_by_hand_for_a_375x500_image():
    """Hand arithmetic: 375x500 at shorter side 256 is 256x341 (341.33 truncated)."""
    boxes = multicrop_boxes(375, 500, "googlenet144")
    first = boxes[:36]
    assert {(b.resized_height, b.resized_width) for b in first} == {(256, 341)}
    # squares start at x = 0, round(85 / 2) = 42 (Python rounds 42.5 to even), 341 - 256 = 85
    assert [first[i].x0 for i in (10, 22, 34)] == [0, 42, 85]  # "whole" views of each square
    # right square, top-right corner: x from 85 + 256 - 224 = 117 to 341
    tr = boxes[2 * 12 + 2]
    assert (tr.square, tr.position, tr.x0, tr.x1, tr.y0, tr.y1) == ("right", "top_right", 117, 341, 0, 224)
    # centre crop of a 256 square: offset round(32 / 2) = 16
    c = boxes[12 + 8]
    assert (c.square, c.position, c.x0, c.y0) == ("center", "center", 42 + 16, 16)
    last = boxes[-1]
    assert (last.scale, last.square, last.position, last.mirror) == (352, "right", "whole", True)
    assert (last.resized_height, last.resized_width) == (352, 469)  # int(352 * 500 / 375) = 469
    assert (last.ox0, last.ox1, last.oy1) == (pytest.approx(117 * 500 / 469), pytest.approx(500.0),
                                              pytest.approx(375.0))


def test_ten_boxes_match_views():
    h, w = 37, 50
    x = _image(h, w, dtype=torch.float32, seed=4)
    views, _ = multicrop_views(x, "ten", CROP, scales=None)
    for view, b in zip(views, multicrop_boxes(h, w, "ten", CROP, scales=None)):
        region = x[:, b.y0 : b.y1, b.x0 : b.x1]
        assert torch.equal(view, region.flip(-1) if b.mirror else region)


def test_mirrored_views_are_exact_flips():
    x = _image(33, 47, dtype=torch.float32, n=2, seed=5)
    views, v = multicrop_views(x, "googlenet144", CROP, SCALES)
    assert torch.equal(views[1::2], views[0::2].flip(-1))
    ten, _ = multicrop_views(x[0], "ten", CROP, scales=(30,))
    for a, b in [(5, 1), (6, 0), (7, 3), (8, 2)]:  # torchvision: corners of the mirrored image
        assert torch.equal(ten[a], ten[b].flip(-1))


def test_views_are_valid_on_other_dtypes_and_keep_device():
    x = _image(30, 40, dtype=torch.float64)
    views, _ = multicrop_views(x, "googlenet144", CROP, SCALES)
    assert views.dtype == torch.float64 and views.device == x.device
    half, _ = multicrop_views(x.to(torch.bfloat16), "googlenet144", CROP, SCALES)
    assert half.dtype == torch.bfloat16
    assert (half.float() - views.float()).abs().max() < 0.02


# ------------------------------------------------------------------------------------------------
# Errors


def test_clear_errors():
    x = _image(20, 30)
    with pytest.raises(ValueError, match="smaller than the 24x24 crop"):
        multicrop_views(x, "ten", CROP, scales=None)
    with pytest.raises(ValueError, match="smaller than crop=24"):
        multicrop_views(_image(40, 40), "googlenet144", CROP, (20, 28))
    with pytest.raises(ValueError, match=r"\[C, H, W\] or \[N, C, H, W\]"):
        multicrop_views(torch.zeros(40, 40), "center", CROP, SCALES)
    with pytest.raises(ValueError, match=r"\[C, H, W\] or \[N, C, H, W\]"):
        multicrop_views(torch.zeros(1, 1, 3, 40, 40), "center", CROP, SCALES)
    with pytest.raises(ValueError, match="channels-last"):
        multicrop_views(torch.zeros(2, 40, 40, 3), "center", CROP, SCALES)
    with pytest.raises(ValueError, match="1 or 3 channels"):
        multicrop_views(torch.zeros(2, 5, 40, 40), "center", CROP, SCALES)
    with pytest.raises(ValueError, match="unknown multi-crop scheme 'twelve'"):
        multicrop_views(_image(40, 40), "twelve", CROP, SCALES)
    with pytest.raises(ValueError, match="needs scales"):
        multicrop_views(_image(40, 40), "googlenet144", CROP, None)
    with pytest.raises(TypeError, match="torch.Tensor"):
        multicrop_views([[1, 2]], "center", CROP, SCALES)
    with pytest.raises(ValueError, match="unknown reduce"):
        predict_multicrop(_TinyNet(), _image(30, 30, dtype=torch.float32), "center", crop=CROP, scales=SCALES,
                          reduce="median")
    with pytest.raises(ValueError, match="impossible for 3 classes"):
        topk_accuracy(torch.rand(4, 3), torch.zeros(4), k=(1, 5))


# ------------------------------------------------------------------------------------------------
# Predictions


class _TinyNet(nn.Module):
    """conv -> ReLU -> global average pool -> linear: accepts any input size, like GoogLeNet."""

    def __init__(self, classes=7, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8, classes)
        self.dropout = nn.Dropout(0.5)  # must be off in eval mode, or predictions are random

    def forward(self, x):
        return self.fc(self.dropout(torch.relu(self.conv(x)).mean((2, 3))))


def _view_logits(model, images, scheme):
    """Per-view logits [N, V, K] computed by hand: views, then the model, no reduction."""
    views, v = multicrop_views(images, scheme, CROP, SCALES)
    with torch.no_grad():
        model.eval()
        return model(views).reshape(images.shape[0], v, -1)


def test_softmax_mean_is_the_papers_rule_and_order_invariant():
    model, x = _TinyNet(), _image(30, 37, dtype=torch.float32, n=3, seed=6)
    logits = _view_logits(model, x, "googlenet144")
    by_hand = torch.softmax(logits, -1).sum(1) / 144
    probs = predict_multicrop(model, x, "googlenet144", crop=CROP, scales=SCALES)
    torch.testing.assert_close(probs, by_hand, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(probs.sum(1), torch.ones(3))
    g = torch.Generator().manual_seed(0)
    for reduce in ev.REDUCES:
        perm = torch.stack([torch.randperm(144, generator=g) for _ in range(3)])
        shuffled = torch.gather(logits, 1, perm[:, :, None].expand_as(logits))
        torch.testing.assert_close(reduce_views(shuffled, reduce), reduce_views(logits, reduce), rtol=1e-5, atol=1e-6)


def test_chunked_equals_unchunked_and_mode_is_restored():
    model, x = _TinyNet(), _image(29, 35, dtype=torch.float32, n=4, seed=7)
    model.train()
    full = predict_multicrop(model, x, "googlenet144", crop=CROP, scales=SCALES)
    assert model.training  # restored
    for chunk in (50, 144, 300):
        part = predict_multicrop(model, x, "googlenet144", crop=CROP, scales=SCALES, chunk_size=chunk)
        torch.testing.assert_close(part, full, rtol=1e-5, atol=1e-6)


def test_chunk_size_bounds_the_forward_batch():
    seen = []

    class Spy(_TinyNet):
        def forward(self, x):
            seen.append(x.shape[0])
            return super().forward(x)

    predict_multicrop(Spy(), _image(30, 30, n=5, dtype=torch.float32), "ten", crop=CROP, scales=SCALES, chunk_size=25)
    assert max(seen) <= 25 and sum(seen) == 50


@pytest.mark.parametrize("hw, distinct", [((30, 30), 48), ((30, 37), 144)])
def test_views_with_the_same_pixels_run_once_and_count_as_often_as_they_occur(hw, distinct):
    seen = []

    class Spy(_TinyNet):
        def forward(self, x):
            seen.append(x.shape[0])
            return super().forward(x)

    x = _image(*hw, dtype=torch.float32, n=3, seed=13)
    probs = predict_multicrop(Spy(), x, "googlenet144", crop=CROP, scales=SCALES)
    assert sum(seen) == 3 * distinct  # a square image's three squares coincide: 12 distinct views a scale
    views, v = multicrop_views(x, "googlenet144", CROP, SCALES)
    keep, inverse = ev.distinct_views(*hw, "googlenet144", CROP, SCALES)
    assert len(keep) == distinct and len(inverse) == v == 144
    per_image = views.unflatten(0, (3, v))
    assert torch.equal(per_image[:, keep][:, inverse], per_image)  # same pixels, view by view
    # the average over all 144 views, each computed on its own
    torch.testing.assert_close(probs, torch.softmax(_view_logits(_TinyNet(), x, "googlenet144"), -1).mean(1),
                               rtol=1e-5, atol=1e-6)


def test_a_whole_square_of_the_crop_size_is_its_own_centre_crop():
    keep, inverse = ev.distinct_views(24, 24, "googlenet144", 24, (24,))
    # five crops, the whole square: all the same 24x24 image, unmirrored and mirrored
    assert len(keep) == 2 and len(inverse) == 36
    rows = ev.evaluate_multicrop([_TinyNet()], _image(24, 24, dtype=torch.float32, n=2), torch.tensor([0, 1]),
                                 {"native": dict(scheme="googlenet144", crop=24, scales=(24,))})
    assert (rows[0]["cost"], rows[0]["forwards"]) == (36, 2)
    assert "| 36 (2 run) |" in ev.format_table3(rows)


def test_ensemble_of_one_is_the_model_and_ensembles_average():
    x = _image(30, 40, dtype=torch.float32, n=2, seed=8)
    a, b = _TinyNet(seed=1), _TinyNet(seed=2)
    pa = predict_multicrop(a, x, "ten", crop=CROP, scales=SCALES)
    torch.testing.assert_close(predict_multicrop([a], x, "ten", crop=CROP, scales=SCALES), pa)
    pb = predict_multicrop(b, x, "ten", crop=CROP, scales=SCALES)
    torch.testing.assert_close(predict_multicrop([a, b], x, "ten", crop=CROP, scales=SCALES), (pa + pb) / 2)


def test_reduce_options_differ_sensibly():
    model, x = _TinyNet(), _image(32, 40, dtype=torch.float32, n=3, seed=9)
    mean = predict_multicrop(model, x, "googlenet144", crop=CROP, scales=SCALES, reduce="softmax_mean")
    logit = predict_multicrop(model, x, "googlenet144", crop=CROP, scales=SCALES, reduce="logit_mean")
    mx = predict_multicrop(model, x, "googlenet144", crop=CROP, scales=SCALES, reduce="max")
    assert (mx >= mean - 1e-7).all()  # a maximum is at least the mean, class by class
    assert (mx.sum(1) >= 1 - 1e-6).all()  # max scores are not a distribution
    torch.testing.assert_close(logit.sum(1), torch.ones(3))
    logits = _view_logits(model, x, "googlenet144")
    torch.testing.assert_close(logit, torch.softmax(logits.mean(1), -1), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(mx, torch.softmax(logits, -1).max(1).values, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(logit, mean)


def test_preprocess_runs_on_views_and_uint8_images_work():
    model = _TinyNet()
    x = _image(30, 40, n=2, seed=10)
    mean, std = torch.tensor([0.5, 0.4, 0.3])[:, None, None], torch.tensor([0.2, 0.25, 0.3])[:, None, None]
    pre = lambda v: (v.float() / 255 - mean) / std  # noqa: E731
    got = predict_multicrop(model, x, "ten", crop=CROP, scales=SCALES, preprocess=pre)
    views, _ = multicrop_views(x, "ten", CROP, SCALES)
    with torch.no_grad():
        want = torch.softmax(model.eval()(pre(views)).reshape(2, 10, -1), -1).mean(1)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------------
# Accuracy and the Table 3 layout


def test_topk_accuracy_by_hand():
    scores = torch.tensor([[0.1, 0.5, 0.2, 0.2], [0.4, 0.3, 0.2, 0.1], [0.1, 0.2, 0.3, 0.4]])
    labels = torch.tensor([1, 1, 0])
    # row 0: label 1 ranked 1st; row 1: 2nd; row 2: 4th
    assert topk_accuracy(scores, labels, (1, 2, 3, 4)) == {1: pytest.approx(1 / 3), 2: pytest.approx(2 / 3),
                                                             3: pytest.approx(2 / 3), 4: pytest.approx(1.0)}


def test_accuracy_on_tensors_and_on_a_loader_agree():
    model = _TinyNet(classes=6)
    x, y = _image(24, 24, dtype=torch.float32, n=20, seed=11), torch.arange(20) % 6
    with torch.no_grad():
        scores = model.eval()(x)
    want = {1: (scores.argmax(1) == y).float().mean().item(),
            5: sum(int(y[i]) in scores[i].topk(5).indices.tolist() for i in range(20)) / 20}
    got = ev.accuracy(model, (x, y), batch_size=7)
    assert got == pytest.approx(want)
    loader = [(x[i : i + 6], y[i : i + 6]) for i in range(0, 20, 6)]
    assert ev.accuracy(model, loader) == pytest.approx(want)


def test_evaluate_multicrop_table_shape():
    models = [_TinyNet(classes=6, seed=s) for s in range(3)]
    x, y = _image(30, 36, dtype=torch.float32, n=5, seed=12), torch.tensor([0, 1, 2, 3, 4])
    rows = ev.evaluate_multicrop(models, x, y, crop=CROP, scales=SCALES)
    assert [(r["models"], r["crops"]) for r in rows] == [(1, 1), (1, 10), (1, 144), (3, 1), (3, 10), (3, 144)]
    assert [r["cost"] for r in rows] == [1, 10, 144, 3, 30, 432]
    assert [r["forwards"] for r in rows] == [r["cost"] for r in rows]  # a 30x36 image: no view repeats
    ens = predict_multicrop(models, x, "googlenet144", crop=CROP, scales=SCALES)
    assert rows[-1]["top5"] == pytest.approx(topk_accuracy(ens, y, (5,))[5])
    assert rows[-1]["top5_error"] == pytest.approx(100 * (1 - rows[-1]["top5"]))
    assert rows[0]["vs_base"] == 0
    assert rows[4]["vs_base"] == pytest.approx(100 * (rows[0]["top1"] - rows[4]["top1"]))  # top-1 error, points
    assert all(r["ms_per_image"] > 0 for r in rows)
    # an ensemble's time per image is its members' times added up
    assert rows[5]["ms_per_image"] == pytest.approx(3 * rows[2]["ms_per_image"])
    table = ev.format_table3(rows)
    assert table.count("\n") == 1 + len(rows) and "| 3 | 144 |" in table
    # each row beside the paper's figure for as many crops: one model, or its ensemble of seven
    lines = table.splitlines()[2:]
    assert lines[0].endswith(f"| {100 * (1 - rows[0]['top1']):.2f}% | {rows[0]['top5_error']:.2f}% | base "
                             "| 10.07% (1 model) |")
    assert lines[2].endswith("| 7.89% (1 model) |") and lines[5].endswith("| 6.67% (7 models) |")


def test_figure_of_144_views_of_a_photograph():
    pytest.importorskip("skimage")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from skimage import data

    photo = data.chelsea()  # 300 x 451 x 3, a real photograph
    fig = ev.plot_multicrop_views(photo, "googlenet144", crop=112, scales=(128, 144, 160, 176))
    images = [ax for ax in fig.axes if ax.images]
    assert len(images) == 144
    # each panel shows its view: compare two against the views themselves
    views, _ = multicrop_views(torch.as_tensor(photo).permute(2, 0, 1), "googlenet144", 112, (128, 144, 160, 176))
    for i in (0, 143):
        shown = torch.as_tensor(images[i].images[0].get_array().data)
        torch.testing.assert_close(shown.float(), views[i].permute(1, 2, 0).float() / 255)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------
# The Table 3 benchmark script: plumbing only (the real runs need the trained checkpoints)


def _load_script(name):
    from conftest import import_benchmark

    return import_benchmark(name)


def json_load(path):
    import json

    return json.loads(path.read_text())


def test_cifar_table3_plumbing(tmp_path):
    bench = _load_script("multicrop_cifar")
    assert bench.PAPER_SCALED == (37, 41, 46, 50)  # 256, 288, 320, 352 times 32 / 224, rounded
    models = [_TinyNet(classes=10, seed=s) for s in range(2)]
    images, labels = _image(32, 32, n=6, seed=13), torch.arange(6)
    rows, seconds = bench.run(models, images, labels, preprocess=lambda v: v.float() / 255, chunk_size=500)
    schemes = bench.cifar_schemes()
    assert len(rows) == 2 * len(schemes) and seconds > 0
    assert [r["crops"] for r in rows[: len(schemes)]] == [1, 10, 144, 144, 144, 144]
    assert {r["models"] for r in rows} == {1, 2}
    assert [r["reduce"] for r in rows[2:5]] == ["softmax_mean", "logit_mean", "max"]
    result = {"device": "cpu (test)", "date": "d", "commit": "c", "torch": "t", "command": "cmd", "models": ["a", "b"],
              "data": "random", "images": 6, "rows": rows}
    js, md = bench.write(result, tmp_path)
    assert json_load(js)["rows"][0]["label"] == "1 view (the image)"
    assert ev.format_table3(rows) in md.read_text()


def test_cifar_table3_on_real_test_images(course_data):
    bench = _load_script("multicrop_cifar")
    images, labels, source = bench.load_test_set(limit=4)
    assert images.shape == (4, 3, 32, 32) and images.dtype == torch.uint8 and labels.shape == (4,)
    schemes = {k: v for k, v in bench.cifar_schemes().items() if v["scheme"] != "googlenet144"}
    rows, _ = bench.run([_TinyNet(classes=10)], images, labels, schemes=schemes, preprocess=lambda v: v.float() / 255)
    assert [r["crops"] for r in rows] == [1, 10]


def test_cifar_script_without_checkpoints_says_what_to_do(monkeypatch):
    bench = _load_script("multicrop_cifar")
    from course_pkg import pretrained

    monkeypatch.setattr(pretrained, "available", lambda: [])
    with pytest.raises(SystemExit, match="no googlenet_cifar checkpoints.*Train them first.*reference_cpu.py bn"):
        bench.main(["--limit", "2", "--no-write"])


def test_box_figure_draws_each_square_and_its_crops():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    fig = ev.plot_multicrop_boxes(_image(30, 41), "googlenet144", CROP, SCALES)
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 4 * 3  # scale x square
    rects = [[p for p in ax.patches if isinstance(p, Rectangle)] for ax in panels]
    assert all(len(r) == 6 for r in rects)  # 4 corners, centre, whole square
    # scale 28: 30x41 -> 28 x int(28 * 41 / 30) = 28 x 38; the left square spans x 0..28 there,
    # i.e. 0 .. 28 * 41 / 38 in the original image, and y 0 .. 30
    whole = [p for p in rects[0] if p.get_linestyle() == "--"][0]
    assert whole.get_xy() == pytest.approx((0.0, 0.0))
    assert (whole.get_width(), whole.get_height()) == (pytest.approx(28 * 41 / 38), pytest.approx(30.0))
    plt.close(fig)


def test_cifar_script_end_to_end_with_stand_in_checkpoints(monkeypatch, tmp_path, course_data):
    """main(): checkpoints -> real test images -> normalise -> table -> files (tiny stand-in models)."""
    bench = _load_script("multicrop_cifar")
    from course_pkg import pretrained
    monkeypatch.setattr(pretrained, "available", lambda: ["googlenet_cifar_a", "googlenet_cifar_b", "lenet5_mnist"])
    monkeypatch.setattr(pretrained, "load", lambda name, device="cpu": _TinyNet(classes=10, seed=len(name)).to(device))
    result = bench.main(["--limit", "3", "--device", "cpu", "--out", str(tmp_path)])
    assert result["models"] == ["googlenet_cifar_a", "googlenet_cifar_b"] and result["images"] == 3
    md = (tmp_path / "multicrop_cifar.md").read_text()
    assert result["device"] in md and result["commit"] in md and "--limit 3" in md
    assert len(json_load(tmp_path / "multicrop_cifar.json")["rows"]) == 12


def test_cifar_script_takes_checkpoint_files(tmp_path, course_data):
    """--models also takes .pt files written by `course train` (an ensemble of benchmark runs)."""
    bench = _load_script("multicrop_cifar")
    from course_pkg.checkpoint import save_checkpoint
    from course_pkg.models import create

    torch.manual_seed(0)
    model = create("googlenet_cifar", stem="16", aux_logits=False)
    path = tmp_path / "run_a.pt"
    save_checkpoint(path, model, {"model": "googlenet_cifar", "model_kwargs": {"stem": "16", "aux_logits": False}})
    with pytest.raises(SystemExit, match="no checkpoint file at .*missing.pt"):
        bench.main(["--models", str(tmp_path / "missing.pt"), "--limit", "1", "--no-write"])
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit, match="--models: .*bad.pt"):
        bench.main(["--models", str(tmp_path / "bad.pt"), "--limit", "1", "--no-write"])
    names, models = bench.load_models([str(path)], torch.device("cpu"))
    assert names == ["run_a"] and not models[0].training
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(models[0](x), model.eval()(x), atol=2e-2)  # fp16 weights
