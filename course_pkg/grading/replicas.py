"""The grader's side of the handover: a student's handed-over data read back as *replicas*.

A test cell of a notebook graded by ``course grade`` hands its answers over as data
(:mod:`course_pkg.checks.handover`, in the sandbox).  Here, in the grader's own process, that data
becomes a namespace for the hidden tests: :class:`ReplicaClass` and :class:`ReplicaFunction` stand
for the student's classes and functions and answer exactly the calls the sandbox made;
:class:`Replica` is a student's module rebuilt from its handed-over layers (shapes only, on the
meta device), whose forward passes replay the sandbox's records.  A call the sandbox did not make
raises :class:`NotRecorded`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..checks.handover import call_key


class NotRecorded(RuntimeError):
    """The checks asked for a call the notebook did not hand over."""


def _raise(err: dict[str, str]) -> None:
    name, message = err.get("__error__", "Exception"), err.get("message", "")
    if name == "NotImplementedError":
        raise NotImplementedError(message)
    raise type(str(name), (Exception,), {})(message)


def _value(out: Any) -> Any:
    if isinstance(out, dict) and "__error__" in out:
        _raise(out)
    return out


class _Replay:
    """Mixin: ``forward`` answers from the recorded calls of the sub-module at ``_path``."""

    _root: "Replica"
    _path: str

    def forward(self, *args: Any, **kwargs: Any) -> Any:  # noqa: D102
        root = self._root
        rec = root._calls.get((self._path, call_key(args, kwargs or None, self.training)))
        if rec is None:
            raise NotRecorded(f"{self._path or type(self).__name__} was not run on this input in the sandbox")
        for path, shape in rec.get("trace", []):
            sub = root._lookup(path)
            if sub is not None and shape is not None:
                for hook in list(sub._forward_hooks.values()):
                    hook(sub, args, torch.empty(shape))
        return _value(rec["out"])


def _leaf(spec: dict[str, Any], root: "Replica", path: str) -> nn.Module:
    base = getattr(nn, spec["leaf"])
    cls = type(spec["leaf"], (_Replay, base), {})
    args = dict(spec["args"])
    if base in (nn.Conv2d, nn.Linear, nn.BatchNorm2d):
        args["device"] = "meta"  # shapes only: a forged "huge" layer costs the grader no memory
    module = cls(**args)
    object.__setattr__(module, "_root", root)  # not a sub-module
    object.__setattr__(module, "_path", path)
    return module


class Replica(_Replay, nn.Module):
    """A student's module rebuilt from its handed-over layers; its forward passes replay the
    sandbox's records.  ``type(replica).__name__`` is the student's class name."""

    def __init__(self, spec: dict[str, Any], calls: list[dict[str, Any]], root: "Replica | None" = None,
                 path: str = "") -> None:
        super().__init__()
        object.__setattr__(self, "_root", root or self)  # not a sub-module
        object.__setattr__(self, "_path", path)
        if root is None:
            self._calls = {(c["path"], c["key"]): c for c in calls}
        for name, value in spec.get("attrs", {}).items():
            if not hasattr(self, name):
                setattr(self, name, value)
        for name, shape in spec.get("params", {}).items():
            self.register_parameter(name, nn.Parameter(torch.empty(shape, device="meta"), requires_grad=False))
        for name, child in spec.get("children", []):
            sub_path = f"{path}.{name}" if path else name
            if child.get("leaf"):
                sub = _leaf(child, self._root, sub_path)
            else:
                sub = type(child["cls"], (Replica,), {})(child, [], self._root, sub_path)
            self.add_module(name, sub)

    def _lookup(self, path: str) -> nn.Module | None:
        return dict(self.named_modules()).get(path)


class ReplicaClass:
    """Stands for the student's class: calling it with arguments the sandbox built it with gives
    the :class:`Replica` of that object (or raises the error the student's constructor raised)."""

    def __init__(self, record: dict[str, Any]) -> None:
        self.__name__ = self.__qualname__ = str(record.get("name", "class"))
        self.__module__ = str(record.get("module", ""))
        self._built = {call_key(c["args"], c["kwargs"]): c for c in record.get("constructions", [])}

    def __call__(self, *args: Any, **kwargs: Any) -> Replica:
        entry = self._built.get(call_key(args, kwargs))
        if entry is None:
            raise NotRecorded(f"{self.__name__}{args} was not built in the sandbox")
        if "error" in entry:
            _raise(entry["error"])
        return type(entry["spec"]["cls"], (Replica,), {})(entry["spec"], entry["calls"])


class ReplicaFunction:
    """Stands for the student's function: answers the calls the sandbox made."""

    def __init__(self, record: dict[str, Any]) -> None:
        self.__name__ = self.__qualname__ = str(record.get("name", "function"))
        self._calls = {c["key"]: c for c in record.get("calls", [])}

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        rec = self._calls.get(call_key(args, kwargs))
        if rec is None:
            raise NotRecorded(f"{self.__name__} was not called with these arguments in the sandbox")
        return _value(rec["out"])


def load(path: str | os.PathLike) -> dict[str, Any]:
    """A handed-over file as a namespace for the verdict code (``weights_only=True``)."""
    record = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(record, dict):
        raise ValueError(f"{Path(path).name}: not a handover record")
    namespace: dict[str, Any] = {}
    for name, value in record.items():
        if not isinstance(name, str) or name.startswith("__"):
            continue
        if isinstance(value, dict) and value.get("__kind__") == "class":
            namespace[name] = ReplicaClass(value)
        elif isinstance(value, dict) and value.get("__kind__") == "function":
            namespace[name] = ReplicaFunction(value)
        else:
            namespace[name] = value
    return namespace
