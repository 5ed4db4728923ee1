"""``course grade <assignment>``: collect, autograde (one process per student), feedback, report.

The instructor's one command, built on nbgrader's own CLI (REFERENCE.md section 5):

1. **collect** — from ``--submissions DIR`` (one sub-folder per student, as an LMS export unpacks)
   or from what is already in nbgrader's ``submitted/`` folder; file names are normalised
   ("Copy of 02_inception_module.ipynb", "02_inception_module (1).ipynb", a single notebook with
   any name), files that are not notebooks are reported instead of crashing the run;
2. **autograde** — each student in a separate ``nbgrader autograde`` process with an outer time
   limit (a kernel that crashes, ignores interrupts or loops forever costs that student only);
   students run one after the other because the SQLite gradebook does not support parallel
   writers (nbgrader issue #174);
3. **feedback** — ``nbgrader generate_feedback`` (the course's config strips hidden tests);
4. **report** — ``grades.csv`` (one row per student, one column per test cell), ``scores.png``
   (histogram) and a summary: how many were graded, which failed and why.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
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


# --------------------------------------------------------------------------------------------
# Course folder and nbgrader settings
# --------------------------------------------------------------------------------------------
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


def _env() -> dict[str, str]:
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


def _run(args: list[str], cwd: Path, timeout: float | None) -> tuple[int | None, str, float]:
    """Run ``python -m nbgrader ...`` in its own process group; kill the whole group on timeout.

    Returns (exit code or None when it timed out, combined output, seconds).
    """
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "nbgrader", *args], cwd=cwd, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out, time.monotonic() - start
    except subprocess.TimeoutExpired:
        _kill_tree(proc.pid)
        out, _ = proc.communicate()
        return None, out or "", time.monotonic() - start


# --------------------------------------------------------------------------------------------
# Collecting and normalising submissions
# --------------------------------------------------------------------------------------------
_COPY = re.compile(r"^(copy of\s+)+", re.I)
_DUP = re.compile(r"(\s*\(\d+\)|\s*-\s*copy(\s*\d+)?|\s+copy(\s*\d+)?)$", re.I)


def normalise_name(filename: str) -> str:
    """``"Copy of 02_inception_module (1).ipynb"`` → ``"02_inception_module.ipynb"``."""
    stem, dot, ext = filename.rpartition(".")
    if not dot:
        stem, ext = filename, ""
    stem = _COPY.sub("", stem.strip())
    previous = None
    while previous != stem:
        previous, stem = stem, _DUP.sub("", stem).strip()
    return f"{stem}.{ext}" if ext else stem


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", normalise_name(name).lower())


def _expected_notebooks(layout: Layout, assignment: str) -> list[str]:
    folder = layout.source / assignment
    names = sorted(p.name for p in folder.glob("*.ipynb"))
    if not names:
        raise GradingError(f"no notebook in {folder}: is {assignment!r} an assignment of this course? "
                           f"Known: {', '.join(sorted(p.name for p in layout.source.iterdir() if p.is_dir()))}")
    return names


def normalise_submission(folder: Path, expected: list[str]) -> list[str]:
    """Rename files in one student's submission folder to the names nbgrader expects.

    Returns notes for the report (what was renamed, what could not be matched).
    """
    notes: list[str] = []
    files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    # 1. any file: strip "Copy of" and " (1)" when the clean name is free
    for p in sorted(files):
        clean = normalise_name(p.name)
        if clean != p.name and not (folder / clean).exists():
            p.rename(folder / clean)
            notes.append(f"renamed {p.name!r} to {clean!r}")
    notebooks = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".ipynb")
    for name in expected:
        if (folder / name).exists():
            continue
        matches = [p for p in notebooks if _key(p.name) == _key(name)]
        spare = [p for p in notebooks if p.name not in expected]
        if not matches and len(expected) == 1 and len(spare) == 1:
            matches = spare  # one notebook, whatever its name
        if len(matches) == 1:
            matches[0].rename(folder / name)
            notes.append(f"renamed {matches[0].name!r} to {name!r}")
        elif not matches:
            notes.append(f"no notebook {name!r} in the submission (found: "
                         f"{', '.join(p.name for p in notebooks) or 'none'})")
        else:
            notes.append(f"several notebooks could be {name!r}: {', '.join(p.name for p in matches)}; "
                         "rename the right one")
    return notes


def _check_notebook(path: Path) -> str | None:
    """Why ``path`` cannot be graded as a notebook (None when it can)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        return f"{path.name} is not a text file (a notebook is JSON)"
    except json.JSONDecodeError as err:
        return f"{path.name} is not valid JSON ({err.msg} at line {err.lineno}): not a notebook"
    if not isinstance(data, dict) or "cells" not in data or data.get("nbformat") != 4:
        return f"{path.name} is JSON but not an nbformat-4 notebook"
    return None


