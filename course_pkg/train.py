"""The one training loop of the course: :func:`fit`.

Used by the book, the assignment solutions and ``course train``.  Read it top to bottom: the
loss with GoogLeNet's auxiliary heads, the
optimizer and learning-rate schedules, one epoch (:func:`train_one_epoch`), then :func:`fit`
itself — a plain PyTorch loop with the speed tricks named where they happen.  What ``fit`` leans
on lives in modules of their own: the hyperparameters (:mod:`course_pkg.recipes`), the device,
precision and memory layout (:mod:`course_pkg.device`), DDP under ``torchrun``
(:mod:`course_pkg.distributed`), the per-epoch :class:`History`, saving and resuming
(:mod:`course_pkg.train_state`), the validation pass (:func:`evaluate_accuracy`, in
:mod:`course_pkg.accuracy`).

>>> from course_pkg.recipes import CIFAR10
>>> from course_pkg.train import fit
>>> history = fit(model, train_loader, val_loader=test_loader, **CIFAR10.fit_kwargs())  # doctest: +SKIP
>>> history.val_acc[-1]                                                      # doctest: +SKIP
"""

from __future__ import annotations

import functools
import math
import os
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn as nn

from . import distributed, train_state
from .device import autocast, cpu_has_native_bf16, default_channels_last, pick_device, pick_precision  # noqa: F401
from .distributed import distributed_env, is_main_process  # noqa: F401 (re-exported)
from .accuracy import evaluate_accuracy  # the validation pass of fit (importable from here too)
from .models.googlenet import AUX_LOSS_WEIGHT  # the paper's 0.3 per auxiliary head (section 5)
from .models.googlenet import main_logits
from .train_state import History, seed_everything  # noqa: F401 (re-exported)

