# %% [markdown]
# # Assignment 2 — The inception module
#
# *Going Deeper with Convolutions* (Szegedy et al., 2015), section 4 and Figure 2.
#
# You will build the **naive** inception module (Figure 2a) and the module **with dimension
# reductions** (Figure 2b) that GoogLeNet stacks nine times, then count what each branch
# costs.  Use the paper's argument names — they are the columns of Table 1:
# `in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj`.
#
# Rules of the game
# - Name the four branches `branch1x1`, `branch3x3`, `branch5x5`, `branch_pool` and
#   concatenate their outputs along the channel axis **in that order**.
# - Every convolution has a bias and is followed by a ReLU (the paper has no batch norm).
#   `course_pkg.models.layers.BasicConv2d(in_ch, out_ch, kernel_size, stride=1, padding=0)`
#   is exactly "conv + ReLU"; you may use it or `nn.Sequential(nn.Conv2d(...), nn.ReLU())`.
# - Do not import the course's own `Inception` classes — that is what we compare you with.
# - Run the **self-check** cell after each graded part: it compares your code with the
#   course's reference, says right or wrong, names the first cause of a difference on its
#   first line and the points at stake (never the expected value).  The graded tests check
#   the same things, for all nine modules of Table 1.

# %% nbgrader={"grade": false, "grade_id": "code-01", "locked": true, "schema_version": 3, "solution": false, "task": false}
# Setup.  In Colab this installs the course package (once per session); elsewhere
# `pip install -e .` in the course repository does.
import sys
if "google.colab" in sys.modules:
    import subprocess
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "git+https://github.com/going-deeper-course/going-deeper"], check=True)

import torch
import torch.nn as nn
import course_pkg
from course_pkg import checks
from course_pkg.checks import handover
from course_pkg.models.layers import BasicConv2d
torch.manual_seed(0)


# %% [markdown]
# ## 1. The naive module (Figure 2a)
#
# Four branches side by side on the same input: a 1x1 convolution (`ch1x1` filters), a 3x3
# convolution (`ch3x3`), a 5x5 convolution (`ch5x5`) and a 3x3 max pool (stride 1).  Every
# branch must keep the input's height and width, so choose the paddings accordingly.  The
# pool branch has no parameters and passes all `in_channels` through.

# %% nbgrader={"grade": false, "grade_id": "naive_module", "locked": false, "schema_version": 3, "solution": true, "task": false}
class InceptionNaive(nn.Module):
    def __init__(self, in_channels: int, ch1x1: int, ch3x3: int, ch5x5: int) -> None:
        super().__init__()
        ### BEGIN SOLUTION
        self.branch1x1 = BasicConv2d(in_channels, ch1x1, 1)
        self.branch3x3 = BasicConv2d(in_channels, ch3x3, 3, padding=1)
        self.branch5x5 = BasicConv2d(in_channels, ch5x5, 5, padding=2)
        self.branch_pool = nn.MaxPool2d(3, stride=1, padding=1)
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        branches = (self.branch1x1, self.branch3x3, self.branch5x5, self.branch_pool)
        return torch.cat([branch(x) for branch in branches], dim=1)
        ### END SOLUTION


# %%
# Self-check (not graded): inception 3a, 4a and 5b built as naive modules.
checks.self_check_inception(InceptionNaive, naive=True, points=2)

# %% nbgrader={"grade": true, "grade_id": "test_naive_module", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# The naive version of inception 3a, 4a and 5b (3a: 192 channels in, 64 + 128 + 32 + 192 out).
handover.give(InceptionNaive=handover.inception_class(naive=True))
### BEGIN HIDDEN TESTS
checks.fail_on(checks.inception_findings(InceptionNaive, naive=True, modules=("3a", "4a", "5b")),
               "naive module")
_out = checks.build(checks.build(InceptionNaive, 192, 64, 128, 32).eval(), checks.probe_input(2, 192, 7, 7))
checks.require(tuple(_out.shape) == (2, 416, 7, 7),
               f"output shape {tuple(_out.shape)} for a 2x192x7x7 input, expected (2, 416, 7, 7)")
