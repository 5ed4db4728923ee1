"""What a student's notebook hands to the grader: data only, never code.

When ``course grade`` runs a notebook, the student's code runs in a sandbox and the graded test
cells only *hand over* what the grader needs: answers (numbers, dicts, tensors), and for classes
and functions the results of calling them on fixed inputs — for a network, the layers it is made
of (type, channels, kernel, stride, padding, parameter shapes), its output and the output shape
of every sub-module for the probe inputs, and its output once more with fixed public weights
(:func:`fixed_weights_output`, which the grader recomputes).  Everything is written with
``torch.save`` and read by the grader with ``torch.load(weights_only=True)``: tensors, numbers,
strings, lists and dicts.

The verdicts are computed afterwards by the grader in a process of its own, from *replicas*
(:mod:`course_pkg.grading.replicas`) that answer exactly the calls the student's objects answered
in the sandbox.  So the same checks (:mod:`course_pkg.checks`) explain a student's mistakes, while
nothing the student's code does to its own process (patching ``checks``, IPython hooks, ...) can
change a verdict: faking the handed-over data would take computing what a correct solution computes.

Students never need to call this module themselves; the test cells do.
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch
import torch.nn as nn

from .._io import atomic_write

#: The folder the test cells write to (set by the sandbox; unset when a student runs the notebook).
ENV = "COURSE_HANDOVER"
_current: str | None = None
MAX_TENSOR = 2_000_000  # elements per recorded output: keep the files small
MAX_VALUES = 100_000  # values per handed-over answer or construction argument
MAX_WEIGHTS = 16_000_000  # elements of one built module's weights (state_dict), when a plan hands them over


# --------------------------------------------------------------------------------------------
# Probe inputs and call keys (shared by both sides)
# --------------------------------------------------------------------------------------------
def probe_input(*shape: int) -> torch.Tensor:
    """The input the checks feed to a student's network of this shape (fixed, public seed)."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(0))


def _digest(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        t = value.detach().to("cpu").contiguous()
        return ("tensor", str(t.dtype), tuple(t.shape), hashlib.sha1(t.numpy().tobytes()).hexdigest()
                if t.dtype != torch.bfloat16 else hashlib.sha1(t.float().numpy().tobytes()).hexdigest())
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_digest(v) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple(sorted((repr(k), _digest(v)) for k, v in value.items())))
    return ("value", repr(value))


def call_key(args: Sequence[Any], kwargs: dict[str, Any] | None = None, training: bool | None = None) -> str:
    """One string per call: the same arguments (tensors by content) give the same key."""
    return hashlib.sha1(repr((_digest(tuple(args)), _digest(dict(kwargs or {})), training)).encode()).hexdigest()


# --------------------------------------------------------------------------------------------
# Sandbox side: turn objects into plain data
# --------------------------------------------------------------------------------------------
def _plain(value: Any, depth: int = 0, budget: list[int] | None = None) -> Any:
    """``value`` as data ``torch.load(weights_only=True)`` accepts; anything else as a description.

    At most ``MAX_VALUES`` values per call (``budget``): a small list that holds itself many
    times over would otherwise unfold into millions (the grader refuses such a record anyway)."""
    budget = [MAX_VALUES] if budget is None else budget
    budget[0] -= 1
    if budget[0] < 0:
        return {"__unsupported__": "too many values to hand over"}
    if depth > 6:
        return {"__unsupported__": "nested too deeply"}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, torch.Tensor):
        t = value.detach().to("cpu")
        if t.numel() > MAX_TENSOR:
            return {"__unsupported__": f"tensor of shape {tuple(t.shape)} (too large to hand over)",
                    "__shape__": list(t.shape)}
        return t.clone().contiguous()
    if isinstance(value, (list, tuple)):
        items = [_plain(v, depth + 1, budget) for v in value[:10_000]]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, dict):
        return {(k if isinstance(k, (str, int, float, bool)) else repr(k)): _plain(v, depth + 1, budget)
                for k, v in list(value.items())[:10_000]}
    if isinstance(value, torch.Size):
        return tuple(value)
    try:  # numpy scalars and the like
        import numpy as np

        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return _plain(torch.as_tensor(value), depth, budget)
    except Exception:  # noqa: BLE001
        pass
    return {"__unsupported__": type(value).__name__}


