"""The course folder as nbgrader sees it, and nbgrader run as a child process that can be killed.

:class:`Layout` reads the folder names from the course's ``nbgrader_config.py`` (as nbgrader
would); :func:`run_nbgrader` runs ``python -m nbgrader ...`` in its own process group and kills
everything it started when the time limit passes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

CONFIG = "nbgrader_config.py"


class GradingError(RuntimeError):
    """The grading run cannot start (no course folder, unknown assignment, ...)."""


@dataclass
class StudentResult:
    student: str
    status: str = "pending"  # graded | failed | skipped
    reason: str = ""
    seconds: float = 0.0
    score: float | None = None
    max_score: float | None = None
    cells: dict[str, float | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    log: str = ""
    manual: bool = False
    source: str = ""  # the submission's folder or zip name, when the id had to differ from it


def find_course_dir(start: Path | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: cwd) holding ``nbgrader_config.py``."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG).is_file():
            return folder
    raise GradingError(f"no {CONFIG} in {here} or any folder above it: run `course grade` inside the "
                       "course repository, or pass --course-dir")


@dataclass
class Layout:
    root: Path
    source: Path
    release: Path
    submitted: Path
    autograded: Path
    feedback: Path
    work: Path

    @classmethod
    def load(cls, root: Path) -> "Layout":
        """Read the folder names from the course's nbgrader_config.py (as nbgrader would)."""
        from traitlets.config.loader import PyFileConfigLoader

        config = PyFileConfigLoader(CONFIG, path=str(root)).load_config()
        cd = config.CourseDirectory
        base = Path(cd.get("root", str(root)))

        def step(name: str, default: str) -> Path:
            return base / cd.get(name, default)

        submitted = step("submitted_directory", "submitted")
        return cls(root=base, source=step("source_directory", "source"),
                   release=step("release_directory", "release"), submitted=submitted,
                   autograded=step("autograded_directory", "autograded"),
                   feedback=step("feedback_directory", "feedback"), work=submitted.parent)


def nbgrader_env() -> dict[str, str]:
    """This process's environment for nbgrader: the interpreter's scripts first on PATH, quiet output."""
    env = dict(os.environ)
    # nbgrader runs `alembic` by name; make the interpreter's own scripts folder win.
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.setdefault("COURSE_QUIET", "1")
    env.setdefault("TQDM_DISABLE", "1")
    return env


def _kill_tree(pid: int) -> None:
    """Kill nbgrader and everything it started.  jupyter_client starts kernels in a session of
    their own, so killing nbgrader's process group alone would leave a spinning kernel behind."""
    victims = []
    try:
        import psutil  # a dependency of ipykernel, so present wherever nbgrader runs

        parent = psutil.Process(pid)
        victims = parent.children(recursive=True) + [parent]
    except Exception:  # noqa: BLE001 -- no psutil, or nbgrader already gone
        pass
    for proc in victims:
        try:
            proc.kill()
        except Exception:  # noqa: BLE001 -- already exited
            pass
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class BoundedOutput:
    """Drains a child's output pipe on a thread of its own, keeping only the first ``head`` and the
    last ``tail`` bytes: a child that prints gigabytes costs this process a few hundred kB."""

    def __init__(self, stream, head: int = 64 << 10, tail: int = 256 << 10) -> None:
        self.head, self.tail, self.total = head, tail, 0
        self._first, self._last = bytearray(), bytearray()
        self._thread = threading.Thread(target=self._drain, args=(stream,), daemon=True)
        self._thread.start()

    def _drain(self, stream) -> None:
        fd = stream.fileno()
        while block := os.read(fd, 1 << 16):
            self.total += len(block)
            room = self.head - len(self._first)
            if room > 0:
                self._first += block[:room]
                block = block[room:]
            self._last += block
            if len(self._last) > 2 * self.tail:
                del self._last[:-self.tail]
        stream.close()

    def text(self, wait: float = 10.0) -> str:
        """What was kept, once the pipe is closed (or ``wait`` seconds have passed)."""
        self._thread.join(wait)
        last = bytes(self._last[-self.tail:])
        left_out = self.total - len(self._first) - len(last)
        middle = f"\n... {left_out:,} bytes of output left out ...\n".encode() if left_out > 0 else b""
        return (bytes(self._first) + middle + last).decode("utf-8", errors="replace")


def run_nbgrader(args: list[str], cwd: Path, timeout: float | None,
                 env: dict[str, str] | None = None) -> tuple[int | None, str, float]:
    """Run ``python -m nbgrader ...`` in its own process group; kill the whole group on timeout.

    Returns (exit code or None when it timed out, its output, head and tail only, seconds).
    """
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "nbgrader", *args], cwd=cwd, env={**nbgrader_env(), **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    output = BoundedOutput(proc.stdout)
    try:
        code: int | None = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_tree(proc.pid)
        proc.wait()
        code = None
    return code, output.text(), time.monotonic() - start