# --------------------------------------------------------------------------------------------
# The loss: main head + 0.3 x each auxiliary head (paper, section 5)
# --------------------------------------------------------------------------------------------
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
# One epoch
# --------------------------------------------------------------------------------------------
def train_one_epoch(
    net: nn.Module, loader: Iterable, opt: torch.optim.Optimizer, scheduler: Any,
    scaler: torch.amp.GradScaler, loss_fn: Callable[[Any, torch.Tensor], torch.Tensor], *,
    device: torch.device, precision: str, channels_last: bool, bar: Any = None,
) -> dict[str, Any]:
    """One pass over ``loader``, one optimizer and learning-rate step per batch, minimising
    ``loss_fn(net(x), y)``.

    Returns the epoch's record without its number: ``train_loss`` and ``train_acc`` over every
    rank's images, ``val_acc`` (None, filled in by :func:`fit`), ``lr`` (after the last step),
    ``seconds`` (the slowest rank) and ``images_per_s``.
    """
    net.train()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    seen = 0
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    for step, (x, y) in enumerate(loader):
        x = x.to(device, non_blocking=True)
        y = y.to(device, non_blocking=True)
        if channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, precision):
            outputs = net(x)
            loss = loss_fn(outputs, y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()  # the scaler only scales for fp16 (GPUs without bf16)
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
    total_loss, total_correct, total_seen = distributed.all_reduce_sum(
        [loss_sum.item(), float(correct.item()), float(seen)], device)
    seconds = distributed.max_over_ranks(seconds, device)
    return {
        "train_loss": total_loss / total_seen,
        "train_acc": total_correct / total_seen,
        "val_acc": None,
        "lr": opt.param_groups[0]["lr"],
        "seconds": seconds,
        "images_per_s": total_seen / seconds if seconds > 0 else float("nan"),
    }


def _check_arguments(epochs: int, schedule: str, compile: bool | str) -> None:
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, not {schedule!r}")
    if isinstance(compile, str) and compile not in COMPILE_MODES:
        raise ValueError(f"compile must be True, False or one of {', '.join(COMPILE_MODES)}, not {compile!r}")


def _steps_per_epoch(train_loader: Iterable, world: int) -> int:
    loader_world = getattr(train_loader, "world_size", world)
    if loader_world != world:
        raise ValueError(
            f"train_loader is sharded for world_size={loader_world} but {world} processes are "
            "running: build it with rank/world_size from course_pkg.train.distributed_env()"
        )
    try:
        return len(train_loader)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError("train_loader has no len(): fit needs the number of batches per epoch "
                         "for its learning-rate schedule") from None


def _wrap(model: nn.Module, device: torch.device, world: int, compile: bool | str) -> nn.Module:
    """The network the steps run through: DDP under torchrun, then ``torch.compile`` if asked."""
    net = distributed.wrap(model, device) if world > 1 else model
    if compile:
        net = torch.compile(net, mode=compile if isinstance(compile, str) else None)
    return net


def _loss(loss_fn: Callable | None, label_smoothing: float, aux_weight: float) -> tuple[Callable, dict[str, str]]:
    """The loss fit minimises, and for a caller's own ``loss_fn`` its name for the saved settings
    (a resumed run must minimise the same loss)."""
    if loss_fn is not None:
        return loss_fn, {"loss": getattr(loss_fn, "__qualname__", type(loss_fn).__name__)}
    criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    return functools.partial(googlenet_loss, criterion=criterion, aux_weight=aux_weight), {}


def _quiet_by_default() -> bool:
    return os.environ.get("COURSE_QUIET", "").lower() in {"1", "true", "yes"} or not sys.stderr.isatty()


def _progress_bar(show: bool, steps: int, epoch: int, epochs: int):
    if not show:
        return None
    from tqdm import tqdm  # plain tqdm: tqdm.auto would embed widget state in the book

    return tqdm(total=steps, desc=f"epoch {epoch + 1}/{epochs}", leave=False, file=sys.stderr,
                dynamic_ncols=True)


def _print_epoch(record: dict[str, Any], epochs: int) -> None:
    from tqdm import tqdm

    val = f"  val acc {record['val_acc']:.4f}" if record["val_acc"] is not None else ""
    tqdm.write(f"epoch {record['epoch']}/{epochs}  loss {record['train_loss']:.4f}  "
               f"train acc {record['train_acc']:.4f}{val}  {record['images_per_s']:.0f} img/s",
               file=sys.stderr)


# --------------------------------------------------------------------------------------------
# fit
# --------------------------------------------------------------------------------------------
def _schedule_and_scaler(opt: torch.optim.Optimizer, schedule: str, total_steps: int, warmup: float,
                         device: torch.device, precision: str) -> tuple[Any, torch.amp.GradScaler]:
    """The learning-rate schedule, stepped every batch (:func:`lr_factor`), and the loss scaler
    (active in fp16 only)."""
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(schedule, step, total_steps, warmup))
    return scheduler, torch.amp.GradScaler(device.type, enabled=precision == "fp16")


def _validate(model: nn.Module, val_loader: Iterable, device: torch.device, precision: str,
              channels_last: bool) -> dict[str, Any]:
    """The validation pass of an epoch: top-1 accuracy, images, seconds."""
    t0 = time.perf_counter()
    acc, n = evaluate_accuracy(model, val_loader, device, precision, channels_last)
    return {"val_acc": acc, "val_n": n, "val_seconds": time.perf_counter() - t0}


def _end_of_epoch(world: int, callback: Callable[[History], None] | None, history: History) -> None:
    """Every rank waits for rank 0's checkpoint, then runs the callback."""
    if world > 1:
        distributed.barrier()
    if callback is not None:
        callback(history)


