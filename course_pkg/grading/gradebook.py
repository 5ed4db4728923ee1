"""The course's SQLite gradebook: backed up before a run, per-student copies merged into it, scores
read back.  Only this process writes it (SQLite has one writer at a time; nbgrader does not
support parallel autograding on one gradebook)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from .course import CONFIG, GradingError, Layout, StudentResult, run_nbgrader

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
    code, out, _ = run_nbgrader(["generate_assignment", assignment, "--force",
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
