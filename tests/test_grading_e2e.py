"""End to end: `course grade` with the real nbgrader, a real SQLite gradebook, in a temporary course.

Each assignment is graded once for a whole class of submissions (the per-run overhead is paid
once per assignment); the tests then read grades.csv, the gradebook and the feedback.  Bad cases
sit in the same class as the good ones, so "graded without harming any other student" is checked
by the good students' full marks in the same run.

Slow by nature (every submission starts a kernel and imports torch): about 5-8 minutes on the
2-core machine, most of it assignment 2's class.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import nbformat
import pytest
import torch

from course_pkg.grading import main as grade_main

REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]
CELL_TIMEOUT = 15  # seconds per cell (the course default is 60; the loop case waits this long)


# --------------------------------------------------------------------------------------------
# Building submissions
# --------------------------------------------------------------------------------------------
def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(str(path), as_version=4)


def released(assignment: str) -> nbformat.NotebookNode:
    return _read(REPO / "assignments" / assignment / f"{assignment}.ipynb")


def solved(assignment: str) -> nbformat.NotebookNode:
    """The student version with every solution cell filled in from the instructor notebook:
    what a student who solved everything hands in."""
    source = {c.metadata["nbgrader"]["grade_id"]: c.source
              for c in _read(REPO / "solutions" / assignment / f"{assignment}.ipynb").cells
              if c.metadata.get("nbgrader", {}).get("solution")}
    nb = released(assignment)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in source:
            cell.source = source[gid]
    return nb


def hidden_lines(assignment: str) -> list[str]:
    """The substantial lines of the instructor notebook's hidden tests."""
    lines = []
    for c in _read(REPO / "solutions" / assignment / f"{assignment}.ipynb").cells:
        if "### BEGIN HIDDEN TESTS" in c.source:
            region = c.source.split("### BEGIN HIDDEN TESTS", 1)[1].split("### END HIDDEN TESTS", 1)[0]
            lines += [line.strip() for line in region.splitlines() if len(line.strip()) > 15]
    assert lines
    return lines


def assert_no_hidden_tests(html_text: str, assignment: str) -> None:
    import html

    text = html.unescape(html_text)
    assert "HIDDEN TESTS" not in text
    leaked = [line for line in hidden_lines(assignment) if line in text]
    assert not leaked, f"hidden test lines in the feedback: {leaked[:3]}"


def cell(nb: nbformat.NotebookNode, grade_id: str) -> nbformat.NotebookNode:
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def as_colab(nb: nbformat.NotebookNode) -> str:
    """Save like Colab does: nbformat 4.0 (no cell ids), Colab metadata everywhere."""
    data = json.loads(nbformat.writes(nb))
    data["nbformat_minor"] = 0
    data["metadata"] = {"colab": {"provenance": [], "name": "Copy of notebook.ipynb"},
                        "kernelspec": {"name": "python3", "display_name": "Python 3"},
                        "language_info": {"name": "python"}, "accelerator": "GPU"}
    for i, c in enumerate(data["cells"]):
        c.pop("id", None)
        c["metadata"]["id"] = f"colabCell{i:04d}"
        if c["cell_type"] == "code":
            c["metadata"]["colab"] = {"base_uri": "https://localhost:8080/"}
            c["metadata"]["outputId"] = f"out{i:04d}"
    return json.dumps(data, indent=2)


def write(folder: Path, name: str, content: str | bytes | nbformat.NotebookNode) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(content, nbformat.NotebookNode):
        content = nbformat.writes(content)
    (folder / name).write_bytes(content if isinstance(content, bytes) else content.encode())


# --------------------------------------------------------------------------------------------
# A temporary course and one grading run per assignment
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("course")
    shutil.copy(REPO / "nbgrader_config.py", root)
    shutil.copytree(REPO / "solutions", root / "solutions")
    shutil.copytree(REPO / "assignments", root / "assignments")
    return root


