"""Checkpoints: plain ``state_dict``s plus a small metadata record, loaded back safely.

A checkpoint is one ``torch.save`` file holding only tensors and plain Python values::

    {"format": "course_pkg.checkpoint/1",
     "state_dict": {"conv1.weight": tensor, ...},      # fp16 when saved with half=True
     "meta": {"model": "lenet5", "model_kwargs": {...}, "epoch": 5, "metrics": {...},
              "torch": "2.x", "course_pkg": "0.1.0", "date": "2026-11-23T08:00:00+00:00", ...}}

so ``torch.load(path, weights_only=True)`` reads it without running any pickled code.  Loading
*always* uses ``weights_only=True``: a checkpoint downloaded from a classmate cannot execute code on
the grader's machine.  Every way a file can be wrong (missing, truncated, a pickled ``nn.Module``,
a pickle that imports ``os.system``, weights for a different network) becomes a
:class:`CheckpointError` whose message says what is wrong and what to do.

The state needed to *continue* training (optimizer, scheduler, grad scaler, RNG, history) is not
shipped: :func:`course_pkg.train.fit` keeps it in a separate ``<name>.resume.pt`` file next to the
checkpoint (see :func:`resume_path`).
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from ._io import atomic_write

FORMAT = "course_pkg.checkpoint/1"
_SHOW = 5  # how many key names an error message lists before "... and N more"


class CheckpointError(RuntimeError):
    """A checkpoint file could not be used; the message says why and what to do."""


# --------------------------------------------------------------------------------------------
# saving
# --------------------------------------------------------------------------------------------
def _plain(value: Any, where: str = "meta") -> Any:
    """Check that ``value`` is made of types ``weights_only=True`` accepts (and JSON mostly)."""
    # Exact builtin types only: a str/float subclass (torch.__version__, numpy.float64) would be
    # pickled as its class, which weights_only=True then refuses to load.
    if value is None:
        return None
    for kind in (bool, int, float, str):
        if isinstance(value, kind):
            return kind(value)
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: keys must be strings, got {k!r}")
            out[k] = _plain(v, f"{where}.{k}")
        return out
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    raise TypeError(
        f"{where} is a {type(value).__name__}; checkpoint metadata may only hold numbers, "
        "strings, booleans, None, lists and dicts"
    )


def _versions() -> dict[str, str]:
    from . import __version__

    return {
        "torch": str(torch.__version__),
        "course_pkg": __version__,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def state_dict_of(model: nn.Module) -> dict[str, torch.Tensor]:
    """``model.state_dict()`` of the underlying network (unwraps DDP and ``torch.compile``)."""
    while True:
        if hasattr(model, "_orig_mod"):  # torch.compile wrapper
            model = model._orig_mod
        elif isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model.state_dict()


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module | Mapping[str, torch.Tensor],
    meta: Mapping[str, Any] | None = None,
    half: bool = True,
) -> Path:
    """Write ``model``'s weights and ``meta`` to ``path``; returns the path.

    ``half=True`` stores floating-point tensors as fp16 (half the size; :func:`load_checkpoint`
    casts them back to fp32).  Integer buffers such as BatchNorm's ``num_batches_tracked`` keep
    their dtype.  ``meta`` may hold numbers, strings, lists and dicts; the torch and course_pkg
    versions and the date are added.  The file is written to a temporary name and renamed, so an
    interrupted save never leaves a truncated checkpoint behind.
    """
    state = model if isinstance(model, Mapping) else state_dict_of(model)
    tensors = {}
    for name, t in state.items():
        t = t.detach().to("cpu")
        if half and t.is_floating_point():
            t = t.half()
        tensors[name] = t.contiguous().clone()
    record = dict(_plain(dict(meta or {})))
    record.update(_versions())
    record["dtype"] = "float16" if half else "as-trained"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_save({"format": FORMAT, "state_dict": tensors, "meta": record}, path)
    return path


def _atomic_save(obj: Any, path: Path) -> None:
    atomic_write(path, lambda f: torch.save(obj, f))


def resume_path(checkpoint_path: str | os.PathLike) -> Path:
    """Where :func:`course_pkg.train.fit` keeps the optimizer/scheduler/RNG state: ``x.resume.pt``."""
    p = Path(checkpoint_path)
    return p.with_name(p.stem + ".resume.pt")


# --------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------
def safe_load(path: str | os.PathLike, what: str = "checkpoint") -> Any:
    """``torch.load(path, weights_only=True)`` with every failure turned into a CheckpointError."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(
            f"no {what} at {path}: check the path (train one with `course train ... --out {path.name}`,"
            " or use a shipped one: `course pretrained` lists them)"
        )
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a {what} file: give the path of the .pt file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes): the save was interrupted; save it again")
    try:
        with warnings.catch_warnings():  # torch warns about the pickle protocol of raw pickles
            warnings.filterwarnings("ignore", message=".*pickle protocol", category=UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 -- every failure becomes one clear message
        raise CheckpointError(_explain_load_failure(path, err, what)) from None


def _explain_load_failure(path: Path, err: Exception, what: str) -> str:
    text = str(err)
    if "Weights only load failed" in text or "WeightsUnpickler" in text:
        match = re.search(r"GLOBAL ([\w.]+)", text)
        culprit = match.group(1) if match else None
        if (culprit and culprit.startswith("torch.nn.modules")) or _pickled_module(path):
            return (
                f"{path} holds a whole pickled network ({culprit}), not a state_dict. Loading it "
                "would mean running pickled code, which course_pkg never does. Re-save it with "
                "`torch.save(model.state_dict(), path)` or `course_pkg.checkpoint.save_checkpoint`."
            )
        asks = f" (it asks to import `{culprit}`)" if culprit else ""
        return (
            f"{path} is a pickle that would run Python code when loaded{asks}; refused "
            "(checkpoints are loaded with weights_only=True and may only hold tensors, numbers, "
            "strings, lists and dicts). Save a plain state_dict instead; do not load this file "
            "unless you trust whoever made it."
        )
    if "zip archive" in text or "central directory" in text or isinstance(err, (EOFError, KeyError)):
        return (
            f"{path} is not a readable PyTorch file (truncated, corrupted, or not saved with "
            f"torch.save): {text.splitlines()[0] if text else type(err).__name__}. Copy or save it again."
        )
    first = text.splitlines()[0] if text else ""
    return f"could not read {what} {path}: {type(err).__name__}: {first}. Save it again with torch.save."


def _pickled_module(path: Path) -> bool:
    """Does the pickle look like a whole ``nn.Module``? (Only reads bytes; never unpickles.)"""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                names = [n for n in archive.namelist() if n.endswith("data.pkl")]
                blob = archive.read(names[0]) if names else b""
        else:
            with open(path, "rb") as f:
                blob = f.read(50_000_000)
    except (OSError, zipfile.BadZipFile):
        return False
    return b"_modules" in blob and b"_parameters" in blob


def _as_state_dict(obj: Any, source: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Accept our format or a bare state_dict; refuse anything else with a reason."""
    meta: dict[str, Any] = {}
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        meta = dict(obj.get("meta") or {})
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"{source} holds a {type(obj).__name__}, not a state_dict (a dict from parameter names "
            "to tensors). Save one with `torch.save(model.state_dict(), path)`."
        )
    if not obj:
        raise CheckpointError(f"{source} holds an empty dict: no weights in it. Save the model again.")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(
            f"{source} is a dict but not a state_dict: {_names(bad)} "
            f"{'is not a tensor' if len(bad) == 1 else 'are not tensors'} (keys found: "
            f"{_names(list(obj))}). If it is a training checkpoint, save `model.state_dict()` itself."
        )
    return dict(obj), meta


def _names(keys: list[Any]) -> str:
    shown = ", ".join(repr(k) for k in keys[:_SHOW])
    more = len(keys) - _SHOW
    return shown + (f" ... and {more} more" if more > 0 else "")


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint: returns ``(state_dict, meta)`` with floating tensors cast to fp32.

    Always ``weights_only=True``. A bare ``state_dict`` file is accepted too (``meta`` is then
    ``{}``). Raises :class:`CheckpointError` with a clear message for anything else.
    """
    state, meta = _as_state_dict(safe_load(path), str(path))
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}
    return state, meta


def check_compatible(model: nn.Module, state: Mapping[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Raise CheckpointError naming missing / unexpected keys and shape mismatches, if any."""
    expected = state_dict_of(model)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if not (missing or unexpected or shapes):
        return
    lines = [f"{source} does not fit this {type(model).__name__}:"]
    if missing:
        lines.append(f"  missing from the checkpoint ({len(missing)}): {_names(missing)}")
    if unexpected:
        lines.append(f"  not in the model ({len(unexpected)}): {_names(unexpected)}")
    if shapes:
        more = f" ... and {len(shapes) - _SHOW} more" if len(shapes) > _SHOW else ""
        lines.append(f"  shapes differ ({len(shapes)}): " + "; ".join(shapes[:_SHOW]) + more)
    if any(k.startswith("module.") for k in unexpected):
        lines.append("  (keys start with 'module.': it was saved from a DDP/DataParallel wrapper; "
                     "save model.module.state_dict() instead)")
    lines.append("  Build the same architecture (model name and keyword arguments) as the one saved.")
    raise CheckpointError("\n".join(lines))


def load_into(model: nn.Module, path_or_state: str | os.PathLike | Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Strictly load weights (a checkpoint path or a state_dict) into ``model``; returns the meta.

    Tensors are cast to each parameter's own dtype (fp16 checkpoints into fp32 models).
    """
    if isinstance(path_or_state, Mapping):
        state, meta = _as_state_dict(path_or_state, "the given state_dict")
        source = "the given state_dict"
    else:
        state, meta = load_checkpoint(path_or_state)
        source = str(path_or_state)
    check_compatible(model, state, source)
    target = state_dict_of(model)
    state = {k: v.to(target[k].dtype) for k, v in state.items()}
    inner = model
    while hasattr(inner, "_orig_mod") or isinstance(inner, nn.parallel.DistributedDataParallel):
        inner = inner._orig_mod if hasattr(inner, "_orig_mod") else inner.module
    inner.load_state_dict(state, strict=True)
    return meta


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the network a checkpoint was saved from (``meta['model']``/``['model_kwargs']``).

    Returns ``(model in eval mode on device, meta)``.
    """
    state, meta = load_checkpoint(path)
    name = meta.get("model")
    if not name:
        raise CheckpointError(
            f"{path} has no model name in its metadata (a bare state_dict?): build the network "
            "yourself with course_pkg.models.create(...) and call course_pkg.checkpoint.load_into(model, path)"
        )
    from .models import create

    try:
        model = create(name, **dict(meta.get("model_kwargs") or {}))
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{path} was saved from model {name!r} which cannot be built here: {err}") from None
    load_into(model, state)
    return model.to(device).eval(), meta