def collect(layout: Layout, assignment: str, source: Path | None,
            students: list[str] | None) -> dict[str, StudentResult]:
    """Copy submissions into nbgrader's submitted/ folder (when ``source`` is given), normalise
    names, and return one :class:`StudentResult` per student found."""
    results: dict[str, StudentResult] = {}
    expected = _expected_notebooks(layout, assignment)
    if source is not None:
        if not source.is_dir():
            raise GradingError(f"--submissions {source} is not a folder: give a folder with one "
                               "sub-folder per student")
        for entry in sorted(source.iterdir()):
            if entry.name.startswith("."):
                continue
            if not entry.is_dir():
                print(f"  skipping {entry.name}: submissions must be in one folder per student "
                      f"({source}/<student>/{expected[0]})")
                continue
            student = _student_id(entry.name)
            if students and student not in students:
                continue
            dest = layout.submitted / student / assignment
            if dest.exists():
                shutil.rmtree(dest)
            shutil.copytree(entry, dest)
    folder = layout.submitted
    if not folder.is_dir():
        raise GradingError(f"no submissions: {folder} does not exist and no --submissions folder was given")
    for student_dir in sorted(folder.iterdir()):
        sub = student_dir / assignment
        if not sub.is_dir() or (students and student_dir.name not in students):
            continue
        result = StudentResult(student_dir.name)
        result.notes = normalise_submission(sub, expected)
        problems = [n for n in result.notes if n.startswith(("no notebook", "several"))]
        for name in expected:
            if (sub / name).exists():
                why = _check_notebook(sub / name)
                if why:
                    problems.append(why)
        if problems:
            result.status, result.reason = "failed", "; ".join(problems)
        results[result.student] = result
    if students:
        for s in students:
            if s not in results:
                results[s] = StudentResult(s, "failed", f"no submission for {assignment} in {folder / s}")
    return results


def _student_id(name: str) -> str:
    clean = re.sub(r"[^A-Za-z0-9_.@-]+", "_", name.strip()).strip("_.")
    return clean or "student"


# --------------------------------------------------------------------------------------------
# Autograding
# --------------------------------------------------------------------------------------------
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
        return (f"outer time limit of {limit:.0f} s exceeded (an endless loop or a kernel that ignores "
                "interrupts); killed")
    for pattern, reason in _REASONS:
        if pattern.search(output):
            return reason
    errors = [line.strip() for line in output.splitlines() if "ERROR" in line or "Error" in line]
    return f"nbgrader autograde exited with {code}: {errors[-1][:200] if errors else 'no error message'}"


def autograde_one(layout: Layout, assignment: str, result: StudentResult, timeout: float,
                  extra: list[str]) -> None:
    code, out, secs = _run(["autograde", assignment, "--student", result.student, "--force", *extra],
                           layout.root, timeout)
    result.seconds = secs
    graded = layout.autograded / result.student / assignment
    if code == 0 and graded.is_dir() and any(graded.glob("*.ipynb")):
        result.status = "graded"
    else:
        result.status, result.reason = "failed", _failure_reason(out, code, timeout)
        log = layout.work / "logs" / assignment / f"{result.student}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(out)
        result.notes.append(f"nbgrader log: {log}")


def _db_url(layout: Layout) -> str:
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader(CONFIG, path=str(layout.root)).load_config()
    return config.CourseDirectory.get("db_url", f"sqlite:///{layout.root / 'gradebook.db'}")