def _error(err: BaseException) -> dict[str, str]:
    first = str(err).splitlines()[0] if str(err) else ""
    return {"__error__": type(err).__name__, "message": first[:500]}


_LEAVES: dict[type, tuple[str, ...]] = {
    nn.Conv2d: ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups",
                "padding_mode"),
    nn.Linear: ("in_features", "out_features"),
    nn.MaxPool2d: ("kernel_size", "stride", "padding", "dilation", "ceil_mode"),
    nn.AvgPool2d: ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad"),
    nn.AdaptiveAvgPool2d: ("output_size",),
    nn.AdaptiveMaxPool2d: ("output_size",),
    nn.BatchNorm2d: ("num_features", "eps", "momentum", "affine", "track_running_stats"),
    nn.LocalResponseNorm: ("size", "alpha", "beta", "k"),
    nn.ReLU: ("inplace",),
    nn.Dropout: ("p",),
    nn.Flatten: ("start_dim", "end_dim"),
    nn.Identity: (),
}


def module_spec(module: nn.Module) -> dict[str, Any]:
    """The layers of ``module`` as data: for the usual torch layers their arguments, for other
    modules their class name, simple attributes, own parameter shapes and named children."""
    for base, fields in _LEAVES.items():
        if isinstance(module, base):
            args = {f: _plain(getattr(module, f)) for f in fields if hasattr(module, f)}
            if base in (nn.Conv2d, nn.Linear):
                args["bias"] = module.bias is not None
            return {"leaf": base.__name__, "cls": type(module).__name__, "args": args}
    attrs = {k: _plain(v) for k, v in vars(module).items()
             if not k.startswith("_") and k != "training" and isinstance(v, (bool, int, float, str, tuple))}
    return {"leaf": None, "cls": type(module).__name__,
            "attrs": attrs,
            "params": {n: list(p.shape) for n, p in module.named_parameters(recurse=False)},
            "children": [(n, module_spec(c)) for n, c in module.named_children()]}


def _first(out: Any) -> Any:
    return out[0] if isinstance(out, (tuple, list)) and out else out


def _record_call(module: nn.Module, x: torch.Tensor, training: bool, children: bool) -> dict[str, Any]:
    """Run ``module(x)``; record its output, the output shape of every sub-module on the way, and
    (``children``) each direct child applied to ``x`` itself."""
    trace: list[tuple[str, list[int]]] = []
    hooks = []
    for path, sub in module.named_modules():
        if path:
            hooks.append(sub.register_forward_hook(
                lambda _m, _i, out, path=path: trace.append(
                    (path, list(_first(out).shape)) if isinstance(_first(out), torch.Tensor) else (path, None))))
    module.train(training)
    record: dict[str, Any] = {"key": call_key([x], None, training), "path": ""}
    try:
        with torch.no_grad():
            record["out"] = _plain(module(x))
    except Exception as err:  # noqa: BLE001 -- a student's error is data too
        record["out"] = _error(err)
    finally:
        for h in hooks:
            h.remove()
    record["trace"] = trace
    records = [record]
    if children:
        for name, child in module.named_children():
            child.train(training)
            rec: dict[str, Any] = {"key": call_key([x], None, training), "path": name, "trace": []}
            try:
                with torch.no_grad():
                    rec["out"] = _plain(child(x))
            except Exception as err:  # noqa: BLE001
                rec["out"] = _error(err)
            records.append(rec)
    return records


def _weights(module: nn.Module) -> dict[str, Any]:
    """``module.state_dict()`` as plain tensors, or why not (more than ``MAX_WEIGHTS`` elements)."""
    state = module.state_dict()
    total = sum(t.numel() for t in state.values() if isinstance(t, torch.Tensor))
    if total > MAX_WEIGHTS:
        return {"__unsupported__": f"{total:,} weights (more than {MAX_WEIGHTS:,} to hand over)"}
    return {k: v.detach().to("cpu").clone().contiguous() for k, v in state.items() if isinstance(v, torch.Tensor)}


