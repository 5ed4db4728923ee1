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

One module per step: :mod:`.course` (the course folder, running nbgrader), :mod:`.submissions`
(collect, unpack, rename), :mod:`.autograde` (one student), :mod:`.gradebook` (backup, merge,
scores), :mod:`.reports` (CSV, histogram, summary); this module is the command that runs them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from pathlib import Path

from .autograde import autograde_one, configured_cell_timeout, configured_memory_gb, outer_limit
from .course import CONFIG, GradingError, Layout, StudentResult, find_course_dir, nbgrader_env, run_nbgrader
from .gradebook import (_ensure_in_gradebook, backup_gradebook, inside_course, merge_gradebooks, read_scores,
                        sign_shard, verify_shard)
from .replicas import MAX_DEPTH, MAX_NODES
from .reports import summary, write_csv, write_histogram
from .sandbox import WATCHDOG_SECONDS
from .submissions import (MAX_ZIP_BYTES, MAX_ZIP_FILES, collect, copy_submission,  # noqa: F401 (re-exported)
                          large_files, link_duplicates, normalise_name, normalise_submission, repair_metadata,
                          submission_hash, unpack_zip, valid_student_id)


def _hash_file(layout: Layout, assignment: str) -> Path:
    return layout.work / "logs" / assignment / "graded-hashes.json"


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
    # --- help epilog: one class on several machines (kept apart from the options above) ---
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = (
        "one class on N machines (each with a copy of the course folder, .nbgrader/grading-key included):\n"
        '  Slurm job array (sbatch --array=1-N):   course grade A --submissions S --shard "$SLURM_ARRAY_TASK_ID/N"\n'
        '  Kubernetes Indexed Job (completions N): course grade A --submissions S '
        '--shard "$((JOB_COMPLETION_INDEX + 1))/N"\n'
        "  then, on the instructor's copy, with every shard folder copied back:\n"
        "                                           course grade A --merge SHARD_DIR ...\n"
        f"limits: without a delegated cgroup v2 a watchdog sums a student's memory every {WATCHDOG_SECONDS:g} s; "
        f"handed-over data\n  holds at most {MAX_NODES:,} values nested {MAX_DEPTH} levels deep\n"
        "exit status: 0 when the run finished (a student's failure is in the report); 2 when it could not\n"
        "start, or the grading machinery failed (no score is recorded then)")
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
    os.environ["PATH"] = nbgrader_env()["PATH"]
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
        if r.status == "graded":  # nbgrader copied the student's files: keep the large ones once
            link_duplicates(layout.submitted / r.student / args.assignment,
                            layout.autograded / r.student / args.assignment)
        print(f"[{i}/{len(todo)}] {r.student}: {r.status} in {r.seconds:.0f} s"
              + (f": {r.reason}" if r.reason else ""), flush=True)

    if args.jobs > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            list(pool.map(one, enumerate(todo, 1)))
    else:
        for item in enumerate(todo, 1):
            one(item)


def _caps(layout: Layout) -> str:
    """The sandbox caps that held for this run, in words, for the summary."""
    from . import sandbox

    return sandbox.enforcement(sandbox.Limits(wall_seconds=0, memory_bytes=configured_memory_gb(layout) << 30))


def flag_copied_code(layout: Layout, assignment: str, results: dict[str, StudentResult]) -> None:
    """Add to each graded student's flags (for this report; recomputed every run) the code they
    wrote that holds a reference definition of the course, the classmates whose written code is
    near-identical to theirs (the released notebook's starter code excluded), and submitted weights
    near a checkpoint the course ships (:mod:`course_pkg.grading.copying`)."""
    import nbformat

    from .copying import code_shingles, pasted_reference_flags, shipped_weight_flags, similar_notebooks

    def read(path: Path):
        try:
            return nbformat.read(str(path), as_version=4)
        except Exception:  # noqa: BLE001 -- an unreadable notebook compares with nothing
            return None

    released = read(layout.release / assignment / f"{assignment}.ipynb")
    starter = set().union(*(code_shingles(c.source) for c in released.cells if c.cell_type == "code")) \
        if released is not None else set()
    notebooks = {}
    for r in results.values():
        path = layout.autograded / r.student / assignment / f"{assignment}.ipynb"
        nb = read(path) if r.status == "graded" and path.is_file() else None
        if nb is not None:
            notebooks[r.student] = nb
            r.flags = [*r.flags, *pasted_reference_flags(nb, assignment, starter)]
        submitted = layout.submitted / r.student / assignment
        if r.status == "graded" and submitted.is_dir():
            r.flags = [*r.flags, *shipped_weight_flags(submitted)]
    for student, flags in similar_notebooks(notebooks, starter).items():
        results[student].flags = [*results[student].flags, *flags]


