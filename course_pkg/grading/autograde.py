"""Autograding one student: ``nbgrader autograde`` with a gradebook copy of its own, an outer time
limit, and a reason in words when it fails.

A student's failure (a crash, a time-out, an unreadable notebook) costs that student, with a
reason.  A failure of the machinery (the sandbox's harness died before the first cell:
:class:`course_pkg.grading.sandbox.SandboxFailed`) is nobody's zero: :class:`MachineryFailure`
stops the run, which exits non-zero and records no score."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from .course import CONFIG, GradingError, Layout, StudentResult, run_nbgrader
from .gradebook import _db_path

MACHINERY = "GRADING MACHINERY FAILURE"  # how sandbox.SandboxFailed starts; nbgrader logs it


class MachineryFailure(GradingError):
    """The grading machinery, not a student, failed: stop, say so, record no score."""

_REASONS = (
    (re.compile(r"DeadKernelError|Kernel died|kernel.*(died|restarted)", re.I),
     "the kernel died while running the notebook (os._exit, a crash, or out of memory)"),
    (re.compile(r"Inconsistent checksums", re.I),
     "a test cell's metadata was changed (nbgrader: inconsistent checksums); restore it from the "
     "released notebook"),
    (re.compile(r"add_missing_grade_cells", re.I),
     "a deleted test cell could not be restored (nbgrader needs the cell before it)"),
    (re.compile(r"UnresponsiveKernelError|Timeout waiting for|kernel didn't respond", re.I),
     "the kernel stopped responding"),
    (re.compile(r"NotJSONError|Notebook does not appear to be JSON|Unreadable Notebook|nbformat", re.I),
     "the notebook file could not be read"),
)


def _failure_reason(output: str, code: int | None, limit: float) -> str:
    if code is None:
        return (f"outer time limit of {limit:.0f} s exceeded (the grader itself hung or the notebook ran far "
                "too long); killed")
    for pattern, reason in _REASONS:
        if pattern.search(output):
            return reason
    errors = [line.strip() for line in output.splitlines() if "ERROR" in line or "Error" in line]
    return f"nbgrader autograde exited with {code}: {errors[-1][:200] if errors else 'no error message'}"


def _test_cells(layout: Layout, assignment: str) -> int:
    count = 0
    for path in (layout.release / assignment).glob("*.ipynb"):
        nb = json.loads(path.read_text())
        count += sum(bool(c.get("metadata", {}).get("nbgrader", {}).get("grade")) for c in nb["cells"])
    return count


def configured_cell_timeout(layout: Layout) -> int:
    """The per-cell limit of the course's nbgrader_config.py (60 s when it sets none)."""
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader(CONFIG, path=str(layout.root)).load_config()
    return int(config.SandboxedExecute.get("timeout", config.Execute.get("timeout", 60)))


def configured_memory_gb(layout: Layout) -> int:
    """The memory cap per student of the course's nbgrader_config.py (SandboxedExecute.memory_gb)."""
    from traitlets.config.loader import PyFileConfigLoader

    from .verdict import SandboxedExecute

    config = PyFileConfigLoader(CONFIG, path=str(layout.root)).load_config()
    return int(config.SandboxedExecute.get("memory_gb", SandboxedExecute.memory_gb.default_value))


def outer_limit(layout: Layout, assignment: str, cell_timeout: int) -> float:
    """Per student: the sandbox's own limit (60 s + one cell limit per test cell and three more)
    and two minutes for nbgrader and the verdicts."""
    return 60 + cell_timeout * (_test_cells(layout, assignment) + 3) + 120


def autograde_one(layout: Layout, assignment: str, result: StudentResult, timeout: float,
                  extra: list[str], db_dir: Path, unsafe: bool = False, threads: int | None = None) -> None:
    """``nbgrader autograde`` for one student, writing a gradebook copy of its own in ``db_dir``
    (merged into the course's gradebook by :func:`merge_gradebooks`)."""
    db_dir.mkdir(parents=True, exist_ok=True)
    db = db_dir / f"{result.student}.db"
    shutil.copy(_db_path(layout), db)
    logs = layout.work / "logs" / assignment
    logs.mkdir(parents=True, exist_ok=True)
    (logs / f"{result.student}.json").unlink(missing_ok=True)
    scratch = layout.work / "sandboxes" / result.student  # the private copy lives here; removed after
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    env = {"COURSE_GRADE_LOGS": str(logs), "COURSE_GRADE_UNSAFE": "1" if unsafe else "0",
           "COURSE_GRADE_TMP": str(scratch)}
    if threads:  # several students at once: one thread each for the verdicts' torch
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    code, out, secs = run_nbgrader(["autograde", assignment, "--student", result.student, "--force",
                                    f"--CourseDirectory.db_url=sqlite:///{db}", *extra],
                                   layout.root, timeout, env)
    result.seconds = secs
    shutil.rmtree(scratch, ignore_errors=True)  # also when nbgrader was killed at the outer limit
    log = logs / f"{result.student}.log"
    log.write_text(out)
    result.log = str(log)
    flags = logs / f"{result.student}.json"
    if flags.is_file():
        try:
            result.flags = list(json.loads(flags.read_text()).get("flags", []))
        except ValueError:
            pass
    graded = layout.autograded / result.student / assignment
    if code != 0 and MACHINERY in out:
        db.unlink(missing_ok=True)
        result.status, result.reason = "failed", _machinery_message(out)
        raise MachineryFailure(f"{result.student}: {result.reason}\nNo score was recorded for this run; fix the "
                               f"grading environment and grade again (log: {log})")
    if code == 0 and graded.is_dir() and any(graded.glob("*.ipynb")):
        result.status = "graded"
    else:
        result.status, result.reason = "failed", _failure_reason(out, code, timeout)
        db.unlink(missing_ok=True)


def _machinery_message(output: str) -> str:
    """The sandbox's message, out of nbgrader's log of the traceback."""
    text = output[output.index(MACHINERY):]
    lines = []
    for line in text.splitlines():
        if line.startswith("[") and lines:  # nbgrader's next log record
            break
        lines.append(line)
    return "\n".join(lines).strip()
