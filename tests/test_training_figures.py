"""Chapter 7's figures and numbers (course_pkg.training_figures), on small inputs worked by hand."""

from __future__ import annotations

import torch

from course_pkg import training_figures as figures


def test_stem_and_spread_facts():
    measured = {"16": {"params": 6_000_000, "macs": 370_000_000, "images_per_s": 50.0},
                "32": {"params": 6_000_000, "macs": 1_110_000_000, "images_per_s": 20.0}}
    facts = figures.stem_facts(measured, test_images=10_000)
    assert (facts["stem_ratio"], facts["stem16_gmacs"], facts["cifar_params"]) == ("3.0", "0.37", "6,000,000")
    assert (facts["test_minutes_16"], facts["test_minutes_32"]) == ("3", "8")  # 200 s and 500 s
    spread = {"he": [("conv1", 2.0), ("inception5b", 3.0), ("dropout", 1.0)],
              "pytorch": [("conv1", 1.0), ("dropout", 0.001)]}
    assert figures.spread_facts(spread) == {"shrink_he": "0.5", "shrink_pytorch": "0.001"}


def test_confusion_and_first_mistakes():
    truth = torch.tensor([0, 0, 1, 1, 2, 2])
    predicted = torch.tensor([0, 1, 1, 0, 0, 1])
    confusion = figures.confusion_matrix(predicted, truth, classes=3)
    assert confusion.tolist() == [[1, 1, 0], [1, 1, 0], [1, 1, 0]]
    # wrong: 1 (class 0), 3 (class 1), 4 and 5 (class 2): one per class in turn, then the rest
    assert figures.first_mistakes(predicted, truth) == [1, 3, 4, 5]
    assert figures.first_mistakes(predicted, truth, count=2) == [1, 3]
