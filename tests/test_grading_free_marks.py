"""Issue 26, item 1 ("full marks with no work, unflagged"), the parts that need no sandboxed kernel:
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
from course_pkg.grading import replicas, sandbox
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


def test_zero_outputs_fail_every_branch_and_the_module(tmp_path):
    ns = _handed_over(tmp_path, ZeroForward)
    findings = checks.inception_findings(ns["Inception"], modules=("3a",))
    assert {f.kind for f in findings} >= {"order"} or findings, findings
    # the branches themselves are honest here: what fails is the module's output
    assert any(f.kind == "order" for f in findings)


def test_forged_records_of_zeros_earn_nothing(tmp_path):
    """A hand-written record: the right layers, every output zeros (the attack of issue 26)."""
    ns = _handed_over(tmp_path, Inception)
    forged = _handed_over(tmp_path, Inception)
    for entry in forged["Inception"]._built.values():
        for call in entry["calls"]:
            call["out"] = torch.zeros_like(call["out"])
    findings = checks.inception_findings(forged["Inception"])
    for branch in checks.BRANCHES:
        assert any(f.branch == branch and f.kind == "output" for f in findings), branch
    assert "not what its own layers compute" in str(findings[0]) or any(
        "not what its own layers compute" in str(f) for f in findings)
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
# The sandbox's course package
# --------------------------------------------------------------------------------------------
def test_hidden_definitions_raise_and_the_rest_of_the_module_stays(monkeypatch):
    from course_pkg.models import googlenet, registry

    monkeypatch.setattr(registry, "_REGISTRY", {})  # the placeholder builders register themselves again

    source = Path(googlenet.__file__).read_text()
    stub = sandbox.hide_definitions(source, ("GoogLeNet", "InceptionAux", "googlenet", "googlenet_cifar"))
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


@pytest.mark.parametrize("assignment", sorted(sandbox.HIDDEN))
def test_every_hidden_name_exists(assignment, tmp_path):
    binds = sandbox.hidden_package(assignment, tmp_path / "hidden")
    import course_pkg

    root = Path(course_pkg.__file__).parent
    targets = {Path(t) for _, t in binds}
    for rel in sandbox.HIDDEN[assignment]:
        assert root / rel in targets or root.resolve() / rel in targets
    for source, _ in binds:
        assert Path(source).exists()
