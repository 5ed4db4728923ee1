"""Write the instructor notebooks ``solutions/<a>/<a>.ipynb`` from their sources ``assignments_src/<a>.py``.

    python tools/assignments.py                  # check every source, then (re)write solutions/*/*.ipynb
    python tools/assignments.py 03_googlenet_aux # one assignment
    python tools/assignments.py --check          # check only: sources valid, notebooks up to date
    python tools/assignments.py --from-ipynb 03_googlenet_aux
                                                 # bring an edit made in Jupyter back into the source
    make assignments                             # the first command, then nbgrader generate_assignment

A source is a jupytext "percent" file: one ``# %%`` line per cell, with the cell's nbgrader metadata
in that line (``# %% nbgrader={"grade": true, "grade_id": "test_x", ..., "points": 2, ...}``), and
markdown cells as ``# %% [markdown]`` followed by commented lines.  Instructors edit it as Python
(highlighted, linted, runnable cell by cell in an editor that knows ``# %%``).  The sources live
outside ``solutions/<a>/`` because nbgrader releases every file in that folder to students.

Editing ``solutions/<a>/<a>.ipynb`` in Jupyter, the nbgrader way, stays possible: ``written.json``
beside the sources records a hash of the content (cells and their nbgrader metadata) of every
notebook this script wrote.  A notebook whose content no longer matches it was edited by hand, and
this script refuses to overwrite it until ``--from-ipynb <a>`` has converted it back into the source.

Before writing anything it checks every notebook with :func:`check` (the rules nbgrader needs and
the course relies on; the tests run the same check).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ROOT / "assignments_src"
SOLUTIONS = ROOT / "solutions"
RECORD = SOURCES / "written.json"

# The percent files hold the cells and their nbgrader metadata, nothing else (no jupytext header, no
# outputs, no Jupyter UI state); the notebooks get the same kernel metadata every time.
JUPYTEXT_FILTERS = {"notebook_metadata_filter": "-all", "cell_metadata_filter": "-all,nbgrader"}
NOTEBOOK_METADATA = {
    "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
    "language_info": {"name": "python"},
}
# What Jupyter or jupytext add to a cell's metadata; dropped without a word.
VOLATILE_CELL_METADATA = {"collapsed", "scrolled", "execution", "jupyter", "trusted", "editable", "deletable",
                          "lines_to_next_cell", "lines_to_end_of_cell_marker"}

SOLUTION_BEGIN, SOLUTION_END = "### BEGIN SOLUTION", "### END SOLUTION"
HIDDEN_BEGIN, HIDDEN_END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
NBGRADER_KEYS = {"grade", "grade_id", "locked", "schema_version", "solution", "task"}


class AssignmentError(Exception):
    """A source or notebook that breaks a rule, or a notebook edited by hand; the message says what to do."""


def names() -> list[str]:
    return sorted(p.stem for p in SOURCES.glob("*.py"))


def source_path(name: str) -> Path:
    return SOURCES / f"{name}.py"


def notebook_path(name: str) -> Path:
    return SOLUTIONS / name / f"{name}.ipynb"


def cell_id(name: str, index: int) -> str:
    """Stable ids (``a03-007``): the committed notebooks do not churn when a cell is edited."""
    return f"a{name[:2]}-{index:03d}"


# --------------------------------------------------------------------------------------------------
# percent file <-> notebook
# --------------------------------------------------------------------------------------------------
def from_percent(text: str, name: str) -> nbformat.NotebookNode:
    """The instructor notebook a percent source describes."""
    parsed = jupytext.reads(text, fmt="py:percent")
    nb = nbformat.v4.new_notebook()
    nb.metadata = json.loads(json.dumps(NOTEBOOK_METADATA))
    for index, cell in enumerate(parsed.cells):
        if cell.cell_type == "markdown":
            new = nbformat.v4.new_markdown_cell(cell.source)
        elif cell.cell_type == "code":
            new = nbformat.v4.new_code_cell(cell.source)
        else:
            new = nbformat.v4.new_raw_cell(cell.source)  # check() rejects it, naming the cell
        new.metadata = {k: v for k, v in cell.metadata.items() if k not in VOLATILE_CELL_METADATA}
        new.id = cell_id(name, index)
        nb.cells.append(new)
    return nb


def to_percent(nb: nbformat.NotebookNode) -> str:
    """The percent source of a notebook: cells and nbgrader metadata only."""
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    nb.metadata = {"jupytext": dict(JUPYTEXT_FILTERS)}
    return jupytext.writes(nb, fmt="py:percent")


def notebook_text(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


def content_hash(nb: nbformat.NotebookNode) -> str:
    """Hash of what an instructor can change: cell types, sources, nbgrader metadata (not outputs)."""
    return hashlib.sha256(to_percent(nb).encode()).hexdigest()


def build(name: str) -> nbformat.NotebookNode:
    """The checked notebook of one source; raises AssignmentError listing every problem."""
    path = source_path(name)
    if not path.is_file():
        raise AssignmentError(f"no source {path.relative_to(ROOT)}; known: {', '.join(names())}")
    nb = from_percent(path.read_text(), name)
    problems = check(nb, name)
    if problems:
        raise AssignmentError(f"{path.relative_to(ROOT)}:\n  " + "\n  ".join(problems))
    return nb


# --------------------------------------------------------------------------------------------------
# the checker
# --------------------------------------------------------------------------------------------------
def _describe(index: int, cell) -> str:
    meta = cell.get("metadata", {}).get("nbgrader")
    if meta and meta.get("grade_id"):
        return f"cell {index} ({meta['grade_id']})"
    first = next((line.strip() for line in cell.get("source", "").splitlines() if line.strip()), "")
    return f"cell {index} ({cell.get('cell_type')}: {first[:50]!r})"


def _pairs(text: str, begin: str, end: str) -> str | None:
    """None if the markers come in ordered, unnested pairs, else what is wrong."""
    open_ = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped == begin or stripped.startswith(begin + " "):
            if open_:
                return f"{begin!r} twice without {end!r} between"
            open_ = True
        elif stripped == end or stripped.startswith(end + " "):
            if not open_:
                return f"{end!r} without {begin!r} before it"
            open_ = False
    return f"{begin!r} is never closed by {end!r}" if open_ else None


def check(nb: nbformat.NotebookNode, name: str, *, ids: bool = True) -> list[str]:
    """The rules every instructor notebook follows; returns one line per problem, naming the cell.

    - cells are markdown or code; markdown cells carry no nbgrader metadata (they are not graded);
    - an nbgrader code cell is one of three kinds: the read-only setup (locked), a solution
      (``solution``, not locked) or a test (``grade``, locked, with ``points`` > 0); schema 3, no tasks;
    - grade ids are unique;
    - ``### BEGIN SOLUTION`` / ``### END SOLUTION`` appear in pairs, in every solution cell and in no
      other cell; ``### BEGIN HIDDEN TESTS`` / ``### END HIDDEN TESTS`` only in test cells, in pairs;
    - a test cell never follows a read-only cell that is neither a test nor a solution: nbgrader 0.9.6
      restores a deleted test cell after the previous locked cell, and can only find that cell when it
      is a test or a solution (``OverwriteCells.add_missing_grade_cells`` raises KeyError otherwise).
      So self-checks and tables are plain, unlocked code cells without nbgrader metadata;
    - ids are ``a<first two characters of the name>-<index:03d>`` (with ``ids=True``), and the
      notebook is valid nbformat.
    """
    problems: list[str] = []
    seen: dict[str, int] = {}
    previous = None  # (index, metadata) of the previous cell with nbgrader metadata
    for index, cell in enumerate(nb.cells):
        where = _describe(index, cell)
        text = cell.get("source", "")
        meta = cell.get("metadata", {}).get("nbgrader")
        extra = set(cell.get("metadata", {})) - {"nbgrader"} - VOLATILE_CELL_METADATA
        if extra:
            problems.append(f"{where}: metadata {sorted(extra)} would be lost; keep only nbgrader's")
        if ids and cell.get("id") != cell_id(name, index):
            problems.append(f"{where}: id {cell.get('id')!r}, expected {cell_id(name, index)!r}")
        if cell.cell_type not in ("markdown", "code"):
            problems.append(f"{where}: a {cell.cell_type} cell; use markdown or code")
            continue
        has_solution = SOLUTION_BEGIN in text or SOLUTION_END in text
        has_hidden = HIDDEN_BEGIN in text or HIDDEN_END in text
        if cell.cell_type == "markdown":
            if meta is not None:
                problems.append(f"{where}: a markdown cell with nbgrader metadata; narrative is not graded")
            if has_solution or has_hidden:
                problems.append(f"{where}: solution or hidden-test markers in a markdown cell")
            continue
        if meta is None:
            if has_solution:
                problems.append(f"{where}: {SOLUTION_BEGIN!r} in a cell that is not a solution cell")
            if has_hidden:
                problems.append(f"{where}: {HIDDEN_BEGIN!r} outside a test cell; students would see it")
            continue

        keys = set(meta)
        expected = NBGRADER_KEYS | ({"points"} if meta.get("grade") else set())
        if keys != expected:
            missing, unknown = sorted(expected - keys), sorted(keys - expected)
            what = "; ".join(part for part in (f"missing {missing}" if missing else "",
                                               f"unexpected {unknown}" if unknown else "") if part)
            problems.append(f"{where}: nbgrader metadata {what}"
                            + (" (every test cell needs points)" if "points" in missing else ""))
        if meta.get("schema_version") != 3:
            problems.append(f"{where}: nbgrader schema_version {meta.get('schema_version')!r}, expected 3")
        if meta.get("task"):
            problems.append(f"{where}: a task cell; this course uses setup, solution and test cells only")
        grade, solution, locked = bool(meta.get("grade")), bool(meta.get("solution")), bool(meta.get("locked"))
        grade_id = meta.get("grade_id")
        if not grade_id:
            problems.append(f"{where}: no grade_id")
        elif grade_id in seen:
            problems.append(f"{where}: grade id {grade_id!r} is also cell {seen[grade_id]}'s; grade ids must be unique")
        else:
            seen[grade_id] = index

        if grade and solution:
            problems.append(f"{where}: both a test (grade) and a solution; split it into two cells")
        elif grade:
            points = meta.get("points")
            if "points" in meta and (isinstance(points, bool) or not isinstance(points, (int, float)) or points <= 0):
                problems.append(f"{where}: points {points!r}; a test cell needs points > 0")
            if not locked:
                problems.append(f"{where}: a test cell must be locked (read-only)")
            if has_solution:
                problems.append(f"{where}: {SOLUTION_BEGIN!r} in a test cell; solutions go in solution cells")
        elif solution:
            if locked:
                problems.append(f"{where}: a solution cell must not be locked")
            if SOLUTION_BEGIN not in text:
                problems.append(f"{where}: a solution cell without {SOLUTION_BEGIN!r} … {SOLUTION_END!r}")
            if has_hidden:
                problems.append(f"{where}: {HIDDEN_BEGIN!r} in a solution cell; hidden tests go in test cells")
        else:
            if not locked:
                problems.append(f"{where}: nbgrader metadata on an unlocked, ungraded cell; "
                                "drop the metadata (a plain cell) or lock it (the setup)")
            if has_solution:
                problems.append(f"{where}: {SOLUTION_BEGIN!r} in a cell that is not a solution cell")
            if has_hidden:
                problems.append(f"{where}: {HIDDEN_BEGIN!r} outside a test cell; students would see it")
        for begin, end in ((SOLUTION_BEGIN, SOLUTION_END), (HIDDEN_BEGIN, HIDDEN_END)):
            wrong = _pairs(text, begin, end)
            if wrong:
                problems.append(f"{where}: {wrong}")

        if grade and previous is not None:
            before_index, before = previous
            if not (before.get("grade") or before.get("solution")):
                problems.append(f"{where}: test cell follows the read-only cell {before.get('grade_id')!r} "
                                f"(cell {before_index}); nbgrader could not restore it if a student deleted it. "
                                "Put a solution or test cell between them, or make the read-only cell plain")
        previous = (index, meta)
    if nb.metadata != NOTEBOOK_METADATA:
        problems.append(f"notebook metadata {dict(nb.metadata)!r}, expected {NOTEBOOK_METADATA!r}")
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as err:
        problems.append(f"not a valid notebook: {err.message}")
    return problems


# --------------------------------------------------------------------------------------------------
# writing, and the record of what was written
# --------------------------------------------------------------------------------------------------
def read_record() -> dict:
    return json.loads(RECORD.read_text()) if RECORD.is_file() else {}


def save_record(name: str, nb: nbformat.NotebookNode) -> None:
    record = read_record()
    record[name] = {"source_sha256": hashlib.sha256(source_path(name).read_bytes()).hexdigest(),
                    "content_sha256": content_hash(nb)}
    RECORD.write_text(json.dumps(dict(sorted(record.items())), indent=1) + "\n")


def edited_by_hand(name: str) -> bool:
    """True if ``solutions/<name>/<name>.ipynb`` holds content this script did not write."""
    path = notebook_path(name)
    if not path.is_file():
        return False
    recorded = read_record().get(name, {}).get("content_sha256")
    return content_hash(nbformat.read(path, as_version=4)) != recorded


def _edited_message(name: str) -> str:
    rel_nb, rel_src = notebook_path(name).relative_to(ROOT), source_path(name).relative_to(ROOT)
    return (f"{rel_nb} was edited since tools/assignments.py wrote it (its cells no longer match "
            f"{RECORD.relative_to(ROOT)}), so it is not overwritten.  Bring the edit into the source:\n"
            f"    python tools/assignments.py --from-ipynb {name}\n"
            f"and review `git diff {rel_src}`.  To drop the notebook edit instead, "
            f"`git checkout {rel_nb}` (or pass --discard-ipynb-edits).")


def write(name: str, *, discard_edits: bool = False) -> Path:
    """Check the source, then write its notebook (refusing to overwrite an edit made in Jupyter)."""
    nb = build(name)
    path = notebook_path(name)
    text = notebook_text(nb)
    if path.is_file() and path.read_text() != text and edited_by_hand(name) and not discard_edits:
        raise AssignmentError(_edited_message(name))
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)
    save_record(name, nb)
    return path


def from_ipynb(name: str, *, force: bool = False) -> Path:
    """Convert ``solutions/<name>/<name>.ipynb`` (edited in Jupyter) back into its percent source."""
    path, src = notebook_path(name), source_path(name)
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        cell.metadata = {k: v for k, v in cell.metadata.items() if k not in VOLATILE_CELL_METADATA}
    nb.metadata = json.loads(json.dumps(NOTEBOOK_METADATA))
    problems = check(nb, name, ids=False)  # cells added in Jupyter get random ids; renumbered below
    if problems:
        raise AssignmentError(f"{path.relative_to(ROOT)}:\n  " + "\n  ".join(problems))
    text = to_percent(nb)
    recorded = read_record().get(name, {}).get("source_sha256")
    if src.is_file() and src.read_text() != text and not force \
            and hashlib.sha256(src.read_bytes()).hexdigest() != recorded:
        raise AssignmentError(f"{src.relative_to(ROOT)} was also edited since the notebook was written: "
                              "merge by hand, or pass --force to replace the source with the notebook's cells")
    src.write_text(text)
    return write(name, discard_edits=True)  # the same cells, with stable ids and no outputs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("assignments", nargs="*", help="default: every source in assignments_src/")
    p.add_argument("--check", action="store_true",
                   help="check the sources and that the notebooks are what they produce; write nothing")
    p.add_argument("--from-ipynb", metavar="ASSIGNMENT",
                   help="convert solutions/<a>/<a>.ipynb, edited in Jupyter, back into assignments_src/<a>.py")
    p.add_argument("--discard-ipynb-edits", action="store_true",
                   help="overwrite notebooks edited in Jupyter (their edits are lost)")
    p.add_argument("--force", action="store_true", help="with --from-ipynb: replace a source edited meanwhile")
    args = p.parse_args(argv)
    try:
        if args.from_ipynb:
            path = from_ipynb(args.from_ipynb, force=args.force)
            print(f"{source_path(args.from_ipynb).relative_to(ROOT)} now holds the notebook's cells; "
                  f"{path.relative_to(ROOT)} rewritten")
            return 0
        chosen = args.assignments or names()
        unknown = [a for a in chosen if a not in names()]
        if unknown:
            raise AssignmentError(f"unknown assignment {', '.join(unknown)}; known: {', '.join(names())}")
        built = {name: build(name) for name in chosen}  # check every source before writing any
        if args.check:
            stale = [name for name, nb in built.items() if not notebook_path(name).is_file()
                     or notebook_path(name).read_text() != notebook_text(nb)]
            edited = [name for name in stale if edited_by_hand(name)]
            for name in edited:
                print(_edited_message(name), file=sys.stderr)
            for name in sorted(set(stale) - set(edited)):
                print(f"{notebook_path(name).relative_to(ROOT)} is not what {source_path(name).relative_to(ROOT)} "
                      "gives: run `make assignments`", file=sys.stderr)
            return 1 if stale else 0
        for name in chosen:
            print(write(name, discard_edits=args.discard_ipynb_edits).relative_to(ROOT))
    except AssignmentError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
