"""Per-student caps of the sandbox (:mod:`course_pkg.grading.sandbox`): the rlimits its first
process sets before exec, a cgroup v2 child where one is delegated (memory, swap, processes), and
without one a watchdog that sums the memory of all the student's processes and kills the largest
over the cap, as the kernel's OOM killer would."""

from __future__ import annotations

import os
import resource
import secrets
import signal
import time
from pathlib import Path


def preexec(limits, cgroup: Path | None):
    """What the sandbox's first process runs before exec: join the cgroup, set the rlimits."""
    def apply() -> None:
        if cgroup is not None:  # before exec: every process of the sandbox starts inside it
            (cgroup / "cgroup.procs").write_text("0")
        for what, value in ((resource.RLIMIT_AS, limits.memory_bytes), (resource.RLIMIT_NPROC, limits.processes),
                            (resource.RLIMIT_FSIZE, limits.file_bytes), (resource.RLIMIT_CORE, 0)):
            try:
                resource.setrlimit(what, (value, value))
            except (ValueError, OSError):
                pass
    return apply


def new_cgroup(parent: Path, limits) -> Path:
    """A child cgroup of ``parent`` holding one student's caps (memory, no swap, processes)."""
    child = parent / f"course-grade-{os.getpid()}-{secrets.token_hex(4)}"
    child.mkdir()
    for name, value in (("memory.max", limits.memory_bytes), ("memory.swap.max", 0), ("pids.max", limits.processes)):
        try:
            (child / name).write_text(str(value))
        except FileNotFoundError:  # memory.swap.max: no swap accounting on this kernel
            pass
    return child


def end_cgroup(child: Path) -> None:
    """Kill everything in ``child`` and remove it."""
    try:
        (child / "cgroup.kill").write_text("1")
    except OSError:
        for pid in (child / "cgroup.procs").read_text().split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    for _ in range(50):
        try:
            child.rmdir()
            return
        except OSError:
            time.sleep(0.1)


def _fields(path: str) -> dict[str, int]:
    """The ``Name:   123 kB`` lines of a /proc file, in bytes."""
    out = {}
    for line in Path(path).read_text().splitlines():
        name, _, value = line.partition(":")
        parts = value.split()
        if len(parts) == 2 and parts[1] == "kB" and parts[0].isdigit():
            out[name] = int(parts[0]) << 10
    return out


def _resident(pid: int) -> int:
    """Private and shared anonymous memory of ``pid`` (no file pages), each page counted in full."""
    f = _fields(f"/proc/{pid}/status")
    return f.get("RssAnon", 0) + f.get("RssShmem", 0)


def _proportional(pid: int) -> int:
    """The same, each page divided among the processes that share it (PSS): a page a fork still
    shares with its parent counts once across the two.  Kernels before 5.9 give only the total PSS."""
    f = _fields(f"/proc/{pid}/smaps_rollup")
    return f["Pss_Anon"] + f.get("Pss_Shmem", 0) if "Pss_Anon" in f else f.get("Pss", 0)


def memory_watchdog(pid: int, limit: int) -> str:
    """Without a cgroup: the memory of all the sandbox's processes together (private and shared
    memory, not file pages); over ``limit`` the largest process is killed, as the OOM killer would.

    The cheap sum counts a page once per process that maps it, so a fork that shares its parent's
    memory (copy-on-write) would count it twice: over ``limit`` the pages are counted again, shared
    ones divided among their processes (:func:`_proportional`), and only that sum decides."""
    import psutil

    try:
        procs = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return ""
    used = {}
    for p in procs:
        try:
            used[p] = _resident(p.pid)
        except (OSError, ValueError):
            pass
    if sum(used.values()) <= limit:
        return ""
    for p in list(used):
        try:
            used[p] = _proportional(p.pid)
        except (OSError, ValueError):
            pass
    if sum(used.values()) <= limit:
        return ""
    largest = max(used, key=used.get)
    try:
        largest.kill()
    except psutil.Error:
        return ""
    return (f"course grader: the sandbox's processes used {sum(used.values()) >> 20} MiB together, more than "
            f"its {limit >> 20} MiB; killed the largest ({used[largest] >> 20} MiB)\n")