def _report(layout: Layout, args: argparse.Namespace, results: dict[str, StudentResult]) -> Path:
    assignment, root = args.assignment, layout.root
    flag_copied_code(layout, assignment, results)
    cells = read_scores(layout, assignment, results)
    graded = [r for r in results.values() if r.status == "graded"]
    if not args.no_feedback and graded:
        # One process for the whole class; per student only if that fails.  Student HTML is
        # sanitised (again: notebooks graded before the autograde step sanitised it), and the
        # large files (checkpoints) are not copied a third time: the students have them.
        from traitlets.config.loader import PyFileConfigLoader

        ignore = PyFileConfigLoader(CONFIG, path=str(root)).load_config().CourseDirectory.get(
            "ignore", [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback"])
        large = large_files([layout.autograded / r.student / assignment for r in graded])
        options = ["--force", "--HTMLExporter.sanitize_html=True",
                   *[f"--CourseDirectory.ignore={pattern}" for pattern in [*ignore, *large]]]
        selection = [f"--student={r.student}" for r in graded] if args.students else []
        code, out, _ = run_nbgrader(["generate_feedback", assignment, *options, *selection[:1]] if len(selection) == 1
                                    else ["generate_feedback", assignment, *options], root, 600)
        if code != 0:
            for r in graded:
                code, out, _ = run_nbgrader(["generate_feedback", assignment, "--student", r.student, *options],
                                            root, 300)
                if code != 0:
                    r.notes.append(f"feedback failed: {out.strip().splitlines()[-1] if out.strip() else code}")
    out_dir = args.out or (layout.work / "reports" / assignment)
    write_csv(out_dir / "grades.csv", results, cells)
    write_histogram(out_dir / "scores.png", results, assignment)
    (out_dir / "summary.txt").write_text(summary(results, assignment, args.unsafe_no_sandbox,
                                                 layout.work / "logs" / assignment, _caps(layout)) + "\n")
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
    hashes = {s: submission_hash(layout.submitted / s / assignment)
              for s, r in results.items() if r.status == "pending"}
    todo = []
    for r in results.values():
        if r.status != "pending":
            continue
        old = previous.get(r.student, {})
        unchanged = not args.regrade and not args.shard and old.get("hash") == hashes[r.student]
        if unchanged and old.get("status") == "failed":  # a failure is retried only for a new submission
            r.status, r.reason = "failed", old.get("reason", "")
            r.flags, r.log = old.get("flags", []), old.get("log", "")
            r.notes.append("failed when last graded and unchanged since: not graded again (--regrade to retry)")
            continue
        if unchanged and (layout.autograded / r.student / assignment).is_dir():
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
                copy_submission(graded, db_dir / "autograded" / r.student / assignment)
                link_duplicates(graded, db_dir / "autograded" / r.student / assignment)
        sign_shard(layout, db_dir, assignment)
        print(f"shard {i}/{n}: {len(results)} students; results in {db_dir} (merge with `course grade "
              f"{assignment} --merge`)")
        return results, db_dir
    merge_gradebooks(layout, assignment, [db_dir / f"{r.student}.db" for r in todo if r.status == "graded"])
    new = dict(previous)
    attempted = {r.student for r in todo}
    for r in results.values():
        if r.status == "graded":
            new[r.student] = {"hash": hashes[r.student], "flags": r.flags, "log": r.log}
        elif r.student in attempted:
            new[r.student] = {"hash": hashes[r.student], "status": "failed", "reason": r.reason, "flags": r.flags,
                              "log": r.log}
        elif r.student not in hashes:
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
        verify_shard(layout, shard, assignment)  # nothing of a changed shard is merged
        state = json.loads(state_file.read_text())
        bad = [student for student in state if not valid_student_id(student)]
        if bad:
            raise GradingError(f"{shard}: {bad[0]!r} is not a valid student id; not merged")
        for student, s in state.items():
            r = StudentResult(student, s["status"], s.get("reason", ""), s.get("seconds", 0.0),
                              flags=s.get("flags", []), log=s.get("log", ""), notes=s.get("notes", []))
            results[student] = r
            autograded = shard / "autograded" / student / assignment
            if autograded.is_dir():  # shard from another machine: bring its notebooks along
                dest = inside_course(layout, layout.autograded / student / assignment)
                shutil.rmtree(dest, ignore_errors=True)
                copy_submission(autograded, dest)
                link_duplicates(layout.submitted / student / assignment, dest)
            previous[student] = ({"hash": s.get("hash"), "flags": r.flags, "log": r.log} if r.status == "graded" else
                                 {"hash": s.get("hash"), "status": "failed", "reason": r.reason, "flags": r.flags,
                                  "log": r.log})
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
    print(summary(results, args.assignment, args.unsafe_no_sandbox,
                  caps=_caps(Layout.load((args.course_dir or find_course_dir()).resolve()))))
    print(f"  wrote {out_dir / 'grades.csv'}, {out_dir / 'scores.png'}; feedback in "
          f"{Layout.load((args.course_dir or find_course_dir()).resolve()).feedback}")
    return 0
