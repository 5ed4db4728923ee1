"""The assignment sources (assignments_src/<a>.py) and their converter (tools/assignments.py): the
checker catches what nbgrader would choke on or leak, the committed notebooks are what the sources
give, an edit made in Jupyter is detected and brought back, and the sources lint clean."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
import assignments as converter  # noqa: E402

ASSIGNMENTS = sorted(p.name for p in (REPO / "solutions").iterdir() if p.is_dir())
HIDDEN_BEGIN, HIDDEN_END = "### BEGIN " + "HIDDEN TESTS", "### END " + "HIDDEN TESTS"
SOL_BEGIN, SOL_END = "### BEGIN " + "SOLUTION", "### END " + "SOLUTION"


def _meta(grade_id: str, *, grade: bool = False, solution: bool = False, locked: bool = True,
          points: int | None = None) -> str:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3,
            "solution": solution, "task": False}
    if points is not None:
        meta["points"] = points
    return json.dumps(dict(sorted(meta.items())))


# A small, valid source: markdown, setup, solution, plain self-check, two tests.
GOOD = f"""\
# %% [markdown]
# # A demo assignment

# %% nbgrader={_meta("code-01")}
import torch

# %% nbgrader={_meta("double", solution=True, locked=False)}
def double(x):
    {SOL_BEGIN}
    return 2 * x
    {SOL_END}

# %%
print(double(torch.ones(2)))  # self-check, not graded

# %% nbgrader={_meta("test_double", grade=True, points=2)}
assert double(1) == 2
{HIDDEN_BEGIN}
assert double(3) == 6
{HIDDEN_END}

