"""Fast tests of the grading package: diagnosis messages, name normalisation, the released student
versions (no solutions, no hidden tests) and that the committed files are what the tools produce.

The end-to-end grading runs (real nbgrader, real gradebook, bad submissions) are in
tests/test_grading_e2e.py.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from course_pkg import checks
from course_pkg.grading.grade import normalise_name, normalise_submission
from course_pkg.grading.submissions import student_id, valid_student_id
from course_pkg.models.inception import Inception

REPO = Path(__file__).resolve().parents[1]
ASSIGNMENTS = sorted(p.name for p in (REPO / "solutions").iterdir() if p.is_dir())


# --------------------------------------------------------------------------------------------
# Diagnosis
# --------------------------------------------------------------------------------------------
class ConvRelu(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int, padding: int = 0) -> None:
        super().__init__(nn.Conv2d(cin, cout, k, padding=padding), nn.ReLU())


class Student(nn.Module):
    """A hand-written inception module with switchable mistakes (not derived from the reference)."""

    def __init__(self, cin, c1, c3r, c3, c5r, c5, pp, k5=5, pad5=2, order=(0, 1, 2, 3)):
        super().__init__()
        self.branch1x1 = ConvRelu(cin, c1, 1)
        self.branch3x3 = nn.Sequential(ConvRelu(cin, c3r, 1), ConvRelu(c3r, c3, 3, 1))
        self.branch5x5 = nn.Sequential(ConvRelu(cin, c5r, 1), ConvRelu(c5r, c5, k5, pad5))
        self.branch_pool = nn.Sequential(nn.MaxPool2d(3, 1, 1), ConvRelu(cin, pp, 1))
        self.order = order

    def forward(self, x):
        outs = [self.branch1x1(x), self.branch3x3(x), self.branch5x5(x), self.branch_pool(x)]
        return torch.cat([outs[i] for i in self.order], 1)


ARGS_3A = (192, 64, 96, 128, 16, 32, 32)


def test_correct_module_has_no_findings():
    assert checks.diagnose_inception(Student(*ARGS_3A), Inception(*ARGS_3A), "3a") == []


def test_3x3_kernel_in_5x5_branch_is_named_with_counts():
    findings = checks.diagnose_inception(Student(*ARGS_3A, k5=3, pad5=1), Inception(*ARGS_3A), "3a")
    kinds = {(f.branch, f.kind) for f in findings}
    assert kinds == {("branch5x5", "params"), (None, "total")}, findings
    text = " ".join(str(f) for f in findings if f.kind == "params")
    assert "branch5x5" in text and "3x3 kernel" in text and "5x5" in text
    # 5x5x16x32 + 32 and 3x3x16x32 + 32 by hand
    assert "12,832" in text and "4,640" in text
    assert "torchvision" in text


def test_wrong_padding_is_a_shape_finding():
    findings = checks.diagnose_inception(Student(*ARGS_3A, pad5=1), Inception(*ARGS_3A), "3a")
    assert {f.kind for f in findings} == {"shape"}
    assert any("padding 2" in str(f) for f in findings)
    assert all(f.branch in ("branch5x5", None) for f in findings)


def test_wrong_concatenation_order_is_reported():
    findings = checks.diagnose_inception(Student(*ARGS_3A, order=(1, 0, 2, 3)), Inception(*ARGS_3A), "3a")
    assert [f.kind for f in findings] == ["order"]
    assert "branch3x3, branch1x1, branch5x5, branch_pool" in str(findings[0])


def test_explain_conv_count():
    assert "3x3 kernel with bias" in checks.explain_conv_count(16, 32, 3 * 3 * 16 * 32 + 32)
    assert "5x5 kernel without bias" in checks.explain_conv_count(16, 32, 5 * 5 * 16 * 32)
    assert checks.explain_conv_count(16, 32, 7) is None


def test_checkfailed_renders_only_its_message():
    err = checks.CheckFailed("branch5x5 is wrong\nsecond line")
    assert err._render_traceback_() == ["CheckFailed: branch5x5 is wrong\nsecond line"]
    with pytest.raises(checks.CheckFailed, match="nope"):
        checks.require(False, "nope")
    checks.require(True, "never shown")


def test_partial_credit_is_clamped_float():
    assert checks.partial_credit(0.5, 4) == 2.0
    assert checks.partial_credit(3.0, 4) == 4.0
    assert checks.partial_credit(-1, 4) == 0.0
    assert checks.partial_credit(float("nan"), 4) == 0.0
    assert isinstance(checks.partial_credit(1, 4), float)


def test_inception_findings_reports_unfinished_code():
    class Unfinished(nn.Module):
        def __init__(self, *args):
            super().__init__()
            raise NotImplementedError()

    with pytest.raises(checks.CheckFailed, match="NotImplementedError"):
        checks.inception_findings(Unfinished)


def test_table1_modules_chain_channels():
    rows = checks.table1_modules()
    assert [r[0] for r in rows] == ["3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b"]
    # 3b's input is 3a's output: 64 + 128 + 32 + 32 (Table 1)
    assert rows[1][1] == 64 + 128 + 32 + 32
    assert [r[3] for r in rows] == [28, 28, 14, 14, 14, 14, 14, 7, 7]


# --------------------------------------------------------------------------------------------
# Collection
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("given, expected", [
    ("Copy of 02_inception_module.ipynb", "02_inception_module.ipynb"),
    ("02_inception_module (1).ipynb", "02_inception_module.ipynb"),
    ("Copy of Copy of 02_inception_module (2).ipynb", "02_inception_module.ipynb"),
    ("googlenet_cifar (3).pt", "googlenet_cifar.pt"),
    ("02_inception_module - Copy.ipynb", "02_inception_module.ipynb"),
    ("02_inception_module.ipynb", "02_inception_module.ipynb"),
])
def test_normalise_name(given, expected):
    assert normalise_name(given) == expected


def test_normalise_submission_renames_single_notebook(tmp_path):
    (tmp_path / "my homework.ipynb").write_text("{}")
    (tmp_path / "googlenet_cifar (1).pt").write_bytes(b"x")
    notes = normalise_submission(tmp_path, ["03_googlenet_aux.ipynb"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["03_googlenet_aux.ipynb", "googlenet_cifar.pt"]
    assert len(notes) == 2


def test_normalise_submission_reports_ambiguity(tmp_path):
    (tmp_path / "a.ipynb").write_text("{}")
    (tmp_path / "b.ipynb").write_text("{}")
    notes = normalise_submission(tmp_path, ["02_inception_module.ipynb"])
    assert notes and "no notebook" in notes[0]


# --------------------------------------------------------------------------------------------
# The committed notebooks
# --------------------------------------------------------------------------------------------
def _solution_lines(nb: dict) -> list[str]:
    lines, inside = [], False
    for cell in nb["cells"]:
        for line in "".join(cell["source"]).splitlines():
            if "### BEGIN SOLUTION" in line or "### BEGIN HIDDEN TESTS" in line:
                inside = True
            elif "### END SOLUTION" in line or "### END HIDDEN TESTS" in line:
                inside = False
            elif inside and len(line.strip()) > 12:
                lines.append(line.strip())
    return lines


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_student_version_has_no_solutions_or_hidden_tests(assignment):
    source = json.loads((REPO / "solutions" / assignment / f"{assignment}.ipynb").read_text())
    student_path = REPO / "assignments" / assignment / f"{assignment}.ipynb"
    assert student_path.is_file(), f"run `make assignments`: {student_path} is missing"
    student = json.loads(student_path.read_text())
    text = "\n".join("".join(c["source"]) for c in student["cells"])
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
        assert marker not in text
    secret = _solution_lines(source)
    assert secret, "the instructor notebook has no solution or hidden-test lines"
    leaked = [line for line in secret if line in text]
    # Lines that also appear outside the regions in the source (e.g. a shared comment) are fine.
    public = "\n".join(line for c in source["cells"] for line in "".join(c["source"]).splitlines()
                       if line.strip() not in secret)
    leaked = [line for line in leaked if line not in public]
    assert not leaked, f"solution / hidden-test lines in the student version: {leaked[:3]}"
    # Everything released besides the notebook came from solutions/ — nothing else (no checkpoints)
    released = sorted(p.name for p in (REPO / "assignments" / assignment).iterdir())
    assert released == sorted(p.name for p in (REPO / "solutions" / assignment).iterdir())


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_grade_cells_have_points_and_ids(assignment):
    nb = json.loads((REPO / "solutions" / assignment / f"{assignment}.ipynb").read_text())
    ids = []
    for cell in nb["cells"]:
        meta = cell["metadata"].get("nbgrader")
        if meta is None:  # an ordinary editable cell (e.g. the training run)
            assert "BEGIN SOLUTION" not in "".join(cell["source"])
            continue
        assert meta["schema_version"] == 3
        ids.append(meta["grade_id"])
        if meta["grade"]:
            assert meta["points"] > 0 and meta["locked"] and not meta["solution"]
    assert len(ids) == len(set(ids))


def test_solutions_are_what_the_converter_writes():
    """solutions/<a>/<a>.ipynb is what tools/assignments.py makes of assignments_src/<a>.py."""
    sys.path.insert(0, str(REPO / "tools"))
    try:
        import assignments as converter
    finally:
        sys.path.pop(0)
    assert converter.names() == ASSIGNMENTS
    for name in ASSIGNMENTS:
        committed = converter.notebook_path(name)
        assert converter.notebook_text(converter.build(name)) == committed.read_text(), (
            f"{committed} differs from what tools/assignments.py makes of {converter.source_path(name)}: "
            "run `make assignments` (or, for an edit made in Jupyter, "
            f"`python tools/assignments.py --from-ipynb {name}`)")


@pytest.mark.slow  # nbgrader generates every assignment
def test_committed_student_versions_match_generate_assignment(tmp_path):
    """`nbgrader generate_assignment` today gives exactly the committed assignments/ files."""
    import os

    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config.loader import PyFileConfigLoader

    shutil.copy(REPO / "nbgrader_config.py", tmp_path)
    shutil.copytree(REPO / "solutions", tmp_path / "solutions")
    os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
    config = PyFileConfigLoader("nbgrader_config.py", path=str(tmp_path)).load_config()
    coursedir = CourseDirectory(config=config)
    api = NbGraderAPI(coursedir=coursedir, config=config)
    for assignment in ASSIGNMENTS:
        result = api.generate_assignment(assignment, force=True)
        assert result["success"], result.get("log") or result.get("error")
        for path in (REPO / "assignments" / assignment).iterdir():
            fresh = tmp_path / "assignments" / assignment / path.name
            assert fresh.read_bytes() == path.read_bytes(), (
                f"{path} is not what generate_assignment writes today: run `make assignments`")


def test_installable_package_holds_no_hidden_tests_or_thresholds():
    """Hidden tests, their seeds and their credit thresholds live only in solutions/."""
    package = REPO / "course_pkg"
    sources = {p: p.read_text() for p in package.rglob("*") if p.suffix in (".py", ".json", ".txt", ".md")}
    hidden = []
    for assignment in ASSIGNMENTS:
        nb = json.loads((REPO / "solutions" / assignment / f"{assignment}.ipynb").read_text())
        for cell in nb["cells"]:
            text = "".join(cell["source"])
            if "### BEGIN HIDDEN TESTS" in text:
                hidden.append(text.split("### BEGIN HIDDEN TESTS", 1)[1].split("### END HIDDEN TESTS", 1)[0])
    assert hidden
    # distinctive literals of the hidden tests: long numbers (seeds) and threshold tables
    secrets = set()
    for region in hidden:
        secrets |= set(re.findall(r"\b\d{6,}\b", region))
        secrets |= set(re.findall(r"\(\(0\.\d+, [\d.]+\)(?:, \(0\.\d+, [\d.]+\))+\)", region))
    assert secrets, "expected a seed or a threshold table in the hidden tests"
    for path, text in sources.items():
        assert "BEGIN HIDDEN TESTS" not in text, path
        for secret in secrets:
            assert secret not in text, (path, secret)


def test_collect_copies_normalises_and_reports(tmp_path, capsys):
    import nbformat

    from course_pkg.grading.grade import Layout, collect

    work = tmp_path / ".nbgrader"
    layout = Layout(root=tmp_path, source=tmp_path / "solutions", release=tmp_path / "assignments",
                    submitted=work / "submitted", autograded=work / "autograded", feedback=work / "feedback",
                    work=work)
    (layout.source / "a1").mkdir(parents=True)
    (layout.source / "a1" / "a1.ipynb").write_text(nbformat.writes(nbformat.v4.new_notebook()))
    subs = tmp_path / "subs"
    (subs / "Ann Lee").mkdir(parents=True)
    (subs / "Ann Lee" / "Copy of a1.ipynb").write_text(nbformat.writes(nbformat.v4.new_notebook()))
    (subs / "bob").mkdir()
    (subs / "bob" / "notes.txt").write_text("no notebook here")
    (subs / "loose.ipynb").write_text("{}")

    results = collect(layout, "a1", subs, None)
    ann = student_id("Ann Lee")
    assert ann.startswith("Ann_Lee-") and set(results) == {ann, "bob"}
    assert results[ann].status == "pending" and results[ann].source == "Ann Lee"
    assert (layout.submitted / ann / "a1" / "a1.ipynb").is_file()
    assert results["bob"].status == "failed" and "no notebook 'a1.ipynb'" in results["bob"].reason
    assert "skipping loose.ipynb" in capsys.readouterr().out

    # without a source folder: grade what is already in submitted/; a requested student with
    # nothing there is reported, not silently dropped
    again = collect(layout, "a1", None, [ann, "zed"])
    assert again[ann].status == "pending" and again[ann].source == "Ann Lee"
    assert again["zed"].status == "failed" and "no submission" in again["zed"].reason


def test_cifar10_test_subset_is_fixed_and_normalised(course_data):
    from course_pkg import data

    x, y = checks.cifar10_test_subset(50, seed=1, pool=200)
    x2, y2 = checks.cifar10_test_subset(50, seed=1, pool=200)
    assert x.shape == (50, 3, 32, 32) and x.dtype == torch.float32
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(y, checks.cifar10_test_subset(50, seed=2, pool=200)[1])
    # the same preprocessing as training: image k of the split, normalised by course_pkg.data
    images, labels = data.load_arrays("cifar10", "test", limit=200)
    k = int(torch.randperm(200, generator=torch.Generator().manual_seed(1))[0])
    assert torch.allclose(x[0], data.to_tensor(images[k:k + 1], "cifar10")[0])
    assert int(y[0]) == int(labels[k])
    with pytest.raises(ValueError, match="between 1 and pool"):
        checks.cifar10_test_subset(300, seed=1, pool=200)
    # the grader's subset covers every class (the JPEG copy is stored sorted by class)
    _, graded = checks.cifar10_test_subset(250, seed=20150607)
    counts = torch.bincount(graded, minlength=10)
    assert len(counts) == 10 and counts.min() >= 10, counts.tolist()


def test_build_and_defined_turn_student_errors_into_messages():
    def unfinished(x):
        raise NotImplementedError()

    with pytest.raises(checks.CheckFailed, match=r"unfinished\(<tensor 3x4>\) raises NotImplementedError"):
        checks.build(unfinished, torch.zeros(3, 4))
    with pytest.raises(checks.CheckFailed, match=r"fails: ZeroDivisionError"):
        checks.build(lambda: 1 / 0)
    assert checks.build(dict, a=1) == {"a": 1}
    with pytest.raises(checks.CheckFailed, match="answers_3a is not defined"):
        checks.defined({"other": 1}, "answers_3a")
    checks.defined({"answers_3a": {}}, "answers_3a")


def test_course_grade_explains_what_is_missing(tmp_path, capsys):
    from course_pkg.grading import main

    assert main(["02_inception_module", "--course-dir", str(tmp_path)]) == 2
    assert "has no nbgrader_config.py" in capsys.readouterr().err
    shutil.copy(REPO / "nbgrader_config.py", tmp_path)
    assert main(["nope", "--course-dir", str(tmp_path)]) == 2
    assert "make assignments" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# Hostile files: what the grader reads from a sandbox or a submission folder
# --------------------------------------------------------------------------------------------
def _layout(tmp_path: Path):
    import nbformat

    from course_pkg.grading.course import Layout

    shutil.copy(REPO / "nbgrader_config.py", tmp_path)
    layout = Layout.load(tmp_path)
    (layout.source / "a1").mkdir(parents=True)
    (layout.source / "a1" / "a1.ipynb").write_text(nbformat.writes(nbformat.v4.new_notebook()))
    return layout


def test_untrusted_files_are_read_without_links_fifos_or_unbounded_reads(tmp_path):
    import os
    import time

    from course_pkg.grading.replicas import Refused, read_untrusted

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "ok.json").write_text("{}")
    assert read_untrusted(tmp_path / "out" / "ok.json", tmp_path, 100) == b"{}"
    os.symlink("/dev/zero", tmp_path / "out" / "zero.pt")
    os.mkfifo(tmp_path / "out" / "fifo.pt")
    os.symlink("/etc", tmp_path / "linked")
    (tmp_path / "out" / "big.pt").write_bytes(b"x" * 1000)
    start = time.monotonic()
    for name, why in (("out/zero.pt", "is a link"), ("out/fifo.pt", "not a plain file"),
                      ("linked/hostname", "is a link"), ("out/big.pt", "more than the 100")):
        with pytest.raises(Refused, match=why):
            read_untrusted(tmp_path / name, tmp_path, 100)
    assert time.monotonic() - start < 5  # the FIFO did not block
    with pytest.raises(FileNotFoundError):
        read_untrusted(tmp_path / "out" / "missing.pt", tmp_path, 100)


def test_handover_bombs_are_refused_with_a_reason(tmp_path, monkeypatch):
    import time

    from course_pkg.grading import replicas

    nested: list = [0]
    for _ in range(40):  # a few hundred bytes on disk; 2**40 values for any walk that follows it
        nested = [nested, nested]
    torch.save({"answers": nested}, tmp_path / "nested.pt")
    start = time.monotonic()
    with pytest.raises(replicas.Refused, match="too many values"):
        replicas.load(tmp_path / "nested.pt")
    assert time.monotonic() - start < 120  # about 1 s idle; unbounded, the walk would never end
    torch.save({"x": torch.zeros(1).expand(10 ** 9)}, tmp_path / "strided.pt")  # 4 bytes stored
    with pytest.raises(replicas.Refused, match="larger than the handover writes"):
        replicas.load(tmp_path / "strided.pt")
    torch.save({"x": torch.zeros(10_000)}, tmp_path / "plain.pt")
    monkeypatch.setattr(replicas, "MAX_UNPACKED_BYTES", 1000)  # what a zip bomb's entries declare
    with pytest.raises(replicas.Refused, match="unpacks to"):
        replicas.load(tmp_path / "plain.pt")
    (tmp_path / "legacy.pt").write_bytes(b"\x80\x02}q\x00.")
    with pytest.raises(replicas.Refused, match="not a handover file"):
        replicas.load(tmp_path / "legacy.pt")


def test_the_sandbox_side_hands_over_bounded_values():
    from course_pkg.checks import handover

    plain = handover._plain([list(range(1000))] * 1000)  # one row, a thousand times: a million values
    kept = [v for row in plain if isinstance(row, list) for v in row]
    assert len(kept) <= handover.MAX_VALUES
    assert plain[-1] == {"__unsupported__": "too many values to hand over"}


def test_a_submitted_torch_file_that_unpacks_too_large_fails_only_the_checks_that_load_it(tmp_path, monkeypatch):
    from course_pkg.grading import verdict

    torch.save({"w": torch.zeros(10_000)}, tmp_path / "googlenet_cifar.pt")
    (tmp_path / "notes.txt").write_text("PK")
    assert verdict._refused_files(tmp_path) == {}
    monkeypatch.setattr(verdict, "MAX_CHECKPOINT_UNPACKED", 1000)
    refused = verdict._refused_files(tmp_path)
    assert list(refused) == ["googlenet_cifar.pt"] and "unpacks to" in refused["googlenet_cifar.pt"]


def test_child_output_is_kept_as_head_and_tail():
    import subprocess

    from course_pkg.grading.course import BoundedOutput

    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdout.write('HEAD' + 'x' * 5_000_000 + 'TAIL')"],
                            stdout=subprocess.PIPE)
    output = BoundedOutput(proc.stdout, head=100, tail=100)
    proc.wait()
    text = output.text(wait=300)  # once the pipe is drained
    assert text.startswith("HEAD") and text.endswith("TAIL") and len(text) < 300
    assert "4,999,808 bytes of output left out" in text


def test_copies_of_submissions_hold_plain_files_only(tmp_path, capsys):
    import os

    from course_pkg.grading.submissions import collect, copy_submission

    layout = _layout(tmp_path)
    subs = tmp_path / "subs"
    (subs / "ann").mkdir(parents=True)
    (subs / "ann" / "a1.ipynb").write_text((layout.source / "a1" / "a1.ipynb").read_text())
    os.symlink("/dev/zero", subs / "ann" / "zeros.bin")
    os.mkfifo(subs / "ann" / "pipe")
    os.symlink("/etc", subs / "ann" / "etc")
    os.symlink("/etc", subs / "linked-student")
    results = collect(layout, "a1", subs, None)
    assert set(results) == {"ann"} and results["ann"].status == "pending"
    assert sorted(p.name for p in (layout.submitted / "ann" / "a1").iterdir()) == ["a1.ipynb"]
    assert "left out 'etc', 'pipe', 'zeros.bin'" in results["ann"].notes[0]
    assert "skipping linked-student" in capsys.readouterr().out
    # what is already in submitted/ (nbgrader copies follow links): refused, not graded
    os.mkfifo(layout.submitted / "ann" / "a1" / "pipe")
    again = collect(layout, "a1", None, None)
    assert again["ann"].status == "failed" and "pipe is a link or a special file" in again["ann"].reason
    (subs / "big").mkdir()
    (subs / "big" / "a.bin").write_bytes(b"x" * 3000)
    import course_pkg.grading.submissions as submissions

    submissions.MAX_ZIP_BYTES, saved = 1000, submissions.MAX_ZIP_BYTES
    try:
        assert "more than" in copy_submission(subs / "big", tmp_path / "copy")
    finally:
        submissions.MAX_ZIP_BYTES = saved


def test_student_ids_are_unique_valid_and_name_their_folder(tmp_path):
    import nbformat

    from course_pkg.grading.submissions import collect

    assert student_id("Zo") == "Zo" and student_id("Zoë").startswith("Zoe-")
    assert student_id("张伟") != student_id("王芳") and student_id("张伟").startswith("student-")
    for name in ("Zoë", "张伟", "../../../victim", "-rf", ".hidden", "a/b", "x" * 300):
        assert valid_student_id(student_id(name)), name
    for bad in ("../../../victim", "..", "a/b", "", "-rf", ".x", "x" * 101):
        assert not valid_student_id(bad), bad
    layout = _layout(tmp_path)
    subs = tmp_path / "subs"
    for name in ("Zo", "Zoë", "张伟", "王芳", "alice"):
        (subs / name).mkdir(parents=True)
        (subs / name / "a1.ipynb").write_text(nbformat.writes(nbformat.v4.new_notebook()))
    (subs / "alice.zip").write_bytes(b"PK")
    results = collect(layout, "a1", subs, None)
    assert {r.source or r.student for r in results.values()} == {"Zo", "Zoë", "张伟", "王芳", "alice"}
    assert all(r.status == "pending" for s, r in results.items() if s != "alice")
    assert results["alice"].status == "failed"
    assert "'alice'" in results["alice"].reason and "'alice.zip'" in results["alice"].reason


# --------------------------------------------------------------------------------------------
# Shards: verified before they are merged
# --------------------------------------------------------------------------------------------
def test_a_changed_shard_is_not_merged(tmp_path):
    import json
    import os
    from argparse import Namespace

    from course_pkg.grading.course import GradingError
    from course_pkg.grading.grade import merge
    from course_pkg.grading.gradebook import inside_course, sign_shard, verify_shard

    layout = _layout(tmp_path)
    shard = tmp_path / "shard"
    (shard / "autograded" / "blank" / "a1").mkdir(parents=True)
    (shard / "results.json").write_text(json.dumps({"blank": {"status": "graded"}}))
    (shard / "blank.db").write_bytes(b"a gradebook")
    (shard / "autograded" / "blank" / "a1" / "a1.ipynb").write_text("{}")
    sign_shard(layout, shard, "a1")
    assert (layout.work / "grading-key").stat().st_mode & 0o077 == 0
    verify_shard(layout, shard, "a1")
    with pytest.raises(GradingError, match="not 'a2'"):
        verify_shard(layout, shard, "a2")
    (shard / "blank.db").write_bytes(b"a gradebook edited to 19/19")
    with pytest.raises(GradingError, match="blank.db changed since the shard was graded"):
        verify_shard(layout, shard, "a1")
    with pytest.raises(GradingError, match="blank.db changed"):
        merge(layout, Namespace(assignment="a1", merge=[shard]))
    manifest = json.loads((shard / "manifest.json").read_text())
    manifest["body"]["files"]["blank.db"] = "0" * 64
    (shard / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(GradingError, match="does not match its signature"):
        verify_shard(layout, shard, "a1")
    # a shard whose id climbs out of the course folder: refused before anything is deleted
    victim = tmp_path.parent / f"{tmp_path.name}-victim"
    (victim / "a1").mkdir(parents=True)
    (shard / "results.json").write_text(json.dumps({f"../../../{victim.name}": {"status": "graded"}}))
    (shard / "blank.db").write_bytes(b"a gradebook")
    sign_shard(layout, shard, "a1")
    with pytest.raises(GradingError, match="not a valid student id"):
        merge(layout, Namespace(assignment="a1", merge=[shard]))
    assert (victim / "a1").is_dir()
    os.symlink(victim, layout.autograded)
    with pytest.raises(GradingError, match="is a link|outside the course folder"):
        inside_course(layout, layout.autograded / "blank" / "a1")


# --------------------------------------------------------------------------------------------
# Feedback and CSV: what a student wrote is shown, never run
# --------------------------------------------------------------------------------------------
def test_feedback_notebook_is_sanitised():
    import nbformat
    from nbconvert.filters import markdown2html

    from course_pkg.grading.reports import sanitise_notebook

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell('<script>alert(1)</script><img src=x onerror=alert(2)> [a](javascript:alert(3)) '
                                      "`<b>code</b>` and a < b"),
        nbformat.v4.new_code_cell("x", outputs=[nbformat.v4.new_output(
            "display_data", data={"text/html": "<b onmouseover=alert(4)>ok</b><script>alert(5)</script>"
                                               "<iframe src=x></iframe>", "image/png": '" onerror="alert(6)',
                                  "application/javascript": "alert(7)", "text/plain": "ok"})]),
    ]
    nb.cells[1].metadata["nbgrader"] = {"solution": True, "grade_id": '"><script>alert(8)</script>'}
    sanitise_notebook(nb)
    page = markdown2html(nb.cells[0].source) + str(nb.cells[1].outputs[0].data)
    for live in (r"<script", r"<img", r"<[^>]*onerror", r"javascript:", r"<[^>]*onmouseover", r"<iframe"):
        assert not re.search(live, page), (live, page)
    assert "<code>&lt;b&gt;code&lt;/b&gt;</code>" in page and "<b>ok</b>" in page
    assert nb.cells[1].outputs[0].data["text/plain"] == "ok" and "image/png" not in nb.cells[1].outputs[0].data
    assert "nbgrader" not in nb.cells[1].metadata


def test_csv_cells_never_start_a_formula(tmp_path):
    import csv

    from course_pkg.grading.course import StudentResult
    from course_pkg.grading.reports import write_csv

    results = {"s": StudentResult("s", "failed", '=HYPERLINK("http://x","y").zip is not a readable zip file',
                                  flags=["@SUM(1)"], source="+cmd")}
    write_csv(tmp_path / "grades.csv", results, [])
    row = next(csv.DictReader((tmp_path / "grades.csv").open()))
    assert row["reason"].startswith("'=HYPERLINK") and row["flags"] == "'@SUM(1)" and row["submitted_as"] == "'+cmd"
    assert row["student"] == "s" and row["status"] == "failed"


def test_summary_names_the_sandbox_caps_of_the_course_config(tmp_path):
    from course_pkg.grading.course import Layout, StudentResult
    from course_pkg.grading.grade import _caps
    from course_pkg.grading.reports import summary

    (tmp_path / "nbgrader_config.py").write_text("c = get_config()\nc.SandboxedExecute.memory_gb = 3\n")
    caps = _caps(Layout.load(tmp_path))
    assert "3072 MiB memory in all" in caps and "processes" in caps
    results = {"s": StudentResult("s", "graded", score=1.0, max_score=2.0)}
    assert f"  {caps}" in summary(results, "A", caps=caps).splitlines()
    unsafe = summary(results, "A", unsafe=True, caps=caps)
    assert "UNSAFE" in unsafe and caps not in unsafe  # no sandbox, no caps to claim


# --------------------------------------------------------------------------------------------
# Storage and retries
# --------------------------------------------------------------------------------------------
def test_large_files_are_hard_linked_once(tmp_path):
    import os

    from course_pkg.grading.submissions import large_files, link_duplicates

    submitted, autograded = tmp_path / "submitted", tmp_path / "autograded"
    for folder in (submitted, autograded):
        folder.mkdir()
        (folder / "model [1].pt").write_bytes(b"w" * (2 << 20))
        (folder / "small.txt").write_text("s")
    (submitted / "other.bin").write_bytes(b"a" * (2 << 20))
    (autograded / "other.bin").write_bytes(b"b" * (2 << 20))  # same name, other content: kept
    assert link_duplicates(submitted, autograded) == 2 << 20
    assert os.path.samefile(submitted / "model [1].pt", autograded / "model [1].pt")
    assert not os.path.samefile(submitted / "small.txt", autograded / "small.txt")
    assert not os.path.samefile(submitted / "other.bin", autograded / "other.bin")
    assert (autograded / "model [1].pt").stat().st_mode & 0o222 == 0
    assert large_files([autograded]) == ["model [[]1].pt", "other.bin"]


def test_a_failed_student_is_retried_only_when_the_submission_changes(tmp_path, monkeypatch):
    import nbformat

    from course_pkg.grading import grade

    layout = _layout(tmp_path)
    (layout.release / "a1").mkdir(parents=True)
    subs = tmp_path / "subs"
    (subs / "ann").mkdir(parents=True)
    (subs / "ann" / "a1.ipynb").write_text(nbformat.writes(nbformat.v4.new_notebook()))
    graded: list[str] = []

    def fail(layout, assignment, result, *args, **kwargs):
        graded.append(result.student)
        result.status, result.reason = "failed", "the kernel died"

    monkeypatch.setattr(grade, "autograde_one", fail)
    monkeypatch.setattr(grade, "_ensure_in_gradebook", lambda *a: None)
    monkeypatch.setattr(grade, "_report", lambda *a: tmp_path)
    monkeypatch.setattr(grade, "merge_gradebooks", lambda *a: [])
    args = ["a1", "--course-dir", str(tmp_path), "--submissions", str(subs), "--unsafe-no-sandbox"]
    results, _ = grade.run(grade.build_parser().parse_args(args))
    assert graded == ["ann"] and results["ann"].status == "failed"
    results, _ = grade.run(grade.build_parser().parse_args(args))
    assert graded == ["ann"], "retried although nothing changed"
    assert results["ann"].status == "failed" and results["ann"].reason == "the kernel died"
    assert "--regrade" in results["ann"].notes[-1]
    grade.run(grade.build_parser().parse_args([*args, "--regrade"]))
    assert graded == ["ann", "ann"]
    (subs / "ann" / "notes.txt").write_text("a new submission")
    grade.run(grade.build_parser().parse_args(args))
    assert graded == ["ann", "ann", "ann"]
