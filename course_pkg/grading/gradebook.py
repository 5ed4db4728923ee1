"""The course's SQLite gradebook: backed up before a run, per-student copies merged into it, scores
read back.  Only this process writes it (SQLite has one writer at a time; nbgrader does not
support parallel autograding on one gradebook).

A shard's results (``--shard i/N``) travel to the merging machine as files anyone on the way
could edit: :func:`sign_shard` signs every file's hash with a key kept in the course folder, and
:func:`verify_shard` refuses a shard whose files changed since."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import shutil
import stat
import time
from pathlib import Path

from .course import CONFIG, GradingError, Layout, StudentResult, run_nbgrader

MANIFEST = "manifest.json"
KEY = "grading-key"

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


# --------------------------------------------------------------------------------------------
# Shards: signed when graded, verified before they are merged
# --------------------------------------------------------------------------------------------
def _key(layout: Layout, create: bool) -> bytes:
    """The course's signing key (32 random bytes in ``<work>/grading-key``, readable by its owner)."""
    path = layout.work / KEY
    if not path.is_file() and create:
        layout.work.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(secrets.token_bytes(32))
        except FileExistsError:
            pass  # another shard on this course folder made it first
    if not path.is_file() or path.is_symlink():
        raise GradingError(f"no signing key {path}: merge in the course folder whose key the shards were graded "
                           f"with (copy {path} to every machine before `course grade --shard`)")
    return path.read_bytes()


def _file_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` but the manifest; a link or special file is refused."""
    hashes = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            rel = path.relative_to(folder).as_posix()
            mode = os.lstat(path).st_mode
            if stat.S_ISDIR(mode) or rel == MANIFEST:
                continue
            if not stat.S_ISREG(mode):
                raise GradingError(f"{folder}: {rel} is a link or a special file; a shard holds plain files only "
                                   "(grade that shard again)")
            h = hashlib.sha256()
            with open(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            hashes[rel] = h.hexdigest()
    return hashes


def _mac(key: bytes, body: dict) -> str:
    return hmac.new(key, json.dumps(body, sort_keys=True).encode(), hashlib.sha256).hexdigest()


def sign_shard(layout: Layout, folder: Path, assignment: str) -> None:
    """Write ``manifest.json``: every file's hash in the shard, signed (HMAC-SHA256) with the key."""
    body = {"assignment": assignment, "files": _file_hashes(folder)}
    (folder / MANIFEST).write_text(json.dumps({"body": body, "hmac": _mac(_key(layout, create=True), body)}, indent=1))


def verify_shard(layout: Layout, folder: Path, assignment: str) -> None:
    """Refuse (GradingError, saying which files) a shard whose files are not exactly those it was
    signed with, or that was signed with another key or for another assignment."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        body, mac = manifest["body"], str(manifest["hmac"])
    except (OSError, ValueError, KeyError, TypeError):
        raise GradingError(f"{folder} has no readable {MANIFEST}: it was not written by `course grade --shard` "
                           "(or was damaged); grade that shard again") from None
    if not hmac.compare_digest(_mac(_key(layout, create=False), body), mac):
        raise GradingError(f"{folder}: {MANIFEST} does not match its signature (edited, or signed with another "
                           f"course folder's {KEY}); grade that shard again")
    if body.get("assignment") != assignment:
        raise GradingError(f"{folder} holds results of {body.get('assignment')!r}, not {assignment!r}")
    now, signed = _file_hashes(folder), body.get("files", {})
    changed = sorted(k for k in now.keys() | signed.keys() if now.get(k) != signed.get(k))
    if changed:
        raise GradingError(f"{folder}: {', '.join(changed[:5])} changed since the shard was graded (a gradebook "
                           "or result edited by hand is not merged); grade that shard again")


def inside_course(layout: Layout, path: Path) -> Path:
    """``path`` when it lies inside the course folder with no link on the way from ``<work>``;
    else GradingError (a student id like ``../../x`` never gets here: ids are checked first)."""
    root = layout.root.resolve()
    if not path.resolve().is_relative_to(root):
        raise GradingError(f"{path} is outside the course folder {root}; not written")
    for parent in [path, *path.parents]:
        if parent == layout.work or parent == layout.root:
            break
        if parent.is_symlink():
            raise GradingError(f"{parent} is a link; the grader writes inside the course folder, never through links")
    return path
