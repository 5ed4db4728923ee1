"""The one training loop of the course: :func:`fit`.

Used by the book, the assignment solutions and ``course train``.  Read it top to bottom: the
recipes (hyperparameters as plain dicts), the loss with GoogLeNet's auxiliary heads, the learning
rate schedules, then :func:`fit` itself — a plain PyTorch loop with the speed tricks named where
they happen (mixed precision, channels_last, optional ``torch.compile``, DDP under ``torchrun``).

>>> from course_pkg.train import fit, CIFAR_RECIPE
>>> history = fit(model, train_loader, epochs=30, val_loader=test_loader)   # doctest: +SKIP
>>> history.val_acc[-1]                                                      # doctest: +SKIP
"""

from __future__ import annotations

import atexit
import math
import os
import random
import sys
import time
import warnings
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn

from .checkpoint import CheckpointError, _atomic_save, resume_path, safe_load, save_checkpoint, state_dict_of
from .models.googlenet import AUX_LOSS_WEIGHT  # the paper's 0.3 per auxiliary head (section 5)

# --------------------------------------------------------------------------------------------
# Recipes: every hyperparameter in one place.  "measured" = this value was part of a run whose
# result is recorded (an H100 run of benchmarks/train_cifar.py in 2026-11 for CIFAR, whose result file
# is not in this repository yet; benchmarks/results/ and pretrained/*.json for the rest); "guessed" = a conventional value nobody has ablated here yet.  Change one, measure it
# with benchmarks/train_cifar.py, and update the tag.
# --------------------------------------------------------------------------------------------
CIFAR_RECIPE: dict[str, Any] = dict(
    epochs=30,             # measured: 30 epochs → 89.8–90.8% (BN layout, the H100 run above)
    batch_size=512,        # guessed: fills an H100 at 0.37 GMAC/image; not ablated
    optimizer="sgd",       # measured: SGD + Nesterov was the recipe of the H100 run above
    lr=0.2,                # guessed: peak of the one-cycle schedule for batch 512
    momentum=0.9,          # guessed: the paper's value (section 6)
    nesterov=True,         # measured (as part of the H100 recipe), not ablated alone
    weight_decay=5e-4,     # guessed: the usual CIFAR value; not applied to biases / BN
    schedule="onecycle",   # measured (as part of the H100 recipe)
    warmup=0.2,            # guessed: fraction of steps spent warming up
    label_smoothing=0.1,   # measured (as part of the H100 recipe)
    aux_weight=AUX_LOSS_WEIGHT,  # the paper's weight for each auxiliary loss (section 5)
    augment=True,          # measured: padded random crop + flip (as part of the H100 recipe)
    cutout=0,              # guessed: off; a square of this size blanked per image (course train --cutout)
    precision="auto",      # measured: bf16 autocast on the H100
    channels_last=True,    # measured: on in every H100 run (not ablated alone)
    compile=False,         # measured: compile costs 80–130 s, does not pay for short runs (H100)
)

MNIST_RECIPE: dict[str, Any] = dict(
    epochs=4,              # measured on the 2-core CPU, see course_pkg/pretrained/lenet5_mnist.json
    batch_size=128,        # guessed: small batches train LeNet fastest per epoch on a CPU
    optimizer="sgd",
    lr=0.1,                # guessed, then kept because the run reached ≥ 99% (see the JSON)
    momentum=0.9,
    nesterov=True,
    weight_decay=5e-4,     # guessed
    schedule="onecycle",
    warmup=0.2,
    label_smoothing=0.0,   # guessed: LeNet is too small to overfit MNIST badly in 4 epochs
    aux_weight=0.0,
    augment=False,         # guessed: no augmentation needed for ≥ 99% on MNIST
    cutout=0,
    precision="auto",
    channels_last=False,
    compile=False,
)

RECIPES: dict[str, dict[str, Any]] = {"cifar10": CIFAR_RECIPE, "mnist": MNIST_RECIPE}



# --------------------------------------------------------------------------------------------
# The loss: main head + 0.3 x each auxiliary head (paper, section 5)
# --------------------------------------------------------------------------------------------
def main_logits(outputs: Any) -> torch.Tensor:
    """The main classifier's logits from a tensor or a ``GoogLeNetOutputs(logits, aux1, aux2)``."""
    return outputs.logits if hasattr(outputs, "logits") else outputs


