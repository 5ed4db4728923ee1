"""One preprocessing convention per data set, and the one path from stored uint8 images to inputs.

* **MNIST** — 28x28 digits are **zero-padded to 32x32** (2 pixels each side), the input size of
  LeNet-5 (LeCun et al. 1998, section II.B: "the input is a 32x32 pixel image"), then normalised with
  the training split's pixel mean and std. Padding with 0 keeps the border equal to the background.
* **CIFAR-10** — 32x32 RGB, normalised per channel with the mean and std of the training split of
  the copy in use (the constants below were computed from the JPEG copy; ``tests/test_data.py``
  recomputes them).

:func:`to_tensor` (= :func:`prepare` then :func:`normalize`) is the preprocessing of training,
evaluation, the book and the grader.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Convention:
    """How a data set's uint8 images become network inputs.

    ``mean``/``std`` are per channel, in [0, 1] units, computed over every pixel of the training
    split as stored (for MNIST: the 28x28 images, before padding).
    """

    name: str
    classes: tuple[str, ...]
    channels: int
    stored_size: int  # side of the stored images
    input_size: int  # side the networks see (stored image zero-padded to it, centred)
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def padding(self) -> int:
        """Zero padding added on each side to go from ``stored_size`` to ``input_size``."""
        return (self.input_size - self.stored_size) // 2


CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")  # torchvision's order

CONVENTIONS: dict[str, Convention] = {
    "mnist": Convention(
        name="mnist", classes=tuple(str(d) for d in range(10)), channels=1,
        stored_size=28, input_size=32,  # LeNet-5 takes 32x32: pad 2 px of background each side
        mean=(0.13066,), std=(0.30811,),
    ),
    "cifar10": Convention(
        name="cifar10", classes=CIFAR10_CLASSES, channels=3, stored_size=32, input_size=32,
        # Computed from the training split of the JPEG copy (cifar10_jpeg.npz). The official
        # files give about (0.4914, 0.4822, 0.4465) / (0.2470, 0.2435, 0.2616): close enough that
        # one convention serves both copies.
        mean=(0.49125, 0.48209, 0.44652), std=(0.24523, 0.24278, 0.26063),
    ),
}


def convention(name: str) -> Convention:
    """The preprocessing convention of data set ``name`` ("mnist" or "cifar10")."""
    try:
        return CONVENTIONS[name]
    except KeyError:
        raise ValueError(f"unknown data set {name!r}; choose one of {sorted(CONVENTIONS)} "
                         "(ImageFolder data sets go through imagefolder_loaders())") from None


def class_names(name: str) -> list[str]:
    """Class names of data set ``name`` in label order."""
    return list(convention(name).classes)



def prepare(images: np.ndarray | torch.Tensor, name: str) -> torch.Tensor:
    """Stored uint8 images -> uint8 tensor ``[N, C, input_size, input_size]`` (MNIST: padded to 32).

    Accepts a batch (``[N, H, W]`` for MNIST, ``[N, H, W, C]`` for CIFAR-10) or a single image
    (one dimension less). Images already in NCHW at input size are returned as they are.
    """
    conv = convention(name)
    x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
    if x.dtype != torch.uint8:
        raise TypeError(f"prepare() takes uint8 images as stored, got {x.dtype}; "
                        "for float tensors in [0, 1] call normalize() directly")
    single_ndim = 2 if conv.channels == 1 else 3
    if x.ndim == single_ndim:
        x = x.unsqueeze(0)
    if x.ndim == 4 and x.shape[1] == conv.channels and x.shape[-1] == x.shape[-2] == conv.input_size:
        return x  # already prepared
    if conv.channels == 1 and x.ndim == 3:
        x = x.unsqueeze(-1)
    if (x.ndim != 4 or x.shape[-1] != conv.channels
            or x.shape[1] != conv.stored_size or x.shape[2] != conv.stored_size):
        raise ValueError(f"expected {name} images of shape [N, {conv.stored_size}, {conv.stored_size}"
                         f"{', 3' if conv.channels == 3 else ''}], got {list(images.shape)}")
    x = x.permute(0, 3, 1, 2)
    if conv.padding:
        x = torch.nn.functional.pad(x, (conv.padding,) * 4, value=0)
    return x.contiguous()


def _stats(name: str, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    conv = convention(name)
    mean = torch.tensor(conv.mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    std = torch.tensor(conv.std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    return mean, std


def normalize(x: torch.Tensor, name: str) -> torch.Tensor:
    """NCHW images -> float32 ``(x / 255 - mean) / std``; uint8 input is scaled by 1/255 first,
    float input is taken to be in [0, 1]."""
    mean, std = _stats(name, x.device)
    x = x.float().div_(255) if x.dtype == torch.uint8 else x.float()
    return (x - mean) / std


def denormalize(x: torch.Tensor, name: str) -> torch.Tensor:
    """Inverse of :func:`normalize`: float images in [0, 1] (for plotting)."""
    mean, std = _stats(name, x.device)
    return (x * std + mean).clamp(0, 1)


def to_tensor(images: np.ndarray | torch.Tensor, name: str,
              device: str | torch.device | None = None) -> torch.Tensor:
    """Stored uint8 images -> normalised float32 ``[N, C, 32, 32]`` network input: the one
    preprocessing path of training, evaluation, the book and the grader."""
    x = prepare(images, name)
    return normalize(x.to(device) if device is not None else x, name)