class Graded:
    def __init__(self, course: Path, assignment: str, code: int):
        self.course, self.assignment, self.code = course, assignment, code
        self.report = course / ".nbgrader" / "reports" / assignment
        with (self.report / "grades.csv").open() as fh:
            self.rows = {r["student"]: r for r in csv.DictReader(fh)}

    def score(self, student: str, grade_id: str | None = None) -> float | None:
        row = self.rows[student]
        value = row[grade_id] if grade_id else row["score"]
        return float(value) if value != "" else None

    def cells(self) -> list[str]:
        with (self.report / "grades.csv").open() as fh:
            header = next(csv.reader(fh))
        return header[header.index("reason") + 1:]

    def autograded(self, student: str) -> nbformat.NotebookNode:
        return _read(self.course / ".nbgrader" / "autograded" / student / self.assignment / f"{self.assignment}.ipynb")

    def output_text(self, student: str, grade_id: str) -> str:
        parts = []
        for out in cell(self.autograded(student), grade_id).outputs:
            parts += out.get("traceback", []) + [out.get("text", ""), out.get("evalue", "")]
        return "\n".join(parts)

    def feedback(self, student: str) -> str:
        path = self.course / ".nbgrader" / "feedback" / student / self.assignment / f"{self.assignment}.html"
        return path.read_text()


def run_grade(course: Path, assignment: str, submissions: Path, *extra: str, cell_timeout: int = CELL_TIMEOUT) -> Graded:
    code = grade_main([assignment, "--course-dir", str(course), "--submissions", str(submissions),
                       "--cell-timeout", str(cell_timeout), *extra])
    return Graded(course, assignment, code)


# --------------------------------------------------------------------------------------------
# Assignment 2: the class with most of the bad cases
# --------------------------------------------------------------------------------------------
A2 = "02_inception_module"


@pytest.fixture(scope="module")
def graded2(course, tmp_path_factory) -> Graded:
    subs = tmp_path_factory.mktemp("subs2")
    # the solution, handed in as "Copy of ..." (renamed file)
    write(subs / "solver", f"Copy of {A2}.ipynb", solved(A2))
    # the unchanged student version
    write(subs / "blank", f"{A2}.ipynb", released(A2))
    # torchvision's mistake: a 3x3 kernel in the 5x5 branch
    nb = solved(A2)
    c = cell(nb, "inception_module")
    assert "BasicConv2d(ch5x5red, ch5x5, 5, padding=2)" in c.source
    c.source = c.source.replace("BasicConv2d(ch5x5red, ch5x5, 5, padding=2)", "BasicConv2d(ch5x5red, ch5x5, 3, padding=1)")
    write(subs / "tv3x3", f"{A2}.ipynb", nb)
    # Colab-saved, renamed " (1)", stderr noise inside test cells, a deleted test cell and a test
    # cell tagged skip-execution, each of the last two guarding a wrong answer
    nb = solved(A2)
    c = cell(nb, "inception_module")
    c.source = "import warnings\n" + c.source.replace(
        "self.out_channels = ch1x1", "warnings.warn('noise on stderr'); print('x', file=sys.stderr)\n"
        "        self.out_channels = ch1x1")
    c = cell(nb, "answers_3a")
    c.source = c.source.replace('"branch1x1_params": 1 * 1 * 192 * 64 + 64', '"branch1x1_params": 1 * 1 * 192 * 64')
    cell(nb, "channel_source").source = ('channel_source = {0: "branch1x1", 100: "branch3x3", '
                                         '200: "branch_pool", 250: "branch5x5"}')
    cell(nb, "test_channel_source").metadata["tags"] = ["skip-execution"]
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "test_answers_3a"]
    write(subs / "colab", f"{A2} (1).ipynb", as_colab(nb))
    # the kernel dies in the first solution cell
    nb = solved(A2)
    cell(nb, "naive_module").source = "import os\nos._exit(1)\n"
    write(subs / "crasher", f"{A2}.ipynb", nb)
    # an endless loop in one cell: that cell times out, the rest is graded
    nb = solved(A2)
    cell(nb, "answers_3a").source = "while True:\n    pass\n"
    write(subs / "looper", f"{A2}.ipynb", nb)
    # not a notebook at all
    write(subs / "garbage", f"{A2}.ipynb", b"\x00\x01 this is not json")
    return run_grade(course, A2, subs, "--timeout", "240")


