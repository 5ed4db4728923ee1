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


def memory_watchdog(pid: int, limit: int) -> str:
    """Without a cgroup: the memory of all the sandbox's processes together (private and shared
    memory, not file pages); over ``limit`` the largest process is killed, as the OOM killer would."""
    import psutil

    try:
        procs = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return ""
    used = {}
    for p in procs:
        try:
            fields = dict(line.split(":", 1) for line in Path(f"/proc/{p.pid}/status").read_text().splitlines())
            used[p] = sum(int(fields.get(k, "0 kB").split()[0]) << 10 for k in ("RssAnon", "RssShmem"))
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