# --------------------------------------------------------------------------------------------
# Fixed weights: the same network function computed on both sides
# --------------------------------------------------------------------------------------------
_FIXED_SEED = "course_pkg fixed weights v1"


def fixed_value(key: str, like: torch.Tensor) -> torch.Tensor:
    """The public value the checks give the weight or buffer named ``key`` (a ``state_dict`` key,
    the shape of ``like``) before they recompute a network's output: He-scaled normal values for
    weights of two or more dimensions, values near 1 for scales and variances, small values for
    biases and means.  The same key and shape give the same values everywhere."""
    seed = int.from_bytes(hashlib.sha256(f"{_FIXED_SEED}:{key}".encode()).digest()[:8], "little") >> 1
    v = torch.randn(tuple(like.shape), generator=torch.Generator().manual_seed(seed))
    leaf = key.rpartition(".")[2]
    if like.ndim > 1:
        return v * math.sqrt(2.0 / max(1, like[0].numel()))
    if leaf == "running_var":
        return 1 + 0.1 * v.abs()
    if leaf == "weight":
        return 1 + 0.1 * v
    return 0.1 * v


def fixed_weights_output(module: nn.Module, x: torch.Tensor) -> tuple[list[tuple[str, list[int]]], Any]:
    """Give every floating-point tensor of ``module.state_dict()`` its :func:`fixed_value` (in
    place: pass a copy to keep the weights) and run ``module`` on ``x`` in eval mode; return the
    keys and shapes set, and the output.  The grader computes the course's network with the same
    values, matched to these keys (:func:`course_pkg.checks.model.recomputed_output_findings`): an
    output that the network's own layers did not compute (forged, or a forward that skips or
    reorders layers) differs."""
    filled = []
    with torch.no_grad():
        for key, tensor in module.state_dict().items():
            if isinstance(tensor, torch.Tensor) and tensor.is_floating_point():
                tensor.copy_(fixed_value(key, tensor))
                filled.append((key, list(tensor.shape)))
        return filled, module.eval()(x)


def _fixed_record(module: nn.Module, x: torch.Tensor) -> dict[str, Any]:
    try:
        filled, out = fixed_weights_output(module, x)
    except Exception as err:  # noqa: BLE001 -- a student's error is data too
        return {"key": call_key([x], None, False), "out": _error(err), "filled": []}
    return {"key": call_key([x], None, False), "out": _plain(out), "filled": filled[:10_000]}


def module_class(constructions: Iterable[tuple[tuple, dict]], inputs: Callable[[tuple, dict], list[torch.Tensor]],
                 modes: Sequence[bool] = (False,), children: bool = False,
                 weights: bool = False,
                 fixed_input: Callable[[tuple, dict], torch.Tensor] | None = None) -> Callable[[Any], dict[str, Any]]:
    """A plan for :func:`give`: build the class with each ``(args, kwargs)``, record its layers
    and its forward pass on ``inputs(args, kwargs)`` in each training mode of ``modes``; with
    ``weights`` also its weights, so that the grader can compute itself what those layers give
    and compare it with the recorded outputs (a forged output fails).  With ``fixed_input``, last,
    the output on ``fixed_input(args, kwargs)`` with :func:`fixed_value` weights (for networks too
    large to hand their weights over; the grader recomputes it the same way)."""

    def plan(cls: Any) -> dict[str, Any]:
        built = []
        for args, kwargs in constructions:
            entry: dict[str, Any] = {"args": _plain(tuple(args)), "kwargs": _plain(dict(kwargs))}
            try:
                torch.manual_seed(0)
                obj = cls(*args, **kwargs)
            except BaseException as err:  # noqa: BLE001 -- NotImplementedError included
                if isinstance(err, (KeyboardInterrupt, SystemExit)):
                    raise
                entry["error"] = _error(err)
                built.append(entry)
                continue
            if not isinstance(obj, nn.Module):
                entry["error"] = {"__error__": "TypeError", "message": f"{type(obj).__name__} is not an nn.Module"}
                built.append(entry)
                continue
            entry["spec"] = module_spec(obj)
            if weights:
                entry["state"] = _weights(obj)
            entry["calls"] = [rec for x in inputs(tuple(args), dict(kwargs)) for mode in modes
                              for rec in _record_call(obj, x, mode, children)]
            if fixed_input is not None:  # last: it overwrites the weights
                entry["fixed"] = _fixed_record(obj, fixed_input(tuple(args), dict(kwargs)))
            built.append(entry)
        return {"__kind__": "class", "name": getattr(cls, "__name__", type(cls).__name__),
                "module": getattr(cls, "__module__", "") or "", "constructions": built}

    return plan