def test_solution_scores_full_marks(graded2):
    assert graded2.code == 0
    row = graded2.rows["solver"]
    assert row["status"] == "graded", row
    assert float(row["score"]) == float(row["max_score"]) > 0


def test_unmodified_student_version_scores_zero_everywhere(graded2):
    cells = graded2.cells()
    assert len(cells) >= 8
    assert graded2.rows["blank"]["status"] == "graded"
    assert [graded2.score("blank", c) for c in cells] == [0.0] * len(cells)


def test_3x3_kernel_in_5x5_branch_loses_exactly_those_checks(graded2):
    cells = graded2.cells()
    lost = {c for c in cells if graded2.score("tv3x3", c) != graded2.score("solver", c)}
    assert lost == {"test_branch5x5", "test_module_totals"}
    assert all(graded2.score("tv3x3", c) == 0 for c in lost)
    text = graded2.output_text("tv3x3", "test_branch5x5")
    assert "branch5x5" in text and "3x3 kernel" in text and "torchvision" in text
    for module in ("3a", "3b", "4a", "4b", "4c", "4d", "4e"):
        assert f"inception {module}, branch5x5" in text
    assert "Traceback" not in text
    assert "3x3 kernel" in graded2.feedback("tv3x3")


def test_colab_renamed_noisy_deleted_and_skip_tagged(graded2):
    row = graded2.rows["colab"]
    assert row["status"] == "graded", row
    # the deleted test cell came back and ran: the missing biases cost its points
    assert graded2.score("colab", "test_answers_3a") == 0
    restored = cell(graded2.autograded("colab"), "test_answers_3a")
    assert "was missing from the submission" in restored.source
    assert "biases" in graded2.output_text("colab", "test_answers_3a")
    # the skip-execution tag was ignored: the test ran and caught the swapped branches
    assert graded2.score("colab", "test_channel_source") == 0
    assert "channel 200" in graded2.output_text("colab", "test_channel_source")
    # stderr noise in test cells costs nothing: everything else is full marks
    others = [c for c in graded2.cells() if c not in ("test_answers_3a", "test_channel_source")]
    assert [graded2.score("colab", c) for c in others] == [graded2.score("solver", c) for c in others]
    assert any("renamed" in line for line in (graded2.report / "summary.txt").read_text().splitlines()
               if "colab" in line)


def test_kernel_crash_fails_only_that_student(graded2):
    row = graded2.rows["crasher"]
    assert row["status"] == "failed" and "kernel died" in row["reason"], row
    assert graded2.rows["solver"]["status"] == "graded"


def test_endless_loop_times_out_that_cell_only(graded2):
    row = graded2.rows["looper"]
    assert row["status"] == "graded", row
    assert graded2.score("looper", "test_answers_3a") == 0
    others = [c for c in graded2.cells() if c != "test_answers_3a"]
    assert [graded2.score("looper", c) for c in others] == [graded2.score("solver", c) for c in others]


def test_garbage_file_is_reported_not_graded(graded2):
    row = graded2.rows["garbage"]
    assert row["status"] == "failed" and "not valid JSON" in row["reason"], row