def googlenet_loss(
    outputs: Any,
    targets: torch.Tensor,
    criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    aux_weight: float = AUX_LOSS_WEIGHT,
) -> torch.Tensor:
    """``criterion(main) + aux_weight * (criterion(aux1) + criterion(aux2))``.

    ``outputs`` is either a plain logits tensor (any network, or GoogLeNet in eval mode: just the
    main loss) or the ``GoogLeNetOutputs`` namedtuple GoogLeNet returns in training mode.  An
    auxiliary head that is ``None`` (``aux_logits=False``) contributes nothing.
    """
    if not hasattr(outputs, "logits"):
        return criterion(outputs, targets)
    loss = criterion(outputs.logits, targets)
    for name in ("aux1", "aux2"):
        aux = getattr(outputs, name, None)
        if aux is not None:  # kept even at weight 0, so DDP sees every parameter in the graph
            loss = loss + aux_weight * criterion(aux, targets)
    return loss


# --------------------------------------------------------------------------------------------
# History: one dict per epoch
# --------------------------------------------------------------------------------------------
@dataclass
class History:
    """Per-epoch records: ``epoch, train_loss, train_acc, val_acc, lr, seconds, images_per_s``.

    ``history.val_acc`` is the column as a list; ``history.records[-1]`` the last epoch; accuracies
    are fractions in [0, 1]; ``train_loss`` is the loss that was minimised (main + weighted aux
    heads, with label smoothing) and ``train_acc`` the main head's accuracy on the augmented
    training batches; ``seconds`` is the training time of the epoch (validation excluded).
    """

    records: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)

    def _column(self, key: str) -> list[Any]:
        return [r.get(key) for r in self.records]

    train_loss = property(lambda self: self._column("train_loss"))
    train_acc = property(lambda self: self._column("train_acc"))
    val_acc = property(lambda self: self._column("val_acc"))
    lr = property(lambda self: self._column("lr"))
    seconds = property(lambda self: self._column("seconds"))
    images_per_s = property(lambda self: self._column("images_per_s"))

    @property
    def total_seconds(self) -> float:
        return float(sum(self.seconds))

    def to_list(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.records]

    @classmethod
    def from_list(cls, records: Iterable[dict[str, Any]]) -> "History":
        return cls([dict(r) for r in records])


