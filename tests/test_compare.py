"""course_pkg.compare: paired comparisons of two classifiers on the same images, against worked
examples computed here by hand (the binomial sum, the Wald interval of paired proportions)."""

from __future__ import annotations

from math import comb, sqrt

import pytest
import torch

from course_pkg import compare


def _pair(n=1000, only_a=30, only_b=50, both=800):
    """Right/wrong vectors of two classifiers with the given agreement pattern."""
    a = torch.zeros(n, dtype=torch.bool)
    b = torch.zeros(n, dtype=torch.bool)
    a[:both] = b[:both] = True
    a[both:both + only_a] = True
    b[both + only_a:both + only_a + only_b] = True
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))  # the order of images is irrelevant
    return a[perm], b[perm]


def test_paired_difference_of_a_worked_example():
    a, b = _pair()
    out = compare.paired_difference(a, b)
    # 1,000 images: 800 right on both, 30 only by a, 50 only by b, 120 by neither
    assert (out["n"], out["only_a"], out["only_b"]) == (1000, 30, 50)
    assert out["accuracy_a"] == pytest.approx(0.830) and out["accuracy_b"] == pytest.approx(0.850)
    assert out["difference"] == pytest.approx(0.02)
    half = 1.959963984540054 * sqrt(30 + 50 - 20 ** 2 / 1000) / 1000  # 0.017487
    assert (out["low"], out["high"]) == (pytest.approx(0.02 - half), pytest.approx(0.02 + half))
    assert out["low"] == pytest.approx(0.002513, abs=1e-6)
    # McNemar: 30 of the 80 discordant images, two-sided, under a fair coin
    assert out["mcnemar_p"] == pytest.approx(2 * sum(comb(80, i) for i in range(31)) / 2 ** 80)
    assert out["mcnemar_p"] == pytest.approx(0.0330, abs=5e-5)
    assert out["real"] and out["reading"].startswith("+2.00 points (95% interval +0.25 to +3.75): higher")


def test_a_paired_interval_is_narrower_than_the_unpaired_one_when_the_networks_agree():
    a, b = _pair(n=10_000, only_a=150, only_b=250, both=8000)
    paired = compare.paired_difference(a, b)
    pa, pb = paired["accuracy_a"], paired["accuracy_b"]
    unpaired_half = 1.959963984540054 * sqrt(pa * (1 - pa) / 10_000 + pb * (1 - pb) / 10_000)
    assert paired["high"] - paired["difference"] < 0.5 * unpaired_half


def test_no_difference_and_swapped_sides():
    a, b = _pair(only_a=40, only_b=40)
    same = compare.paired_difference(a, b)
    assert same["difference"] == 0 and not same["real"] and same["mcnemar_p"] == pytest.approx(1.0)
    assert "no difference shown" in same["reading"]
    forward, backward = compare.paired_difference(*_pair()), compare.paired_difference(*reversed(_pair()))
    assert backward["difference"] == -forward["difference"] and backward["mcnemar_p"] == forward["mcnemar_p"]
    assert "lower" in backward["reading"]
    identical = compare.paired_difference(a, a)
    assert identical["low"] == identical["high"] == 0 and identical["mcnemar_p"] == 1.0


def test_bootstrap_agrees_with_the_normal_interval():
    a, b = _pair(n=2000, only_a=60, only_b=100, both=1600)
    normal = compare.paired_difference(a, b)
    low, high = compare.bootstrap_difference(a, b, resamples=4000, seed=1)
    assert low == pytest.approx(normal["low"], abs=0.003) and high == pytest.approx(normal["high"], abs=0.003)
    assert compare.bootstrap_difference(a, b, resamples=500, seed=3) == compare.bootstrap_difference(
        a, b, resamples=500, seed=3)


def test_bad_inputs_say_what_is_wrong():
    with pytest.raises(ValueError, match="same images on both sides: got 3 and 2"):
        compare.paired_difference([1, 0, 1], [1, 0])
    with pytest.raises(ValueError, match="right .1 / True. or wrong"):
        compare.paired_difference([1, 2], [1, 0])


def test_per_image_results_travel_as_a_short_string():
    correct = torch.rand(10_000, generator=torch.Generator().manual_seed(0)) < 0.9
    text = compare.correct_bits(correct)
    assert len(text) == 1668 and text.isascii()
    assert torch.equal(compare.from_bits(text, 10_000), correct)
    assert torch.equal(compare.from_bits(compare.correct_bits([1, 0, 1]), 3), torch.tensor([True, False, True]))
    with pytest.raises(ValueError, match="hold 8 images, not 9"):
        compare.from_bits(compare.correct_bits([1, 0, 1]), 9)
