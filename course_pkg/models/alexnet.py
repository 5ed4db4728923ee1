"""AlexNet — Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep Convolutional
Neural Networks", NeurIPS 2012, section 3 and Figure 2.

Five convolutions and three fully connected layers, ReLU everywhere:

==========  ===========================================  ============
layer       as in the paper                              output
==========  ===========================================  ============
conv1       96 kernels 11x11x3, stride 4                 96 x 55 x 55
lrn1, pool1 response normalization; max pool 3x3/2       96 x 27 x 27
conv2       256 kernels 5x5 (pad 2)                      256 x 27 x 27
lrn2, pool2 response normalization; max pool 3x3/2       256 x 13 x 13
conv3       384 kernels 3x3 (pad 1)                      384 x 13 x 13
conv4       384 kernels 3x3 (pad 1)                      384 x 13 x 13
conv5       256 kernels 3x3 (pad 1); max pool 3x3/2      256 x 6 x 6
fc6, fc7    4096 units each, dropout 0.5 on their output 4096
fc8         num_classes (1000 in the paper)
==========  ===========================================  ============

Input is 227x227: the paper says 224x224, but 11x11 kernels at stride 4 only give its 55x55
maps from 227 pixels ((227 − 11)/4 + 1 = 55).  Pooling overlaps (3x3 windows at stride 2,
section 3.4).  Response normalization (section 3.3) uses the paper's k = 2, n = 5,
α = 1e-4, β = 0.75 — see :class:`LocalResponseNorm` for how that maps onto PyTorch.

The two-GPU split (``groups=2``).  The paper trained on two GPUs, each holding half of every
layer's kernels; the kernels of the second, fourth and fifth convolutional layers "are connected
only to those kernel maps in the previous layer which reside on the same GPU", while conv3 and the fully connected
layers see both halves.  Grouped convolutions with two groups in conv2, conv4 and conv5
reproduce exactly that connectivity, and response normalization then runs within each half.

Where the parameters live.  With the split: 60,965,224 parameters ("60 million", section 4),
of which 2,334,080 (3.8%) are in the five convolutions and 58,631,144 (96.2%) in the three
fully connected layers — fc6 alone holds 37.8M.  Without the split (``groups=1``, the layout
of most re-implementations): 62,378,344, of which the FC layers are 94.0%.
:func:`param_split` computes these shares for any model.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .registry import register

INPUT_SIZE = 227


class LocalResponseNorm(nn.Module):
    """Response normalization across neighbouring maps, as printed in the paper (section 3.3):

    ``b_i = a_i / (k + α · Σ_{j=i−n/2}^{i+n/2} a_j²)^β``, the sum clipped to existing maps.

    PyTorch's :class:`torch.nn.LocalResponseNorm` (like Caffe) divides α by n, so the paper's
    formula is ``nn.LocalResponseNorm(n, alpha=n·α, beta, k)``.  With ``groups > 1`` each group of
    maps is normalized on its own, as on two GPUs, where a map's neighbours live on its own GPU.
    """

    def __init__(
        self, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0, groups: int = 1
    ) -> None:
        super().__init__()
        self.size, self.alpha, self.beta, self.k, self.groups = size, alpha, beta, k, groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = self.groups
        x = x.reshape(n * g, c // g, h, w)
        y = F.local_response_norm(x, self.size, alpha=self.alpha * self.size, beta=self.beta, k=self.k)
        return y.reshape(n, c, h, w)

    def extra_repr(self) -> str:
        return f"size={self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}, groups={self.groups}"


class AlexNet(nn.Module):
    """AlexNet (Krizhevsky et al. 2012); see the module docstring."""

    def __init__(
        self, num_classes: int = 1000, groups: int = 1, dropout: float = 0.5, init: str = "pytorch"
    ) -> None:
        super().__init__()
        if groups not in (1, 2):
            raise ValueError(f"groups must be 1 (one GPU) or 2 (the paper's two-GPU split), not {groups}")
        if init not in ("pytorch", "paper"):
            raise ValueError(f"init must be 'pytorch' or 'paper', not {init!r}")
        self.groups = groups
        self.conv1 = nn.Conv2d(3, 96, kernel_size=11, stride=4)
        self.lrn1 = LocalResponseNorm(groups=groups)
        self.pool1 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.conv2 = nn.Conv2d(96, 256, kernel_size=5, padding=2, groups=groups)
        self.lrn2 = LocalResponseNorm(groups=groups)
        self.pool2 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.conv3 = nn.Conv2d(256, 384, kernel_size=3, padding=1)  # sees both GPUs' maps
        self.conv4 = nn.Conv2d(384, 384, kernel_size=3, padding=1, groups=groups)
        self.conv5 = nn.Conv2d(384, 256, kernel_size=3, padding=1, groups=groups)
        self.pool5 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.fc6 = nn.Linear(256 * 6 * 6, 4096)
        self.fc7 = nn.Linear(4096, 4096)
        self.fc8 = nn.Linear(4096, num_classes)
        self.dropout = nn.Dropout(dropout)
        self.relu = nn.ReLU()
        if init == "paper":
            self._init_as_paper()

    def _init_as_paper(self) -> None:
        """Section 5: weights N(0, 0.01²); biases 1 in conv2, conv4, conv5 and the hidden FC
        layers (to give the ReLUs positive inputs early on), 0 elsewhere."""
        for name, layer in self.named_children():
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(layer.weight, 0.0, 0.01)
                nn.init.constant_(layer.bias, 1.0 if name in ("conv2", "conv4", "conv5", "fc6", "fc7") else 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3 or x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
            raise ValueError(
                f"AlexNet expects images of shape (batch, 3, 227, 227), got {tuple(x.shape)}; "
                "the paper says 224 but its 55x55 conv1 maps need 227 (resize or crop to 227)"
            )
        x = self.pool1(self.lrn1(self.relu(self.conv1(x))))  # 96 x 27 x 27
        x = self.pool2(self.lrn2(self.relu(self.conv2(x))))  # 256 x 13 x 13
        x = self.relu(self.conv3(x))
        x = self.relu(self.conv4(x))
        x = self.pool5(self.relu(self.conv5(x)))             # 256 x 6 x 6
        x = self.dropout(self.relu(self.fc6(x.flatten(1))))
        x = self.dropout(self.relu(self.fc7(x)))
        return self.fc8(x)


def param_split(model: nn.Module) -> dict[str, float]:
    """Parameters in convolutions vs fully connected layers, and the FC share of the total."""
    conv = sum(p.numel() for m in model.modules() if isinstance(m, nn.Conv2d) for p in m.parameters())
    fc = sum(p.numel() for m in model.modules() if isinstance(m, nn.Linear) for p in m.parameters())
    total = sum(p.numel() for p in model.parameters())
    return {"conv": conv, "fc": fc, "total": total, "fc_fraction": fc / total}


@register("alexnet")
def alexnet(num_classes: int = 1000, groups: int = 1, dropout: float = 0.5, init: str = "pytorch") -> AlexNet:
    """AlexNet (Krizhevsky et al. 2012): "60 million parameters"; exactly 60,965,224 with the
    paper's two-GPU split (``groups=2``), 62,378,344 without it (``groups=1``), 1000 classes.

    ``init="paper"`` uses the paper's N(0, 0.01²) weights and unit biases (section 5).
    """
    return AlexNet(num_classes=num_classes, groups=groups, dropout=dropout, init=init)
