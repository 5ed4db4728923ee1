"""The inception module (Szegedy et al. 2015, "Going Deeper with Convolutions", section 4, Figure 2).

Four parallel branches look at the same input at different scales and their outputs are
concatenated along the channel axis, in this order: 1x1, 3x3, 5x5, pool.

- :class:`InceptionNaive` — Figure 2(a): 1x1, 3x3 and 5x5 convolutions and a 3x3 max pool side by
  side.  The pool branch passes all input channels through, so the output only ever grows.
- :class:`Inception` — Figure 2(b), the module GoogLeNet uses: 1x1 "reduction" convolutions before
  the expensive 3x3 and 5x5 convolutions and after the pool.  Argument names are the columns of the
  paper's Table 1: ``#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj``.

The auxiliary classifier (section 5) is part of the network, not of the module: it lives beside
``GoogLeNet`` in :mod:`course_pkg.models.googlenet`.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .registry import register
from .layers import BasicConv2d


class InceptionNaive(nn.Module):
    """Naive inception module, Figure 2(a): output channels ``ch1x1 + ch3x3 + ch5x5 + in_channels``."""

    def __init__(
        self, in_channels: int, ch1x1: int, ch3x3: int, ch5x5: int, batch_norm: bool = False
    ) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, ch1x1, 1, batch_norm=batch_norm)
        self.branch3x3 = BasicConv2d(in_channels, ch3x3, 3, padding=1, batch_norm=batch_norm)
        self.branch5x5 = BasicConv2d(in_channels, ch5x5, 5, padding=2, batch_norm=batch_norm)
        self.branch_pool = nn.MaxPool2d(3, stride=1, padding=1)
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = (self.branch1x1, self.branch3x3, self.branch5x5, self.branch_pool)
        return torch.cat([branch(x) for branch in branches], dim=1)


class Inception(nn.Module):
    """Inception module with dimension reductions, Figure 2(b) and Table 1.

    Output channels: ``ch1x1 + ch3x3 + ch5x5 + pool_proj`` (e.g. 3a: 64 + 128 + 32 + 32 = 256).
    Every convolution has a bias and a ReLU; 3x3 convolutions pad 1 and 5x5 pad 2 so all branches
    keep the input's height and width; the pool is a 3x3 max pool with stride 1 and padding 1
    (BVLC Caffe ``train_val.prototxt``).
    """

    def __init__(
        self,
        in_channels: int,
        ch1x1: int,
        ch3x3red: int,
        ch3x3: int,
        ch5x5red: int,
        ch5x5: int,
        pool_proj: int,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        bn = batch_norm
        self.branch1x1 = BasicConv2d(in_channels, ch1x1, 1, batch_norm=bn)
        self.branch3x3 = nn.Sequential(
            BasicConv2d(in_channels, ch3x3red, 1, batch_norm=bn),
            BasicConv2d(ch3x3red, ch3x3, 3, padding=1, batch_norm=bn),
        )
        self.branch5x5 = nn.Sequential(
            BasicConv2d(in_channels, ch5x5red, 1, batch_norm=bn),
            BasicConv2d(ch5x5red, ch5x5, 5, padding=2, batch_norm=bn),
        )
        self.branch_pool = nn.Sequential(
            nn.MaxPool2d(3, stride=1, padding=1),
            BasicConv2d(in_channels, pool_proj, 1, batch_norm=bn),
        )
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = (self.branch1x1, self.branch3x3, self.branch5x5, self.branch_pool)
        return torch.cat([branch(x) for branch in branches], dim=1)


@register("inception_naive")
def inception_naive(
    in_channels: int = 192, ch1x1: int = 64, ch3x3: int = 128, ch5x5: int = 32, batch_norm: bool = False
) -> InceptionNaive:
    """Naive module; defaults are inception 3a's output filters on its 192-channel input."""
    return InceptionNaive(in_channels, ch1x1, ch3x3, ch5x5, batch_norm=batch_norm)


@register("inception")
def inception(
    in_channels: int = 192,
    ch1x1: int = 64,
    ch3x3red: int = 96,
    ch3x3: int = 128,
    ch5x5red: int = 16,
    ch5x5: int = 32,
    pool_proj: int = 32,
    batch_norm: bool = False,
) -> Inception:
    """Dimension-reduced module; defaults are inception 3a (Table 1)."""
    return Inception(in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj, batch_norm)

