"""The students' self-checks: for a seeded mistake the first line names the cause, and says wrong
without the expected value; on the solutions every self-check says right.

Each case runs the assignment source's own cells (tools/assignments.py reads them): the setup cell,
the solution cells with one mistake written into them, then the self-check cell that follows the
mistaken part, and reads what that cell prints.
"""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
import assignments as converter  # noqa: E402


def _cells(assignment: str):
    return converter.from_percent(converter.source_path(assignment).read_text(), assignment).cells


def _grade_id(cell) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def is_self_check(cell) -> bool:
    return cell.cell_type == "code" and not _grade_id(cell) and "checks.self_check_" in cell.source


def run_self_check(assignment: str, part: str, edits: tuple[tuple[str, str], ...] = ()) -> str:
    """Run the setup and solution cells of ``assignment`` (``edits``: (old, new) replacements in the
    solution cell ``part``), then the self-check cell after ``part``; return what it prints."""
    cells, namespace, out = _cells(assignment), {"__name__": "__main__"}, io.StringIO()
    index = next(i for i, c in enumerate(cells) if _grade_id(c) == part)
    check = next(c for c in cells[index + 1:] if is_self_check(c))
    for cell in cells[:index + 1]:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or not (meta.get("solution") or _grade_id(cell) == "code-01"):
            continue
        source = cell.source
        if _grade_id(cell) == part:
            for old, new in edits:
                assert old in source, f"the seeded mistake no longer applies to {part}: {old!r}"
                source = source.replace(old, new)
        exec(compile(source, f"{assignment}:{_grade_id(cell)}", "exec"), namespace)
    with contextlib.redirect_stdout(out):
        exec(compile(check.source, f"{assignment}:self-check after {part}", "exec"), namespace)
    return out.getvalue()


A3_POOL = "nn.MaxPool2d(3, stride=2, ceil_mode=True)"

MISTAKES = [
    # (what, assignment, part, edits, words the first line must hold, what it must not print)
    ("wrong channel in a branch", "02_inception_module", "inception_module",
     (("BasicConv2d(ch3x3red, ch3x3, 3, padding=1)", "BasicConv2d(ch3x3red, ch3x3red, 3, padding=1)"),),
     ["✗", "branch3x3", "convolution 2 of 2", "`ch3x3`"], []),
    ("pool projection to the wrong count", "02_inception_module", "inception_module",
     (("BasicConv2d(in_channels, pool_proj, 1)", "BasicConv2d(in_channels, ch1x1, 1)"),),
     ["✗", "branch_pool", "`pool_proj`"], []),
    ("pool projection from the wrong count", "02_inception_module", "inception_module",
     (("BasicConv2d(in_channels, pool_proj, 1)", "BasicConv2d(ch5x5red, pool_proj, 1)"),),
     ["✗", "branch_pool", "`in_channels`"], []),
    *[(f"ceil_mode missing on maxpool{i}", "03_googlenet_aux", "googlenet",
       ((f"self.maxpool{i} = {A3_POOL}" if i != 2 else f"nn.Identity() if cifar else {A3_POOL}",
         (f"self.maxpool{i} = {A3_POOL}" if i != 2 else f"nn.Identity() if cifar else {A3_POOL}")
         .replace(", ceil_mode=True", "")),),
       ["✗", f"maxpool{i}", "ceil_mode"], []) for i in (1, 2, 3, 4)],
    ("conv1 as a plain Sequential", "03_googlenet_aux", "googlenet",
     (("BasicConv2d(3, 64, 3, padding=1)", "nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(inplace=True))"),
      ("BasicConv2d(3, 64, 7, stride=2, padding=3)",
       "nn.Sequential(nn.Conv2d(3, 64, 7, stride=2, padding=3), nn.ReLU(inplace=True))")),
     ["✗", "conv1", "conv1.conv.weight", "BasicConv2d"], []),
    ("missing aux head", "03_googlenet_aux", "googlenet",
     (("if aux_logits:\n", "if False:\n"), ("self.aux_logits = aux_logits", "self.aux_logits = False")),
     ["✗", "aux1"], []),
    ("loss without aux terms", "03_googlenet_aux", "googlenet_loss",
     (("return F.cross_entropy(logits, targets) + 0.3 *", "return F.cross_entropy(logits, targets) + 0 *"),),
     ["✗", "googlenet_loss", "auxiliary terms are missing"], []),
    ("a view out of order (ten crops)", "04_multicrop", "ten_crop",
     (("torch.stack(five(image) + five(torch.flip(image, [-1])))",
       "torch.stack([v for pair in zip(five(image), five(torch.flip(image, [-1]))) for v in pair])"),),
     ["✗", "your view 1 is the top-left crop of the mirrored image", "check the order"], []),
    ("a view out of order (144 crops: mirror first)", "04_multicrop", "views_144",
     (("out += [v, torch.flip(v, [-1])]", "out += [torch.flip(v, [-1]), v]"),),
     ["✗", "your view 0 is", "mirrored", "check the order"], []),
    ("the softmax of the mean logits", "04_multicrop", "average_softmax",
     (("return logits.softmax(-1).mean(0)", "return logits.mean(0).softmax(-1)"),),
     ["✗", "average_softmax", "mean logits"], []),
    ("a wrong LeNet count", "01_lenet_alexnet", "lenet_by_hand",
     (('"c3": 5 * 5 * 6 * 16 + 16', '"c3": 2400'),),
     ["✗", "lenet_params", "'c3': 2400 is wrong", "biases are missing", "2 points at stake"], ["2416", "✓"]),
    ("a wrong AlexNet fraction", "01_lenet_alexnet", "alexnet_by_hand",
     (("alexnet_fc_fraction = _fc / (_fc + _conv)", "alexnet_fc_fraction = _fc / (_fc + 2 * _conv)"),),
     ["✗", "alexnet_fc_fraction", "is wrong"], ["0.9399"]),
    ("a wrong bottleneck count", "01_lenet_alexnet", "bottleneck",
     (('"direct_macs": 28 * 28 * 5 * 5 * 192 * 32', '"direct_macs": 5 * 5 * 192 * 32'),),
     ["✗", "'direct_macs'", "per output position"], ["120422400"]),
    ("a wrong channel source", "02_inception_module", "channel_source",
     (('200: "branch5x5"', '200: "branch3x3"'),), ["✗", "channel_source", "200"], ["branch5x5"]),
]