# %% nbgrader={_meta("test_double_tensor", grade=True, points=1)}
assert double(torch.ones(1)).item() == 2
"""


def problems_of(text: str) -> list[str]:
    return converter.check(converter.from_percent(text, "99_demo"), "99_demo")


def test_the_demo_source_is_valid():
    assert problems_of(GOOD) == []


@pytest.mark.parametrize("name, bad, expected", [
    ("duplicate grade id",
     GOOD.replace('"grade_id": "test_double_tensor"', '"grade_id": "test_double"'),
     ["cell 5 (test_double): grade id 'test_double' is also cell 4's; grade ids must be unique"]),
    ("hidden test outside a test cell",
     GOOD.replace("print(double(torch.ones(2)))", f"{HIDDEN_BEGIN}\nprint(double(torch.ones(2)))\n{HIDDEN_END}"),
     ["cell 3 (code: '### BEGIN HIDDEN TESTS'): '### BEGIN HIDDEN TESTS' outside a test cell"]),
    ("test cell without points",
     GOOD.replace(', "points": 1', ""),
     ["cell 5 (test_double_tensor): nbgrader metadata missing ['points'] (every test cell needs points)"]),
    ("solution marker in a test cell",
     GOOD.replace("assert double(1) == 2", f"{SOL_BEGIN}\nassert double(1) == 2\n{SOL_END}"),
     ["cell 4 (test_double): '### BEGIN SOLUTION' in a test cell; solutions go in solution cells"]),
    ("solution marker in a plain cell",
     GOOD.replace("print(double(torch.ones(2)))", f"{SOL_BEGIN}\nprint(1)\n{SOL_END}"),
     ["cell 3 (code: '### BEGIN SOLUTION'): '### BEGIN SOLUTION' in a cell that is not a solution cell"]),
    ("solution cell without markers",
     GOOD.replace(f"    {SOL_BEGIN}\n", "").replace(f"    {SOL_END}\n", ""),
     ["cell 2 (double): a solution cell without '### BEGIN SOLUTION'"]),
    ("unclosed hidden tests",
     GOOD.replace(f"{HIDDEN_END}\n", ""),
     ["cell 4 (test_double): '### BEGIN HIDDEN TESTS' is never closed by '### END HIDDEN TESTS'"]),
    ("zero points",
     GOOD.replace('"points": 1', '"points": 0'),
     ["cell 5 (test_double_tensor): points 0; a test cell needs points > 0"]),
    ("test cell after the read-only setup",
     GOOD.replace("# %%\nprint(double", f"# %% nbgrader={_meta('code-02')}\nprint(double"),
     ["cell 4 (test_double): test cell follows the read-only cell 'code-02' (cell 3); nbgrader could not "
      "restore it if a student deleted it"]),
    ("markdown cell with nbgrader metadata",
     GOOD.replace("# %% [markdown]\n", f"# %% [markdown] nbgrader={_meta('intro')}\n"),
     ["cell 0 (intro): a markdown cell with nbgrader metadata; narrative is not graded"]),
    ("metadata that would be lost",
     GOOD.replace("# %%\nprint(double", '# %% tags=["skip"]\nprint(double'),
     ["cell 3 (code: 'print(double(torch.ones(2)))  # self-check, not gr'): metadata ['tags'] would be lost"]),
])
def test_the_checker_fails_on_a_bad_notebook_naming_the_cell(name, bad, expected):
    found = problems_of(bad)
    assert found, f"{name}: not detected"
    for message in expected:
        assert any(p.startswith(message) for p in found), f"{name}: {found}"


def test_the_checker_wants_stable_ids():
    nb = converter.from_percent(GOOD, "99_demo")
    nb.cells[2].id = "3f2a9c"
    assert converter.check(nb, "99_demo") == ["cell 2 (double): id '3f2a9c', expected 'a99-002'"]
    assert converter.check(nb, "99_demo", ids=False) == []


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_sources_pass_the_checker_and_give_the_committed_notebook(assignment):
    nb = converter.build(assignment)  # raises AssignmentError listing every problem
    committed = converter.notebook_path(assignment)
    assert converter.notebook_text(nb) == committed.read_text(), (
        f"{committed.relative_to(REPO)} is not what {converter.source_path(assignment).relative_to(REPO)} "
        "gives: run `make assignments`")
    assert converter.check(nbformat.read(committed, as_version=4), assignment) == []
    assert not converter.edited_by_hand(assignment), f"{converter.RECORD.relative_to(REPO)} is out of date"


def test_every_assignment_has_a_source():
    assert converter.names() == ASSIGNMENTS


def test_the_converter_check_mode_passes_on_the_committed_files():
    out = subprocess.run([sys.executable, str(REPO / "tools" / "assignments.py"), "--check"],
                         capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """The converter working on a copy of assignment 2 under tmp_path."""
    name = "02_inception_module"
    (tmp_path / "assignments_src").mkdir()
    shutil.copy(converter.source_path(name), tmp_path / "assignments_src")
    monkeypatch.setattr(converter, "ROOT", tmp_path)
    monkeypatch.setattr(converter, "SOURCES", tmp_path / "assignments_src")
    monkeypatch.setattr(converter, "SOLUTIONS", tmp_path / "solutions")
    monkeypatch.setattr(converter, "RECORD", tmp_path / "assignments_src" / "written.json")
    converter.write(name)
    return name


def test_an_edit_made_in_jupyter_is_detected_and_brought_back(sandbox):
    name, path = sandbox, converter.notebook_path(sandbox)
    # Jupyter: run a cell (outputs, execution count), edit a test, add a cell (random id)
    nb = nbformat.read(path, as_version=4)
    test = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test_module_totals")
    test.source = test.source.replace("# Total parameters", "# The total parameters")
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="hello\n")]
    nb.cells[1].execution_count = 1
    new = nbformat.v4.new_code_cell("print('a new plain cell')")
    nb.cells.insert(3, new)
    nbformat.write(nb, path)

    with pytest.raises(converter.AssignmentError, match=f"--from-ipynb {name}"):
        converter.write(name)
    assert converter.main(["--check"]) == 1
    assert "The total parameters" in path.read_text()  # not overwritten

    converter.from_ipynb(name)
    source = converter.source_path(name).read_text()
    assert "# The total parameters" in source and "print('a new plain cell')" in source
    rewritten = nbformat.read(path, as_version=4)
    assert [c.id for c in rewritten.cells] == [converter.cell_id(name, i) for i in range(len(rewritten.cells))]
    assert not rewritten.cells[1].outputs
    assert converter.main(["--check"]) == 0
    converter.write(name)  # nothing to refuse any more


def test_outputs_alone_are_no_edit(sandbox):
    path = converter.notebook_path(sandbox)
    nb = nbformat.read(path, as_version=4)
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="ran\n")]
    nb.cells[1].metadata["execution"] = {"iopub.status.idle": "2026-01-01T00:00:00Z"}
    nbformat.write(nb, path)
    assert not converter.edited_by_hand(sandbox)
    converter.write(sandbox)
    assert not nbformat.read(path, as_version=4).cells[1].outputs


def test_a_source_edit_is_written_and_a_double_edit_refused(sandbox):
    name, src = sandbox, converter.source_path(sandbox)
    src.write_text(src.read_text().replace("# Total parameters", "# All parameters"))
    converter.write(name)
    assert "# All parameters" in converter.notebook_path(name).read_text()
    # both edited since the last write: --from-ipynb will not silently drop the source's edit
    src.write_text(src.read_text().replace("# All parameters", "# Every parameter"))
    nb = nbformat.read(converter.notebook_path(name), as_version=4)
    nb.cells[0].source += "\n\nOne more line."
    nbformat.write(nb, converter.notebook_path(name))
    with pytest.raises(converter.AssignmentError, match="also edited"):
        converter.from_ipynb(name)


def test_a_bad_source_is_not_written(sandbox):
    name, src = sandbox, converter.source_path(sandbox)
    before = converter.notebook_path(name).read_text()
    src.write_text(src.read_text().replace('"grade_id": "test_branch5x5"', '"grade_id": "test_branch3x3"'))
    with pytest.raises(converter.AssignmentError, match="grade id 'test_branch3x3' is also cell"):
        converter.write(name)
    assert converter.notebook_path(name).read_text() == before


def test_the_sources_lint_clean():
    if importlib.util.find_spec("ruff") is None:
        pytest.skip("ruff is not installed in this environment (`make venv` installs it with the test extra)")
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "assignments_src"],
                         capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stdout + out.stderr


# --------------------------------------------------------------------------------------------------
# What the students are told: a self-check per graded part, assignment 3's targets and times
# --------------------------------------------------------------------------------------------------
def _self_check_points(source: str) -> float | None:
    """The points a self-check cell says are at stake (``points=`` and ``accuracy_points=`` of its
    ``checks.self_check_*`` calls), or None for a cell that calls none."""
    import ast

    calls = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Call)
             and getattr(n.func, "attr", "").startswith("self_check_")]
    if not calls:
        return None
    return sum(ast.literal_eval(k.value) for c in calls for k in c.keywords if k.arg in ("points", "accuracy_points"))


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_graded_part_has_a_self_check_stating_its_points(assignment):
    """Between a part's solution and its graded test cells sits a self-check cell; the points it
    states are those of the test cells it stands for (up to the next self-check or solution)."""
    cells = converter.build(assignment).cells
    groups: list[list] = []  # [self-check points, test points, grade ids]
    for cell in cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            groups.append([None, 0, []])
        elif cell.cell_type == "code" and not meta and (points := _self_check_points(cell.source)) is not None:
            groups.append([points, 0, []])
        elif meta.get("grade"):
            assert groups and groups[-1][0] is not None, (
                f"{assignment}: test cell {meta['grade_id']} has no self-check cell between it and its solution")
            groups[-1][1] += meta["points"]
            groups[-1][2].append(meta["grade_id"])
    for stated, graded, ids in groups:
        if ids:
            assert stated == graded, (f"{assignment}: the self-check before {ids} states {stated} points, "
                                      f"they are worth {graded}")


def _a3_source() -> str:
    return converter.source_path("03_googlenet_aux").read_text()


def test_assignment3_states_the_accuracy_steps_that_its_hidden_test_grades():
    import ast
    import re

    source = _a3_source()
    hidden = ast.literal_eval(re.search(r"for _t, _f in (\(\(.*?\)\)) if _acc >= _t", source).group(1))
    stated = ast.literal_eval(re.search(r"^ACCURACY_STEPS = (\(\(.*\)\))$", source, re.M).group(1))
    assert stated == hidden
    points = int(re.search(r'"grade_id": "test_accuracy".*"points": (\d+)', source).group(1))
    rows = re.findall(r"^# \| (\d+)% or more \| ([\d.]+) \|$", source, re.M)
    assert [(int(a) / 100, float(p)) for a, p in rows] == [(t, f * points) for t, f in hidden]
    assert f"| below {round(100 * hidden[-1][0])}% | 0 |" in source


def test_assignment3_times_and_reference_figures_are_the_measured_ones():
    """The table of epoch times is computed from benchmarks/results/cpu_speed*.json (the faithful
    network through fit's automatic precision), the reference figures from reference_faithful.json."""
    results = REPO / "benchmarks" / "results"
    source = _a3_source()
    machines = {"cpu_speed": "Intel Xeon with AMX", "cpu_speed_zen4": "AMD EPYC, Zen 4",
                "cpu_speed_no_amx": "Intel Xeon without AMX"}
    for name, label in machines.items():
        record = json.loads((results / f"{name}.json").read_text())
        run = next(r for r in record["fit"] if r["layout"] == "faithful" and r["config"] == "auto")
        minutes = 50_000 / run["images_per_s"] / 60
        row = f"# | {label} ({run['precision']}) | {minutes:.1f} min | {12 * minutes / 60:.1f} h |"
        assert row in source, row
    assert "| Colab's T4 GPU | not measured | not measured |" in source  # no GPU was lent to measure it
    reference = json.loads((results / "reference_faithful.json").read_text())
    acc = {h["epoch"]: h["test_acc"] for h in reference["history"]}
    assert (f"{100 * reference['test_acc']:.1f}% on the whole test split after its {len(acc)} epochs, "
            f"{100 * acc[5]:.1f}% after 5, {100 * acc[3]:.1f}% after 3") in source.replace("\n# ", " ")
    assert "CIFAR10.replace(epochs=12, lr=0.05)" in source and "12 epochs" in source


def test_assignment4_measures_the_views_of_chapter8():
    """Assignment 4's ungraded measurement uses chapter 8's view sets and states their scales, which
    are the paper's 256-352 for 224-pixel crops shrunk to 32-pixel crops."""
    from course_pkg import table3
    from course_pkg.multicrop import PAPER_CROP, PAPER_SCALES

    source = converter.source_path("04_multicrop").read_text()
    assert table3.CIFAR_SCALES == tuple(round(s * 32 / PAPER_CROP) for s in PAPER_SCALES)
    text = source.replace("\n# ", " ")
    assert (f"the paper's scales {'/'.join(map(str, PAPER_SCALES))} for {PAPER_CROP}-pixel crops, shrunk by "
            f"32/{PAPER_CROP} to {'/'.join(map(str, table3.CIFAR_SCALES))} pixels") in text
    assert f"the centre of the image resized to {table3.CIFAR_SCALES[0]}, 10 crops the ten-crop at " \
           f"{table3.CIFAR_SCALES[0]}" in text
    # the cell builds its schemes from chapter 8's view sets, not from numbers of its own
    assert "table3.VIEW_SETS[key] for key in" in source and "scales=[" not in source.split("## 4.")[1]
