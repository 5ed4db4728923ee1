"""A submitted checkpoint: loaded safely into the student's model, measured on a fixed test subset
(assignment 3)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from .feedback import CheckFailed


def load_student_checkpoint(model: nn.Module, path: str | os.PathLike) -> dict[str, Any]:
    """Load a submitted checkpoint into the student's own model, safely (``weights_only=True``).

    Raises :class:`CheckFailed` with a message that says what is wrong: missing file, corrupt file,
    a pickle that would run code, something that is not a state_dict, or weights that do not fit
    the model (missing/unexpected keys, shape differences).
    """
    from ..checkpoint import CheckpointError, load_into

    path = Path(path)
    if not path.exists():
        raise CheckFailed(f"no checkpoint file {path.name} next to the notebook: train the network, save it "
                          f"with torch.save(model.state_dict(), '{path.name}') and submit that file with the "
                          "notebook")
    try:
        return load_into(model, path)
    except CheckpointError as err:
        raise CheckFailed(f"checkpoint {path.name}: {err}") from None


def cifar10_test_subset(n: int, seed: int, download: bool = False,
                        pool: int = 2000) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed, seeded subset of ``n`` CIFAR-10 test images, normalised exactly as in training
    (``course_pkg.data.to_tensor``), and their labels.

    Drawn from ``pool`` images spread evenly over the official test split
    (``course_pkg.data.subset_indices``: 200 of each class for the default 2,000, although the
    JPEG copy is stored sorted by class), so that grading decodes only those when no decoded cache
    exists yet.  Offline through
    ``$COURSE_DATA``; ``download=True`` lets torchvision fetch the data (Colab).
    """
    from .. import data as course_data

    if not 0 < n <= pool:
        raise ValueError(f"n must be between 1 and pool={pool}, got {n}")
    images, labels = course_data.load_arrays("cifar10", "test", limit=pool, download=download)
    index = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))[:n].numpy()
    return course_data.to_tensor(images[index], "cifar10"), torch.as_tensor(labels[index]).long()


def subset_accuracy(model: nn.Module, n: int, seed: int, batch_size: int = 250,
                         device: str | None = None, download: bool = False) -> float:
    """Top-1 accuracy of ``model`` (eval mode) on :func:`cifar10_test_subset` ``(n, seed)``."""
    from ..device import pick_device
    from ..accuracy import evaluate_accuracy

    images, labels = cifar10_test_subset(n, seed, download=download)
    device = pick_device(device)
    model = model.to(device).eval()
    batches = [(images[i:i + batch_size], labels[i:i + batch_size]) for i in range(0, len(labels), batch_size)]
    # fp32 and the input's own memory layout: a student's model may flatten with .view()
    accuracy, _ = evaluate_accuracy(model, batches, device, precision="fp32", channels_last=False)
    return accuracy