def test_reports_and_feedback_without_hidden_tests(graded2):
    assert (graded2.report / "grades.csv").is_file()
    png = (graded2.report / "scores.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    summary = (graded2.report / "summary.txt").read_text()
    assert "5 graded, 2 failed" in summary and "FAILED crasher" in summary
    for student in ("solver", "blank", "tv3x3", "colab", "looper"):
        assert_no_hidden_tests(graded2.feedback(student), A2)
        html = graded2.feedback(student)
        for secret in ("HIDDEN TESTS", "inception_findings", "diagnose_answers", "fail_on"):
            assert secret not in html, (student, secret)
    # the per-submission budget (60 s on an idle 2-core machine; generous here for busy CI)
    assert float(graded2.rows["solver"]["seconds"]) < 120


def test_outer_time_limit_kills_nbgrader_and_its_kernel(course, tmp_path):
    """With a per-cell limit longer than the outer one, the outer limit must stop the student:
    nbgrader and the kernel it started (in a session of its own) are both killed."""
    import psutil

    nb = solved(A2)
    cell(nb, "naive_module").source = "while True:\n    pass\n"
    write(tmp_path / "hung", f"{A2}.ipynb", nb)
    code = grade_main([A2, "--course-dir", str(course), "--submissions", str(tmp_path), "--student", "hung",
                       "--timeout", "20", "--cell-timeout", "300", "--out", str(tmp_path / "report")])
    assert code == 0
    with (tmp_path / "report" / "grades.csv").open() as fh:
        row = next(csv.DictReader(fh))
    assert row["student"] == "hung" and row["status"] == "failed"
    assert "outer time limit of 20 s" in row["reason"]
    assert float(row["seconds"]) < 40
    left = []
    for proc in psutil.process_iter(["cwd", "cmdline"]):
        try:
            if str(course) in (proc.info["cwd"] or "") and "ipykernel" in " ".join(proc.info["cmdline"] or []):
                left.append(proc.pid)
        except psutil.Error:
            continue
    assert not left, f"kernel processes left running: {left}"


# --------------------------------------------------------------------------------------------
# Assignment 3: checkpoints
# --------------------------------------------------------------------------------------------
A3 = "03_googlenet_aux"


@pytest.fixture(scope="module")
def graded3(course, course_data, tmp_path_factory) -> tuple[Graded, Path]:
    from course_pkg.checkpoint import save_checkpoint
    from course_pkg.models import create

    os.environ["COURSE_DATA"] = str(course_data)
    subs = tmp_path_factory.mktemp("subs3")
    marker = tmp_path_factory.mktemp("marker") / "pwned"
    torch.manual_seed(0)
    # the solution with a checkpoint of the right architecture but untrained weights (no GPU here
    # to train a real one): everything but the accuracy test must pass
    write(subs / "solver", f"{A3}.ipynb", solved(A3))
    save_checkpoint(subs / "solver" / "googlenet_cifar.pt", create("googlenet_cifar", stem="16"),
                    {"model": "googlenet_cifar"})
    write(subs / "blank", f"{A3}.ipynb", released(A3))
    write(subs / "nockpt", f"{A3}.ipynb", solved(A3))
    write(subs / "corrupt", f"{A3}.ipynb", solved(A3))
    write(subs / "corrupt", "googlenet_cifar.pt", b"PK\x03\x04" + os.urandom(2000))

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    write(subs / "evil", f"{A3}.ipynb", solved(A3))
    torch.save({"conv1.conv.weight": Evil()}, subs / "evil" / "googlenet_cifar.pt")
    write(subs / "wrongarch", f"{A3}.ipynb", solved(A3))
    torch.save(create("lenet5").state_dict(), subs / "wrongarch" / "googlenet_cifar.pt")
    write(subs / "wholemodel", f"{A3}.ipynb", solved(A3))
    torch.save(create("lenet5", variant="modern"), subs / "wholemodel" / "googlenet_cifar (1).pt")
    # the course's 60 s per cell: the accuracy cell may have to decode the JPEG test images first
    return run_grade(course, A3, subs, "--timeout", "300", cell_timeout=60), marker


def test_checkpoint_solution_passes_everything_but_accuracy(graded3):
    graded, _ = graded3
    assert graded.rows["solver"]["status"] == "graded", graded.rows["solver"]
    for c in graded.cells():
        expected = 0.0 if c == "test_accuracy" else graded.score("solver", c)
        assert graded.score("solver", c) == expected
        if c != "test_accuracy":
            assert graded.score("solver", c) > 0, c
    text = graded.output_text("solver", "test_accuracy")
    assert "accuracy on the grader's 250 CIFAR-10 test images" in text
    for student in graded.rows:
        assert_no_hidden_tests(graded.feedback(student), A3)
    assert float(graded.rows["solver"]["seconds"]) < 120


def test_checkpoint_blank_scores_zero_everywhere(graded3):
    graded, _ = graded3
    assert graded.rows["blank"]["status"] == "graded"
    assert [graded.score("blank", c) for c in graded.cells()] == [0.0] * len(graded.cells())


@pytest.mark.parametrize("student, message", [
    ("nockpt", "no checkpoint file googlenet_cifar.pt"),
    ("corrupt", "not a readable PyTorch file"),
    ("evil", "would run Python code"),
    ("wrongarch", "does not fit"),
    ("wholemodel", "whole pickled network"),
])
def test_bad_checkpoints_get_a_clear_message(graded3, student, message):
    graded, _ = graded3
    assert graded.rows[student]["status"] == "graded", graded.rows[student]
    assert graded.score(student, "test_checkpoint_loads") == 0
    assert graded.score(student, "test_accuracy") == 0
    assert message in graded.output_text(student, "test_checkpoint_loads")
    assert message in graded.output_text(student, "test_accuracy")
    # everything that does not need the checkpoint is unaffected
    for c in graded.cells():
        if c not in ("test_checkpoint_loads", "test_accuracy"):
            assert graded.score(student, c) == graded.score("solver", c), (student, c)


def test_malicious_pickle_never_runs(graded3):
    _, marker = graded3
    assert not marker.exists()


@pytest.mark.skipif(not os.environ.get("COURSE_REFERENCE_CHECKPOINT"),
                    reason="needs a trained googlenet_cifar checkpoint (GPU): set COURSE_REFERENCE_CHECKPOINT")
def test_solution_with_trained_checkpoint_scores_full_marks(course, course_data, tmp_path):
    os.environ["COURSE_DATA"] = str(course_data)
    write(tmp_path / "trained", f"{A3}.ipynb", solved(A3))
    shutil.copy(os.environ["COURSE_REFERENCE_CHECKPOINT"], tmp_path / "trained" / "googlenet_cifar.pt")
    graded = run_grade(course, A3, tmp_path, "--student", "trained", "--out", str(course / "trained-report"))
    with (course / "trained-report" / "grades.csv").open() as fh:
        row = next(csv.DictReader(fh))
    assert float(row["score"]) == float(row["max_score"]), row


# --------------------------------------------------------------------------------------------
# Assignments 1 and 4: solution and blank
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("assignment", ["01_lenet_alexnet", "04_multicrop"])
def test_solution_full_blank_zero(course, tmp_path, assignment):
    write(tmp_path / "solver", f"{assignment}.ipynb", solved(assignment))
    write(tmp_path / "blank", f"{assignment}.ipynb", released(assignment))
    graded = run_grade(course, assignment, tmp_path, "--timeout", "240")
    assert graded.rows["solver"]["status"] == "graded", graded.rows["solver"]
    assert float(graded.rows["solver"]["score"]) == float(graded.rows["solver"]["max_score"]) > 0
    assert [graded.score("blank", c) for c in graded.cells()] == [0.0] * len(graded.cells())
    assert float(graded.rows["solver"]["seconds"]) < 120
    assert_no_hidden_tests(graded.feedback("solver"), assignment)
    assert_no_hidden_tests(graded.feedback("blank"), assignment)