def fit(
    model: nn.Module, train_loader: Iterable, *, epochs: int, val_loader: Iterable | None = None,
    optimizer: str = "sgd", lr: float = 0.1, momentum: float = 0.9, nesterov: bool = True,
    weight_decay: float = 5e-4, schedule: str = "onecycle", warmup: float = 0.2,
    label_smoothing: float = 0.0, aux_weight: float = AUX_LOSS_WEIGHT,
    loss_fn: Callable[[Any, torch.Tensor], torch.Tensor] | None = None,
    device: str | torch.device | None = None, precision: str = "auto", channels_last: bool | None = None,
    compile: bool | str = False, progress: bool | str = "auto", seed: int | None = 0,
    checkpoint_path: str | os.PathLike | None = None, meta: dict[str, Any] | None = None,
    resume: bool = True, callback: Callable[[History], None] | None = None,
) -> History:
    """Train ``model`` in place on ``train_loader`` (any sized iterable of ``(x, y)`` batches).

    Loss: ``loss_fn(outputs, targets)`` where ``outputs`` is what the model returns in training
    mode; by default :func:`googlenet_loss` with ``label_smoothing`` and ``aux_weight`` (a network
    without auxiliary heads gets the plain cross-entropy).  Learning rate: ``schedule``
    (:func:`lr_factor`), stepped every batch, peaking at ``lr``.  Speed: ``precision="auto"``
    and ``channels_last=None`` follow :func:`~course_pkg.device.pick_precision` and
    :func:`~course_pkg.device.default_channels_last`; ``compile=True`` (or a mode such as
    ``"reduce-overhead"``) wraps the model in ``torch.compile``.  Under ``torchrun`` the model runs
    in DistributedDataParallel; each rank needs its own shard of the data (loaders built with
    :func:`distributed_env`'s rank and world size); metrics are summed over ranks, and only rank 0
    prints and saves.  ``checkpoint_path``: after every epoch the weights and ``meta`` are written
    there and the full training state beside it (:mod:`course_pkg.train_state`); with ``resume``
    a later call with the same settings continues after the last finished epoch.
    ``callback(history)`` runs after every epoch on every process; ``progress="auto"`` shows a
    tqdm bar only on a terminal and never when ``COURSE_QUIET=1``.  The model is left in eval mode.
    """
    _check_arguments(epochs, schedule, compile)
    device = pick_device(device)
    precision = pick_precision(device, precision)
    channels_last = default_channels_last(device) if channels_last is None else channels_last
    rank, world, _ = distributed.setup(device)
    precision = distributed.same_precision(precision, device)
    steps_per_epoch = _steps_per_epoch(train_loader, world)
    if seed is not None:
        seed_everything(seed)

    model.to(device, memory_format=torch.channels_last if channels_last else torch.preserve_format)
    opt = make_optimizer(model, optimizer, lr, momentum, nesterov, weight_decay)
    scheduler, scaler = _schedule_and_scaler(opt, schedule, epochs * steps_per_epoch, warmup, device, precision)
    loss_fn, custom = _loss(loss_fn, label_smoothing, aux_weight)
    settings = dict(epochs=epochs, steps_per_epoch=steps_per_epoch, optimizer=optimizer, lr=lr,
                    momentum=momentum, nesterov=nesterov, weight_decay=weight_decay,
                    schedule=schedule, warmup=warmup, label_smoothing=label_smoothing,
                    aux_weight=aux_weight, precision=precision, world_size=world, **custom)
    history, start_epoch = History(), 0
    if checkpoint_path and resume:
        records, start_epoch = train_state.resume(checkpoint_path, settings, model, opt, scheduler, scaler, device)
        history = History.from_list(records)
    net = _wrap(model, device, world, compile)
    show = (progress is True or (progress == "auto" and not _quiet_by_default())) and rank == 0

    for epoch in range(start_epoch, epochs):
        if hasattr(train_loader, "set_epoch"):
            train_loader.set_epoch(epoch)
        bar = _progress_bar(show, steps_per_epoch, epoch, epochs)
        record = {"epoch": epoch + 1, **train_one_epoch(
            net, train_loader, opt, scheduler, scaler, loss_fn, device=device,
            precision=precision, channels_last=channels_last, bar=bar)}
        if val_loader is not None:
            record.update(_validate(model, val_loader, device, precision, channels_last))
        history.records.append(record)
        if show:
            _print_epoch(record, epochs)
        if checkpoint_path is not None and rank == 0:
            train_state.save(checkpoint_path, model, opt, scheduler, scaler, history.to_list(), settings,
                             meta, epochs)
        _end_of_epoch(world, callback, history)

    model.eval()
    return history
