"""VGG-16 — Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition", ICLR 2015, Table 1 configuration D.

Thirteen 3x3 convolutions (stride 1, pad 1, each + ReLU) in five stages of 64, 128, 256, 512 and
512 channels, each stage ending in a 2x2/2 max pool; then FC-4096, FC-4096 (ReLU, dropout 0.5)
and FC-1000.  Stacking 3x3 convolutions is the paper's idea (section 2.3): two of them see a 5x5
field, three a 7x7 field, with fewer parameters and more non-linearities than one big kernel.

Parameter count: 138,357,544 for 1000 classes — the paper's Table 2 prints "138" (million) for D.
Like torchvision's ``vgg16`` (same count, same state-dict layout, so its weights load), an
adaptive average pool brings the last maps to 7x7 before the classifier, so inputs smaller than
224x224 (down to 32x32) also run; at 224x224 it does nothing.

``batch_norm=True`` adds BatchNorm after every convolution (not in the paper; 138,365,992
parameters, like torchvision's ``vgg16_bn``).  Initialisation: the paper trained configuration A
from N(0, 0.01²) and used it to start the deeper nets, then notes that Glorot init works without
pre-training; here convolutions use He (Kaiming) normal init, the linear layers N(0, 0.01²),
biases zero.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from .registry import register

#: Table 1, configuration D: output channels of each 3x3 convolution; "M" is a 2x2/2 max pool.
VGG16_CONFIG: tuple[int | str, ...] = (
    64, 64, "M",
    128, 128, "M",
    256, 256, 256, "M",
    512, 512, 512, "M",
    512, 512, 512, "M",
)


def make_features(config: Sequence[int | str], in_channels: int = 3, batch_norm: bool = False) -> nn.Sequential:
    """The convolutional part: 3x3/1 pad-1 convolutions + ReLU (optionally BN), "M" = 2x2 max pool."""
    layers: list[nn.Module] = []
    for item in config:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        if not isinstance(item, int):
            raise ValueError(f"a VGG config holds channel counts or 'M', not {item!r}")
        layers.append(nn.Conv2d(in_channels, item, kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(item))
        layers.append(nn.ReLU(inplace=True))
        in_channels = item
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """A VGG network: ``features`` (from a config), a 7x7 adaptive average pool, ``classifier``."""

    def __init__(
        self,
        config: Sequence[int | str] = VGG16_CONFIG,
        num_classes: int = 1000,
        batch_norm: bool = False,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.features = make_features(config, batch_norm=batch_norm)
        last_channels = [c for c in config if c != "M"][-1]
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(last_channels * 7 * 7, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(4096, num_classes),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3 or min(x.shape[-2:]) < 32:
            raise ValueError(
                f"VGG expects RGB images of shape (batch, 3, H, W) with H, W >= 32 (five 2x2 "
                f"pools), got {tuple(x.shape)}"
            )
        x = self.features(x)
        x = self.avgpool(x)
        return self.classifier(x.flatten(1))


@register("vgg16")
def vgg16(num_classes: int = 1000, batch_norm: bool = False, dropout: float = 0.5) -> VGG:
    """VGG-16, configuration D (Simonyan & Zisserman 2015, Table 1): 138,357,544 parameters for
    1000 classes (Table 2: "138" million), the same as torchvision's ``vgg16``."""
    return VGG(VGG16_CONFIG, num_classes=num_classes, batch_norm=batch_norm, dropout=dropout)