### END HIDDEN TESTS

# %% [markdown]
# ## 2. The module with dimension reductions (Figure 2b)
#
# - `branch1x1`: 1x1 convolution, `ch1x1` filters;
# - `branch3x3`: 1x1 convolution to `ch3x3red` channels, then 3x3 convolution to `ch3x3`;
# - `branch5x5`: 1x1 convolution to `ch5x5red` channels, then 5x5 convolution to `ch5x5`;
# - `branch_pool`: 3x3 max pool (stride 1, padding 1), then 1x1 convolution to `pool_proj`.
#
# Give the module an attribute `out_channels` (the number of channels it outputs).

# %% nbgrader={"grade": false, "grade_id": "inception_module", "locked": false, "schema_version": 3, "solution": true, "task": false}
class Inception(nn.Module):
    def __init__(self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int,
                 ch5x5red: int, ch5x5: int, pool_proj: int) -> None:
        super().__init__()
        ### BEGIN SOLUTION
        self.branch1x1 = BasicConv2d(in_channels, ch1x1, 1)
        self.branch3x3 = nn.Sequential(
            BasicConv2d(in_channels, ch3x3red, 1),
            BasicConv2d(ch3x3red, ch3x3, 3, padding=1),
        )
        self.branch5x5 = nn.Sequential(
            BasicConv2d(in_channels, ch5x5red, 1),
            BasicConv2d(ch5x5red, ch5x5, 5, padding=2),
        )
        self.branch_pool = nn.Sequential(
            nn.MaxPool2d(3, stride=1, padding=1),
            BasicConv2d(in_channels, pool_proj, 1),
        )
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        branches = (self.branch1x1, self.branch3x3, self.branch5x5, self.branch_pool)
        return torch.cat([branch(x) for branch in branches], dim=1)
        ### END SOLUTION


# %%
# Self-check (not graded): your module built as each of 3a ... 5b, compared with the reference.
checks.self_check_inception(Inception, points=11)

# %% nbgrader={"grade": true, "grade_id": "test_inception_3a_shape", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Inception 3a (Table 1): 192 channels in, 256 out, the same height and width.
handover.give(Inception=handover.inception_class())
### BEGIN HIDDEN TESTS
checks.fail_on([f for f in checks.inception_findings(Inception, modules=("3a",))
                if f.kind in ("shape", "order", "output")], "inception 3a")
_module = checks.build(Inception, 192, 64, 96, 128, 16, 32, 32).eval()
_out = checks.build(_module, checks.probe_input(2, 192, 7, 7))
checks.require(tuple(_out.shape) == (2, 256, 7, 7),
               f"output shape {tuple(_out.shape)} for a 2x192x7x7 input, expected (2, 256, 7, 7)")
checks.require(getattr(_module, "out_channels", None) == 256,
               f"out_channels is {getattr(_module, 'out_channels', 'not set')}, expected 256")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_branch1x1", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# branch1x1: parameters and layers of this branch in every module, 3a ... 5b.
handover.give(Inception=handover.inception_class())
### BEGIN HIDDEN TESTS
checks.fail_on([f for f in checks.inception_findings(Inception)
                if f.branch == "branch1x1" and f.kind in ("params", "structure", "output")], "branch1x1")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_branch3x3", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# branch3x3: parameters and layers of this branch in every module, 3a ... 5b.
handover.give(Inception=handover.inception_class())
### BEGIN HIDDEN TESTS
checks.fail_on([f for f in checks.inception_findings(Inception)
                if f.branch == "branch3x3" and f.kind in ("params", "structure", "output")], "branch3x3")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_branch5x5", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# branch5x5: parameters and layers of this branch in every module, 3a ... 5b.
