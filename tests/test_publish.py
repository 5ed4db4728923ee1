"""The published student set (`make publish`) holds no solution, hidden test or seed; it states what the
students are graded on; and installed the way its README says, every assignment runs in it."""

from __future__ import annotations

import json
import os
import re
import sys
import zipfile
from pathlib import Path

import pytest

# slow: the student set is built, a wheel included
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
import publish  # noqa: E402

ASSIGNMENTS = sorted(p.name for p in (REPO / "solutions").iterdir() if p.is_dir())
BEGIN, END = "### BEGIN " + "HIDDEN TESTS", "### END " + "HIDDEN TESTS"
SOL_BEGIN, SOL_END = "### BEGIN " + "SOLUTION", "### END " + "SOLUTION"


def _regions(text: str, begin: str, end: str) -> list[str]:
    return [part.split(end, 1)[0] for part in text.split(begin)[1:]]


def secrets() -> tuple[set[str], set[str]]:
    """(substantial lines of the hidden tests, their seeds).

    Solutions are not scanned for: the course's reference implementations, which students need
    for the self-checks, are the package itself.  The folder ``solutions/`` is not published.
    Assignment 3's accuracy steps are no secret: its notebook states them (a test of
    tests/test_assignment_sources.py checks they are the graded ones)."""
    hidden, literals = set(), set()
    public = set()
    for a in ASSIGNMENTS:
        nb = json.loads((REPO / "assignments" / a / f"{a}.ipynb").read_text())
        public |= {line.strip() for c in nb["cells"] for line in "".join(c["source"]).splitlines()}
    for chapter in (REPO / "book").glob("*.ipynb"):
        public |= {line.strip() for c in json.loads(chapter.read_text())["cells"]
                   for line in "".join(c["source"]).splitlines()}
    for a in ASSIGNMENTS:
        nb = json.loads((REPO / "solutions" / a / f"{a}.ipynb").read_text())
        for c in nb["cells"]:
            text = "".join(c["source"])
            for region in _regions(text, BEGIN, END):
                literals |= set(re.findall(r"\b\d{6,}\b", region))
                hidden |= {line.strip() for line in region.splitlines() if len(line.strip()) > 15}
    # a line the students are given anyway (the same call in a visible part, or a message of the
    # published package, whose self-checks give the same hints) is no secret
    package = "\n".join(source.read_text() for source in (REPO / "course_pkg").rglob("*.py"))
    return {line for line in hidden - public if line not in package}, literals


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    html = (publish.BUILT_HTML / "index.html").is_file()
    if os.environ.get("CI") and not html:
        pytest.fail("_build/html is missing: `make test` builds the book before the tests")
    return publish.publish(tmp_path_factory.mktemp("pub") / "student-set", html=html)


def _texts(root: Path):
    for p in root.rglob("*"):
        if p.is_file() and p.suffix in (".py", ".ipynb", ".md", ".html", ".txt", ".json", ".yml", ".toml", ".js",
                                        ".csv"):
            yield p.relative_to(root).as_posix(), p.read_text(errors="replace")
        elif p.suffix == ".whl":
            with zipfile.ZipFile(p) as zf:
                for name in zf.namelist():
                    yield f"{p.name}/{name}", zf.read(name).decode(errors="replace")


def test_published_set_has_what_students_need(published):
    assert sorted(p.name for p in (published / "assignments").iterdir()) == ASSIGNMENTS
    wheels = list((published / "dist").glob("course_pkg-*-py3-none-any.whl"))
    assert len(wheels) == 1
    # the shipped checkpoints make most of it; the Table 3 ensemble members stay in benchmarks/weights
    assert wheels[0].stat().st_size < 60 << 20, f"the wheel is {wheels[0].stat().st_size >> 20} MiB, over 60"
    with zipfile.ZipFile(wheels[0]) as zf:
        names = zf.namelist()
    assert "course_pkg/checks/__init__.py" in names and "course_pkg/models/googlenet.py" in names
    assert (published / "pyproject.toml").is_file() and (published / "course_pkg" / "__init__.py").is_file()
    assert (published / "book" / "colab").is_dir()
    if (REPO / "_build" / "html").is_dir():
        assert (published / "html" / "index.html").is_file()


