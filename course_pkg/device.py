"""Where and in what precision to compute: the device, the autocast dtype, the memory layout.

One rule each, used by training, evaluation and the data loaders:

- :func:`pick_device`            the asked device, else this process's GPU, else the CPU
- :func:`pick_precision`         bf16 / fp16 / fp32 autocast, from what the hardware multiplies fast
- :func:`default_channels_last`  NHWC activations where they pay
- :func:`autocast`               the autocast context of a precision
"""

from __future__ import annotations

from contextlib import nullcontext

import torch

from .distributed import distributed_env

PRECISIONS = ("auto", "bf16", "fp16", "fp32")


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

    On such CPUs (AMD Zen 4 and later, Intel Cooper Lake / Sapphire Rapids and later) bf16
    autocast with channels_last trains GoogLeNet-CIFAR several times faster than fp32 NCHW
    (measured by ``benchmarks/cpu_speed.py``); elsewhere bf16 is emulated and slower than fp32.
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


def pick_precision(device: torch.device, precision: str = "auto") -> str:
    """``"auto"``: bf16 autocast on GPUs that support it, ``"fp16"`` (with a GradScaler) on older
    GPUs such as Colab's T4, bf16 on CPUs with native bf16 (:func:`cpu_has_native_bf16`), else
    fp32.  An explicit ``"bf16" | "fp16" | "fp32"`` is checked."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be 'auto', 'bf16', 'fp16' or 'fp32', not {precision!r}")
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("precision='fp16' needs a CUDA GPU; on the CPU use 'fp32' (or 'bf16')")
    return precision


def default_channels_last(device: torch.device, precision: str, training: bool = True) -> bool:
    """NHWC activations where they pay: always on GPUs (tensor cores); on the CPU for bf16
    training (oneDNN's blocked kernels) and for any evaluation (``training=False``: forward-only
    convolutions run ~1.6x faster NHWC in fp32 too, ``benchmarks/cpu_eval_cost.py``)."""
    if device.type == "cuda":
        return True
    return device.type == "cpu" and (precision == "bf16" or not training)


def autocast(device: torch.device, precision: str):
    """The autocast context of ``precision`` on ``device`` (none for fp32)."""
    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)