def _ensure_in_gradebook(layout: Layout, assignment: str) -> None:
    """Autograding restores test cells from the gradebook, which a fresh clone does not have yet:
    record the assignment by generating it once more into a scratch folder (the committed
    student versions are left alone)."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(_db_url(layout)) as gb:
        try:
            if gb.find_assignment(assignment).notebooks:
                return
        except MissingEntry:
            pass
    scratch = layout.work / "scratch-release"
    code, out, _ = _run(["generate_assignment", assignment, "--force",
                         f"--CourseDirectory.release_directory={scratch}"], layout.root, 300)
    shutil.rmtree(scratch, ignore_errors=True)
    if code != 0:
        raise GradingError(f"nbgrader generate_assignment {assignment} failed:\n{out[-2000:]}")


def read_scores(layout: Layout, assignment: str, results: dict[str, StudentResult]) -> list[str]:
    """Fill in scores from the gradebook; return the test-cell names in notebook order."""
    from nbgrader.api import Gradebook, MissingEntry

    db_url = _db_url(layout)
    names: list[str] = []
    with Gradebook(db_url) as gb:
        a = gb.find_assignment(assignment)
        for nb in a.notebooks:
            names += [c.name for c in nb.grade_cells]
        for r in results.values():
            if r.status != "graded":
                continue
            try:
                sub = gb.find_submission(assignment, r.student)
            except MissingEntry:
                r.status, r.reason = "failed", "graded, but no submission in the gradebook"
                continue
            r.score, r.max_score = float(sub.score), float(sub.max_score)
            for nb in sub.notebooks:
                for g in nb.grades:
                    r.cells[g.name] = g.score
    return names


# --------------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------------
def write_csv(path: Path, results: dict[str, StudentResult], cells: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["student", "status", "score", "max_score", "seconds", "reason", *cells])
        for r in sorted(results.values(), key=lambda r: r.student):
            w.writerow([r.student, r.status, "" if r.score is None else f"{r.score:g}",
                        "" if r.max_score is None else f"{r.max_score:g}", f"{r.seconds:.1f}", r.reason,
                        *["" if r.cells.get(c) is None else f"{r.cells[c]:g}" for c in cells]])


def write_histogram(path: Path, results: dict[str, StudentResult], assignment: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    graded = [r for r in results.values() if r.status == "graded" and r.max_score]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if graded:
        top = max(r.max_score for r in graded)
        ax.hist([r.score for r in graded], bins=min(20, max(5, int(top))), range=(0, top), color="#4a7")
        ax.set_xlim(0, top)
    failed = sum(r.status == "failed" for r in results.values())
    ax.set_title(f"{assignment}: {len(graded)} graded" + (f", {failed} failed (not shown)" if failed else ""))
    ax.set_xlabel("score")
    ax.set_ylabel("students")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def summary(results: dict[str, StudentResult], assignment: str) -> str:
    graded = [r for r in results.values() if r.status == "graded"]
    failed = [r for r in results.values() if r.status == "failed"]
    lines = [f"{assignment}: {len(graded)} graded, {len(failed)} failed, {len(results)} submissions"]
    if graded:
        scores = sorted(r.score or 0.0 for r in graded)
        top = graded[0].max_score
        mid = scores[len(scores) // 2] if len(scores) % 2 else (scores[len(scores) // 2 - 1] + scores[len(scores) // 2]) / 2
        lines.append(f"  scores out of {top:g}: mean {sum(scores) / len(scores):.1f}, median {mid:g}, "
                     f"min {scores[0]:g}, max {scores[-1]:g}; slowest {max(r.seconds for r in graded):.0f} s")
    for r in sorted(failed, key=lambda r: r.student):
        lines.append(f"  FAILED {r.student}: {r.reason}")
    for r in sorted(results.values(), key=lambda r: r.student):
        for n in r.notes:
            if not n.startswith("nbgrader log"):
                lines.append(f"  note {r.student}: {n}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="course grade",
        description="Autograde every submission of an assignment (one process per student), write "
                    "feedback without hidden tests, export grades.csv and a score histogram.")
    p.add_argument("assignment", help="assignment name, e.g. 02_inception_module")
    p.add_argument("--submissions", type=Path, default=None,
                   help="folder with one sub-folder per student (copied into nbgrader's submitted/ "
                        "folder); default: grade what is already there")
    p.add_argument("--course-dir", type=Path, default=None, help="folder with nbgrader_config.py "
                   "(default: the current folder or the nearest one above it)")
    p.add_argument("--student", action="append", dest="students", default=None,
                   help="grade only this student (repeatable)")
    p.add_argument("--timeout", type=float, default=600.0,
                   help="outer time limit per student, seconds (default 600)")
    p.add_argument("--cell-timeout", type=int, default=None,
                   help="per-cell limit in seconds (default: Execute.timeout in nbgrader_config.py)")
    p.add_argument("--out", type=Path, default=None,
                   help="where grades.csv and scores.png go (default: <.nbgrader>/reports/<assignment>)")
    p.add_argument("--no-feedback", action="store_true", help="skip generating feedback HTML")
    return p


def run(args: argparse.Namespace) -> tuple[dict[str, StudentResult], Path]:
    try:
        import nbgrader  # noqa: F401
    except ImportError:
        raise GradingError("nbgrader is not installed: pip install 'course_pkg[grade]'") from None
    root = (args.course_dir.resolve() if args.course_dir else find_course_dir())
    if not (root / CONFIG).is_file():
        raise GradingError(f"{root} has no {CONFIG}")
    # nbgrader's Gradebook runs `alembic` by name, in this process too.
    os.environ["PATH"] = _env()["PATH"]
    layout = Layout.load(root)
    layout.work.mkdir(parents=True, exist_ok=True)
    assignment = args.assignment
    if not (layout.release / assignment).is_dir():
        raise GradingError(f"no student version at {layout.release / assignment}: run `make assignments` "
                           "(nbgrader generate_assignment) first")
    _ensure_in_gradebook(layout, assignment)

    results = collect(layout, assignment, args.submissions, args.students)
    if not results:
        raise GradingError(f"no submissions of {assignment} found in {layout.submitted}")
    extra = [f"--Execute.timeout={args.cell_timeout}"] if args.cell_timeout else []
    todo = [r for r in results.values() if r.status == "pending"]
    for i, r in enumerate(todo, 1):
        print(f"[{i}/{len(todo)}] autograding {r.student} ...", flush=True)
        autograde_one(layout, assignment, r, args.timeout, extra)
        print(f"        {r.status} in {r.seconds:.0f} s" + (f": {r.reason}" if r.reason else ""), flush=True)
    cells = read_scores(layout, assignment, results)

    graded = [r for r in results.values() if r.status == "graded"]
    if not args.no_feedback and graded:
        # One process for the whole class; per student only if that fails.
        selection = [f"--student={r.student}" for r in graded] if args.students else []
        code, out, _ = _run(["generate_feedback", assignment, "--force", *selection[:1]] if len(selection) == 1
                            else ["generate_feedback", assignment, "--force"], root, 600)
        if code != 0:
            for r in graded:
                code, out, _ = _run(["generate_feedback", assignment, "--student", r.student, "--force"], root, 300)
                if code != 0:
                    r.notes.append(f"feedback failed: {out.strip().splitlines()[-1] if out.strip() else code}")

    out_dir = args.out or (layout.work / "reports" / assignment)
    write_csv(out_dir / "grades.csv", results, cells)
    write_histogram(out_dir / "scores.png", results, assignment)
    (out_dir / "summary.txt").write_text(summary(results, assignment) + "\n")
    return results, out_dir


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``course grade``; returns the exit status (0 even when students failed:
    their failures are in the report; 2 when the run itself cannot start)."""
    args = build_parser().parse_args(argv)
    try:
        results, out_dir = run(args)
    except GradingError as err:
        print(f"course grade: {err}", file=sys.stderr)
        return 2
    print(summary(results, args.assignment))
    print(f"  wrote {out_dir / 'grades.csv'}, {out_dir / 'scores.png'}; feedback in "
          f"{Layout.load((args.course_dir or find_course_dir()).resolve()).feedback}")
    return 0
