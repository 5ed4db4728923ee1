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

import errno
import io
import os
import stat
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

import torch
import torch.nn as nn

from ..checks.handover import MAX_TENSOR, MAX_WEIGHTS, call_key

MAX_HANDOVER_BYTES = 200 << 20  # one handed-over file as written
MAX_UNPACKED_BYTES = 512 << 20  # what a zip file's entries (a torch file's records) unpack to
MAX_ZIP_ENTRIES = 20_000
MAX_NODES = 500_000  # containers and values in one record, shared ones counted each time they are reached
MAX_DEPTH = 64
MAX_ELEMENTS = 50_000_000  # tensor elements in one record


class Refused(ValueError):
    """A file, or the data in it, the grader will not read; the message says why (for the student)."""


def read_untrusted(path: str | os.PathLike, root: str | os.PathLike, max_bytes: int) -> bytes:
    """The bytes of ``path``, a file under the trusted folder ``root`` that hostile code could
    have replaced: no link is followed in any component below ``root``, the file must be a plain
    file (a FIFO would block, ``/dev/zero`` never ends) and is read up to ``max_bytes``.

    Raises FileNotFoundError when it is missing, :class:`Refused` when it is anything else."""
    path, root = Path(path), Path(root)
    parts = path.relative_to(root).parts
    if not parts or any(p in (".", "..") for p in parts):
        raise Refused(f"{path.name}: not a file inside {root}")
    shown = "/".join(parts)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in parts[:-1]:
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = inner
        fh = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY, dir_fd=fd)
    except OSError as err:
        if err.errno == errno.ENOENT:
            raise FileNotFoundError(shown) from None
        if err.errno in (errno.ELOOP, errno.ENOTDIR):
            raise Refused(f"{shown} (or a folder above it) is a link: the grader reads only plain files") from None
        raise Refused(f"{shown} could not be opened ({err.strerror})") from None
    finally:
        os.close(fd)
    try:
        info = os.fstat(fh)
        if not stat.S_ISREG(info.st_mode):
            raise Refused(f"{shown} is not a plain file (a FIFO, a device or a folder): the grader reads only "
                          "plain files")
        if info.st_size > max_bytes:
            raise Refused(f"{shown} holds {info.st_size:,} bytes, more than the {max_bytes:,} the grader reads")
        chunks, total = [], 0
        while block := os.read(fh, min(1 << 20, max_bytes + 1 - total)):
            total += len(block)
            chunks.append(block)
            if total > max_bytes:
                raise Refused(f"{shown} grew past the {max_bytes:,} bytes the grader reads while it was read")
        return b"".join(chunks)
    finally:
        os.close(fh)


def check_zip(source: bytes | BinaryIO, name: str, max_unpacked: int | None = None) -> None:
    """Refuse a zip container (what ``torch.save`` writes) whose entries unpack to more than
    ``max_unpacked`` bytes (default ``MAX_UNPACKED_BYTES``) or that has too many entries: a few MB
    can unpack to GBs."""
    max_unpacked = max_unpacked or MAX_UNPACKED_BYTES
    try:
        with zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
        raise Refused(f"{name} is not a readable zip/PyTorch file ({err})") from None
    if len(infos) > MAX_ZIP_ENTRIES:
        raise Refused(f"{name} holds {len(infos):,} entries (at most {MAX_ZIP_ENTRIES:,})")
    total = sum(i.file_size for i in infos)
    if total > max_unpacked:
        raise Refused(f"{name} unpacks to {total / 2**20:,.0f} MB, more than the {max_unpacked >> 20} MB the grader "
                      "loads")


def check_tree(record: Any, name: str) -> None:
    """Refuse a loaded record too large to walk: more than ``MAX_NODES`` values (a shared list
    counts each time it is reached, as the grader's own walks reach it), nested deeper than
    ``MAX_DEPTH``, or tensors larger than the handover writes."""
    stack: list[tuple[Any, int]] = [(record, 0)]
    nodes = elements = 0
    while stack:
        value, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES or depth > MAX_DEPTH:
            raise Refused(f"{name}: the handed-over data is nested too deeply or holds too many values "
                          f"(at most {MAX_NODES:,} values, {MAX_DEPTH} levels)")
        if isinstance(value, torch.Tensor):
            elements += value.numel()
            if value.numel() > max(MAX_TENSOR, MAX_WEIGHTS) or elements > MAX_ELEMENTS:
                raise Refused(f"{name}: a handed-over tensor of shape {tuple(value.shape)} is larger than the "
                              "handover writes")
        elif isinstance(value, dict):
            stack.extend((v, depth + 1) for item in value.items() for v in item)
        elif isinstance(value, (list, tuple)):
            stack.extend((v, depth + 1) for v in value)


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
                    hook(sub, args, torch.empty(shape, device="meta"))  # shapes only
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
    sandbox's records.  ``type(replica).__name__`` is the student's class name.  With ``state``
    (its handed-over weights) the layers hold those weights instead of shapes only, so that the
    checks can compute themselves what the layers give and compare it with the replayed outputs."""

    #: What :func:`course_pkg.checks.model.recomputed_output_findings` reads: the output the
    #: sandbox recorded with the checks' fixed weights (:func:`course_pkg.checks.handover.fixed_weights_output`).
    handed_over = True

    def __init__(self, spec: dict[str, Any], calls: list[dict[str, Any]], root: "Replica | None" = None,
                 path: str = "", state: dict[str, Any] | None = None, fixed: dict[str, Any] | None = None) -> None:
        super().__init__()
        object.__setattr__(self, "_root", root or self)  # not a sub-module
        object.__setattr__(self, "_path", path)
        object.__setattr__(self, "fixed_record", fixed if isinstance(fixed, dict) else None)
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
        if root is None and isinstance(state, dict) and "__unsupported__" not in state:
            self._load_weights(state)

    def _load_weights(self, state: dict[str, Any]) -> None:
        """Put the handed-over tensors in place of the shapes-only ones, each where its name and
        shape match (the rest stays on the meta device: the checks then say it was not handed over)."""
        own = dict(self.named_parameters())
        own.update(dict(self.named_buffers()))
        for name, tensor in state.items():
            if not isinstance(tensor, torch.Tensor) or name not in own or tuple(tensor.shape) != tuple(own[name].shape):
                continue
            owner, _, leaf = name.rpartition(".")
            module = self.get_submodule(owner) if owner else self
            if leaf in module._parameters:
                module._parameters[leaf] = nn.Parameter(tensor.float(), requires_grad=False)
            elif leaf in module._buffers:
                module._buffers[leaf] = tensor

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
        return type(entry["spec"]["cls"], (Replica,), {})(entry["spec"], entry["calls"], state=entry.get("state"),
                                                          fixed=entry.get("fixed"))


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


def load(path: str | os.PathLike, root: str | os.PathLike | None = None) -> dict[str, Any]:
    """A handed-over file as a namespace for the verdict code (``weights_only=True``).

    The file is hostile (:func:`read_untrusted` below ``root``, default its folder): bounded in
    bytes as written and as unpacked, and in values and depth once loaded; :class:`Refused` says
    why not."""
    path = Path(path)
    data = read_untrusted(path, root if root is not None else path.parent, MAX_HANDOVER_BYTES)
    if not data.startswith(b"PK\x03\x04"):
        raise Refused(f"{path.name} is not a handover file (the zip format torch.save writes)")
    check_zip(data, path.name)
    record = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    check_tree(record, path.name)
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
