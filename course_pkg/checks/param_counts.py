"""Counting parameters, and explaining a count that differs ("a 3x3 kernel where the paper has 5x5")."""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn as nn


def n_params(module: nn.Module) -> int:
    """Number of parameters of ``module`` (trainable or not)."""
    return sum(p.numel() for p in module.parameters())


def conv_params(in_channels: int, out_channels: int, kernel: int | Sequence[int], bias: bool = True,
                groups: int = 1) -> int:
    """Parameters of one convolution: ``k_h * k_w * in/groups * out (+ out biases)``."""
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else tuple(kernel)
    return kh * kw * (in_channels // groups) * out_channels + (out_channels if bias else 0)


def _fmt(n: int | float) -> str:
    return f"{n:,}" if isinstance(n, int) else f"{n:,.4g}"


def _kernel(conv: nn.Conv2d) -> str:
    return "x".join(str(k) for k in conv.kernel_size)


def explain_conv_count(in_channels: int, out_channels: int, count: int) -> str | None:
    """What square kernel (with or without bias) gives ``count`` parameters for in→out channels.

    Returns e.g. ``"a 3x3 kernel with bias (3*3*16*32 + 32 = 4,640)"`` or None if none fits.
    """
    for bias in (True, False):
        rest = count - (out_channels if bias else 0)
        per = in_channels * out_channels
        if per <= 0 or rest <= 0 or rest % per:
            continue
        k = math.isqrt(rest // per)
        if k * k * per == rest:
            tail = f" + {out_channels}" if bias else ""
            return (f"a {k}x{k} kernel {'with' if bias else 'without'} bias "
                    f"({k}*{k}*{in_channels}*{out_channels}{tail} = {_fmt(count)})")
    return None


def _shape(t: Any) -> str:
    return "x".join(str(s) for s in t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
