"""The published student set (`make publish`) holds no solution, hidden test, threshold or seed."""

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
    """(substantial lines of the hidden tests, their seeds and threshold tables).

    Solutions are not scanned for: the course's reference implementations, which students need
    for the self-checks, are the package itself.  The folder ``solutions/`` is not published."""
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
                literals |= set(re.findall(r"\(\(0\.\d+, [\d.]+\)(?:, \(0\.\d+, [\d.]+\))+\)", region))
                hidden |= {line.strip() for line in region.splitlines() if len(line.strip()) > 15}
    # a line the students are given anyway (the same call in a visible part) is no secret
    return hidden - public, literals


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    html = (REPO / "_build" / "html").is_dir()
    if os.environ.get("CI") and not html:
        pytest.fail("_build/html is missing: `make test` builds the book before the tests")
    return publish.publish(tmp_path_factory.mktemp("pub") / "student-set")


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
    # assignment 3's credit thresholds, whatever its top tier is calibrated to
    tiers = re.search(r"for _t, _f in (\(\(0\.\d+, [\d.]+\)(?:, \(0\.\d+, [\d.]+\))+\))",
                      (REPO / "assignments_src" / "03_googlenet_aux.py").read_text())
    assert tiers and tiers.group(1) in literals, "the tier table was not found among the hidden tests' literals"
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
