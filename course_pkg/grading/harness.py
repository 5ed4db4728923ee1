"""Inside the sandbox: execute a notebook cell by cell and report what happened as data.

    python -m course_pkg.grading.harness NOTEBOOK RESULTS_DIR CELL_TIMEOUT

A cell that crashes the kernel (``os._exit``, a segfault, running out of memory) or runs past its
time limit costs that cell only: the kernel is restarted, the cells before it that ran fine are
run again (graded cells excepted: what they handed over is already saved) and execution goes on
with the next cell.  After every cell ``results.json`` is rewritten, so whatever happens later,
what ran is kept.  This process shares the sandbox with the student's code: the trusted side
treats everything it writes as untrusted data.

It reports on a channel, a pipe whose descriptor :mod:`course_pkg.grading.sandbox` passes in
``$COURSE_GRADER_FD`` (:class:`Receiver` is the grader's end): first a handshake, once its own
imports and the one the test cells make (:mod:`course_pkg.checks.handover`) have worked, before
any student code runs; then ``results.json`` and the handed-over files after every cell.  Nothing
needs the sandbox's disk, so a student who fills it loses only their own files.  Run by hand (no
channel), it writes ``results.json`` into RESULTS_DIR instead.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
import threading
import time
from pathlib import Path

MAX_RESTARTS = 4
CHANNEL_ENV = "COURSE_GRADER_FD"
HELLO = "hello"  # the first message: the harness's imports worked
MAX_FRAME_BYTES = 256 << 20
MAX_FILES = 500
_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,150}")


def write_frame(fd: int, name: str, payload: bytes) -> None:
    """One message on the channel: a JSON header line, then the payload (the harness's side)."""
    data = json.dumps({"name": name, "size": len(payload)}).encode() + b"\n" + payload
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class Receiver(threading.Thread):
    """Reads the channel: the handshake, then files, written into ``dest`` within bounds.  All of it
    comes from inside the sandbox, so all of it is untrusted: names, sizes and bytes."""

    def __init__(self, fd: int, dest: Path, max_bytes: int):
        super().__init__(daemon=True)
        self.stream, self.dest, self.max_bytes = os.fdopen(fd, "rb"), dest, max_bytes
        self.hello: dict | None = None
        self.problem = ""
        self.sizes: dict[str, int] = {}

    def run(self) -> None:
        with self.stream:
            while not self.problem:
                header = self.stream.readline(400)
                if not header:
                    return
                try:
                    head = json.loads(header)
                    name, size = str(head["name"]), int(head["size"])
                except (ValueError, KeyError, TypeError):
                    self.problem = "a malformed message on the channel"
                    break
                if not _NAME.fullmatch(name) or not 0 <= size <= MAX_FRAME_BYTES:
                    self.problem = f"a refused message on the channel ({name[:40]!r}, {size} bytes)"
                    break
                payload = self.stream.read(size)
                if len(payload) < size:
                    return
                self._keep(name, payload)
            while self.stream.read(1 << 20):  # drain, so the writer never blocks
                pass

    def _keep(self, name: str, payload: bytes) -> None:
        if name == HELLO and self.hello is None:
            try:
                self.hello = dict(json.loads(payload))
            except (ValueError, TypeError):
                self.hello = {}
            return
        total = sum(self.sizes.values()) - self.sizes.get(name, 0) + len(payload)
        if total > self.max_bytes or (name not in self.sizes and len(self.sizes) >= MAX_FILES):
            self.problem = f"more than {self.max_bytes} bytes or {MAX_FILES} files sent back; the rest was dropped"
            return
        self.sizes[name] = len(payload)
        tmp = self.dest / f".{name}.part"
        tmp.write_bytes(payload)
        os.replace(tmp, self.dest / name)


def _read_regular(path: Path, limit: int) -> bytes | None:
    """A file the student's code may have swapped for a link, a FIFO or a huge file: None then."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            return None
        return fh.read(limit + 1)[:limit]


def _handshake() -> int | None:
    """Say on the channel that the harness started, with the course package it imported."""
    import course_pkg
    import course_pkg.checks.handover  # noqa: F401 -- what every test cell imports: it must work here

    os.environ.pop("PYTHONSAFEPATH", None)  # the harness's own imports are done; the kernel may import the student's
    if not os.environ.get(CHANNEL_ENV):
        return None
    fd = int(os.environ.pop(CHANNEL_ENV))
    os.set_inheritable(fd, False)  # the student's processes never get it
    here = os.stat(course_pkg.__file__)  # the same file as the grader's, whatever its path here
    hello = {"course_pkg": str(Path(course_pkg.__file__).resolve()), "file_id": [here.st_dev, here.st_ino],
             "python": sys.version.split()[0]}
    write_frame(fd, HELLO, json.dumps(hello).encode())
    return fd


def main(argv: list[str]) -> int:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    nb_path, results_dir, cell_timeout = Path(argv[0]), Path(argv[1]), int(argv[2])
    channel = _handshake()
    for d in ("HOME", "IPYTHONDIR", "JUPYTER_RUNTIME_DIR", "MPLCONFIGDIR"):
        if os.environ.get(d):
            Path(os.environ[d]).mkdir(parents=True, exist_ok=True)
    nb = nbformat.read(str(nb_path), as_version=4)
    status: dict[int, dict] = {}
    results = results_dir / "results.json"

    sent: dict[str, tuple[int, int]] = {}

    def save() -> None:
        cells = {str(i): {**s, "outputs": nb.cells[i].get("outputs", [])} for i, s in status.items()}
        data = json.dumps({"cells": cells}).encode()
        if channel is None:
            tmp = results.with_suffix(".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, results)
            return
        write_frame(channel, "results.json", data)
        for path in sorted(results_dir.glob("*.pt")) if results_dir.is_dir() else []:
            try:
                info = path.lstat()
            except OSError:
                continue
            if _NAME.fullmatch(path.name) and sent.get(path.name) != (info.st_size, info.st_mtime_ns):
                payload = _read_regular(path, MAX_FRAME_BYTES)
                if payload is not None:
                    write_frame(channel, path.name, payload)
                    sent[path.name] = (info.st_size, info.st_mtime_ns)

    def is_test(cell) -> bool:
        return bool(cell.get("metadata", {}).get("nbgrader", {}).get("grade"))

    code_cells = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    position, restarts = 0, 0
    while position < len(code_cells):
        client = NotebookClient(nb, timeout=cell_timeout, kernel_name="python3", allow_errors=True,
                                interrupt_on_timeout=False, startup_timeout=120,
                                skip_cells_with_tag="course-grader-never-skip",
                                resources={"metadata": {"path": str(nb_path.parent)}})
        try:
            with client.setup_kernel():
                # after a restart: run again what ran fine before (not graded cells, not failures)
                for i in code_cells[:position]:
                    if status.get(i, {}).get("status") == "ok" and not is_test(nb.cells[i]):
                        saved = nb.cells[i].get("outputs", [])
                        client.execute_cell(nb.cells[i], i)
                        nb.cells[i].outputs = saved
                while position < len(code_cells):
                    i = code_cells[position]
                    start = time.monotonic()
                    try:
                        client.execute_cell(nb.cells[i], i)
                    except CellTimeoutError:
                        status[i] = {"status": "timeout", "seconds": time.monotonic() - start,
                                     "reason": f"ran longer than the {cell_timeout} s limit per cell; stopped"}
                        position += 1
                        save()
                        raise
                    except DeadKernelError:
                        status[i] = {"status": "crashed", "seconds": time.monotonic() - start,
                                     "reason": "the kernel died while this cell ran (os._exit, a crash, "
                                               "or out of memory)"}
                        position += 1
                        save()
                        raise
                    errors = [o for o in nb.cells[i].get("outputs", []) if o.get("output_type") == "error"]
                    status[i] = {"status": "error" if errors else "ok", "seconds": time.monotonic() - start}
                    position += 1
                    save()
        except (CellTimeoutError, DeadKernelError, RuntimeError, TimeoutError) as err:
            restarts += 1
            if restarts > MAX_RESTARTS:
                for i in code_cells[position:]:
                    status[i] = {"status": "not run", "reason": f"not run: the kernel was restarted "
                                                                f"{MAX_RESTARTS} times ({type(err).__name__})"}
                save()
                break
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
