"""Submissions: collected from an LMS export, unpacked safely, renamed to what nbgrader expects.

:func:`collect` copies one folder (or zip) per student into nbgrader's ``submitted/`` folder;
:func:`normalise_submission` undoes what downloads do to file names ("Copy of ...", " (1)");
:func:`unpack_zip` refuses archives that climb out of their folder, hold links or unpack too large;
:func:`repair_metadata` restores graded cells' nbgrader metadata a student changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import unicodedata
from pathlib import Path

from .course import GradingError, Layout, StudentResult

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


def _fresh_destination(layout: Layout, student: str, assignment: str) -> Path:
    """``submitted/<student>/<assignment>``, emptied of an earlier submission (not created)."""
    dest = layout.submitted / student / assignment
    if dest.exists():
        shutil.rmtree(dest)
    return dest


def _ids_file(layout: Layout) -> Path:
    return layout.work / "student-ids.json"


def _sources(layout: Layout, assignment: str, entries: list[Path], students: list[str] | None,
             results: dict[str, StudentResult]) -> dict[str, Path]:
    """Student id -> the submission (folder or zip) it comes from; two submissions with one id are
    both refused (in ``results``), naming both, instead of one silently replacing the other."""
    by_id: dict[str, list[Path]] = {}
    for entry in entries:
        student = student_id(entry.stem if entry.suffix.lower() == ".zip" else entry.name)
        if not students or student in students or entry.name in students:
            by_id.setdefault(student, []).append(entry)
    for student, found in by_id.items():
        if len(found) > 1:
            shutil.rmtree(layout.submitted / student / assignment, ignore_errors=True)
            names = ", ".join(repr(e.name) for e in found)
            results[student] = StudentResult(student, "failed", f"the submissions {names} all map to the student "
                                             f"id {student!r}: rename all but one and run again")
    return {s: found[0] for s, found in by_id.items() if len(found) == 1}


def collect(layout: Layout, assignment: str, source: Path | None,
            students: list[str] | None) -> dict[str, StudentResult]:
    """Copy submissions into nbgrader's submitted/ folder (when ``source`` is given), normalise
    names, and return one :class:`StudentResult` per student found.

    Whatever is in submitted/ is checked before nbgrader reads it: a link, a FIFO or a device
    anywhere in a student's folder fails that student (nbgrader's copies follow links)."""
    results: dict[str, StudentResult] = {}
    expected = _expected_notebooks(layout, assignment)
    ids = json.loads(_ids_file(layout).read_text(encoding="utf-8")) if _ids_file(layout).is_file() else {}
    notes: dict[str, list[str]] = {}
    if source is not None:
        if not source.is_dir():
            raise GradingError(f"--submissions {source} is not a folder: give a folder with one "
                               "sub-folder per student")
        entries = []
        for entry in sorted(source.iterdir()):
            kind = os.lstat(entry).st_mode
            if entry.name.startswith("."):
                continue
            if stat.S_ISREG(kind) and entry.suffix.lower() == ".zip" or stat.S_ISDIR(kind):
                entries.append(entry)
            else:
                print(f"  skipping {entry.name}: submissions must be in one folder (or zip) per student "
                      f"({source}/<student>/{expected[0]}); links and special files are not read")
        for student, entry in _sources(layout, assignment, entries, students, results).items():
            if student != entry.name and student != entry.stem:
                ids[student] = entry.name
            dest = _fresh_destination(layout, student, assignment)
            left_out: list[str] = []
            if entry.suffix.lower() == ".zip" and not entry.is_dir():
                why = unpack_zip(entry, dest)
            else:
                why = copy_submission(entry, dest, left_out)
                if left_out:
                    notes[student] = [f"left out {', '.join(map(repr, left_out))}: links and special files "
                                      "(FIFOs, devices) are not part of a submission; submit plain files"]
                for inner in list(dest.glob("*.zip")):  # a folder holding the student's zip
                    why = why or unpack_zip(inner, dest)
                    inner.unlink()
            if why:
                shutil.rmtree(dest, ignore_errors=True)
                dest.mkdir(parents=True)
                (dest / ".unpack-error").write_text(why)
        _ids_file(layout).parent.mkdir(parents=True, exist_ok=True)
        _ids_file(layout).write_text(json.dumps(ids, indent=1, ensure_ascii=False), encoding="utf-8")
    folder = layout.submitted
    if not folder.is_dir():
        raise GradingError(f"no submissions: {folder} does not exist and no --submissions folder was given")
    for student_dir in sorted(folder.iterdir()):
        sub = student_dir / assignment
        if (student_dir.name in results or (students and student_dir.name not in students)
                or not os.path.lexists(sub)):
            continue
        result = StudentResult(student_dir.name, source=ids.get(student_dir.name, ""))
        results[result.student] = result
        if not valid_student_id(result.student):
            why = f"the folder name {result.student!r} is not a valid student id (letters, digits, _ . @ -)"
        else:
            why = _unsafe_entry(sub) if not student_dir.is_symlink() else f"{student_dir.name} is a link"
        if why or (sub / ".unpack-error").is_file():
            result.status, result.reason = "failed", why or (sub / ".unpack-error").read_text()
            continue
        result.notes = notes.get(result.student, []) + normalise_submission(sub, expected)
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
    if students:
        for s in students:
            if s not in results:
                results[s] = StudentResult(s, "failed", f"no submission for {assignment} in {folder / s}")
    return results


MAX_DEPTH = 8


def _unsafe_entry(folder: Path, depth: int = 0) -> str | None:
    """Why ``folder`` (a student's folder in submitted/) cannot be given to nbgrader: the first
    link, FIFO, device or socket in it, or nesting deeper than ``MAX_DEPTH``; None when it can."""
    if depth > MAX_DEPTH or not stat.S_ISDIR(os.lstat(folder).st_mode):
        return f"{folder.name}: a folder nested too deeply, or a link where a folder should be"
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.is_dir(follow_symlinks=False):
            why = _unsafe_entry(Path(entry.path), depth + 1)
            if why:
                return why
        elif not entry.is_file(follow_symlinks=False):
            return (f"{entry.name} is a link or a special file (FIFO, device): submit plain files only; "
                    "the submission was not graded")
    return None


def copy_submission(src: Path, dest: Path, left_out: list[str] | None = None) -> str | None:
    """Copy a student's folder: plain files and folders only (links and special files are left
    out, never followed or opened, and named in ``left_out``), at most ``MAX_ZIP_FILES`` files and
    ``MAX_ZIP_BYTES`` bytes, each file opened without following links and read with a byte bound.
    Returns why not, or None."""
    budget = [MAX_ZIP_FILES, MAX_ZIP_BYTES]
    left_out = [] if left_out is None else left_out

    def copy(folder: Path, out: Path, depth: int) -> str | None:
        if depth > MAX_DEPTH:
            return f"{src.name}: folders nested more than {MAX_DEPTH} deep; submit the notebook and its files"
        out.mkdir(parents=True, exist_ok=True)
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if entry.is_dir(follow_symlinks=False):
                why = copy(Path(entry.path), out / entry.name, depth + 1)
                if why:
                    return why
                continue
            if not entry.is_file(follow_symlinks=False):
                left_out.append(entry.name)  # a link, FIFO or device: not part of a submission
                continue
            budget[0] -= 1
            if budget[0] < 0:
                return f"{src.name} holds more than {MAX_ZIP_FILES} files: submit only the notebook and its files"
            try:
                fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY)
            except OSError:
                left_out.append(entry.name)  # replaced by a link since the listing
                continue
            with os.fdopen(fd, "rb") as fh:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    left_out.append(entry.name)
                    continue
                target = (out / entry.name).open("wb")
                with target:
                    while block := fh.read(1 << 20):
                        budget[1] -= len(block)
                        if budget[1] < 0:
                            return (f"{src.name} holds more than {MAX_ZIP_BYTES >> 20} MB; not copied "
                                    "(submit the notebook and the files it needs)")
                        target.write(block)
        return None

    return copy(src, dest, 0)


MAX_ZIP_BYTES = 300 << 20
MAX_ZIP_FILES = 200


def unpack_zip(archive: Path, dest: Path) -> str | None:
    """Unpack a student's zip into ``dest`` safely; returns why not, or None.

    Refused: names that are absolute or climb out (``..``), links, more than ``MAX_ZIP_FILES``
    files or ``MAX_ZIP_BYTES`` unpacked (counted while reading, not trusted from the header).
    A single top-level folder is stripped (how most zip tools pack a folder)."""
    import zipfile

    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as err:
        return f"{archive.name} is not a readable zip file ({err}): submit the notebook itself or a valid zip"
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir() and not i.filename.startswith("__MACOSX/")]
        if len(infos) > MAX_ZIP_FILES:
            return (f"{archive.name} holds {len(infos)} files (at most {MAX_ZIP_FILES}): "
                    "submit only the notebook and its files")
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


_ID = re.compile(r"[A-Za-z0-9@][A-Za-z0-9_.@-]{0,99}")


def valid_student_id(student: str) -> bool:
    """A student id nbgrader can use as a folder name: ASCII letters, digits, ``_ . @ -``, not
    starting with a dot or a dash, at most 100 characters (so never ``..`` or a path)."""
    return bool(_ID.fullmatch(student))


def student_id(name: str) -> str:
    """The id of the submission folder (or zip) ``name``: the name itself when it is a valid id,
    else a readable ASCII part and 8 hex digits of the name's SHA-256 (``Zoë`` -> ``Zoe-1b2c3d4e``),
    so two names never share an id and the name is found again from the id."""
    if valid_student_id(name):
        return name
    ascii_part = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    clean = re.sub(r"[^A-Za-z0-9_.@-]+", "_", ascii_part.strip()).strip("_.-")[:80] or "student"
    return f"{clean}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


LARGE_FILE = 1 << 20  # bytes: a file this large is stored once (checkpoints are ~25-40 MB)


def large_files(folders: list[Path]) -> list[str]:
    """Glob patterns (exact names) of the files other than notebooks of at least ``LARGE_FILE``
    bytes in ``folders``: what feedback need not copy a third time."""
    import glob

    names = {p.name for folder in folders if folder.is_dir() for p in folder.rglob("*")
             if p.suffix != ".ipynb" and not p.is_symlink() and p.is_file() and p.stat().st_size >= LARGE_FILE}
    return sorted(glob.escape(n) for n in names)


def link_duplicates(original: Path, copy: Path) -> int:
    """Replace each large file under ``copy`` that is identical to the same path under
    ``original`` with a hard link to it, made read-only (nothing writes a graded file in place),
    so that one student's checkpoint is stored once, not once per grading step.  Where the file
    system has no hard links the copy stays.  Returns the bytes saved."""
    import filecmp

    saved = 0
    for path in sorted(copy.rglob("*")) if copy.is_dir() else []:
        twin = original / path.relative_to(copy)
        if (path.suffix == ".ipynb" or path.is_symlink() or twin.is_symlink() or not path.is_file()
                or not twin.is_file() or path.stat().st_size < LARGE_FILE or os.path.samefile(path, twin)
                or not filecmp.cmp(path, twin, shallow=False)):
            continue
        tmp = path.with_name(f".{path.name}.link")
        try:
            os.link(twin, tmp)
        except OSError:
            continue
        os.chmod(tmp, 0o444)
        os.replace(tmp, path)
        saved += path.stat().st_size
    return saved


def submission_hash(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not p.is_symlink():
            h.update(str(p.relative_to(folder)).encode())
            with p.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()
