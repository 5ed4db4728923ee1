"""GoogLeNet (Inception v1), as published: Szegedy et al. 2015, "Going Deeper with Convolutions".

Faithful to the paper's Table 1 and the BVLC Caffe model (``models/bvlc_googlenet``):

- 7x7/2 stem convolution, LRN (size 5, alpha 1e-4, beta 0.75, k 1) after the first pool and after
  the 3x3 convolution, stride-2 max pools that round *up* (Caffe; ``ceil_mode=True``);
- nine inception modules with true 5x5 convolutions (torchvision's version uses 3x3 there);
- global 7x7 average pool, dropout 40%, one linear layer;
- two auxiliary classifiers on the outputs of 4a and 4d, used only in training (loss weight 0.3);
- every convolution has a bias and a ReLU; no batch normalisation (that came later, Inception-BN).

``googlenet_cifar`` keeps the nine modules with the paper's filter numbers and replaces only the
stem for 32x32 inputs.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
import torch.nn as nn

from .registry import register
from .inception import Inception
from .layers import BasicConv2d

#: Weight of each auxiliary classifier's loss in the total training loss (section 5).
AUX_LOSS_WEIGHT = 0.3

#: Table 1 filter numbers: ``#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj``.
INCEPTION_FILTERS: dict[str, tuple[int, int, int, int, int, int]] = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}



def inception_inputs(in_channels: int = 192) -> list[tuple[str, int, tuple[int, int, int, int, int, int]]]:
    """``[(name, in_channels, filters), ...]`` for 3a … 5b in order: each module reads the previous
    one's output, the concatenation of its ``#1x1 + #3x3 + #5x5 + pool proj`` channels (Table 1),
    and 3a reads the stem's 192 channels (max-pooled, when the pool sits between them)."""
    rows = []
    for name, filters in INCEPTION_FILTERS.items():
        rows.append((name, in_channels, filters))
        in_channels = filters[0] + filters[2] + filters[4] + filters[5]
    return rows


def table1_modules() -> list[tuple[str, int, tuple[int, ...], int]]:
    """``[(name, in_channels, filters, size), ...]`` for 3a … 5b: Table 1's inception modules with
    their input channels (:func:`inception_inputs`) and their map size at 224x224 input
    (``filters`` = ``#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj``)."""
    size = {"3": 28, "4": 14, "5": 7}  # Table 1's output sizes: after the pools before 3a, 4a, 5a
    return [(name, in_channels, tuple(filters), size[name[0]]) for name, in_channels, filters in inception_inputs()]


INITS = ("caffe", "he", "pytorch")
STEMS = ("imagenet", "cifar16", "cifar32")


class GoogLeNetOutputs(NamedTuple):
    """What a GoogLeNet with auxiliary classifiers returns in training mode."""

    logits: torch.Tensor
    aux1: torch.Tensor  # classifier on inception 4a
    aux2: torch.Tensor  # classifier on inception 4d


def main_logits(outputs: Any) -> torch.Tensor:
    """The main classifier's logits from what a network returns: a logits tensor, a
    :class:`GoogLeNetOutputs` ``(logits, aux1, aux2)``, anything else with ``.logits`` (e.g.
    torchvision's ``GoogLeNetOutputs``), or a tuple whose first element is the logits."""
    if isinstance(outputs, torch.Tensor):
        return outputs
    if hasattr(outputs, "logits"):
        return outputs.logits
    if isinstance(outputs, (tuple, list)):
        return outputs[0]
    raise TypeError(f"model returned {type(outputs).__name__}; expected a logits tensor [batch, classes]")


def _lrn(enabled: bool) -> nn.Module:
    # Caffe's LRN (local_size 5, alpha 1e-4, beta 0.75, k 1) equals PyTorch's with these arguments.
    return nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0) if enabled else nn.Identity()


def _pool(enabled: bool = True) -> nn.Module:
    # 3x3/2 with Caffe's round-up: 112 -> 56 -> 28 -> 14 -> 7 (floor would give 55/27/13/6).
    return nn.MaxPool2d(3, stride=2, ceil_mode=True) if enabled else nn.Identity()


