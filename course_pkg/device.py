"""Where and in what precision to compute: the device, the autocast dtype, the memory layout.

One rule each, used by training, evaluation and the data loaders:

- :func:`pick_device`            the asked device, else this process's GPU, else the CPU
- :func:`pick_precision`         bf16 / fp16 / fp32 autocast, from what the hardware multiplies fast
- :func:`cpu_bf16_speedup`       how much faster this CPU convolves in bf16 than in fp32, measured once
- :func:`default_channels_last`  NHWC activations where they pay
- :func:`autocast`               the autocast context of a precision
"""

from __future__ import annotations

import functools
import time
from contextlib import nullcontext

import torch

from .distributed import distributed_env

PRECISIONS = ("auto", "bf16", "fp16", "fp32")
# "auto" takes bf16 on a CPU only where it convolves at least this much faster than fp32 (guessed:
# fp32 is exact, so a near tie goes to fp32; measured: the probe gives 0.62 without AMX,
# benchmarks/results/cpu_speed_no_amx.json, where bf16 matrix products run at 0.59x fp32 and at 5.7x
# on the Xeon with AMX, cpu_speed.json)
CPU_BF16_MIN_SPEEDUP = 1.2


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else this process's GPU (``cuda:LOCAL_RANK``) if any, else the CPU."""
    if device is not None:
        try:
            device = torch.device(device)
        except RuntimeError:
            raise ValueError(f"unknown device {device!r}: use 'cpu', 'cuda' or 'cuda:N'") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {str(device)!r} was asked for but no CUDA GPU is visible; use 'cpu'")
        if device.type == "cuda" and device.index is None and distributed_env()[1] > 1:
            device = torch.device("cuda", distributed_env()[2])
        return device
    if torch.cuda.is_available():
        return torch.device("cuda", distributed_env()[2] % torch.cuda.device_count())
    return torch.device("cpu")


def cpu_has_native_bf16() -> bool:
    """True where this CPU multiplies bf16 in hardware (AVX-512 BF16 or AMX), as torch reports it.

    Elsewhere bf16 is emulated and slower than fp32.  Native is not always faster: a 2-core Xeon
    with AVX-512 BF16 but no AMX convolves slower in bf16 than in fp32 (``benchmarks/cpu_speed.py``
    measures it), which is why ``pick_precision`` also asks :func:`cpu_bf16_speedup`.
    """
    cpu = getattr(torch, "cpu", None)
    for query in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        check = getattr(cpu, query, None)
        try:
            if check is not None and check():
                return True
        except RuntimeError:  # a torch build without the query's backend
            continue
    return False


@functools.cache
def cpu_bf16_speedup() -> float:
    """How many times faster this CPU runs a convolution in bf16 than in fp32: measured once a
    process, in about a tenth of a second.

    The probe is one of GoogLeNet-CIFAR's typical layers, a 3x3 convolution of 64 channels on
    16x16 maps, batch 64, channels_last, forward only; the best of 4 timings after a warm-up call in
    each dtype.  ``benchmarks/cpu_speed.py`` records it beside the training speed in fp32 and
    bf16, so each of its results files shows whether the probe chose the faster one."""
    conv = torch.nn.Conv2d(64, 64, 3, padding=1, bias=False).to(memory_format=torch.channels_last)
    x = torch.randn(64, 64, 16, 16).contiguous(memory_format=torch.channels_last)

    def best(dtype: torch.dtype) -> float:
        layer, inp = conv.to(dtype), x.to(dtype)
        times = []
        with torch.no_grad():
            for _ in range(5):
                t0 = time.perf_counter()
                layer(inp)
                times.append(time.perf_counter() - t0)
        return min(times[1:])

    return best(torch.float32) / best(torch.bfloat16)


def pick_precision(device: torch.device, precision: str = "auto") -> str:
    """``"auto"``: bf16 autocast on GPUs that support it, ``"fp16"`` (with a GradScaler) on older
    GPUs such as Colab's T4; on the CPU bf16 where it is native (:func:`cpu_has_native_bf16`)
    *and* measured to pay (:func:`cpu_bf16_speedup` at least ``CPU_BF16_MIN_SPEEDUP``), else fp32.
    An explicit ``"bf16" | "fp16" | "fp32"`` is checked."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be 'auto', 'bf16', 'fp16' or 'fp32', not {precision!r}")
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        pays = device.type == "cpu" and cpu_has_native_bf16() and cpu_bf16_speedup() >= CPU_BF16_MIN_SPEEDUP
        return "bf16" if pays else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("precision='fp16' needs a CUDA GPU; on the CPU use 'fp32' (or 'bf16')")
    return precision


def default_channels_last(device: torch.device) -> bool:
    """NHWC activations, on GPUs (tensor cores) and CPUs (oneDNN's blocked kernels) alike, in
    every precision.  Measured on GoogLeNet-CIFAR in fp32 on 2-core CPUs: evaluation ~1.6x faster
    than NCHW (``benchmarks/results/cpu_eval_cost.md``), training through ``fit`` faster too (the
    ``fp32_cl`` rows of ``benchmarks/results/cpu_speed_no_amx.md``)."""
    return device.type in ("cuda", "cpu")


def autocast(device: torch.device, precision: str):
    """The autocast context of ``precision`` on ``device`` (none for fp32)."""
    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)
