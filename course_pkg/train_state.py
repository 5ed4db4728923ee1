"""Saving and resuming a training run: weights, optimizer, schedule, grad scaler, RNG, history.

After every epoch :func:`course_pkg.train.fit` writes two files (:func:`save`): the checkpoint
(fp16 weights and metadata, :func:`course_pkg.checkpoint.save_checkpoint`) and, beside it, the
full training state (:func:`course_pkg.checkpoint.resume_path`).  :func:`resume` restores that
state, so a run continues after its last finished epoch exactly as if it had never stopped — the
RNG state included, because shuffling, dropout and augmentation draw from it.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from .checkpoint import CheckpointError, _atomic_save, resume_path, safe_load, save_checkpoint, state_dict_of


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


def save(checkpoint_path: str | os.PathLike, model: nn.Module, opt: torch.optim.Optimizer,
         scheduler: Any, scaler: torch.amp.GradScaler, history: list[dict[str, Any]],
         settings: dict[str, Any], meta: dict[str, Any] | None, epochs: int) -> None:
    """Write the checkpoint (``meta`` + epoch, metrics, history, settings) and the resume state
    after the epoch that ``history[-1]`` records."""
    record = history[-1]
    epoch = record["epoch"]
    metrics = {k: v for k, v in record.items() if k != "epoch"}
    save_checkpoint(checkpoint_path, model, {
        **(meta or {}), "epoch": epoch, "epochs": epochs, "metrics": metrics,
        "history": history, "settings": settings})
    _atomic_save({
        "epoch": epoch,
        "model": {k: v.detach().to("cpu", copy=True) for k, v in state_dict_of(model).items()},
        "optimizer": opt.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "rng": _rng_state(),
        "history": history,
        "settings": settings,
    }, resume_path(checkpoint_path))


def resume(checkpoint_path: str | os.PathLike, settings: dict[str, Any], model: nn.Module,
           opt: torch.optim.Optimizer, scheduler: Any, scaler: torch.amp.GradScaler,
           device: torch.device) -> tuple[list[dict[str, Any]], int]:
    """Restore the state saved beside ``checkpoint_path`` into ``model``, ``opt``, ``scheduler``,
    ``scaler`` and the RNGs; returns ``(history records, epochs done)``, ``([], 0)`` when there is
    none.  A state saved with other ``settings`` is refused, but for the world size and a switch
    between bf16 and fp32: ``precision="auto"`` picks by what the machine computes fastest, so a
    run resumed on another kind of CPU may continue in the other one (neither keeps a scaler)."""
    rpath = resume_path(checkpoint_path)
    if not rpath.exists():
        return [], 0
    state = safe_load(rpath, "resume state")
    saved = state["settings"]
    cpu_precisions = {saved.get("precision"), settings.get("precision")} <= {"bf16", "fp32"}
    free = {"world_size"} | ({"precision"} if cpu_precisions else set())
    changed = {k: (saved.get(k), settings.get(k)) for k in {*saved, *settings}
               if k not in free and saved.get(k) != settings.get(k)}
    if changed:
        diff = ", ".join(f"{k}: saved {a!r}, now {b!r}" for k, (a, b) in changed.items())
        raise CheckpointError(
            f"{rpath} was saved by a run with other settings ({diff}); use the same settings "
            "to continue it, or pass resume=False (CLI: --no-resume) to start over")
    model.load_state_dict({k: v.to(device) for k, v in state["model"].items()}, strict=True)
    opt.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    _set_rng_state(state["rng"])
    return state["history"], int(state["epoch"])
