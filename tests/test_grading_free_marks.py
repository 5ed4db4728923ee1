"""Full marks with no work, and copied work unflagged: the parts that need no sandboxed kernel:
the grader recomputes what a handed-over module's layers give, the sandbox's course package
without the reference implementations, and the flags for copied work.  The end-to-end tests
(a class graded in sandboxes) are in the hostile class of tests/test_grading_e2e.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn as nn

from course_pkg import checks
from course_pkg.checks import handover
from course_pkg.grading import hidden, replicas
from course_pkg.models.inception import Inception


def _handed_over(tmp_path: Path, cls: type, **plan) -> dict:
    """What a test cell of assignment 2 hands over for ``cls``, read back as the grader reads it."""
    record = {"Inception": handover.inception_class()(cls), "__missing__": []}
    record["Inception"].update(plan)
    torch.save(record, tmp_path / "cell.pt")
    return replicas.load(tmp_path / "cell.pt")


class ZeroForward(Inception):
    """The right layers, a forward that computes nothing (zeros of the right shape)."""

    def forward(self, x):  # noqa: D102
        return torch.zeros(x.shape[0], self.out_channels, *x.shape[2:])


class ZeroBranch(nn.Module):
    def __init__(self, branch: nn.Module, channels: int) -> None:
        super().__init__()
        self.inner, self.channels = branch, channels

    def forward(self, x):  # noqa: D102
        return torch.zeros(x.shape[0], self.channels, *x.shape[2:])


def test_honest_module_handed_over_has_no_findings(tmp_path):
    ns = _handed_over(tmp_path, Inception)
    assert checks.inception_findings(ns["Inception"]) == []


def test_a_forward_of_zeros_fails_the_module_output(tmp_path):
    ns = _handed_over(tmp_path, ZeroForward)
    findings = checks.inception_findings(ns["Inception"], modules=("3a",))
    # the branches themselves are honest here: what fails is the module's output
    assert [f.kind for f in findings] == ["order"], findings


def test_forged_records_of_zeros_earn_nothing(tmp_path):
    """A hand-written record: the right layers, every output zeros (once worth 13 points)."""
    ns = _handed_over(tmp_path, Inception)
    forged = _handed_over(tmp_path, Inception)
    for entry in forged["Inception"]._built.values():
        for call in entry["calls"]:
            call["out"] = torch.zeros_like(call["out"])
    findings = checks.inception_findings(forged["Inception"])
    for branch in checks.BRANCHES:
        assert any(f.branch == branch and f.kind == "output" for f in findings), branch
    assert any("not what its own layers compute" in str(f) for f in findings)
    # the same record with the weights left out (or zeroed): nothing to compute from, still fails
    for entry in forged["Inception"]._built.values():
        entry["state"] = {k: torch.zeros_like(v) for k, v in entry["state"].items()}
    checks.inception.__dict__["_CACHE"].clear()
    zeroed = checks.inception_findings(forged["Inception"], modules=("3a",))
    assert any("all zero" in str(f) for f in zeroed), zeroed
    for entry in forged["Inception"]._built.values():
        entry.pop("state")
    checks.inception.__dict__["_CACHE"].clear()
    missing = checks.inception_findings(forged["Inception"], modules=("3a",))
    assert any("not handed over" in str(f) for f in missing), missing
    assert checks.inception_findings(ns["Inception"]) == []


def test_a_branch_without_its_relu_is_an_output_finding():
    class NoRelu(Inception):
        def __init__(self, *args):
            super().__init__(*args)
            self.branch1x1.relu = nn.Identity()

    findings = checks.inception.diagnose_inception(NoRelu(192, 64, 96, 128, 16, 32, 32),
                                                   Inception(192, 64, 96, 128, 16, 32, 32))
    assert [(f.branch, f.kind) for f in findings] == [("branch1x1", "output")], findings


# --------------------------------------------------------------------------------------------
# Whole networks (assignments 1 and 3): their output recomputed with fixed weights
# --------------------------------------------------------------------------------------------
LENET_CHILDREN = ["c1", "s2", "c3", "s4", "c5", "f6", "output"]


class LeNet5(nn.Module):
    """A student's LeNet-5 as assignment 1 asks for it; ``relu_on_f6=False`` forgets one ReLU,
    ``wrapped`` puts each convolution in a Sequential of its own (other keys, the same network)."""

    def __init__(self, relu_on_f6: bool = True, wrapped: bool = False) -> None:
        super().__init__()

        def conv(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 5)) if wrapped else nn.Conv2d(cin, cout, 5)

        self.c1, self.s2, self.c3, self.s4 = conv(1, 6), nn.MaxPool2d(2), conv(6, 16), nn.MaxPool2d(2)
        self.c5, self.f6, self.output = conv(16, 120), nn.Linear(120, 84), nn.Linear(84, 10)
        self.relu_on_f6 = relu_on_f6

    def forward(self, x):  # noqa: D102
        x = self.s4(torch.relu(self.c3(self.s2(torch.relu(self.c1(x))))))
        x = self.f6(torch.relu(self.c5(x)).flatten(1))
        return self.output(torch.relu(x) if self.relu_on_f6 else x)


def _lenet_findings(student) -> list:
    from course_pkg.models import create

    return checks.diagnose_model(student, create("lenet5", variant="modern"), (1, 32, 32), name="LeNet5",
                                 children=LENET_CHILDREN)


def _lenet_handed_over(tmp_path: Path, cls: type = LeNet5) -> dict:
    torch.save({"LeNet5": handover.network_class([((), {})], (1, 32, 32))(cls), "__missing__": []},
               tmp_path / "lenet.pt")
    return replicas.load(tmp_path / "lenet.pt")


@pytest.mark.parametrize("wrapped", [False, True])
def test_a_network_that_computes_what_its_layers_say_has_no_findings(wrapped, tmp_path):
    assert _lenet_findings(LeNet5(wrapped=wrapped)) == []
    assert _lenet_findings(_lenet_handed_over(tmp_path, lambda: LeNet5(wrapped=wrapped))["LeNet5"]()) == []


def test_a_network_without_one_relu_is_an_output_finding(tmp_path):
    """The layers and shapes are right, so only the recomputed output can tell (assignment 1 gave
    full marks for this before)."""
    student = LeNet5(relu_on_f6=False)
    for findings in (_lenet_findings(student), _lenet_findings(
            _lenet_handed_over(tmp_path, lambda: LeNet5(relu_on_f6=False))["LeNet5"]())):
        assert [f.kind for f in findings] == ["output"], findings
        assert "not what its own layers compute" in str(findings[0])
    # the student's own weights are left alone by the self-check
    before = {k: v.clone() for k, v in student.state_dict().items()}
    _lenet_findings(student)
    assert all(torch.equal(before[k], v) for k, v in student.state_dict().items())


def test_forged_network_records_earn_nothing(tmp_path):
    """A record with the right layers and shapes but an output that was not computed, or none."""
    honest = _lenet_handed_over(tmp_path)["LeNet5"]
    assert _lenet_findings(honest()) == []
    forged = _lenet_handed_over(tmp_path)["LeNet5"]
    entry = next(iter(forged._built.values()))
    entry["fixed"]["out"] = torch.zeros_like(entry["fixed"]["out"])
    assert [f.kind for f in _lenet_findings(forged())] == ["output"]
    entry["fixed"]["key"] = "another input"
    assert "not handed over" in str(_lenet_findings(forged()))
    entry.pop("fixed")
    assert "not handed over" in str(_lenet_findings(forged()))
    # claiming weights the network does not have: nothing stands for the reference's c1.weight
    entry = next(iter(honest._built.values()))
    entry["fixed"]["filled"] = [(k, s) for k, s in entry["fixed"]["filled"] if not k.startswith("c1.")]
    assert "nothing in your network's weights stands for c1.weight" in str(_lenet_findings(honest()))


def test_the_auxiliary_head_is_recomputed_too(tmp_path):
    """Assignment 3's InceptionAux, handed over as its test cell does: the honest head has no
    finding, the same head with a forward of zeros has one."""
    from course_pkg.models.googlenet import InceptionAux

    class ZeroAux(InceptionAux):
        def forward(self, x):  # noqa: D102
            return torch.zeros_like(super().forward(x))

    for cls, kinds in ((InceptionAux, []), (ZeroAux, ["output"])):
        torch.save({"InceptionAux": handover.network_class([((512, 1000), {})], lambda a: (a[0], 14, 14))(cls)},
                   tmp_path / "aux.pt")
        replica = replicas.load(tmp_path / "aux.pt")["InceptionAux"](512, 1000)
        findings = checks.diagnose_model(replica, InceptionAux(512, 1000), (512, 14, 14), name="InceptionAux")
        assert [f.kind for f in findings] == kinds, findings


# --------------------------------------------------------------------------------------------
# The sandbox's course package
# --------------------------------------------------------------------------------------------
def test_hidden_definitions_raise_and_the_rest_of_the_module_stays(monkeypatch):
    from course_pkg.models import googlenet, registry

    monkeypatch.setattr(registry, "_REGISTRY", {})  # the placeholder builders register themselves again

    source = Path(googlenet.__file__).read_text()
    stub = hidden.hide_definitions(source, ("GoogLeNet", "InceptionAux", "googlenet", "googlenet_cifar"))
    assert "class GoogLeNet(" not in stub and "class InceptionAux(" not in stub
    namespace: dict = {"__name__": "course_pkg.models.googlenet_hidden"}
    exec(compile(stub, "stub", "exec"), namespace)  # noqa: S102 -- the course's own source
    assert namespace["INCEPTION_FILTERS"] == googlenet.INCEPTION_FILTERS
    assert namespace["table1_modules"]() == googlenet.table1_modules()
    for name in ("GoogLeNet", "InceptionAux"):
        with pytest.raises(checks.HiddenWhileGrading, match="hidden while the notebook is graded"):
            namespace[name](10)
    with pytest.raises(checks.HiddenWhileGrading):
        registry.create("googlenet_cifar")


@pytest.mark.parametrize("assignment", sorted(hidden.HIDDEN))
def test_every_hidden_name_exists(assignment, tmp_path):
    binds = hidden.hidden_package(assignment, tmp_path / "hidden")
    import course_pkg

    root = Path(course_pkg.__file__).parent
    targets = {Path(t) for _, t in binds}
    for rel in hidden.HIDDEN[assignment]:
        assert root / rel in targets or root.resolve() / rel in targets
    for source, _ in binds:
        assert Path(source).exists()


# --------------------------------------------------------------------------------------------
# Copied work: weights near a shipped checkpoint, pasted reference code, near-identical notebooks
# --------------------------------------------------------------------------------------------
def test_weights_near_a_shipped_checkpoint_are_flagged_with_the_distance(tmp_path):
    from course_pkg import pretrained
    from course_pkg.grading import copying
    from course_pkg.models import create

    shipped = pretrained.load("googlenet_cifar_faithful").state_dict()
    torch.manual_seed(1)
    noisy = {k: v + 0.01 * v.float().std() * torch.randn_like(v) if v.is_floating_point() and v.numel() > 1 else v
             for k, v in shipped.items()}
    (tmp_path / "copied").mkdir()
    torch.save(shipped, tmp_path / "copied" / "googlenet_cifar.pt")
    torch.save(noisy, tmp_path / "copied" / "noisy.pt")
    flags = copying.shipped_weight_flags(tmp_path / "copied")
    assert len(flags) == 2, flags
    assert all("googlenet_cifar_faithful" in f and "relative L2 distance" in f for f in flags)
    assert "distance 0.0000" in next(f for f in flags if f.startswith("googlenet_cifar.pt"))
    # an honest checkpoint: the course's own seed and initialisation, untrained (1.18 away), and a
    # network of another kind: nothing to flag
    (tmp_path / "own").mkdir()
    torch.manual_seed(0)
    torch.save(create("googlenet_cifar", stem="16").state_dict(), tmp_path / "own" / "googlenet_cifar.pt")
    torch.save(create("lenet5").state_dict(), tmp_path / "own" / "lenet.pt")
    (tmp_path / "own" / "notes.pt").write_bytes(b"PK\x03\x04 not a zip")
    assert copying.shipped_weight_flags(tmp_path / "own") == []


def _notebook(*sources: str):
    import nbformat

    cells = [nbformat.v4.new_code_cell(s) for s in sources]
    for i, c in enumerate(cells):
        c.metadata["nbgrader"] = {"grade": False, "solution": True, "locked": False, "grade_id": f"part{i}"}
    return nbformat.v4.new_notebook(cells=cells)


def _starter(assignment: str) -> set[int]:
    import nbformat

    from course_pkg.grading import copying

    nb = nbformat.read(f"assignments/{assignment}/{assignment}.ipynb", as_version=4)
    return set().union(*(copying.code_shingles(c.source) for c in nb.cells if c.cell_type == "code"))


def test_pasted_reference_code_is_flagged_even_renamed_but_the_solution_is_not():
    import re

    import nbformat

    from course_pkg.grading import copying
    from course_pkg.models import inception

    A2 = "02_inception_module"
    starter = _starter(A2)
    solution = nbformat.read(f"solutions/{A2}/{A2}.ipynb", as_version=4)
    assert copying.pasted_reference_flags(solution, A2, starter) == []
    import inspect

    source = inspect.getsource(inception.Inception)
    renamed = re.sub(r"\bbranch(\w+)", r"path\1", source).replace("self", "me")
    renamed = "# my own work\n" + re.sub(r'""".*?"""', '"""mine"""', renamed, flags=re.S)
    flags = copying.pasted_reference_flags(_notebook("import torch", renamed), A2, starter)
    assert len(flags) == 1 and "part1" in flags[0] and "inception.py:Inception" in flags[0], flags
    assert "100%" in flags[0]


def test_near_identical_notebooks_are_flagged_for_both_but_starter_code_is_not():
    import nbformat

    from course_pkg.grading import copying

    A2 = "02_inception_module"
    starter = _starter(A2)
    solution = nbformat.read(f"solutions/{A2}/{A2}.ipynb", as_version=4)
    released = nbformat.read(f"assignments/{A2}/{A2}.ipynb", as_version=4)
    renamed = nbformat.from_dict(solution)
    for c in renamed.cells:
        c.source = c.source.replace("branches", "paths").replace("x)", "inp)") + "\n# written alone"
    flags = copying.similar_notebooks({"ann": solution, "bob": renamed, "cid": released, "dan": released}, starter)
    assert sorted(flags) == ["ann", "bob"], flags
    assert "that of bob (" in flags["ann"][0] and "that of ann (" in flags["bob"][0], flags
    # an independent implementation of the same module (torchvision's, in the notebook's names)
    import importlib
    import inspect

    tv = inspect.getsource(importlib.import_module("torchvision.models.googlenet").Inception)
    other = nbformat.from_dict(solution)
    for c in other.cells:
        if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") in ("inception_module", "naive_module"):
            c.source = tv
    assert copying.similar_notebooks({"ann": solution, "eve": other}, starter) == {}


def test_the_flag_thresholds_separate_copies_from_honest_work():
    """benchmarks/copy_thresholds.py's measurements, with a margin of 2x on the honest side of the
    weight distance and 0.2 on the code measures (GUARANTEES_free_marks.md quotes them)."""
    import sys

    from course_pkg.grading import copying

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import copy_thresholds

    weights = copy_thresholds.weight_rows()
    for name, distance in weights:
        if "(honest)" in name or "another run" in name:
            assert distance >= 2 * copying.NEAR_SHIPPED, (name, distance)
        elif "chunk 2" in name or "noise of 0.01" in name or "noise of 0.1 " in name:
            assert distance < copying.NEAR_SHIPPED, (name, distance)
    for kind, name, value in copy_thresholds.code_rows():
        if kind == "reference" and "(honest)" in name:
            assert value <= copying.PASTED_REFERENCE - 0.2, (name, value)
        elif kind == "reference":
            assert value >= copying.PASTED_REFERENCE, (name, value)
        else:
            assert value <= copying.SIMILAR_PAIR - 0.3, (name, value)