class InceptionAux(nn.Module):
    """Auxiliary classifier (section 5): avg pool 5x5/3, 1x1 conv 128 + ReLU, FC 1024 + ReLU,
    dropout 70%, FC to the classes.

    On the 14x14 maps of 4a/4d the paper's 5x5/3 pool gives 4x4, so the first FC sees
    128 x 4 x 4 = 2048 inputs.  For other map sizes (the CIFAR adaptation) pass
    ``pool=nn.AdaptiveAvgPool2d(4)`` to keep that 4x4 grid and therefore the same head.
    Its loss is added to the main loss with weight 0.3 in training; at inference it is discarded.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        pool: nn.Module | None = None,
        batch_norm: bool = False,
        dropout: float = 0.7,
    ) -> None:
        super().__init__()
        self.pool = pool if pool is not None else nn.AvgPool2d(5, stride=3)
        self.conv = BasicConv2d(in_channels, 128, 1, batch_norm=batch_norm)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(self.pool(x))
        if x.shape[-2:] != (4, 4):
            raise ValueError(
                f"InceptionAux expects a 4x4 map after pooling, got {tuple(x.shape[-2:])}; the paper's "
                "5x5/3 pool needs a 14x14 input (224x224 images) — for other sizes pass "
                "pool=nn.AdaptiveAvgPool2d(4)"
            )
        x = self.relu(self.fc1(torch.flatten(x, 1)))
        return self.fc2(self.dropout(x))


class GoogLeNet(nn.Module):
    """GoogLeNet with the paper's Table 1 body.

    Args:
        num_classes: size of the classifier (1000 for ILSVRC).
        aux_logits: build the two auxiliary classifiers (returned only in training mode).
        init: ``"caffe"`` (Xavier, as Caffe's ``xavier`` filler: uniform with variance 1/fan_in,
            biases 0.2 — the BVLC model), ``"he"`` (Kaiming normal, fan-in, biases 0) or
            ``"pytorch"`` (PyTorch's default).  The faithful network (no BN) does not train from
            PyTorch's default init.
        batch_norm: Inception-BN style comparison: BatchNorm after every convolution, no LRN.
        dropout: dropout before the classifier (40% in the paper).
        aux_dropout: dropout inside the auxiliary classifiers (70%).
        stem: ``"imagenet"`` (224x224 input, the paper's stem), ``"cifar32"`` (32x32 input, a 3x3
            stem, no pooling before inception 3a at 32x32) or ``"cifar16"`` (the same stem with the
            paper's first stride-2 pool after conv1, so conv2/conv3 and 3a run at 16x16; about a
            quarter of the multiply-adds).
    """

    def __init__(
        self,
        num_classes: int = 1000,
        aux_logits: bool = True,
        init: str = "caffe",
        batch_norm: bool = False,
        dropout: float = 0.4,
        aux_dropout: float = 0.7,
        stem: str = "imagenet",
    ) -> None:
        super().__init__()
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        if stem not in STEMS:
            raise ValueError(f"stem must be one of {STEMS}, got {stem!r}")
        self.aux_logits = aux_logits
        self.stem = stem
        bn = batch_norm
        lrn = not batch_norm  # Inception-BN dropped LRN

        if stem == "imagenet":
            self.conv1 = BasicConv2d(3, 64, 7, stride=2, padding=3, batch_norm=bn)
            self.maxpool1 = _pool()
        else:  # 32x32 input: a 3x3 stem; one stride-2 pool (cifar16) or none (cifar32)
            self.conv1 = BasicConv2d(3, 64, 3, padding=1, batch_norm=bn)
            self.maxpool1 = _pool(stem == "cifar16")
        self.lrn1 = _lrn(lrn)
        self.conv2 = BasicConv2d(64, 64, 1, batch_norm=bn)
        self.conv3 = BasicConv2d(64, 192, 3, padding=1, batch_norm=bn)
        self.lrn2 = _lrn(lrn)
        self.maxpool2 = _pool(stem == "imagenet")

        modules = {name: Inception(in_channels, *filters, batch_norm=bn)
                   for name, in_channels, filters in inception_inputs(192)}
        self.inception3a, self.inception3b = modules["3a"], modules["3b"]
        self.maxpool3 = _pool()
        self.inception4a, self.inception4b, self.inception4c = modules["4a"], modules["4b"], modules["4c"]
        self.inception4d, self.inception4e = modules["4d"], modules["4e"]
        self.maxpool4 = _pool()
        self.inception5a, self.inception5b = modules["5a"], modules["5b"]

        # The paper's 7x7 average pool is global on 7x7 maps; adaptive keeps other sizes working.
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1024, num_classes)

        if aux_logits:
            aux_pool = (lambda: None) if stem == "imagenet" else (lambda: nn.AdaptiveAvgPool2d(4))
            self.aux1 = InceptionAux(self.inception4a.out_channels, num_classes, aux_pool(), bn, aux_dropout)
            self.aux2 = InceptionAux(self.inception4d.out_channels, num_classes, aux_pool(), bn, aux_dropout)
        else:
            self.aux1 = self.aux2 = None

        self.reset_parameters(init)

    def reset_parameters(self, init: str) -> None:
        """Re-initialise every convolution and linear layer (see the ``init`` argument)."""
        if init == "pytorch":
            for m in self.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear, nn.BatchNorm2d)):
                    m.reset_parameters()
            return
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                if init == "caffe":
                    fan_in = m.weight[0].numel()
                    bound = math.sqrt(3.0 / fan_in)  # Caffe xavier: Var = 1/fan_in
                    nn.init.uniform_(m.weight, -bound, bound)
                    bias = 0.2
                else:
                    nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                    bias = 0.0
                if m.bias is not None:
                    nn.init.constant_(m.bias, bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor | GoogLeNetOutputs:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(
                f"GoogLeNet expects a batch of RGB images shaped [N, 3, H, W], got {tuple(x.shape)}"
            )
        # Shapes for a 224x224 input ("imagenet" stem); the CIFAR stems start the body at 16x16 or 32x32.
        x = self.conv1(x)  # N x 64 x 112 x 112
        x = self.maxpool1(x)  # N x 64 x 56 x 56
        x = self.lrn1(x)  # N x 64 x 56 x 56
        x = self.conv2(x)  # N x 64 x 56 x 56
        x = self.conv3(x)  # N x 192 x 56 x 56
        x = self.lrn2(x)  # N x 192 x 56 x 56
        x = self.maxpool2(x)  # N x 192 x 28 x 28
        x = self.inception3a(x)  # N x 256 x 28 x 28
        x = self.inception3b(x)  # N x 480 x 28 x 28
        x = self.maxpool3(x)  # N x 480 x 14 x 14
        x = self.inception4a(x)  # N x 512 x 14 x 14
        aux1 = self.aux1(x) if self.aux1 is not None and self.training else None  # N x num_classes
        x = self.inception4b(x)  # N x 512 x 14 x 14
        x = self.inception4c(x)  # N x 512 x 14 x 14
        x = self.inception4d(x)  # N x 528 x 14 x 14
        aux2 = self.aux2(x) if self.aux2 is not None and self.training else None  # N x num_classes
        x = self.inception4e(x)  # N x 832 x 14 x 14
        x = self.maxpool4(x)  # N x 832 x 7 x 7
        x = self.inception5a(x)  # N x 832 x 7 x 7
        x = self.inception5b(x)  # N x 1024 x 7 x 7
        x = self.avgpool(x)  # N x 1024 x 1 x 1
        x = torch.flatten(x, 1)  # N x 1024
        x = self.dropout(x)  # N x 1024
        x = self.fc(x)  # N x num_classes
        if aux1 is not None:
            return GoogLeNetOutputs(x, aux1, aux2)
        return x


@register("googlenet")
def googlenet(
    num_classes: int = 1000,
    aux_logits: bool = True,
    init: str = "caffe",
    batch_norm: bool = False,
    dropout: float = 0.4,
) -> GoogLeNet:
    """The paper's GoogLeNet for 224x224 inputs: 6,998,552 parameters (13,378,280 with aux heads)."""
    return GoogLeNet(num_classes, aux_logits, init, batch_norm, dropout, stem="imagenet")


@register("googlenet_cifar")
def googlenet_cifar(
    num_classes: int = 10,
    stem: str = "16",
    aux_logits: bool = True,
    batch_norm: bool = False,
    init: str = "he",
    dropout: float = 0.4,
) -> GoogLeNet:
    """GoogLeNet for 32x32 inputs: the paper's nine inception modules, a 3x3 stem.

    ``stem="16"`` pools the stem to 16x16 before inception 3a (default: about a quarter of the
    multiply-adds of ``stem="32"``, which keeps 3a at 32x32 — CPU grading cost decides, see
    ``course_pkg.profile.count_macs``).  He init by default: the faithful network (no BN) does not
    train from PyTorch's default init.
    """
    stems = {"16": "cifar16", "32": "cifar32"}
    if str(stem) not in stems:
        raise ValueError(f"googlenet_cifar stem must be '16' or '32', got {stem!r}")
    return GoogLeNet(num_classes, aux_logits, init, batch_norm, dropout, stem=stems[str(stem)])