# --------------------------------------------------------------------------------------------
# Devices, precision, distributed
# --------------------------------------------------------------------------------------------
def distributed_env() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` from torchrun's environment variables (0, 1, 0 alone)."""
    return (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
            int(os.environ.get("LOCAL_RANK", 0)))


def is_main_process() -> bool:
    """True on rank 0 (and when not distributed): the one process that prints and saves."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return distributed_env()[0] == 0


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
    if precision not in {"auto", "bf16", "fp16", "fp32"}:
        raise ValueError(f"precision must be 'auto', 'bf16', 'fp16' or 'fp32', not {precision!r}")
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("precision='fp16' needs a CUDA GPU; on the CPU use 'fp32' (or 'bf16')")
    return precision


def default_channels_last(device: torch.device, precision: str) -> bool:
    """NHWC activations where they pay: on GPUs (tensor cores) and for bf16 on the CPU (oneDNN's
    blocked kernels)."""
    return device.type == "cuda" or (device.type == "cpu" and precision == "bf16")


def _autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def _setup_distributed(device: torch.device) -> tuple[int, int, bool]:
    """Join the process group torchrun describes (if WORLD_SIZE > 1). Returns rank, world, created."""
    rank, world, _ = distributed_env()
    if world <= 1:
        return 0, 1, False
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), False
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend, rank=rank, world_size=world)
    atexit.register(_leave_process_group)  # fit() joined the group, so it also leaves it at exit
    return rank, world, True


def _leave_process_group() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    if not (dist.is_available() and dist.is_initialized()):
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


# --------------------------------------------------------------------------------------------
# Optimizer and learning-rate schedules
# --------------------------------------------------------------------------------------------
def make_optimizer(
    model: nn.Module, optimizer: str = "sgd", lr: float = 0.1, momentum: float = 0.9,
    nesterov: bool = True, weight_decay: float = 5e-4, fused: bool | None = None,
) -> torch.optim.Optimizer:
    """SGD (Nesterov by default) or AdamW; weight decay only on weights (ndim > 1), not on biases
    and BatchNorm parameters.

    ``fused=None`` uses the fused (one-kernel) update when every parameter is on a GPU: a
    GoogLeNet has ~200 parameter tensors, and launching their updates one by one costs a
    noticeable share of a step of a small network. The arithmetic is the same update.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if fused is None:
        fused = bool(params) and all(p.is_cuda and p.is_floating_point() for p in params)
    if optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0,
                               fused=fused)
    if optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr, fused=fused)
    raise ValueError(f"optimizer must be 'sgd' or 'adamw', not {optimizer!r}")


SCHEDULES = ("onecycle", "cosine", "step", "constant")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def lr_factor(schedule: str, step: int, total_steps: int, warmup: float = 0.2) -> float:
    """Multiplier of the peak learning rate at optimizer step ``step`` (0-based) of ``total_steps``.

    - ``onecycle``: linear from 0.1 up to 1 over the first ``warmup`` fraction, then linear to 0
    - ``cosine``: the same warm-up, then half a cosine down to 0
    - ``step``: 1, then x0.1 at 50% and x0.01 at 75% of training (the classic CIFAR schedule)
    - ``constant``: 1
    """
    total_steps = max(1, total_steps)
    t = min(step, total_steps) / total_steps
    if schedule == "constant":
        return 1.0
    if schedule == "step":
        return 1.0 if t < 0.5 else 0.1 if t < 0.75 else 0.01
    if schedule not in ("onecycle", "cosine"):
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, not {schedule!r}")
    if warmup > 0 and t < warmup:
        return 0.1 + 0.9 * t / warmup
    rest = (t - warmup) / max(1e-12, 1 - warmup)
    if schedule == "onecycle":
        return max(0.0, 1.0 - rest)
    return 0.5 * (1 + math.cos(math.pi * rest))


# --------------------------------------------------------------------------------------------
# Evaluation (the validation pass of fit; course_pkg.evaluate has the paper's multi-crop one)
# --------------------------------------------------------------------------------------------
@torch.no_grad()
def evaluate_accuracy(
    model: nn.Module, loader: Iterable, device: str | torch.device | None = None,
    precision: str = "auto", channels_last: bool | None = None,
) -> tuple[float, int]:
    """Top-1 accuracy of ``model`` over ``loader``: returns ``(accuracy, n)``, all-reduced under DDP."""
    device = pick_device(device) if device is None or not isinstance(device, torch.device) else device
    precision = pick_precision(device, precision)
    if channels_last is None:  # faster on GPUs and, for convolutions, ~1.6x on the CPU too
        channels_last = device.type in ("cuda", "cpu")                 # (benchmarks/cpu_eval_cost.py)
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=device)
    seen = 0
    for x, y in loader:
        x = x.to(device, non_blocking=True)
        y = y.to(device, non_blocking=True)
        if channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with _autocast(device, precision):
            logits = main_logits(model(x))
        correct += (logits.argmax(1) == y).sum()
        seen += y.numel()
    model.train(was_training)
    total_correct, total_seen = _all_reduce_sum([float(correct.item()), float(seen)], device)
    if total_seen == 0:
        raise ValueError("the evaluation loader yielded no batches")
    return total_correct / total_seen, int(total_seen)


# --------------------------------------------------------------------------------------------
# RNG state (for resume)
# --------------------------------------------------------------------------------------------
def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and every GPU)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *map(float, np_state[2:])],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(cached)))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _quiet_by_default() -> bool:
    return os.environ.get("COURSE_QUIET", "").lower() in {"1", "true", "yes"} or not sys.stderr.isatty()


# --------------------------------------------------------------------------------------------
# fit
# --------------------------------------------------------------------------------------------
def fit(
    model: nn.Module,
    train_loader: Iterable,
    *,
    epochs: int,
    val_loader: Iterable | None = None,
    optimizer: str = "sgd",
    lr: float = 0.1,
    momentum: float = 0.9,
    nesterov: bool = True,
    weight_decay: float = 5e-4,
    schedule: str = "onecycle",
    warmup: float = 0.2,
    label_smoothing: float = 0.0,
    aux_weight: float = AUX_LOSS_WEIGHT,
    device: str | torch.device | None = None,
    precision: str = "auto",
    channels_last: bool | None = None,
    compile: bool | str = False,
    sync_batchnorm: bool = False,
    progress: bool | str = "auto",
    seed: int | None = 0,
    checkpoint_path: str | os.PathLike | None = None,
    meta: dict[str, Any] | None = None,
    resume: bool = True,
    callback: Callable[[History], None] | None = None,
    steps_per_epoch: int | None = None,
) -> History:
    """Train ``model`` in place on ``train_loader`` (any iterable of ``(x, y)`` batches).

    The loss is :func:`googlenet_loss` (main + ``aux_weight`` x each auxiliary head; plain
    cross-entropy for networks without aux heads) with ``label_smoothing``.  The learning rate
    follows ``schedule`` (see :func:`lr_factor`) stepped every batch, peaking at ``lr``.

    Speed: ``precision="auto"`` picks bf16 autocast on recent GPUs, fp16 + GradScaler on GPUs
    without bf16 (T4), bf16 on CPUs with native bf16, else fp32; ``channels_last`` (default: on
    for CUDA and for bf16 on the CPU) stores activations NHWC; ``compile=True`` wraps the model in ``torch.compile``
    (a string picks its mode, e.g. ``"reduce-overhead"``: CUDA graphs, fewer kernel launches).

    Under ``torchrun`` (``WORLD_SIZE > 1``) the model is wrapped in DistributedDataParallel
    (nccl on GPUs, gloo on the CPU); each rank must get its own shard of the data (build the
    loaders with ``rank``/``world_size`` from :func:`distributed_env`). Metrics are all-reduced;
    only rank 0 prints and writes checkpoints.  BatchNorm then normalises each rank's share of the
    batch with its own statistics (as with gradient accumulation); ``sync_batchnorm=True`` uses
    the statistics of the global batch instead (CUDA only: SyncBatchNorm has no CPU kernel).

    ``checkpoint_path``: after every epoch, the weights (fp16) and metadata (``meta`` + epoch,
    metrics, history) are written there, and the full training state (fp32 weights, optimizer,
    scheduler, grad scaler, RNG, history) to :func:`course_pkg.checkpoint.resume_path`.  With
    ``resume=True`` a later call with the same settings continues after the last finished epoch.

    ``callback(history)`` runs after every epoch on every process.  ``progress="auto"`` shows a
    tqdm bar only on a terminal (notebook kernels and CI logs are not) and never when
    ``COURSE_QUIET=1``.
    The model is left in eval mode.  Returns the :class:`History`.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, not {schedule!r}")
    if isinstance(compile, str) and compile not in COMPILE_MODES:
        raise ValueError(f"compile must be True, False or one of {', '.join(COMPILE_MODES)}, not {compile!r}")
    device = pick_device(device)
    precision = pick_precision(device, precision)
    if channels_last is None:
        channels_last = default_channels_last(device, precision)
    rank, world, _ = _setup_distributed(device)
    main = rank == 0
    loader_world = getattr(train_loader, "world_size", world)
    if loader_world != world:
        raise ValueError(
            f"train_loader is sharded for world_size={loader_world} but {world} processes are "
            "running: build it with rank/world_size from course_pkg.train.distributed_env()"
        )
    if steps_per_epoch is None:
        try:
            steps_per_epoch = len(train_loader)  # type: ignore[arg-type]
        except TypeError:
            raise ValueError("train_loader has no len(): pass steps_per_epoch=") from None
    total_steps = epochs * steps_per_epoch
    if seed is not None:
        seed_everything(seed)

    # -- model, optimizer, schedule, scaler ----------------------------------------------------
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    opt = make_optimizer(model, optimizer, lr, momentum, nesterov, weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: lr_factor(schedule, step, total_steps, warmup))
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    settings = dict(epochs=epochs, steps_per_epoch=steps_per_epoch, optimizer=optimizer, lr=lr,
                    momentum=momentum, nesterov=nesterov, weight_decay=weight_decay,
                    schedule=schedule, warmup=warmup, label_smoothing=label_smoothing,
                    aux_weight=aux_weight, precision=precision, world_size=world)

    # -- resume ------------------------------------------------------------------------------------
    history = History()
    start_epoch = 0
    rpath = resume_path(checkpoint_path) if checkpoint_path else None
    if rpath is not None and resume and rpath.exists():
        state = safe_load(rpath, "resume state")
        changed = {k: (state["settings"].get(k), v) for k, v in settings.items()
                   if k != "world_size" and state["settings"].get(k) != v}
        if changed:
            diff = ", ".join(f"{k}: saved {a!r}, now {b!r}" for k, (a, b) in changed.items())
            raise CheckpointError(
                f"{rpath} was saved by a run with other settings ({diff}); use the same settings "
                "to continue it, or pass resume=False (CLI: --no-resume) to start over")
        state_model = {k: v.to(device) for k, v in state["model"].items()}
        model.load_state_dict(state_model, strict=True)
        opt.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        _set_rng_state(state["rng"])
        history = History.from_list(state["history"])
        start_epoch = int(state["epoch"])

    net: nn.Module = model
    if world > 1 and sync_batchnorm:
        # BN statistics over the global batch instead of each rank's share (costs a sync per BN)
        net = model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if world > 1:
        # A 1-channel conv weight's gradient can come back with channels_last strides (the two
        # layouts coincide when C == 1); DDP then warns on every step. Harmless: silence it.
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    if compile:
        net = torch.compile(net, mode=compile if isinstance(compile, str) else None)

    show = progress is True or (progress == "auto" and not _quiet_by_default())
    show = bool(show) and main
    if show:
        from tqdm import tqdm  # plain tqdm: tqdm.auto would embed widget state in the book

    for epoch in range(start_epoch, epochs):
        if hasattr(train_loader, "set_epoch"):
            train_loader.set_epoch(epoch)
        net.train()
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        seen = 0
        bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch + 1}/{epochs}", leave=False,
                   file=sys.stderr, dynamic_ncols=True) if show else None
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        for step, (x, y) in enumerate(train_loader):
            x = x.to(device, non_blocking=True)
            y = y.to(device, non_blocking=True)
            if channels_last and x.ndim == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            with _autocast(device, precision):
                outputs = net(x)
                loss = googlenet_loss(outputs, y, criterion, aux_weight)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            scheduler.step()
            n = y.numel()
            # Accumulate on the device: no .item() per step, so the GPU never waits for Python.
            loss_sum += loss.detach().double() * n
            correct += (main_logits(outputs).detach().argmax(1) == y).sum()
            seen += n
            if bar is not None:
                bar.update(1)
                if step % 20 == 0:
                    bar.set_postfix(loss=f"{loss.item():.3f}")
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - t0
        if bar is not None:
            bar.close()
        if seen == 0:
            raise ValueError("train_loader yielded no batches (is the data set smaller than one batch "
                             "with drop_last=True?)")
        total_loss, total_correct, total_seen = _all_reduce_sum(
            [loss_sum.item(), float(correct.item()), float(seen)], device)
        max_seconds = _max_over_ranks(seconds, device)
        record: dict[str, Any] = {
            "epoch": epoch + 1,
            "train_loss": total_loss / total_seen,
            "train_acc": total_correct / total_seen,
            "val_acc": None,
            "lr": opt.param_groups[0]["lr"],
            "seconds": max_seconds,
            "images_per_s": total_seen / max_seconds if max_seconds > 0 else float("nan"),
        }
        if val_loader is not None:
            t1 = time.perf_counter()
            record["val_acc"], record["val_n"] = evaluate_accuracy(model, val_loader, device, precision,
                                                                   channels_last)
            record["val_seconds"] = time.perf_counter() - t1
        history.records.append(record)
        if show:
            val = f"  val acc {record['val_acc']:.4f}" if record["val_acc"] is not None else ""
            tqdm.write(f"epoch {epoch + 1}/{epochs}  loss {record['train_loss']:.4f}  "
                       f"train acc {record['train_acc']:.4f}{val}  {record['images_per_s']:.0f} img/s",
                       file=sys.stderr)

        if checkpoint_path is not None and main:
            metrics = {k: v for k, v in record.items() if k != "epoch"}
            save_checkpoint(checkpoint_path, model, {
                **(meta or {}), "epoch": epoch + 1, "epochs": epochs, "metrics": metrics,
                "history": history.to_list(), "settings": settings})
            _atomic_save({
                "epoch": epoch + 1,
                "model": {k: v.detach().to("cpu", copy=True) for k, v in state_dict_of(model).items()},
                "optimizer": opt.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "rng": _rng_state(),
                "history": history.to_list(),
                "settings": settings,
            }, rpath)
        if world > 1:
            dist.barrier()
        if callback is not None:
            callback(history)

    model.eval()
    return history


def _max_over_ranks(value: float, device: torch.device) -> float:
    if not (dist.is_available() and dist.is_initialized()):
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())