# Building the paper's GoogLeNet twice and the nine inception modules takes more than a few seconds:
# those cases run in `make test` (marker `slow`), the others in `make check` too.
HEAVY = {"googlenet", "inception_module"}


def _params(cases, ids, part_at):
    """``cases`` as pytest params, those whose part (``case[part_at]``) is heavy marked slow."""
    return [pytest.param(*case, id=i, marks=[pytest.mark.slow] if case[part_at] in HEAVY else [])
            for case, i in zip(cases, ids)]


@pytest.mark.parametrize("what, assignment, part, edits, words, hidden", _params(MISTAKES, [m[0] for m in MISTAKES], 2))
def test_a_seeded_mistake_is_named_on_the_first_line(what, assignment, part, edits, words, hidden):
    out = run_self_check(assignment, part, edits)
    first = out.splitlines()[0]
    missing = [w for w in words if w not in first]
    assert not missing, f"{what}: the first line lacks {missing}:\n{out}"
    leaked = [w for w in hidden if w in out]
    assert not leaked, f"{what}: the self-check prints {leaked}:\n{out}"


# The self-checks after every solution part (the checkpoint's needs the trained file; it has a test of its own).
PARTS = [(a, _grade_id(c)) for a in converter.names() for c in _cells(a)
         if c.metadata.get("nbgrader", {}).get("solution")]


@pytest.mark.parametrize("assignment, part", _params(PARTS, [f"{a}:{p}" for a, p in PARTS], 1))
def test_every_self_check_says_right_on_the_solution(assignment, part):
    cells = _cells(assignment)
    index = next(i for i, c in enumerate(cells) if _grade_id(c) == part)
    following = next((c for c in cells[index + 1:] if is_self_check(c) or
                      c.metadata.get("nbgrader", {}).get("solution")), None)
    if following is None or not is_self_check(following):
        pytest.skip(f"{part} is checked together with the part after it")
    out = run_self_check(assignment, part)
    lines = out.splitlines()
    assert lines and lines[0].startswith("✓") and "✗" not in out, out
    assert "True" not in lines and "False" not in lines, out
