"""Reference checkpoints shipped inside the package.

Each ``<name>.pt`` here is an fp16 ``state_dict`` plus metadata written by ``course train``
(see :mod:`course_pkg.checkpoint`), and ``<name>.json`` is the same metadata as JSON: the model
name and keyword arguments, the data set, the command that trained it, the per-epoch history and
the test accuracy it reached.  The book loads these instead of retraining on a CPU.

>>> from course_pkg import pretrained
>>> pretrained.available()                       # doctest: +SKIP
['lenet5_mnist']
>>> model = pretrained.load("lenet5_mnist")      # eval mode, fp32, on the CPU
>>> pretrained.info("lenet5_mnist")["test_acc"]  # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

HERE = Path(__file__).resolve().parent

def available() -> list[str]:
    """Names of the checkpoints shipped in this installation, sorted."""
    return sorted(p.stem for p in HERE.glob("*.pt") if not p.name.endswith(".resume.pt"))


def path(name: str) -> Path:
    """The ``.pt`` file of a shipped checkpoint (ValueError with the list if unknown)."""
    p = HERE / f"{name}.pt"
    if p.is_file():
        return p
    raise ValueError(
        f"no pretrained checkpoint named {name!r}; shipped: {', '.join(available()) or 'none'} "
        "(`course pretrained` lists them)"
    )


def info(name: str) -> dict[str, Any]:
    """The metadata of a shipped checkpoint (from its JSON; no tensors are loaded)."""
    ckpt = path(name)
    sidecar = ckpt.with_suffix(".json")
    if sidecar.is_file():
        return json.loads(sidecar.read_text())
    from ..checkpoint import load_checkpoint

    return load_checkpoint(ckpt)[1]


def load(name: str, device: str | torch.device = "cpu") -> nn.Module:
    """Build the network and load the shipped weights (cast to fp32); returned in eval mode."""
    from ..checkpoint import load_model

    return load_model(path(name), device)[0]
