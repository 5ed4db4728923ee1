"""Small building blocks shared by the networks."""

from __future__ import annotations

import torch
import torch.nn as nn


class BasicConv2d(nn.Module):
    """Convolution followed by ReLU — every convolution in GoogLeNet (paper, section 5).

    ``batch_norm=True`` gives the Inception-BN form (Ioffe & Szegedy 2015): the convolution loses
    its bias (BN's shift replaces it) and BatchNorm (eps 1e-3, as torchvision) sits before the ReLU.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=not batch_norm
        )
        self.bn = nn.BatchNorm2d(out_channels, eps=1e-3) if batch_norm else None
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return self.relu(x)