handover.give(Inception=handover.inception_class())
### BEGIN HIDDEN TESTS
checks.fail_on([f for f in checks.inception_findings(Inception)
                if f.branch == "branch5x5" and f.kind in ("params", "structure", "output")], "branch5x5")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_branch_pool", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# branch_pool: parameters and layers of this branch in every module, 3a ... 5b.
handover.give(Inception=handover.inception_class())
### BEGIN HIDDEN TESTS
checks.fail_on([f for f in checks.inception_findings(Inception)
                if f.branch == "branch_pool" and f.kind in ("params", "structure", "output")], "branch_pool")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_module_totals", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# Total parameters of every module, 3a ... 5b.
handover.give(Inception=handover.inception_class())
### BEGIN HIDDEN TESTS
checks.fail_on([f for f in checks.inception_findings(Inception) if f.kind in ("total", "output")],
               "parameters per module")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_shapes_and_order", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# Output shapes of every branch and module, and the concatenation order.
handover.give(Inception=handover.inception_class())
### BEGIN HIDDEN TESTS
checks.fail_on([f for f in checks.inception_findings(Inception) if f.kind in ("shape", "order", "output")],
               "shapes and concatenation order")
### END HIDDEN TESTS

# %% [markdown]
# ## 3. What each branch costs, by hand
#
# Inception 3a sees a 28x28x192 input.  For each branch give its number of **parameters**
# (weights and biases) and its **multiply-adds** for one image (a convolution with a k x k
# kernel, C_in input and C_out output channels costs k·k·C_in·C_out multiply-adds per output
# position; biases are additions, not multiply-adds; max pooling costs none).
# Write whole numbers, not expressions that call PyTorch.

# %% nbgrader={"grade": false, "grade_id": "answers_3a", "locked": false, "schema_version": 3, "solution": true, "task": false}
# answers_3a = {"branch1x1_params": ..., "branch3x3_params": ..., "branch5x5_params": ...,
#               "branch_pool_params": ..., "branch1x1_macs": ..., "branch3x3_macs": ...,
#               "branch5x5_macs": ..., "branch_pool_macs": ...}
### BEGIN SOLUTION
answers_3a = {
    "branch1x1_params": 1 * 1 * 192 * 64 + 64,
    "branch3x3_params": (192 * 96 + 96) + (3 * 3 * 96 * 128 + 128),
    "branch5x5_params": (192 * 16 + 16) + (5 * 5 * 16 * 32 + 32),
    "branch_pool_params": 192 * 32 + 32,
    "branch1x1_macs": 28 * 28 * 192 * 64,
    "branch3x3_macs": 28 * 28 * (192 * 96 + 3 * 3 * 96 * 128),
    "branch5x5_macs": 28 * 28 * (192 * 16 + 5 * 5 * 16 * 32),
    "branch_pool_macs": 28 * 28 * 192 * 32,
}
### END SOLUTION

# %%
# Self-check (not graded): the eight numbers of `answers_3a`, right or wrong.
checks.self_check_answers(globals(), "answers_3a", points=2)

# %% nbgrader={"grade": true, "grade_id": "test_answers_3a", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
handover.give("answers_3a")
### BEGIN HIDDEN TESTS
checks.defined(globals(), "answers_3a")
# the values and the hints (biases left out, per position, ...) of course_pkg.checks.answers, which
# computes them from the course's Inception: the self-check above says right or wrong from the same
checks.fail_on(checks.diagnose_by_hand(globals(), "answers_3a"), "inception 3a by hand")
### END HIDDEN TESTS

# %% [markdown]
# ## 4. The same counts for every module, as a function
#
# Write `branch_costs(in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj, size)`
# that returns `{"branch1x1": (params, macs), "branch3x3": ..., "branch5x5": ...,
# "branch_pool": ...}` for one `size` x `size` input, from the formulas — do not build a
# module and count its parameters.  The table below then shows Table 1's modules.

