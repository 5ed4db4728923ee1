"""The hostile class graded as an instructor grades it, measured from outside the grader.

    python benchmarks/grade_hostile.py                 # --jobs 2, the course's caps
    python benchmarks/grade_hostile.py --memory-gb 4   # a smaller memory cap per student

The class is the one ``tests/test_grading_e2e.py`` grades (assignment 2: honest students, attacks on
the others, the gradebook and the grader, crashes, hangs, links, FIFOs, look-alike names, HTML, a
large file, handover bombs, and students who push memory, disk and processes past their caps).
``course grade`` runs as a process of its own on a fresh copy of the course; while it runs, :class:`HostWatch`
samples the host's available memory, the free space of the disk the course is on, and the
grader's own peak memory (``VmHWM``).  Recorded: wall time, the grader's peak RSS, the disk the
course's records took, and how far free memory and free disk fell, against the bound the caps
state: ``jobs`` students at a time, each at most its memory cap plus its tmpfs disks (memory too),
plus the grader itself.  Run it on an otherwise idle machine: anything else that allocates moves
the same figures.  Writes ``benchmarks/results/grade_hostile.{json,md}`` (book chapter 10 shows it).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _meta import REPO, RESULTS, meta, ship_results  # noqa: E402

A2 = "02_inception_module"


def _kib(line: str) -> int:
    return int(line.split()[1]) << 10


class HostWatch:
    """Every ``interval`` seconds while it is open: the host's ``MemAvailable``, the free bytes of the
    file system holding ``folder``, and the peak RSS (``VmHWM``) of process ``pid`` (set later)."""

    def __init__(self, folder: Path, interval: float = 0.1) -> None:
        self.folder, self.interval, self.pid = folder, interval, None
        self.memory_start = self.memory_min = self.disk_start = self.disk_min = self.peak_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def available_memory() -> int:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return _kib(line)
        raise RuntimeError("/proc/meminfo has no MemAvailable line (Linux 3.14 or later needed)")

    def _sample(self) -> None:
        self.memory_min = min(self.memory_min, self.available_memory())
        self.disk_min = min(self.disk_min, shutil.disk_usage(self.folder).free)
        if self.pid is not None:
            try:
                for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        self.peak_rss = max(self.peak_rss, _kib(line))
            except OSError:  # the process has ended
                pass

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            time.sleep(self.interval)

    def __enter__(self) -> "HostWatch":
        self.memory_start = self.memory_min = self.available_memory()
        self.disk_start = self.disk_min = shutil.disk_usage(self.folder).free
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def memory_drop(self) -> int:
        return self.memory_start - self.memory_min

    @property
    def disk_drop(self) -> int:
        return self.disk_start - self.disk_min


def folder_bytes(folder: Path) -> int:
    """Bytes of the regular files under ``folder`` (links not followed, each inode once)."""
    seen, total = set(), 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            st = os.lstat(os.path.join(root, name))
            if (st.st_dev, st.st_ino) not in seen and not os.path.islink(os.path.join(root, name)):
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


def caps(memory_gb: int) -> dict:
    """What each student may take at most: the sandbox's memory cap and its tmpfs disks (which are
    memory too), from :class:`course_pkg.grading.sandbox.Limits`."""
    from course_pkg.grading.sandbox import Limits

    limits = Limits(wall_seconds=0, memory_bytes=memory_gb << 30)
    return {"memory_bytes": limits.memory_bytes, "disk_bytes": limits.disk_bytes, "tmp_bytes": limits.tmp_bytes,
            "processes": limits.processes,
            "per_student_bytes": limits.memory_bytes + limits.disk_bytes + 2 * limits.tmp_bytes}


def disk_bound(jobs: int, cap: dict, records: int) -> int:
    """How far the host's free disk may fall: the course's records, and for each student being graded
    what its sandbox sent out (at most ``disk_bytes``, kept until that student is done) with its
    private copy and the package's hidden overlays (64 MiB allowed for those)."""
    return records + jobs * (cap["disk_bytes"] + (64 << 20))


