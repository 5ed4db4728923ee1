"""Table 3 on CIFAR-10 (course_pkg.table3): views by box, sets averaged, rows with paired intervals.

The views are checked against torchvision's own pad / resize / crop / flip functions and against
the course's batched multi-crop (two independent implementations); the averages against
course_pkg.evaluate.predict_multicrop; the intervals against a worked example by hand.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torchvision.transforms.functional as TF

from course_pkg import table3
from course_pkg.evaluate import multicrop_views, predict_multicrop


def _images(n=6, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)


@pytest.mark.parametrize("name", [n for n, s in table3.VIEW_SETS.items() if not s.pad])
def test_each_view_by_its_box_is_the_batched_multicrop_view(name):
    view_set = table3.VIEW_SETS[name]
    x = _images()
    views, v = multicrop_views(x, view_set.scheme, view_set.crop, view_set.scales)
    views = views.unflatten(0, (x.shape[0], v))
    keys = table3.view_keys(view_set)
    assert len(keys) == v
    for i, key in enumerate(keys):
        assert torch.equal(table3.render_view(x, key), views[:, i]), (name, i, key)


def test_padded_views_are_crops_of_the_reflect_padded_image():
    x = _images()
    padded = torch.stack([TF.pad(img, [4], padding_mode="reflect") for img in x])  # torchvision's own pad
    keys = table3.view_keys(table3.VIEW_SETS["padded_ten"])
    # torchvision's ten_crop: the four corners and the centre, then the same of the mirrored image
    expected = [torch.stack(t) for t in zip(*[TF.ten_crop(img, [32, 32]) for img in padded])]
    assert len(keys) == 10
    for key, want in zip(keys, expected):
        assert torch.equal(table3.render_view(x, key), want), key
    # the centre crop of the padded image is the image, and its mirror the mirrored image
    assert torch.equal(expected[4], x) and torch.equal(expected[9], x.flip(-1))
    # ... so they share the image's own keys and run once
    assert keys[4] == table3.view_keys(table3.VIEW_SETS["image"])[0]
    assert set(table3.view_keys(table3.VIEW_SETS["mirror"])) == {keys[4], keys[9]}


def test_the_paper_scales_for_32_pixel_crops():
    assert table3.CIFAR_SCALES == (37, 41, 46, 50)  # 256, 288, 320, 352 x 32 / 224, rounded
    # a square image's 144 views hold 48 distinct boxes; the centre crop and the ten-crop are among them
    keys144 = set(table3.view_keys(table3.VIEW_SETS["144"]))
    assert len(keys144) == 48
    # all but one of the ten-crop: torchvision mirrors the centre crop of a 37-px image one pixel
    # off the mirror of the centre box (37 - 32 is odd; rule 4 of course_pkg.multicrop)
    (extra,) = set(table3.view_keys(table3.VIEW_SETS["ten"])) - keys144
    assert extra[-1] is True and extra[3:7] == (3, 2, 35, 34)
    assert set(table3.view_keys(table3.VIEW_SETS["centre"])) <= keys144


class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, 10)

    def forward(self, x):
        return self.fc(self.conv(x).relu().mean((2, 3)))


def test_set_averages_match_predict_multicrop():
    x = _images(n=5)
    model = _Tiny()
    prep = lambda v: v.float() / 255  # noqa: E731
    keys = [k for s in table3.VIEW_SETS.values() for k in table3.view_keys(s)]
    seen = []
    probs = table3.view_probabilities(model, x, keys, preprocess=prep, batch_size=2, channels_last=False,
                                      on_view=lambda k, p, s: seen.append(k))
    assert len(seen) == len(set(keys)) and len(probs) == len(set(keys))  # each distinct view runs once
    for name, s in table3.VIEW_SETS.items():
        if s.pad:
            continue
        want = predict_multicrop(model, x, s.scheme, crop=s.crop, scales=s.scales, preprocess=prep)
        assert torch.allclose(table3.set_probabilities(probs, s), want, atol=1e-6), name
    # a resumed run computes nothing it already has
    again = table3.view_probabilities(model, x, keys, preprocess=prep, done=probs,
                                      on_view=lambda *a: pytest.fail("recomputed a view"))
    assert again.keys() == probs.keys()


def _onehot(classes):
    p = torch.full((len(classes), 10), 0.01)
    p[torch.arange(len(classes)), torch.as_tensor(classes)] = 0.91
    return p


def test_rows_give_the_error_and_a_paired_interval_of_a_worked_example():
    # 100 images of class 0.  Network a gets images 0-79 right, network b images 0-74 and 80-89:
    # a paired comparison sees 5 images only a gets right and 10 only b does.
    labels = torch.zeros(100, dtype=torch.long)
    a_pred = torch.tensor([0] * 80 + [1] * 20)
    b_pred = torch.tensor([0] * 75 + [1] * 5 + [0] * 10 + [1] * 10)
    key = table3.view_keys(table3.VIEW_SETS["image"])[0]
    probs = {"a": {key: _onehot(a_pred)}, "b": {key: _onehot(b_pred)}}
    rows = table3.table_rows([table3.Row("a", ("a",), "image"), table3.Row("b", ("b",), "image")], probs, labels)
    assert rows[0]["top1_error"] == pytest.approx(20.0) and "vs_base" not in rows[0] and "vs" not in rows[0]
    assert rows[1]["top1_error"] == pytest.approx(15.0)
    vs = rows[1]["vs_base"]
    # by hand: d = (10 - 5) / 100 = 0.05 more right, so the error changes by -5 points;
    # se = sqrt(5 + 10 - 5^2 / 100) / 100 = 0.038406; 1.96 se = 7.527 points
    assert vs["difference"] == pytest.approx(-5.0)
    assert vs["low"] == pytest.approx(-5.0 - 7.5275, abs=1e-3) and vs["high"] == pytest.approx(-5.0 + 7.5275, abs=1e-3)
    assert (vs["only_against"], vs["only_this"]) == (5, 10)
    assert vs["direction"] == "no change shown"  # the interval holds 0: the table may not say "falls"
    assert "no change shown" in table3.format_rows(rows)


def test_direction_words_follow_the_interval():
    assert table3.direction({"low": -2.0, "high": -0.1}) == "falls"
    assert table3.direction({"low": 0.1, "high": 2.0}) == "rises"
    assert table3.direction({"low": -0.1, "high": 0.1}) == "no change shown"


def test_an_ensemble_row_averages_its_networks_and_bad_rows_say_why():
    labels = torch.zeros(4, dtype=torch.long)
    key = table3.view_keys(table3.VIEW_SETS["image"])[0]
    a = torch.tensor([[0.4, 0.6] + [0.0] * 8] * 4)
    b = torch.tensor([[0.9, 0.1] + [0.0] * 8] * 4)
    probs = {"a": {key: a}, "b": {key: b}}
    rows = table3.table_rows([table3.Row("a", ("a",), "image"), table3.Row("a+b", ("a", "b"), "image", against="a")],
                             probs, labels)
    assert rows[0]["top1_error"] == 100.0 and rows[1]["top1_error"] == 0.0  # mean 0.65 vs 0.35
    assert rows[1]["vs"]["against"] == "a" and rows[1]["vs"]["difference"] == -100.0
    assert rows[1]["vs"]["direction"] == "falls" == rows[1]["vs_base"]["direction"]
    assert rows[1]["models"] == 2 and rows[1]["forwards"] == 2
    with pytest.raises(ValueError, match="unknown view set"):
        table3.table_rows([table3.Row("x", ("a",), "nine")], probs, labels)
    with pytest.raises(ValueError, match="no probabilities for network"):
        table3.table_rows([table3.Row("x", ("c",), "image")], probs, labels)
    with pytest.raises(ValueError, match="not an earlier row"):
        table3.table_rows([table3.Row("a", ("a",), "image"), table3.Row("b", ("a",), "image", against="z")],
                          probs, labels)


@pytest.mark.slow  # about a hundred passes of a GoogLeNet over 4 images
def test_the_benchmark_writes_its_tables_resumes_and_times_144_views(repo_root, tmp_path, course_data):
    import importlib.util

    spec = importlib.util.spec_from_file_location("table3_cifar", repo_root / "benchmarks" / "table3_cifar.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    shipped = str(repo_root / "course_pkg" / "pretrained" / "googlenet_cifar.pt")
    # every network is the shipped one here: a plumbing check, not a result
    args = ["--tables", "views,unequal", "--limit", "4", "--out", str(tmp_path / "out"),
            "--cache", str(tmp_path / "cache"), *[f"--network={n}={shipped}" for n in bench.NETWORKS]]
    result = bench.main(args)
    views = result["tables"]["views"]
    assert [r["views"] for r in views] == ["centre", "ten", "144", "image", "mirror", "padded_ten"]
    assert all(r["images"] == 4 for r in views) and all(r["vs_base"]["against"] == "scale: 1 crop" for r in views[1:])
    assert views[2]["vs"]["against"] == "scale: 10 crops"
    assert views[4]["vs"]["against"] == views[5]["vs"]["against"] == "scale: the image"
    # a network averaged with itself is itself: no change, and the words say so
    same = result["tables"]["unequal"][2]
    assert same["networks"] == ["padcrop", "scale"] and same["vs_base"]["difference"] == 0
    assert same["vs_base"]["direction"] == "no change shown"
    timing = result["timing_144"]
    assert timing["network"] == "scale" and timing["images"] == 4
    assert timing["distinct"] == 48 and timing["same_top1"] == 1.0
    assert timing["max_abs_difference"] < 1e-2  # two routes to the same 144-view average
    assert timing["ratio"] > 0 and timing["predict_multicrop_seconds"] > 0
    text = (tmp_path / "out" / "table3_cifar.md").read_text()
    assert "## views" in text and "## unequal" in text and "timed back to back in this run" in text
    # run again: every view comes from the cache (the same tables); no timing when asked for none
    again = bench.main([*args, "--timing-images", "0"])
    assert again["tables"] == result["tables"] and again["timing_144"] is None
    assert "timed back to back" not in (tmp_path / "out" / "table3_cifar.md").read_text()
    with pytest.raises(SystemExit, match="network scale_s1: no weights at .*name an existing checkpoint"):
        bench.main(["--tables", "models", "--limit", "4", "--out", str(tmp_path / "o2"), "--cache",
                    str(tmp_path / "c2"), f"--network=scale={shipped}", f"--network=scale_s1={tmp_path / 'none.pt'}"])


def test_the_timing_alone_runs_on_every_image_and_writes_a_file_of_its_own(repo_root, tmp_path, course_data):
    import json

    from conftest import import_benchmark

    bench = import_benchmark("table3_cifar")
    shipped = str(repo_root / "course_pkg" / "pretrained" / "googlenet_cifar.pt")
    args = ["--timing-only", "--limit", "3", "--out", str(tmp_path), f"--network=scale={shipped}"]
    result = bench.main(args)
    timing = result["timing_144"]
    # without --timing-images: every image the split (here --limit) gives
    assert timing["images"] == 3 and timing["distinct"] == 48 and timing["same_top1"] == 1.0
    assert timing["max_abs_difference"] < 1e-2 and timing["ratio"] > 0
    assert json.loads((tmp_path / "table3_timing.json").read_text()) == result
    assert result["weights"] == "course_pkg/pretrained/googlenet_cifar.pt" and result["commit"]
    assert not (tmp_path / "table3_cifar.json").exists()  # the tables' file is left as it was
    assert "timed back to back in this run" in (tmp_path / "table3_timing.md").read_text()
    assert bench.main([*args, "--timing-images", "2"])["timing_144"]["images"] == 2
    with pytest.raises(SystemExit, match="times nothing"):
        bench.main([*args, "--timing-images", "0"])