def test_published_set_has_no_instructor_material(published):
    names = {p.relative_to(published).as_posix() for p in published.rglob("*")}
    for banned in ("solutions", "tools", "tests", "nbgrader_config.py", ".nbgrader", "gradebook.db"):
        assert not any(n == banned or n.startswith(banned + "/") or n.endswith("/" + banned) for n in names), banned
    # the assignment sources (solutions and hidden tests) and their converter stay in this repository
    assert (REPO / "assignments_src").is_dir() and (REPO / "tools" / "assignments.py").is_file()
    for private in ("assignments_src", "written.json", "assignments.py"):
        assert not any(private in n.split("/") for n in names), private
    assert not any(n.startswith("assignments/") and n.endswith(".py") for n in names)


def test_published_set_holds_no_hidden_test_line_threshold_or_seed(published):
    lines, literals = secrets()
    assert len(lines) > 50 and "20150607" in literals
    leaks = []
    for name, text in _texts(published):
        for line in lines:
            if line in text:
                leaks.append((name, line))
        for literal in literals:
            if re.search(rf"(?<![\d.]){re.escape(literal)}(?!\d)", text):
                leaks.append((name, literal))
        assert BEGIN not in text and SOL_BEGIN not in text, name
    assert not leaks, leaks[:5]


def test_publish_refuses_without_the_built_book_and_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(publish, "BUILT_HTML", tmp_path / "no-book" / "html")
    with pytest.raises(SystemExit, match=r"make book.*--no-html"):
        publish.publish(tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_published_assignment3_states_its_accuracy_steps(published):
    nb = json.loads((published / "assignments" / "03_googlenet_aux" / "03_googlenet_aux.ipynb").read_text())
    text = "\n".join("".join(c["source"]) for c in nb["cells"])
    assert "| 76% or more | 6 |" in text and "ACCURACY_STEPS = " in text and "QUICK" in text


# --------------------------------------------------------------------------------------------
# The student's path: the published set, installed as its README says, runs every assignment
# --------------------------------------------------------------------------------------------
# This machine has no network: torch comes from the local wheels pip is configured with (as the
# Makefile's TORCH_SPEC for .venv) instead of PyTorch's CPU index; everything else as written.
TORCH_LOCAL = "torch==2.14.1 torchvision==0.29.1"


def _solved_as_a_student_submits(assignment: str, dest: Path) -> Path:
    """The instructor notebook without its hidden tests: the released notebook with every answer
    filled in, which is what a student who solved it runs."""
    nb = json.loads((REPO / "solutions" / assignment / f"{assignment}.ipynb").read_text())
    for cell in nb["cells"]:
        text = "".join(cell["source"])
        while BEGIN in text:
            head, rest = text.split(BEGIN, 1)
            text = head + rest.split(END, 1)[1].lstrip("\n")
        cell["source"] = text
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"{assignment}.ipynb"
    path.write_text(json.dumps(nb))
    return path


def test_student_set_installs_from_its_wheel_and_runs_every_assignment(published, tmp_path, course_data):
    import subprocess

    readme = (published / "README.md").read_text()
    wheel = next((published / "dist").glob("course_pkg-*.whl"))
    install = f'pip install "./dist/{wheel.name}[student]"'
    steps = ["python -m venv .venv", "pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu",
             install, "COURSE_DATA", "jupyter nbconvert --to notebook --execute", "COURSE_QUICK=1"]
    assert [s for s in steps if s not in readme] == [], "the README must list every step this test runs"

    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH"))}
    env.update(COURSE_DATA=str(course_data), COURSE_QUICK="1", COURSE_QUIET="1", OMP_NUM_THREADS="2")

    def run(*cmd: str, cwd: Path = published, timeout: int = 1800) -> str:
        out = subprocess.run(list(cmd), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
        assert out.returncode == 0, f"{' '.join(cmd)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
        return out.stdout

    run(sys.executable, "-m", "venv", str(venv))
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    run(*pip, *TORCH_LOCAL.split())
    run(*pip, f"./dist/{wheel.name}[student]")
    for assignment in ASSIGNMENTS:
        work = tmp_path / "work" / assignment
        nb = _solved_as_a_student_submits(assignment, work)
        run(str(venv / "bin" / "jupyter"), "nbconvert", "--to", "notebook", "--execute", "--inplace",
            "--ExecutePreprocessor.timeout=1800", nb.name, cwd=work, timeout=3600)
        executed = json.loads(nb.read_text())
        printed = "".join("".join(o.get("text", "")) for c in executed["cells"] for o in c.get("outputs", []))
        assert "✗" not in printed, f"{assignment}: a self-check fails on the solution:\n{printed[-2000:]}"
        assert printed.count("✓") >= 2, f"{assignment}: the self-checks did not run:\n{printed[-2000:]}"
    assert (tmp_path / "work" / "03_googlenet_aux" / "googlenet_cifar_quick.pt").is_file()