def function(calls: Iterable[tuple[tuple, dict]]) -> Callable[[Any], dict[str, Any]]:
    """A plan for :func:`give`: call the function with each ``(args, kwargs)`` and record the result."""

    def plan(fn: Any) -> dict[str, Any]:
        done = []
        for args, kwargs in calls:
            rec: dict[str, Any] = {"key": call_key(args, kwargs)}
            try:
                torch.manual_seed(0)
                rec["out"] = _plain(fn(*args, **kwargs))
            except Exception as err:  # noqa: BLE001
                rec["out"] = _error(err)
            done.append(rec)
        return {"__kind__": "function", "name": getattr(fn, "__name__", type(fn).__name__), "calls": done}

    return plan


def inception_class(naive: bool = False) -> Callable[[Any], dict[str, Any]]:
    """The plan for an inception module class: built as each Table 1 module (3a ... 5b; naive:
    ``cls(in_channels, ch1x1, ch3x3, ch5x5)``), run with each branch on the checks' probe input;
    its weights handed over too (the grader recomputes each branch's output from them)."""
    from ..models.googlenet import table1_modules

    rows = [(cin, f) for _, cin, f, _ in table1_modules()]
    constructions = [(((cin, f[0], f[2], f[4]) if naive else (cin, *f)), {}) for cin, f in rows]
    return module_class(constructions, lambda args, kwargs: [probe_input(2, args[0], 7, 7)], children=True,
                        weights=True)


def network_class(constructions: Sequence[tuple[tuple, dict]],
                  input_size: Sequence[int] | Callable[[tuple], Sequence[int]], batch: int = 1,
                  modes: Sequence[bool] = (False,)) -> Callable[[Any], dict[str, Any]]:
    """The plan for a network class: built with each ``(args, kwargs)``, run on the checks' probe
    input of ``batch`` images of ``input_size`` (or ``input_size(args)``) in each mode of ``modes``;
    then, with :func:`fixed_value` weights, on the probe input of one image (what
    :func:`course_pkg.checks.diagnose_model` recomputes)."""

    def size(args: tuple) -> Sequence[int]:
        return input_size(args) if callable(input_size) else input_size

    return module_class(constructions, lambda args, kwargs: [probe_input(batch, *size(args))], modes=modes,
                        fixed_input=lambda args, kwargs: probe_input(1, *size(args)))


def begin(cell: str) -> None:
    """Called by the sandbox before each graded cell: what follows is handed over as ``cell``."""
    global _current
    _current = cell


def give(*names: str, **plans: Callable[[Any], dict[str, Any]]) -> None:
    """Hand the notebook's ``names`` (data) and ``plans`` (name -> how to probe that class or
    function) over to the grader.  Outside the grader (a student running the notebook) it only
    checks that the names exist."""
    caller = sys._getframe(1).f_globals
    record: dict[str, Any] = {}
    missing = [name for name in (*names, *plans) if name not in caller]
    for name in (*names, *plans):
        if name in caller:
            record[name] = plans[name](caller[name]) if name in plans else _plain(caller[name])
    record["__missing__"] = missing
    folder = os.environ.get(ENV)
    if folder and _current:
        atomic_write(Path(folder) / f"{_current}.pt", lambda fh: torch.save(record, fh))
    elif missing:
        print(f"not defined yet: {', '.join(missing)} — run the cells above first")