def run(work: Path, jobs: int, memory_gb: int) -> dict:
    sys.path.insert(0, str(REPO / "tests"))
    from test_grading_e2e import write_hostile_class  # the class the end-to-end tests grade

    course = work / "course"
    course.mkdir()
    config = (REPO / "nbgrader_config.py").read_text() + f"\nc.SandboxedExecute.memory_gb = {memory_gb}\n"
    (course / "nbgrader_config.py").write_text(config)
    shutil.copytree(REPO / "solutions", course / "solutions")
    shutil.copytree(REPO / "assignments", course / "assignments")
    subs, marker = work / "submissions", work / "marker"
    marker.mkdir()
    with socket.socket() as closed:  # a port nobody listens on: the network attack meets nothing
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    write_hostile_class(subs, course, marker, port)
    students = sorted(p.name for p in subs.iterdir())
    command = [sys.executable, "-m", "course_pkg.cli", "grade", A2, "--course-dir", str(course),
               "--submissions", str(subs), "--jobs", str(jobs)]
    with HostWatch(course) as watch:
        start = time.monotonic()
        proc = subprocess.Popen(command, cwd=course, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        watch.pid = proc.pid
        output, _ = proc.communicate()
        seconds = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit(f"course grade exited with {proc.returncode}:\n{output[-3000:]}")
    with (course / ".nbgrader" / "reports" / A2 / "grades.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    cap = caps(memory_gb)
    bound = jobs * cap["per_student_bytes"] + watch.peak_rss
    records = folder_bytes(course / ".nbgrader")
    return {
        **meta("cpu"), "cores": os.cpu_count(), "assignment": A2, "jobs": jobs,
        "command": " ".join(["python benchmarks/grade_hostile.py", *sys.argv[1:]]),
        "folders_handed_in": len(students), "rows": len(rows),
        "statuses": {s: sum(r["status"] == s for r in rows) for s in sorted({r["status"] for r in rows})},
        "seconds": round(seconds, 1), "caps": cap,
        "grader_peak_rss_bytes": watch.peak_rss,
        "memory_available_start_bytes": watch.memory_start, "memory_drop_bytes": watch.memory_drop,
        "memory_bound_bytes": bound, "memory_within_bound": watch.memory_drop <= bound,
        "course_records_bytes": records, "disk_drop_bytes": watch.disk_drop,
        "disk_bound_bytes": disk_bound(jobs, cap, records),
        "disk_within_bound": watch.disk_drop <= disk_bound(jobs, cap, records),
        "markers_written": sorted(p.name for p in marker.iterdir()),
    }


def _gib(n: int) -> str:
    return f"{n / (1 << 30):.2f} GiB"


def markdown(r: dict) -> str:
    c = r["caps"]
    yes = {True: "yes", False: "**no**"}
    return "\n".join([
        "# The hostile class of assignment 2, graded and measured from outside the grader", "",
        f"{r['device']}, {r['cores']} cores; {r['date']}, commit {r['commit']}, torch {r['torch']}.", "",
        f"Command: `{r['command']}`", "",
        f"{r['folders_handed_in']} hand-ins, {r['rows']} rows in grades.csv "
        f"({', '.join(f'{n} {s}' for s, n in r['statuses'].items())}), `--jobs {r['jobs']}`, "
        f"in {r['seconds']} s.", "",
        "| measure | value | bound | within |", "|---|---|---|---|",
        f"| grader's peak RSS (VmHWM) | {_gib(r['grader_peak_rss_bytes'])} | | |",
        f"| host's available memory, largest fall | {_gib(r['memory_drop_bytes'])} | {_gib(r['memory_bound_bytes'])} "
        f"| {yes[r['memory_within_bound']]} |",
        f"| host's free disk, largest fall | {_gib(r['disk_drop_bytes'])} | {_gib(r['disk_bound_bytes'])} "
        f"| {yes[r['disk_within_bound']]} |", "",
        f"The memory bound: {r['jobs']} students at once, each at most {_gib(c['memory_bytes'])} of memory plus "
        f"its tmpfs disks ({_gib(c['disk_bytes'])} + 2 x {_gib(c['tmp_bytes'])}), plus the grader's own peak. "
        f"The disk bound: the course's records ({_gib(r['course_records_bytes'])}), and for each student being "
        f"graded what its sandbox sent out (at most {_gib(c['disk_bytes'])}) with its private copy (64 MiB). "
        f"Files an attack managed to write outside its sandbox: {', '.join(r['markers_written']) or 'none'}.", ""])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--memory-gb", type=int, default=8, help="memory cap per student (the course's default: 8)")
    p.add_argument("--out", type=Path, default=RESULTS / "grade_hostile.json")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="grade-hostile-") as tmp:
        result = run(Path(tmp), args.jobs, args.memory_gb)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(result))
    ship_results(args.out.parent)  # book chapter 10 shows it, in Colab too
    print(markdown(result))
    return 0 if result["memory_within_bound"] and result["disk_within_bound"] and not result["markers_written"] else 1


if __name__ == "__main__":
    sys.exit(main())