# %% nbgrader={"grade": false, "grade_id": "branch_costs", "locked": false, "schema_version": 3, "solution": true, "task": false}
def branch_costs(in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj, size):
    ### BEGIN SOLUTION
    def conv(c_in, c_out, k):
        weights = k * k * c_in * c_out
        return weights + c_out, weights * size * size

    def add(*parts):
        return tuple(sum(values) for values in zip(*parts))

    return {
        "branch1x1": conv(in_channels, ch1x1, 1),
        "branch3x3": add(conv(in_channels, ch3x3red, 1), conv(ch3x3red, ch3x3, 3)),
        "branch5x5": add(conv(in_channels, ch5x5red, 1), conv(ch5x5red, ch5x5, 5)),
        "branch_pool": conv(in_channels, pool_proj, 1),
    }
    ### END SOLUTION


# %%
# Self-check (not graded): branch_costs for all nine modules, right or wrong; then Table 1 from it.
checks.self_check_branch_costs(branch_costs, points=3)
for name, in_channels, filters, size in checks.table1_modules():
    costs = branch_costs(in_channels, *filters, size)
    print(f"{name}: " + "  ".join(f"{b} {p:,} params / {m / 1e6:.1f}M MACs" for b, (p, m) in costs.items()))

# %% nbgrader={"grade": true, "grade_id": "test_branch_costs", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# branch_costs for every module of Table 1.
handover.give(branch_costs=handover.function([((cin, *f, size), {}) for _, cin, f, size in checks.table1_modules()]))
### BEGIN HIDDEN TESTS
from course_pkg.models.inception import Inception as _Reference
from course_pkg.profile import count_macs as _macs, count_params as _params
_findings = []
for _name, _cin, _f, _size in checks.table1_modules():
    _ref = _Reference(_cin, *_f)
    _expected = {_b: (_params(getattr(_ref, _b)), _macs(getattr(_ref, _b), (_cin, _size, _size)))
                 for _b in ("branch1x1", "branch3x3", "branch5x5", "branch_pool")}
    _got = checks.build(branch_costs, _cin, *_f, _size)
    _got = {k: tuple(v) for k, v in _got.items()} if isinstance(_got, dict) else _got
    for _f_ in checks.diagnose_answers(_got, _expected, f"branch_costs for inception {_name}"):
        _findings.append(_f_)
checks.fail_on(_findings, "branch_costs")
### END HIDDEN TESTS

# %% [markdown]
# ## 5. The concatenation order
#
# Inception 3a outputs 256 channels.  Which branch produced each of the channels 0, 100,
# 200 and 250?  Answer with the branch names.

# %% nbgrader={"grade": false, "grade_id": "channel_source", "locked": false, "schema_version": 3, "solution": true, "task": false}
# channel_source = {0: "...", 100: "...", 200: "...", 250: "..."}
### BEGIN SOLUTION
channel_source = {0: "branch1x1", 100: "branch3x3", 200: "branch5x5", 250: "branch_pool"}
### END SOLUTION

# %%
# Self-check (not graded): the four branch names, right or wrong.
checks.self_check_answers(globals(), "channel_source", points=1)

# %% nbgrader={"grade": true, "grade_id": "test_channel_source", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
handover.give("channel_source")
### BEGIN HIDDEN TESTS
checks.defined(globals(), "channel_source")
from course_pkg.models.inception import Inception as _Reference
_ref = _Reference(192, 64, 96, 128, 16, 32, 32)
_bounds, _start = {}, 0
for _b in ("branch1x1", "branch3x3", "branch5x5", "branch_pool"):
    _n = getattr(_ref, _b)(torch.zeros(1, 192, 4, 4)).shape[1]
    _bounds[_b] = range(_start, _start + _n)
    _start += _n
_expected = {c: next(b for b, r in _bounds.items() if c in r) for c in (0, 100, 200, 250)}
_wrong = [f"channel {c}: {channel_source.get(c)!r} is wrong" for c in _expected
          if channel_source.get(c) != _expected[c]]
checks.require(not _wrong, "; ".join(_wrong) + " (channels are the 1x1 outputs first, then 3x3, 5x5, pool)")
### END HIDDEN TESTS
