"""``course grade <assignment>``: collect, autograde (one sandbox per student), feedback, report.

The instructor's one command, built on nbgrader's own CLI (https://nbgrader.readthedocs.io):

1. **collect** — from ``--submissions DIR`` (one sub-folder per student, as an LMS export unpacks)
   or from what is already in nbgrader's ``submitted/`` folder; file names are normalised
   ("Copy of 02_inception_module.ipynb", "02_inception_module (1).ipynb", a single notebook with
   any name), files that are not notebooks are reported instead of crashing the run;
2. **autograde** — each student in a separate ``nbgrader autograde`` process with an outer time
   limit derived from the number of test cells.  Student code runs only in a bubblewrap sandbox
   and the hidden tests run outside it (:mod:`course_pkg.grading.verdict`).  Each process
   writes a gradebook copy of its own; this process alone merges the copies into the course's
   gradebook, which it backs up first (SQLite has one writer at a time; nbgrader does not
   support parallel autograding on one gradebook).  ``--jobs N`` runs N students at once;
   ``--shard i/N`` grades every N-th student and leaves the results for ``--merge``, so a job
   runner (a Slurm array, a Kubernetes indexed Job, a CI matrix) can spread a class over machines;
3. **feedback** — ``nbgrader generate_feedback`` (the course's config strips hidden tests);
4. **report** — ``grades.csv`` (one row per student, one column per test cell), ``scores.png``
   (histogram) and a summary: how many were graded, which failed and why.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
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
    flags: list[str] = field(default_factory=list)
    log: str = ""
    manual: bool = False


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


def _run(args: list[str], cwd: Path, timeout: float | None,
         env: dict[str, str] | None = None) -> tuple[int | None, str, float]:
    """Run ``python -m nbgrader ...`` in its own process group; kill the whole group on timeout.

    Returns (exit code or None when it timed out, combined output, seconds).
    """
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "nbgrader", *args], cwd=cwd, env={**_env(), **(env or {})},
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
            if entry.is_file() and entry.suffix.lower() == ".zip":
                student = _student_id(entry.stem)
                if students and student not in students:
                    continue
                dest = layout.submitted / student / assignment
                if dest.exists():
                    shutil.rmtree(dest)
                why = unpack_zip(entry, dest)
                if why:
                    shutil.rmtree(dest, ignore_errors=True)
                    dest.mkdir(parents=True)
                    (dest / ".unpack-error").write_text(why)
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
            shutil.copytree(entry, dest, symlinks=True, ignore=_no_links)
            for inner in list(dest.glob("*.zip")):  # a folder holding the student's zip
                why = unpack_zip(inner, dest)
                inner.unlink()
                if why:
                    (dest / ".unpack-error").write_text(why)
    folder = layout.submitted
    if not folder.is_dir():
        raise GradingError(f"no submissions: {folder} does not exist and no --submissions folder was given")
    for student_dir in sorted(folder.iterdir()):
        sub = student_dir / assignment
        if not sub.is_dir() or (students and student_dir.name not in students):
            continue
        result = StudentResult(student_dir.name)
        if (sub / ".unpack-error").is_file():
            result.status, result.reason = "failed", (sub / ".unpack-error").read_text()
            results[result.student] = result
            continue
        result.notes = normalise_submission(sub, expected)
        problems = [n for n in result.notes if n.startswith(("no notebook", "several"))]
        for name in expected:
            if (sub / name).exists():
                why = _check_notebook(sub / name)
                if why:
                    problems.append(why)
                else:
                    result.notes += repair_metadata(sub / name, layout.release / assignment / name)
        if problems:
            result.status, result.reason = "failed", "; ".join(problems)
        results[result.student] = result
    if students:
        for s in students:
            if s not in results:
                results[s] = StudentResult(s, "failed", f"no submission for {assignment} in {folder / s}")
    return results


MAX_ZIP_BYTES = 300 << 20
MAX_ZIP_FILES = 200


def unpack_zip(archive: Path, dest: Path) -> str | None:
    """Unpack a student's zip into ``dest`` safely; returns why not, or None.

    Refused: names that are absolute or climb out (``..``), links, more than ``MAX_ZIP_FILES``
    files or ``MAX_ZIP_BYTES`` unpacked (counted while reading, not trusted from the header).
    A single top-level folder is stripped (how most zip tools pack a folder)."""
    import stat
    import zipfile

    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as err:
        return f"{archive.name} is not a readable zip file ({err}): submit the notebook itself or a valid zip"
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir() and not i.filename.startswith("__MACOSX/")]
        if len(infos) > MAX_ZIP_FILES:
            return f"{archive.name} holds {len(infos)} files (at most {MAX_ZIP_FILES}): submit only the notebook and its files"
        parts = [Path(i.filename).parts for i in infos]
        strip = 1 if parts and all(len(p) > 1 for p in parts) and len({p[0] for p in parts}) == 1 else 0
        total = 0
        dest.mkdir(parents=True, exist_ok=True)
        for info, p in zip(infos, parts):
            name = info.filename
            if name.startswith(("/", "\\")) or ".." in p or ":" in p[0] or "\\" in name:
                return f"{archive.name}: unsafe path {name!r} (absolute or leading out of the folder); not unpacked"
            if stat.S_ISLNK(info.external_attr >> 16):
                return f"{archive.name}: {name!r} is a link; links are not accepted"
            target = dest.joinpath(*p[strip:])
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, target.open("wb") as out:
                while True:
                    block = src.read(1 << 20)
                    if not block:
                        break
                    total += len(block)
                    if total > MAX_ZIP_BYTES:
                        return (f"{archive.name} unpacks to more than {MAX_ZIP_BYTES >> 20} MB; not unpacked "
                                "(submit the notebook and the files it needs)")
                    out.write(block)
    return None


def _no_links(folder: str, names: list[str]) -> list[str]:
    return [n for n in names if os.path.islink(os.path.join(folder, n))]


def repair_metadata(path: Path, released: Path) -> list[str]:
    """Put back the nbgrader metadata of graded cells that a student changed (e.g. a test cell's
    ``grade`` flag flipped), which would otherwise fail the whole notebook in nbgrader
    ("inconsistent checksums").  The cells' sources are restored by nbgrader itself."""
    if not released.is_file():
        return []
    data = json.loads(path.read_text(encoding="utf-8"))
    reference = {c["metadata"]["nbgrader"]["grade_id"]: c["metadata"]["nbgrader"]
                 for c in json.loads(released.read_text())["cells"] if "nbgrader" in c.get("metadata", {})}
    repaired = []
    for c in data.get("cells", []):
        meta = c.get("metadata", {}).get("nbgrader") if isinstance(c.get("metadata"), dict) else None
        if not isinstance(meta, dict):
            continue
        gid = meta.get("grade_id")
        ref = reference.get(gid)
        if ref is None:
            continue
        keys = ("grade", "solution", "locked", "points", "task")
        if any(meta.get(k) != ref.get(k) for k in keys):
            c["metadata"]["nbgrader"] = dict(ref)
            repaired.append(gid)
    if repaired:
        path.write_text(json.dumps(data))
        return [f"restored the grading metadata of {', '.join(repaired)} (it had been changed)"]
    return []


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
    code, out, secs = _run(["autograde", assignment, "--student", result.student, "--force",
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
    if code == 0 and graded.is_dir() and any(graded.glob("*.ipynb")):
        result.status = "graded"
    else:
        result.status, result.reason = "failed", _failure_reason(out, code, timeout)
        db.unlink(missing_ok=True)


def _db_url(layout: Layout) -> str:
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader(CONFIG, path=str(layout.root)).load_config()
    return config.CourseDirectory.get("db_url", f"sqlite:///{layout.root / 'gradebook.db'}")


def _db_path(layout: Layout) -> Path:
    url = _db_url(layout)
    if not url.startswith("sqlite:///"):
        raise GradingError(f"course grade needs an SQLite gradebook (db_url {url!r})")
    return Path(url[len("sqlite:///"):])


def backup_gradebook(layout: Layout, keep: int = 20) -> Path | None:
    """Copy the gradebook to ``<work>/backups/`` before a run (the newest ``keep`` are kept)."""
    db = _db_path(layout)
    if not db.is_file():
        return None
    folder = layout.work / "backups"
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / f"gradebook-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.db"
    import sqlite3

    with sqlite3.connect(db) as src, sqlite3.connect(dest) as out:
        src.backup(out)  # a consistent copy even if something holds the file open
    for old in sorted(folder.glob("gradebook-*.db"))[:-keep]:
        old.unlink()
    return dest


def merge_gradebooks(layout: Layout, assignment: str, dbs: list[Path]) -> list[str]:
    """Copy each per-student gradebook's automatic scores and comments into the course's
    gradebook (manual scores there are kept).  Returns the students merged."""
    from nbgrader.api import Gradebook, MissingEntry

    import warnings

    merged = []
    with warnings.catch_warnings(), Gradebook(_db_url(layout)) as dst:
        # nbgrader's add_submission trips SQLAlchemy's autoflush warning; the rows are written
        warnings.simplefilter("ignore")
        for db in dbs:
            student = db.stem
            with Gradebook(f"sqlite:///{db}") as src:
                try:
                    sub = src.find_submission(assignment, student)
                except MissingEntry:
                    continue
                dst.update_or_create_student(student)
                dst.update_or_create_submission(assignment, student, timestamp=sub.timestamp)
                for nb in sub.notebooks:
                    for g in nb.grades:
                        d = dst.find_grade(g.name, nb.name, assignment, student)
                        d.auto_score, d.needs_manual_grade = g.auto_score, g.needs_manual_grade
                    for c in nb.comments:
                        d = dst.find_comment(c.name, nb.name, assignment, student)
                        d.auto_comment = c.auto_comment
                    dst_nb = dst.find_submission_notebook(nb.name, assignment, student)
                    dst_nb.flagged = nb.flagged
                dst.db.commit()
            merged.append(student)
    return merged


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

    names: list[str] = []
    with Gradebook(_db_url(layout)) as gb:
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
            r.manual = bool(sub.needs_manual_grade)
            for nb in sub.notebooks:
                for g in nb.grades:
                    r.cells[g.name] = g.score
    return names


# --------------------------------------------------------------------------------------------
# Re-running: only new or changed submissions
# --------------------------------------------------------------------------------------------
def submission_hash(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not p.is_symlink():
            h.update(str(p.relative_to(folder)).encode())
            with p.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()


def _hash_file(layout: Layout, assignment: str) -> Path:
    return layout.work / "logs" / assignment / "graded-hashes.json"


# --------------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------------
def write_csv(path: Path, results: dict[str, StudentResult], cells: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["student", "status", "score", "max_score", "seconds", "reason", "flags",
                    "needs_manual_grade", "log", *cells])
        for r in sorted(results.values(), key=lambda r: r.student):
            w.writerow([r.student, r.status, "" if r.score is None else f"{r.score:g}",
                        "" if r.max_score is None else f"{r.max_score:g}", f"{r.seconds:.1f}", r.reason,
                        "; ".join(r.flags), "yes" if r.manual else "", r.log,
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



def summary(results: dict[str, StudentResult], assignment: str, unsafe: bool = False,
            logs: Path | None = None) -> str:
    graded = [r for r in results.values() if r.status == "graded"]
    failed = [r for r in results.values() if r.status == "failed"]
    lines = [f"{assignment}: {len(graded)} graded, {len(failed)} failed, {len(results)} submissions"]
    if unsafe:
        lines.append("  UNSAFE: student code ran WITHOUT a sandbox (--unsafe-no-sandbox), with your rights")
    if graded:
        scores = sorted(r.score or 0.0 for r in graded)
        top = graded[0].max_score
        mid = scores[len(scores) // 2] if len(scores) % 2 else (scores[len(scores) // 2 - 1] + scores[len(scores) // 2]) / 2
        lines.append(f"  scores out of {top:g}: mean {sum(scores) / len(scores):.1f}, median {mid:g}, "
                     f"min {scores[0]:g}, max {scores[-1]:g}; slowest {max(r.seconds for r in graded):.0f} s")
    for r in sorted(failed, key=lambda r: r.student):
        lines.append(f"  FAILED {r.student}: {r.reason}" + (f" (log: {r.log})" if r.log else ""))
    for r in sorted(results.values(), key=lambda r: r.student):
        if r.manual:
            lines.append(f"  needs manual grade: {r.student}")
        for f in r.flags:
            lines.append(f"  flag {r.student}: {f}")
        for n in r.notes:
            lines.append(f"  note {r.student}: {n}")
    if logs is not None:
        lines.append(f"  logs: {logs}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------
def _shard(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)/(\d+)", text or "")
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise argparse.ArgumentTypeError(f"--shard takes i/N with 1 <= i <= N (e.g. 1/4), got {text!r}")
    return int(match.group(1)), int(match.group(2))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="course grade",
        description="Autograde every submission of an assignment (one sandbox per student), write "
                    "feedback without hidden tests, export grades.csv and a score histogram.")
    p.add_argument("assignment", help="assignment name, e.g. 02_inception_module")
    p.add_argument("--submissions", type=Path, default=None,
                   help="folder with one sub-folder (or .zip file) per student (copied into nbgrader's "
                        "submitted/ folder); default: grade what is already there")
    p.add_argument("--course-dir", type=Path, default=None, help="folder with nbgrader_config.py "
                   "(default: the current folder or the nearest one above it)")
    p.add_argument("--student", action="append", dest="students", default=None,
                   help="grade only this student (repeatable)")
    p.add_argument("--timeout", type=float, default=None,
                   help="outer time limit per student, seconds (default: from the number of test cells)")
    p.add_argument("--cell-timeout", type=int, default=None,
                   help="per-cell limit in seconds (default: SandboxedExecute.timeout in nbgrader_config.py)")
    p.add_argument("--jobs", type=int, default=1, help="students graded at once (default 1)")
    p.add_argument("--shard", type=_shard, default=None, metavar="i/N",
                   help="grade only the i-th of N equal parts of the class (sorted by student id) and keep "
                        "the results for --merge; run N of these on N machines, each on a copy of the course")
    p.add_argument("--merge", type=Path, nargs="*", default=None, metavar="SHARD_DIR",
                   help="merge shard results (default: every <.nbgrader>/shards/<assignment>/* folder) into "
                        "the gradebook, then write feedback and reports")
    p.add_argument("--regrade", action="store_true",
                   help="grade every submission again (default: only new or changed ones)")
    p.add_argument("--unsafe-no-sandbox", action="store_true",
                   help="run student code WITHOUT a sandbox when bubblewrap is missing (never for a real "
                        "class: it runs with your rights); reported in the summary")
    p.add_argument("--out", type=Path, default=None,
                   help="where grades.csv and scores.png go (default: <.nbgrader>/reports/<assignment>)")
    p.add_argument("--no-feedback", action="store_true", help="skip generating feedback HTML")
    return p


def _setup(args: argparse.Namespace) -> Layout:
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
    if not (layout.release / args.assignment).is_dir():
        raise GradingError(f"no student version at {layout.release / args.assignment}: run `make assignments` "
                           "(nbgrader generate_assignment) first")
    if not args.unsafe_no_sandbox and args.merge is None:
        from .sandbox import SandboxUnavailable, check_available

        try:
            check_available()
        except SandboxUnavailable as err:
            raise GradingError(str(err)) from None
    return layout


def _grade_all(layout: Layout, args: argparse.Namespace, todo: list[StudentResult], db_dir: Path) -> None:
    cell_timeout = args.cell_timeout or configured_cell_timeout(layout)
    timeout = args.timeout or outer_limit(layout, args.assignment, cell_timeout)
    extra = [f"--SandboxedExecute.timeout={args.cell_timeout}"] if args.cell_timeout else []

    def one(item: tuple[int, StudentResult]) -> None:
        i, r = item
        autograde_one(layout, args.assignment, r, timeout, extra, db_dir, args.unsafe_no_sandbox,
                      threads=1 if args.jobs > 1 else None)
        print(f"[{i}/{len(todo)}] {r.student}: {r.status} in {r.seconds:.0f} s"
              + (f": {r.reason}" if r.reason else ""), flush=True)

    if args.jobs > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            list(pool.map(one, enumerate(todo, 1)))
    else:
        for item in enumerate(todo, 1):
            one(item)


def _report(layout: Layout, args: argparse.Namespace, results: dict[str, StudentResult]) -> Path:
    assignment, root = args.assignment, layout.root
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
    (out_dir / "summary.txt").write_text(summary(results, assignment, args.unsafe_no_sandbox,
                                                 layout.work / "logs" / assignment) + "\n")
    return out_dir


def _load_previous(layout: Layout, assignment: str) -> dict[str, dict]:
    path = _hash_file(layout, assignment)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def run(args: argparse.Namespace) -> tuple[dict[str, StudentResult], Path]:
    layout = _setup(args)
    assignment = args.assignment
    _ensure_in_gradebook(layout, assignment)
    if args.merge is not None:
        return merge(layout, args)

    results = collect(layout, assignment, args.submissions, args.students)
    if not results:
        raise GradingError(f"no submissions of {assignment} found in {layout.submitted}")
    if args.shard:
        i, n = args.shard
        names = sorted(results)
        results = {s: results[s] for k, s in enumerate(names) if k % n == i - 1}

    previous = _load_previous(layout, assignment)
    hashes = {s: submission_hash(layout.submitted / s / assignment) for s in results}
    todo = []
    for r in results.values():
        if r.status != "pending":
            continue
        old = previous.get(r.student, {})
        if (not args.regrade and not args.shard and old.get("hash") == hashes[r.student]
                and (layout.autograded / r.student / assignment).is_dir()):
            r.status, r.seconds, r.flags, r.log = "graded", 0.0, old.get("flags", []), old.get("log", "")
            r.notes.append("unchanged since it was last graded: not graded again (--regrade to force)")
            continue
        todo.append(r)

    backup_gradebook(layout)
    if args.shard:
        i, n = args.shard
        db_dir = layout.work / "shards" / assignment / f"shard-{i}-of-{n}"
    else:
        db_dir = layout.work / "gradebooks" / assignment
    shutil.rmtree(db_dir, ignore_errors=True)
    _grade_all(layout, args, todo, db_dir)
    if args.shard:
        state = {r.student: {"status": r.status, "reason": r.reason, "seconds": r.seconds, "flags": r.flags,
                             "log": r.log, "notes": r.notes, "hash": hashes.get(r.student)} for r in results.values()}
        (db_dir / "results.json").write_text(json.dumps(state, indent=1))
        for r in results.values():  # the notebooks travel with the shard to the merging machine
            graded = layout.autograded / r.student / assignment
            if r.status == "graded" and graded.is_dir():
                shutil.copytree(graded, db_dir / "autograded" / r.student / assignment)
        print(f"shard {i}/{n}: {len(results)} students; results in {db_dir} (merge with `course grade "
              f"{assignment} --merge`)")
        return results, db_dir
    merge_gradebooks(layout, assignment, [db_dir / f"{r.student}.db" for r in todo if r.status == "graded"])
    new = dict(previous)
    for r in results.values():
        if r.status == "graded":
            new[r.student] = {"hash": hashes[r.student], "flags": r.flags, "log": r.log}
        else:
            new.pop(r.student, None)
    _hash_file(layout, assignment).parent.mkdir(parents=True, exist_ok=True)
    _hash_file(layout, assignment).write_text(json.dumps(new, indent=1))
    return results, _report(layout, args, results)


def merge(layout: Layout, args: argparse.Namespace) -> tuple[dict[str, StudentResult], Path]:
    """``--merge``: fold shard results (gradebook copies, autograded notebooks, logs) into this
    course's gradebook; then feedback and reports as for an ordinary run."""
    assignment = args.assignment
    shards = args.merge or sorted((layout.work / "shards" / assignment).glob("shard-*"))
    if not shards:
        raise GradingError(f"nothing to merge: no shard folders in {layout.work / 'shards' / assignment}; run "
                           f"`course grade {assignment} --shard i/N` first (or give the folders to --merge)")
    backup_gradebook(layout)
    results: dict[str, StudentResult] = {}
    previous = _load_previous(layout, assignment)
    for shard in shards:
        state_file = shard / "results.json"
        if not state_file.is_file():
            raise GradingError(f"{shard} is not a shard folder (no results.json): give the folders that "
                               "`course grade --shard i/N` wrote")
        state = json.loads(state_file.read_text())
        for student, s in state.items():
            r = StudentResult(student, s["status"], s.get("reason", ""), s.get("seconds", 0.0),
                              flags=s.get("flags", []), log=s.get("log", ""), notes=s.get("notes", []))
            results[student] = r
            autograded = shard / "autograded" / student / assignment
            if autograded.is_dir():  # shard from another machine: bring its notebooks along
                dest = layout.autograded / student / assignment
                shutil.rmtree(dest, ignore_errors=True)
                shutil.copytree(autograded, dest)
            if r.status == "graded":
                previous[student] = {"hash": s.get("hash"), "flags": r.flags, "log": r.log}
        merge_gradebooks(layout, assignment, [shard / f"{s}.db" for s, v in state.items() if v["status"] == "graded"])
    _hash_file(layout, assignment).parent.mkdir(parents=True, exist_ok=True)
    _hash_file(layout, assignment).write_text(json.dumps(previous, indent=1))
    return results, _report(layout, args, results)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``course grade``; returns the exit status (0 even when students failed:
    their failures are in the report; 2 when the run itself cannot start)."""
    args = build_parser().parse_args(argv)
    if args.jobs < 1:
        print("course grade: --jobs must be at least 1", file=sys.stderr)
        return 2
    try:
        results, out_dir = run(args)
    except GradingError as err:
        print(f"course grade: {err}", file=sys.stderr)
        return 2
    if args.shard:
        return 0
    print(summary(results, args.assignment, args.unsafe_no_sandbox))
    print(f"  wrote {out_dir / 'grades.csv'}, {out_dir / 'scores.png'}; feedback in "
          f"{Layout.load((args.course_dir or find_course_dir()).resolve()).feedback}")
    return 0
