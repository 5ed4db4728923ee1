"""Network in Network — Lin, Chen & Yan, "Network In Network", ICLR 2014 (arXiv:1312.4400).

Two ideas, each a piece of this module:

- the **mlpconv** layer (:class:`MLPConv`, section 3.1): a k×k convolution followed by a small
  multilayer perceptron applied at every position — which is exactly a stack of 1x1
  convolutions (the paper's "cascaded cross channel parametric pooling", ``cccp`` in its Caffe
  model), each + ReLU;
- **global average pooling** instead of fully connected layers (section 3.2): the last mlpconv
  layer produces one map per class and the logits are the maps' spatial means — no parameters
  in the head, and each map reads as a class confidence map.

The CIFAR-10 network (section 4.2, the authors' published Caffe model): three mlpconv layers —
5x5 192 → 1x1 160 → 1x1 96, max pool 3x3/2; 5x5 192 → 192 → 192, average pool 3x3/2;
3x3 192 → 192 → 10, global average pool — with dropout 0.5 on the outputs of all but the last
mlpconv layer.  Pools round up, as in Caffe
(32 → 16 → 8).  966,986 parameters for 10 classes (the paper prints no count).  The final 1x1
convolution is followed by a ReLU too, like every layer of the mlpconv (and the Caffe model),
so the averaged class maps are non-negative.  Initialisation: He (Kaiming) normal, zero biases.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from .registry import register


class MLPConv(nn.Module):
    """An mlpconv (NiN) block: ``kernel_size`` conv → 1x1 conv → 1x1 conv, each followed by ReLU.

    ``channels`` are the three layers' output channels, e.g. ``(192, 160, 96)``.
    """

    def __init__(
        self,
        in_channels: int,
        channels: Sequence[int],
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
    ) -> None:
        super().__init__()
        if len(channels) != 3:
            raise ValueError(
                f"an mlpconv block has three layers (kxk conv, 1x1, 1x1); got channels={tuple(channels)}"
            )
        c0, c1, c2 = channels
        self.conv = nn.Conv2d(in_channels, c0, kernel_size, stride=stride, padding=padding)
        self.cccp1 = nn.Conv2d(c0, c1, kernel_size=1)
        self.cccp2 = nn.Conv2d(c1, c2, kernel_size=1)
        self.relu = nn.ReLU(inplace=True)
        self.out_channels = c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.conv(x))
        x = self.relu(self.cccp1(x))
        return self.relu(self.cccp2(x))


class NiN(nn.Module):
    """Network in Network for 32x32 CIFAR images (three mlpconv blocks + global average pooling)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, dropout: float = 0.5) -> None:
        super().__init__()
        self.block1 = MLPConv(in_channels, (192, 160, 96), kernel_size=5, padding=2)
        self.pool1 = nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)
        self.drop1 = nn.Dropout(dropout)
        self.block2 = MLPConv(96, (192, 192, 192), kernel_size=5, padding=2)
        self.pool2 = nn.AvgPool2d(kernel_size=3, stride=2, ceil_mode=True)
        self.drop2 = nn.Dropout(dropout)
        self.block3 = MLPConv(192, (192, 192, num_classes), kernel_size=3, padding=1)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop1(self.pool1(self.block1(x)))  # 96 x 16 x 16 for 32x32 input
        x = self.drop2(self.pool2(self.block2(x)))  # 192 x 8 x 8
        x = self.block3(x)                          # num_classes x 8 x 8: one map per class
        return self.global_pool(x).flatten(1)


@register("nin")
def nin(num_classes: int = 10, in_channels: int = 3, dropout: float = 0.5) -> NiN:
    """Network in Network (Lin et al. 2014), the CIFAR-10 configuration: 966,986 parameters for
    10 classes; global average pooling replaces the fully connected head."""
    return NiN(num_classes=num_classes, in_channels=in_channels, dropout=dropout)
