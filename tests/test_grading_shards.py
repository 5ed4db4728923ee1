"""A class graded on several machines: ``course grade --shard i/N`` as N separate processes, each on
a copy of the course folder of its own (what the N tasks of a Slurm job array or of a Kubernetes
Indexed Job do), then ``--merge`` on the instructor's copy.

The shard commands are the ones the book gives, run through a shell with the job runner's index
variable set: Slurm numbers its array tasks from 1 (``--array=1-N``), Kubernetes from 0.

Slow by nature (every submission starts a sandboxed kernel that imports torch).
"""

from __future__ import annotations

import csv
import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from test_grading_e2e import released, solved, write

REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]
ASSIGNMENT = "01_lenet_alexnet"
N = 2
# the two ways the book starts shard i of N (`course` is the package's command)
SLURM = 'course grade "$A" --course-dir "$COURSE" --submissions "$SUBS" --shard "${SLURM_ARRAY_TASK_ID}/$N"'
KUBERNETES = ('course grade "$A" --course-dir "$COURSE" --submissions "$SUBS" '
              '--shard "$((JOB_COMPLETION_INDEX + 1))/$N"')


def test_shards_in_separate_processes_on_separate_copies_merge_into_one_class(tmp_path):
    course = tmp_path / "course"  # the instructor's copy: where the merge happens
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"  # `course`, `alembic`
    course.mkdir()
    shutil.copy(REPO / "nbgrader_config.py", course)
    for folder in ("solutions", "assignments"):
        shutil.copytree(REPO / folder / ASSIGNMENT, course / folder / ASSIGNMENT)
    # the instructor's course as it is before grading: the assignment in the gradebook (what
    # `make assignments` does) and the key that signs shards, both copied to every machine
    subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", ASSIGNMENT, "--force",
                    f"--CourseDirectory.release_directory={tmp_path / 'release'}"], cwd=course, check=True,
                   capture_output=True, timeout=900, env={**os.environ, "PATH": path})
    (course / ".nbgrader").mkdir(exist_ok=True)
    key = course / ".nbgrader" / "grading-key"
    key.write_bytes(secrets.token_bytes(32))
    key.chmod(0o600)
    subs = tmp_path / "submissions"
    write(subs / "solver", f"{ASSIGNMENT}.ipynb", solved(ASSIGNMENT))
    write(subs / "blank", f"{ASSIGNMENT}.ipynb", released(ASSIGNMENT))

    tasks = []
    for i in range(1, N + 1):
        machine = tmp_path / f"machine-{i}" / "course"
        shutil.copytree(course, machine)
        env = {**os.environ, "A": ASSIGNMENT, "COURSE": str(machine), "SUBS": str(subs), "N": str(N), "PATH": path}
        if i == 1:
            env["SLURM_ARRAY_TASK_ID"] = str(i)
        else:
            env["JOB_COMPLETION_INDEX"] = str(i - 1)
        tasks.append((machine, subprocess.Popen(["bash", "-c", SLURM if i == 1 else KUBERNETES], env=env,
                                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)))
    shard_dirs = []
    for i, (machine, proc) in enumerate(tasks, 1):
        out, _ = proc.communicate(timeout=1200)
        assert proc.returncode == 0, out[-3000:]
        shard = machine / ".nbgrader" / "shards" / ASSIGNMENT / f"shard-{i}-of-{N}"
        # the job runner's artifacts: each shard folder, copied back to the instructor's machine
        shard_dirs.append(shutil.copytree(shard, tmp_path / "collected" / shard.name))

    # every student graded exactly once, by the shard that owns it (sorted ids, every N-th)
    owners = {s: d.name for d in shard_dirs for s in json.loads((d / "results.json").read_text())}
    assert owners == {"blank": "shard-1-of-2", "solver": "shard-2-of-2"}
    assert not (course / ".nbgrader" / "autograded").exists()  # nothing graded on the instructor's copy

    merged = subprocess.run([sys.executable, "-m", "course_pkg.cli", "grade", ASSIGNMENT, "--course-dir", str(course),
                             "--merge", *map(str, shard_dirs)], capture_output=True, text=True, timeout=600)
    assert merged.returncode == 0, merged.stdout[-2000:] + merged.stderr[-2000:]
    assert "2 graded, 0 failed" in merged.stdout
    with (course / ".nbgrader" / "reports" / ASSIGNMENT / "grades.csv").open() as fh:
        rows = {r["student"]: r for r in csv.DictReader(fh)}
    assert sorted(rows) == ["blank", "solver"]
    assert float(rows["solver"]["score"]) == float(rows["solver"]["max_score"]) > 0, rows["solver"]
    assert float(rows["blank"]["score"]) == 0.0
    assert (course / ".nbgrader" / "feedback" / "solver" / ASSIGNMENT / f"{ASSIGNMENT}.html").is_file()
