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
                dest = _fresh_destination(layout, student, assignment)
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
            dest = _fresh_destination(layout, student, assignment)
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


def submission_hash(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not p.is_symlink():
            h.update(str(p.relative_to(folder)).encode())
            with p.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()
