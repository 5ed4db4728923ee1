"""How long `course grade` takes: per student and for a class of assignment 2, serial against --jobs.

    python benchmarks/grade_class.py                       # 20 students, serial then --jobs 2
    python benchmarks/grade_class.py --students 20 --jobs 2 --out benchmarks/results/grade_class.json
    python benchmarks/grade_class.py --quick               # plumbing check: 2 students, no result file

Run it on idle cores: the figure is a ratio of wall times, and anything else running on the
machine changes both.  Each run grades a fresh copy of the course (so nothing is skipped as
"unchanged"), in the real sandbox, with the course's default per-cell limit.  The class alternates
the solution and the honest wrong solution (a 3x3 kernel in the 5x5 branch), so both runs must
give the same scores; the script checks that before it reports a ratio.

Target: a speed-up of at least 1.7 with ``--jobs 2`` on 2 cores.  The result file records the
device, date and commit with the figures (``benchmarks/results/grade_class.json`` and ``.md``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _meta import REPO, RESULTS, meta  # noqa: E402

A2 = "02_inception_module"


def _solved() -> nbformat.NotebookNode:
    source = {c.metadata["nbgrader"]["grade_id"]: c.source
              for c in nbformat.read(str(REPO / "solutions" / A2 / f"{A2}.ipynb"), 4).cells
              if c.metadata.get("nbgrader", {}).get("solution")}
    nb = nbformat.read(str(REPO / "assignments" / A2 / f"{A2}.ipynb"), 4)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in source:
            cell.source = source[gid]
    return nb


def make_class(folder: Path, students: int) -> None:
    """``students`` submissions: the solution and the honest wrong solution, alternately."""
    for i in range(students):
        nb = _solved()
        if i % 2:
            for cell in nb.cells:
                if cell.metadata.get("nbgrader", {}).get("grade_id") == "inception_module":
                    cell.source = cell.source.replace("BasicConv2d(ch5x5red, ch5x5, 5, padding=2)",
                                                      "BasicConv2d(ch5x5red, ch5x5, 3, padding=1)")
        (folder / f"student{i:03d}").mkdir(parents=True)
        nbformat.write(nb, str(folder / f"student{i:03d}" / f"{A2}.ipynb"))


def grade_once(work: Path, submissions: Path, jobs: int) -> dict:
    """Grade the class in a fresh copy of the course; wall time and the per-student rows."""
    from course_pkg.grading import main as grade_main

    course = work / f"course-jobs{jobs}"
    shutil.rmtree(course, ignore_errors=True)
    course.mkdir(parents=True)
    shutil.copy(REPO / "nbgrader_config.py", course)
    shutil.copytree(REPO / "solutions", course / "solutions")
    shutil.copytree(REPO / "assignments", course / "assignments")
    start = time.monotonic()
    code = grade_main([A2, "--course-dir", str(course), "--submissions", str(submissions), "--jobs", str(jobs),
                       "--no-feedback"])
    seconds = time.monotonic() - start
    if code != 0:
        raise SystemExit(f"course grade exited with {code}")
    with (course / ".nbgrader" / "reports" / A2 / "grades.csv").open() as fh:
        rows = {r["student"]: r for r in csv.DictReader(fh)}
    failed = [s for s, r in rows.items() if r["status"] != "graded"]
    if failed:
        raise SystemExit(f"not graded with --jobs {jobs}: {failed}")
    return {"seconds": seconds, "scores": {s: float(r["score"]) for s, r in rows.items()},
            "student_seconds": [float(r["seconds"]) for r in rows.values()]}


def run(students: int, jobs: int, work: Path) -> dict:
    submissions = work / "submissions"
    make_class(submissions, students)
    serial = grade_once(work, submissions, 1)
    parallel = grade_once(work, submissions, jobs)
    if serial["scores"] != parallel["scores"]:
        raise SystemExit(f"the scores differ between the runs: {serial['scores']} vs {parallel['scores']}")
    return {
        **meta("cpu"),
        "cores": os.cpu_count(),
        "assignment": A2,
        "students": students,
        "jobs": jobs,
        "serial_seconds": round(serial["seconds"], 1),
        "parallel_seconds": round(parallel["seconds"], 1),
        # from the seconds as recorded, so that the file agrees with itself
        "speedup": round(round(serial["seconds"], 1) / round(parallel["seconds"], 1), 2),
        "seconds_per_student_serial": round(serial["seconds"] / students, 1),
        "seconds_per_student_parallel": round(parallel["seconds"] / students, 1),
        "one_student_seconds_median": sorted(serial["student_seconds"])[len(serial["student_seconds"]) // 2],
        "target_speedup": 1.7,
    }


def markdown(r: dict) -> str:
    verdict = "meets" if r["speedup"] >= r["target_speedup"] else "misses"
    return (f"# Grading a class of assignment 2: serial against --jobs {r['jobs']}\n\n"
            f"{r['device']}, {r['cores']} cores; {r['date']}, commit {r['commit']}, torch {r['torch']}.\n\n"
            "| run | class of {0} | per student |\n|---|---|---|\n".format(r["students"])
            + f"| serial | {r['serial_seconds']} s | {r['seconds_per_student_serial']} s |\n"
            + f"| --jobs {r['jobs']} | {r['parallel_seconds']} s | {r['seconds_per_student_parallel']} s |\n\n"
            + f"Speed-up **{r['speedup']}x** ({verdict} the target of {r['target_speedup']}x). One student alone "
            f"(median, serial run): {r['one_student_seconds_median']} s.\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--students", type=int, default=20)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="2 students; no result file unless --out is given")
    p.add_argument("--out", type=Path, default=None,
                   help="result JSON (a .md beside it); default benchmarks/results/grade_class.json")
    args = p.parse_args(argv)
    students = 2 if args.quick else args.students
    out = args.out or (None if args.quick else RESULTS / "grade_class.json")
    with tempfile.TemporaryDirectory(prefix="grade-bench-") as tmp:
        result = run(students, args.jobs, Path(tmp))
    print(json.dumps(result, indent=1))
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1) + "\n")
        out.with_suffix(".md").write_text(markdown(result))
        print(f"wrote {out} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
