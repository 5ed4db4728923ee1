"""Write the instructor notebooks ``solutions/<assignment>/<assignment>.ipynb`` (the source of truth
for the assignments is this script: reviewable text, nbgrader metadata always right).

    python tools/build_assignments.py          # rewrite solutions/*/*.ipynb
    make assignments                           # then regenerate the student versions

It lives outside ``solutions/<assignment>/`` on purpose: nbgrader releases every file in those
folders to students.  Cells:

- ``md(...)``            narrative
- ``locked(...)``        the read-only setup cell
- ``code(...)``          an ungraded code cell (self-checks, tables)
- ``solution(id, ...)``  the student's cell; ``### BEGIN SOLUTION`` … ``### END SOLUTION`` is
                         replaced by a stub in the student version
- ``test(id, pts, ...)`` an autograded test: visible checks, then ``### BEGIN HIDDEN TESTS`` …
                         ``### END HIDDEN TESTS`` (removed from student versions and feedback).
                         Points, thresholds and hidden checks exist only here.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from textwrap import dedent

import nbformat

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "solutions"


def _repo_url() -> str:
    text = (ROOT / "_config.yml").read_text()
    match = re.search(r"^repository:\s*\n\s+url:\s*(\S+)", text, re.M)
    return match.group(1) if match else "https://github.com/going-deeper-course/going-deeper"


def _src(text: str) -> str:
    return dedent(text).strip("\n")


def _meta(grade_id: str, *, grade: bool, solution: bool, locked: bool, points: float | None = None) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3,
            "solution": solution, "task": False}
    if grade:
        meta["points"] = points
    return {"nbgrader": meta}


class Notebook:
    def __init__(self, name: str) -> None:
        self.name = name
        self.cells: list = []
        self._n = 0

    def _id(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}-{self._n:02d}"

    def md(self, text: str) -> None:
        """Narrative.  Without nbgrader metadata, for the reason given in code()."""
        self.cells.append(nbformat.v4.new_markdown_cell(_src(text)))

    def locked(self, text: str) -> None:
        """A read-only code cell (setup)."""
        cell = nbformat.v4.new_code_cell(_src(text))
        cell.metadata = _meta(self._id("code"), grade=False, solution=False, locked=True)
        self.cells.append(cell)

    def code(self, text: str) -> None:
        """An ungraded code cell (self-checks, tables).  Not locked: nbgrader 0.9.6 can only
        restore a deleted test cell whose previous *locked* cell is a test or solution cell
        (``OverwriteCells.add_missing_grade_cells`` raises KeyError otherwise), so only
        markdown, the setup, solutions and tests carry nbgrader metadata (checked in write())."""
        self.cells.append(nbformat.v4.new_code_cell(_src(text)))

    def plain(self, text: str) -> None:
        """An ordinary cell students may edit (e.g. the training run); not graded, not locked."""
        self.cells.append(nbformat.v4.new_code_cell(_src(text)))

    def solution(self, grade_id: str, text: str) -> None:
        cell = nbformat.v4.new_code_cell(_src(text))
        cell.metadata = _meta(grade_id, grade=False, solution=True, locked=False)
        self.cells.append(cell)

    def test(self, grade_id: str, points: float, text: str) -> None:
        cell = nbformat.v4.new_code_cell(_src(text))
        cell.metadata = _meta(grade_id, grade=True, solution=False, locked=True, points=points)
        self.cells.append(cell)

    def _check_restorable(self) -> None:
        previous = None
        for cell in self.cells:
            meta = cell.metadata.get("nbgrader")
            if not meta:
                continue
            if meta["grade"] and previous is not None and not (previous["grade"] or previous["solution"]):
                raise ValueError(f"{self.name}: test cell {meta['grade_id']} follows the read-only cell "
                                 f"{previous['grade_id']}; nbgrader could not restore it if deleted")
            previous = meta

    def write(self) -> Path:
        self._check_restorable()
        nb = nbformat.v4.new_notebook()
        nb.cells = self.cells
        nb.metadata = {
            "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        }
        for i, cell in enumerate(nb.cells):  # stable ids: the committed files do not churn
            cell.id = f"a{self.name[:2]}-{i:03d}"
        nbformat.validate(nb)
        path = SOLUTIONS / self.name / f"{self.name}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(nbformat.writes(nb) + "\n")
        return path


def setup_cell(nb: Notebook, extra: str = "") -> None:
    nb.locked(f'''
        # Setup.  In Colab this installs the course package (once per session); elsewhere
        # `pip install -e .` in the course repository does.
        import sys
        if "google.colab" in sys.modules:
            import subprocess
            subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                            "git+{_repo_url()}"], check=True)

        import torch
        import torch.nn as nn
        import course_pkg
        from course_pkg.grading import checks, handover
        {extra}
        torch.manual_seed(0)
    ''')


# ============================================================================================
# 02 — the inception module
# ============================================================================================
def inception_module() -> Notebook:
    nb = Notebook("02_inception_module")
    nb.md('''
        # Assignment 2 — The inception module

        *Going Deeper with Convolutions* (Szegedy et al., 2015), section 4 and Figure 2.

        You will build the **naive** inception module (Figure 2a) and the module **with dimension
        reductions** (Figure 2b) that GoogLeNet stacks nine times, then count what each branch
        costs.  Use the paper's argument names — they are the columns of Table 1:
        `in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj`.

        Rules of the game
        - Name the four branches `branch1x1`, `branch3x3`, `branch5x5`, `branch_pool` and
          concatenate their outputs along the channel axis **in that order**.
        - Every convolution has a bias and is followed by a ReLU (the paper has no batch norm).
          `course_pkg.models.layers.BasicConv2d(in_ch, out_ch, kernel_size, stride=1, padding=0)`
          is exactly "conv + ReLU"; you may use it or `nn.Sequential(nn.Conv2d(...), nn.ReLU())`.
        - Do not import the course's own `Inception` classes — that is what we compare you with.
        - Run the **self-check** cells: they compare your code with the course's reference
          and tell you precisely what differs.  The graded tests check the same things (and a
          few more), for all nine modules of Table 1.
    ''')
    setup_cell(nb, "from course_pkg.models.layers import BasicConv2d")

    nb.md('''
        ## 1. The naive module (Figure 2a)

        Four branches side by side on the same input: a 1x1 convolution (`ch1x1` filters), a 3x3
        convolution (`ch3x3`), a 5x5 convolution (`ch5x5`) and a 3x3 max pool (stride 1).  Every
        branch must keep the input's height and width, so choose the paddings accordingly.  The
        pool branch has no parameters and passes all `in_channels` through.
    ''')
    nb.solution("naive_module", '''
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
    ''')
    nb.code('''
        # Self-check (not graded): inception 3a, 4a and 5b built as naive modules.
        checks.self_check_inception(InceptionNaive, naive=True)
    ''')
    nb.test("test_naive_module", 2, '''
        # The naive version of inception 3a, 4a and 5b (3a: 192 channels in, 64 + 128 + 32 + 192 out).
        handover.give(InceptionNaive=handover.inception_class(naive=True))
        ### BEGIN HIDDEN TESTS
        checks.fail_on(checks.inception_findings(InceptionNaive, naive=True, modules=("3a", "4a", "5b")),
                       "naive module")
        _out = checks.build(checks.build(InceptionNaive, 192, 64, 128, 32).eval(), checks.probe_input(2, 192, 7, 7))
        checks.require(tuple(_out.shape) == (2, 416, 7, 7),
                       f"output shape {tuple(_out.shape)} for a 2x192x7x7 input, expected (2, 416, 7, 7)")
        ### END HIDDEN TESTS
    ''')

    nb.md('''
        ## 2. The module with dimension reductions (Figure 2b)

        - `branch1x1`: 1x1 convolution, `ch1x1` filters;
        - `branch3x3`: 1x1 convolution to `ch3x3red` channels, then 3x3 convolution to `ch3x3`;
        - `branch5x5`: 1x1 convolution to `ch5x5red` channels, then 5x5 convolution to `ch5x5`;
        - `branch_pool`: 3x3 max pool (stride 1, padding 1), then 1x1 convolution to `pool_proj`.

        Give the module an attribute `out_channels` (the number of channels it outputs).
    ''')
    nb.solution("inception_module", '''
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
    ''')
    nb.code('''
        # Self-check (not graded): your module built as each of 3a ... 5b, compared with the reference.
        checks.self_check_inception(Inception)
    ''')
    nb.test("test_inception_3a_shape", 1, '''
        # Inception 3a (Table 1): 192 channels in, 256 out, the same height and width.
        handover.give(Inception=handover.inception_class())
        ### BEGIN HIDDEN TESTS
        checks.fail_on([f for f in checks.inception_findings(Inception, modules=("3a",)) if f.kind in ("shape", "order")],
                       "inception 3a")
        _module = checks.build(Inception, 192, 64, 96, 128, 16, 32, 32).eval()
        _out = checks.build(_module, checks.probe_input(2, 192, 7, 7))
        checks.require(tuple(_out.shape) == (2, 256, 7, 7),
                       f"output shape {tuple(_out.shape)} for a 2x192x7x7 input, expected (2, 256, 7, 7)")
        checks.require(getattr(_module, "out_channels", None) == 256,
                       f"out_channels is {getattr(_module, 'out_channels', 'not set')}, expected 256")
        ### END HIDDEN TESTS
    ''')
    for branch, points in (("branch1x1", 1), ("branch3x3", 2), ("branch5x5", 2), ("branch_pool", 1)):
        nb.test(f"test_{branch}", points, f'''
            # {branch}: parameters and layers of this branch in every module, 3a ... 5b.
            handover.give(Inception=handover.inception_class())
            ### BEGIN HIDDEN TESTS
            checks.fail_on([f for f in checks.inception_findings(Inception)
                            if f.branch == "{branch}" and f.kind in ("params", "structure")], "{branch}")
            ### END HIDDEN TESTS
        ''')
    nb.test("test_module_totals", 2, '''
        # Total parameters of every module, 3a ... 5b.
        handover.give(Inception=handover.inception_class())
        ### BEGIN HIDDEN TESTS
        checks.fail_on([f for f in checks.inception_findings(Inception) if f.kind == "total"],
                       "parameters per module")
        ### END HIDDEN TESTS
    ''')
    nb.test("test_shapes_and_order", 2, '''
        # Output shapes of every branch and module, and the concatenation order.
        handover.give(Inception=handover.inception_class())
        ### BEGIN HIDDEN TESTS
        checks.fail_on([f for f in checks.inception_findings(Inception) if f.kind in ("shape", "order")],
                       "shapes and concatenation order")
        ### END HIDDEN TESTS
    ''')

    nb.md('''
        ## 3. What each branch costs, by hand

        Inception 3a sees a 28x28x192 input.  For each branch give its number of **parameters**
        (weights and biases) and its **multiply-adds** for one image (a convolution with a k x k
        kernel, C_in input and C_out output channels costs k·k·C_in·C_out multiply-adds per output
        position; biases are additions, not multiply-adds; max pooling costs none).
        Write whole numbers, not expressions that call PyTorch.
    ''')
    nb.solution("answers_3a", '''
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
    ''')
    nb.code('''
        # Self-check (not graded): are all answers there, as whole numbers?
        checks.self_check_answers(answers_3a, [f"{b}_{w}" for w in ("params", "macs")
                                               for b in ("branch1x1", "branch3x3", "branch5x5", "branch_pool")])
    ''')
    nb.test("test_answers_3a", 2, '''
        handover.give("answers_3a")
        ### BEGIN HIDDEN TESTS
        checks.defined(globals(), "answers_3a")
        from course_pkg.models.inception import Inception as _Reference
        from course_pkg.profile import count_macs as _macs, count_params as _params
        _ref = _Reference(192, 64, 96, 128, 16, 32, 32)
        _expected, _weights = {}, {}
        for _b in ("branch1x1", "branch3x3", "branch5x5", "branch_pool"):
            _expected[f"{_b}_params"] = _params(getattr(_ref, _b))
            _weights[f"{_b}_params"] = _params(getattr(_ref, _b), weights_only=True)
            _expected[f"{_b}_macs"] = _macs(getattr(_ref, _b), (192, 28, 28))

        def _hint(key, got, expected):
            if key.endswith("_params") and got == _weights[key]:
                return "that leaves out the biases (one per output channel of each convolution)"
            if key.endswith("_macs") and got == _expected[key.replace("_macs", "_params")] * 28 * 28:
                return "that counts the biases as multiply-adds; count only weights x output positions"
            if key.endswith("_macs") and got * 28 * 28 == _expected[key]:
                return "that is per output position; multiply by the 28 x 28 positions"
            return None

        checks.fail_on(checks.diagnose_answers(answers_3a, _expected, "answers_3a", _hint), "inception 3a by hand")
        ### END HIDDEN TESTS
    ''')

    nb.md('''
        ## 4. The same counts for every module, as a function

        Write `branch_costs(in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj, size)`
        that returns `{"branch1x1": (params, macs), "branch3x3": ..., "branch5x5": ...,
        "branch_pool": ...}` for one `size` x `size` input, from the formulas — do not build a
        module and count its parameters.  The table below then shows Table 1's modules.
    ''')
    nb.solution("branch_costs", '''
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
    ''')
    nb.code('''
        # Table 1, module by module (your function; the graded test compares it with the reference).
        for name, in_channels, filters, size in checks.table1_modules():
            costs = branch_costs(in_channels, *filters, size)
            print(f"{name}: " + "  ".join(f"{b} {p:,} params / {m / 1e6:.1f}M MACs" for b, (p, m) in costs.items()))
    ''')
    nb.test("test_branch_costs", 3, '''
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
    ''')

    nb.md('''
        ## 5. The concatenation order

        Inception 3a outputs 256 channels.  Which branch produced each of the channels 0, 100,
        200 and 250?  Answer with the branch names.
    ''')
    nb.solution("channel_source", '''
        # channel_source = {0: "...", 100: "...", 200: "...", 250: "..."}
        ### BEGIN SOLUTION
        channel_source = {0: "branch1x1", 100: "branch3x3", 200: "branch5x5", 250: "branch_pool"}
        ### END SOLUTION
    ''')
    nb.test("test_channel_source", 1, '''
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
    ''')
    return nb



# ============================================================================================
# 01 — LeNet-5 and AlexNet
# ============================================================================================
LENET_CHILDREN = ["c1", "s2", "c3", "s4", "c5", "f6", "output"]
ALEXNET_CHILDREN = ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"]


def lenet_alexnet() -> Notebook:
    nb = Notebook("01_lenet_alexnet")
    nb.md("""
        # Assignment 1 — LeNet-5 and AlexNet, layer by layer

        Before GoogLeNet: the two networks it set out to beat in depth and cost.  You will build
        both, predict every output shape and parameter count by hand, and then see why a 1x1
        convolution in front of a big one is the idea that made GoogLeNet affordable.

        The self-check cells compare your networks with the course's reference implementations
        (`course_pkg.models`) layer by layer and say what differs.  Use the layer names given
        below; do not import the course's own classes.
    """)
    setup_cell(nb)

    nb.md("""
        ## 1. LeNet-5 (LeCun et al., 1998), the modern way

        The layout of the paper's section II.B with today's usual simplifications: ReLU instead
        of the scaled tanh, 2x2 max pooling instead of trainable subsampling, a C3 connected to
        all six maps of S2, and a linear output layer.  Input: one 32x32 grey image.

        | name | layer |
        |---|---|
        | `c1` | 6 filters 5x5 |
        | `s2` | max pool 2x2, stride 2 |
        | `c3` | 16 filters 5x5 |
        | `s4` | max pool 2x2, stride 2 |
        | `c5` | 120 filters 5x5 |
        | `f6` | linear, 84 units |
        | `output` | linear, `num_classes` units |

        ReLU after `c1`, `c3`, `c5` and `f6`.
    """)
    nb.solution("lenet5", """
        class LeNet5(nn.Module):
            def __init__(self, num_classes: int = 10) -> None:
                super().__init__()
                ### BEGIN SOLUTION
                self.c1 = nn.Conv2d(1, 6, kernel_size=5)
                self.s2 = nn.MaxPool2d(2)
                self.c3 = nn.Conv2d(6, 16, kernel_size=5)
                self.s4 = nn.MaxPool2d(2)
                self.c5 = nn.Conv2d(16, 120, kernel_size=5)
                self.f6 = nn.Linear(120, 84)
                self.output = nn.Linear(84, num_classes)
                self.act = nn.ReLU()
                ### END SOLUTION

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                ### BEGIN SOLUTION
                x = self.s2(self.act(self.c1(x)))
                x = self.s4(self.act(self.c3(x)))
                x = self.act(self.c5(x))
                x = self.act(self.f6(torch.flatten(x, 1)))
                return self.output(x)
                ### END SOLUTION
    """)
    nb.code(f"""
        # Self-check (not graded): your LeNet5 against course_pkg's "lenet5" (variant="modern").
        checks.self_check_model(LeNet5(), "lenet5", (1, 32, 32), children={LENET_CHILDREN!r},
                                variant="modern")
    """)
    nb.test("test_lenet5", 3, f"""
        # LeNet5(), layer by layer, on one 1x32x32 image.
        handover.give(LeNet5=handover.network_class([((), {{}})], (1, 32, 32)))
        ### BEGIN HIDDEN TESTS
        from course_pkg.models import create as _create
        checks.fail_on(checks.diagnose_model(checks.build(LeNet5), _create("lenet5", variant="modern"), (1, 32, 32),
                                             name="LeNet5", children={LENET_CHILDREN!r}), "LeNet5")
        _out = checks.build(checks.build(LeNet5).eval(), checks.probe_input(1, 1, 32, 32))
        checks.require(tuple(_out.shape) == (1, 10), f"output shape {{tuple(_out.shape)}}, expected (1, 10)")
        ### END HIDDEN TESTS
    """)
    nb.md("""
        ### By hand

        For one 32x32 input, give the output shape `(channels, height, width)` of `c1`, `s2`,
        `c3`, `s4` and `c5`, and the number of parameters (weights and biases) of `c1`, `c3`,
        `c5`, `f6` and `output` (10 classes).  Whole numbers, not code that counts.
    """)
    nb.solution("lenet_by_hand", """
        # lenet_shapes = {"c1": (c, h, w), "s2": ..., "c3": ..., "s4": ..., "c5": ...}
        # lenet_params = {"c1": ..., "c3": ..., "c5": ..., "f6": ..., "output": ...}
        ### BEGIN SOLUTION
        lenet_shapes = {"c1": (6, 28, 28), "s2": (6, 14, 14), "c3": (16, 10, 10), "s4": (16, 5, 5),
                        "c5": (120, 1, 1)}
        lenet_params = {"c1": 5 * 5 * 6 + 6, "c3": 5 * 5 * 6 * 16 + 16, "c5": 5 * 5 * 16 * 120 + 120,
                        "f6": 120 * 84 + 84, "output": 84 * 10 + 10}
        ### END SOLUTION
    """)
    nb.code("""
        checks.self_check_answers(lenet_params, ["c1", "c3", "c5", "f6", "output"], "lenet_params")
    """)
    nb.test("test_lenet_by_hand", 2, """
        handover.give("lenet_shapes", "lenet_params")
        ### BEGIN HIDDEN TESTS
        checks.defined(globals(), "lenet_shapes", "lenet_params")
        from course_pkg.models import create as _create
        from course_pkg.profile import count_params as _params
        _ref = _create("lenet5", variant="modern").eval()
        _shapes = {}
        _hooks = [getattr(_ref, _n).register_forward_hook(
                      lambda _m, _i, _o, _n=_n: _shapes.__setitem__(_n, tuple(_o.shape[1:])))
                  for _n in ("c1", "s2", "c3", "s4", "c5")]
        with torch.no_grad():
            _ref(torch.zeros(1, 1, 32, 32))
        for _h in _hooks:
            _h.remove()
        _expected = {_n: _params(getattr(_ref, _n)) for _n in ("c1", "c3", "c5", "f6", "output")}

        def _hint(key, got, expected):
            layer = getattr(_ref, key)
            if got == expected - layer.bias.numel():
                return "the biases are missing (one per output channel or unit)"
            return None

        _findings = checks.diagnose_answers({k: tuple(v) if isinstance(v, (list, tuple)) else v
                                            for k, v in lenet_shapes.items()},
                                           _shapes, "lenet_shapes")
        _findings += checks.diagnose_answers(lenet_params, _expected, "lenet_params", _hint)
        checks.fail_on(_findings, "LeNet-5 by hand")
        ### END HIDDEN TESTS
    """)

    nb.md("""
        ## 2. AlexNet (Krizhevsky et al., 2012), on one GPU

        Input 3x227x227 (the paper says 224, but only 227 gives its 55x55 maps).  ReLU after
        every convolution and hidden linear layer; local response normalisation
        (`nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2)`) after the ReLUs of `conv1` and
        `conv2`; max pools 3x3 with stride 2 after `conv1`, `conv2` and `conv5`; dropout 0.5
        before `fc7` and `fc8`.  No two-GPU split here (`groups=1`).

        | name | layer |
        |---|---|
        | `conv1` | 96 filters 11x11, stride 4 |
        | `conv2` | 256 filters 5x5, padding 2 |
        | `conv3` | 384 filters 3x3, padding 1 |
        | `conv4` | 384 filters 3x3, padding 1 |
        | `conv5` | 256 filters 3x3, padding 1 |
        | `fc6`, `fc7` | linear, 4096 units |
        | `fc8` | linear, `num_classes` units |
    """)
    nb.solution("alexnet", """
        class AlexNet(nn.Module):
            def __init__(self, num_classes: int = 1000) -> None:
                super().__init__()
                ### BEGIN SOLUTION
                self.conv1 = nn.Conv2d(3, 96, kernel_size=11, stride=4)
                self.conv2 = nn.Conv2d(96, 256, kernel_size=5, padding=2)
                self.conv3 = nn.Conv2d(256, 384, kernel_size=3, padding=1)
                self.conv4 = nn.Conv2d(384, 384, kernel_size=3, padding=1)
                self.conv5 = nn.Conv2d(384, 256, kernel_size=3, padding=1)
                self.fc6 = nn.Linear(256 * 6 * 6, 4096)
                self.fc7 = nn.Linear(4096, 4096)
                self.fc8 = nn.Linear(4096, num_classes)
                self.pool = nn.MaxPool2d(3, stride=2)
                self.lrn = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)
                self.relu = nn.ReLU()
                self.dropout = nn.Dropout(0.5)
                ### END SOLUTION

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                ### BEGIN SOLUTION
                x = self.pool(self.lrn(self.relu(self.conv1(x))))
                x = self.pool(self.lrn(self.relu(self.conv2(x))))
                x = self.relu(self.conv3(x))
                x = self.relu(self.conv4(x))
                x = self.pool(self.relu(self.conv5(x)))
                x = self.dropout(self.relu(self.fc6(torch.flatten(x, 1))))
                x = self.dropout(self.relu(self.fc7(x)))
                return self.fc8(x)
                ### END SOLUTION
    """)
    nb.code(f"""
        # Self-check (not graded): your AlexNet against course_pkg's "alexnet" (groups=1).
        checks.self_check_model(AlexNet(), "alexnet", (3, 227, 227), children={ALEXNET_CHILDREN!r})
    """)
    nb.test("test_alexnet", 3, f"""
        # AlexNet(), layer by layer, on one 3x227x227 image.
        handover.give(AlexNet=handover.network_class([((), {{}})], (3, 227, 227)))
        ### BEGIN HIDDEN TESTS
        from course_pkg.models import create as _create
        checks.fail_on(checks.diagnose_model(checks.build(AlexNet), _create("alexnet"), (3, 227, 227), name="AlexNet",
                                             children={ALEXNET_CHILDREN!r}), "AlexNet")
        ### END HIDDEN TESTS
    """)
    nb.md("""
        ### Where are AlexNet's parameters?

        Give the fraction of all parameters of your one-GPU AlexNet (1000 classes) that sit in
        the three linear layers, as a number between 0 and 1 (three decimals are enough), and the
        output shape of `conv1`.
    """)
    nb.solution("alexnet_by_hand", """
        ### BEGIN SOLUTION
        _conv = (11 * 11 * 3 * 96 + 96) + (5 * 5 * 96 * 256 + 256) + (3 * 3 * 256 * 384 + 384) \\
            + (3 * 3 * 384 * 384 + 384) + (3 * 3 * 384 * 256 + 256)
        _fc = (9216 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * 1000 + 1000)
        alexnet_fc_fraction = _fc / (_fc + _conv)
        alexnet_conv1_shape = (96, 55, 55)
        ### END SOLUTION
    """)
    nb.test("test_alexnet_by_hand", 2, """
        handover.give("alexnet_fc_fraction", "alexnet_conv1_shape")
        ### BEGIN HIDDEN TESTS
        checks.defined(globals(), "alexnet_fc_fraction", "alexnet_conv1_shape")
        from course_pkg.models import create as _create
        from course_pkg.models.alexnet import param_split as _split
        _expected = _split(_create("alexnet"))["fc_fraction"]
        checks.require(isinstance(alexnet_fc_fraction, (int, float)) and 0 <= alexnet_fc_fraction <= 1,
                       f"alexnet_fc_fraction should be a number between 0 and 1, got {alexnet_fc_fraction!r}")
        checks.require(abs(alexnet_fc_fraction - _expected) < 5e-4,
                       f"alexnet_fc_fraction = {alexnet_fc_fraction:.4f} is wrong: count the weights and "
                       "biases of conv1-conv5 and fc6-fc8 (fc6 sees 256 x 6 x 6 inputs)")
        checks.require(tuple(alexnet_conv1_shape) == (96, 55, 55),
                       f"alexnet_conv1_shape = {alexnet_conv1_shape!r} is wrong: (227 - 11) / 4 + 1 positions "
                       "per side, one map per filter")
        ### END HIDDEN TESTS
    """)

    nb.md("""
        ## 3. The 1x1 bottleneck

        Inception 3a's 5x5 branch sees a 28x28x192 input and produces 32 maps.  Directly, a 5x5
        convolution 192→32 costs a lot; GoogLeNet first reduces to 16 channels with a 1x1
        convolution.  Give the parameters (with biases) and multiply-adds for one image of both
        options (no padding issues: assume "same" padding, 28x28 outputs).
    """)
    nb.solution("bottleneck", """
        # bottleneck = {"direct_params": ..., "direct_macs": ..., "reduced_params": ..., "reduced_macs": ...}
        ### BEGIN SOLUTION
        bottleneck = {
            "direct_params": 5 * 5 * 192 * 32 + 32,
            "direct_macs": 28 * 28 * 5 * 5 * 192 * 32,
            "reduced_params": (192 * 16 + 16) + (5 * 5 * 16 * 32 + 32),
            "reduced_macs": 28 * 28 * (192 * 16 + 5 * 5 * 16 * 32),
        }
        ### END SOLUTION
        print(f"the reduction saves {1 - bottleneck['reduced_macs'] / bottleneck['direct_macs']:.0%} of the multiply-adds")
    """)
    nb.test("test_bottleneck", 2, """
        handover.give("bottleneck")
        ### BEGIN HIDDEN TESTS
        checks.defined(globals(), "bottleneck")
        from course_pkg.profile import count_macs as _macs, count_params as _params
        _direct = nn.Conv2d(192, 32, 5, padding=2)
        _reduced = nn.Sequential(nn.Conv2d(192, 16, 1), nn.Conv2d(16, 32, 5, padding=2))
        _expected = {"direct_params": _params(_direct), "direct_macs": _macs(_direct, (192, 28, 28)),
                     "reduced_params": _params(_reduced), "reduced_macs": _macs(_reduced, (192, 28, 28))}

        def _hint(key, got, expected):
            if key.endswith("_macs") and got * 28 * 28 == expected:
                return "that is per output position; there are 28 x 28 of them"
            if key.endswith("_params") and got > expected:
                return "parameters do not depend on the 28 x 28 map size"
            return None

        checks.fail_on(checks.diagnose_answers(bottleneck, _expected, "bottleneck", _hint), "1x1 bottleneck")
        ### END HIDDEN TESTS
    """)
    return nb

# ============================================================================================
# 03 — GoogLeNet with its auxiliary classifiers, trained on CIFAR-10
# ============================================================================================
GOOGLENET_CHILDREN = ["conv1", "conv2", "conv3", "inception3a", "inception3b", "inception4a", "inception4b",
                      "inception4c", "inception4d", "inception4e", "inception5a", "inception5b", "fc",
                      "aux1", "aux2"]


def googlenet_aux() -> Notebook:
    nb = Notebook("03_googlenet_aux")
    nb.md("""
        # Assignment 3 — GoogLeNet, its auxiliary classifiers, and a trained network

        *Going Deeper with Convolutions*, section 5, Table 1 and Figure 3.

        1. Build the auxiliary classifier and the whole GoogLeNet as published (224x224 input,
           true 5x5 convolutions, LRN, two auxiliary heads on inception 4a and 4d).
        2. Write the training loss: the main loss plus **0.3 x** each auxiliary loss; the heads
           are used in training only.
        3. Adapt the network to 32x32 CIFAR-10 images, train it and submit the checkpoint
           `googlenet_cifar.pt` together with this notebook.  Train on a GPU (Colab: Runtime →
           Change runtime type → GPU) or on your own CPU if it computes in bf16 natively (recent
           Intel Xeons, AMD Zen 4 and later): the course's reference run of this recipe trained on
           a 2-core CPU, and the training cell prints how long it took and what it reached.  The grader does not train: it loads
           your checkpoint into the course's CIFAR GoogLeNet (`course_pkg.models.create("googlenet_cifar")`),
           which has exactly the layer names and shapes asked for below, and measures its accuracy
           on CIFAR-10 test images.  So keep the names; the self-check cell tells you if they fit.

        You may use the course's inception module (`course_pkg.models.inception.Inception`) and
        `BasicConv2d` (assignment 2 was about those), but write `InceptionAux` and `GoogLeNet`
        yourself, with the layer names below (they are torchvision's names too).
    """)
    setup_cell(nb, "import torch.nn.functional as F\n"
                   "        from course_pkg.models.inception import Inception\n"
                   "        from course_pkg.models.layers import BasicConv2d")

    nb.md("""
        ## 1. The auxiliary classifier

        `InceptionAux(in_channels, num_classes, pool=None)`: average pool 5x5 with stride 3
        (`pool`, when given, replaces it), a 1x1 convolution with 128 filters + ReLU (`conv`),
        a linear layer to 1024 units + ReLU (`fc1`), dropout 70%, a linear layer to the classes
        (`fc2`).  On the 14x14 maps of 4a and 4d the pool gives 4x4, so `fc1` sees 128·4·4 inputs.
    """)
    nb.solution("inception_aux", """
        class InceptionAux(nn.Module):
            def __init__(self, in_channels: int, num_classes: int, pool: nn.Module | None = None) -> None:
                super().__init__()
                ### BEGIN SOLUTION
                self.pool = pool if pool is not None else nn.AvgPool2d(5, stride=3)
                self.conv = BasicConv2d(in_channels, 128, 1)
                self.fc1 = nn.Linear(128 * 4 * 4, 1024)
                self.relu = nn.ReLU(inplace=True)
                self.dropout = nn.Dropout(0.7)
                self.fc2 = nn.Linear(1024, num_classes)
                ### END SOLUTION

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                ### BEGIN SOLUTION
                x = self.conv(self.pool(x))
                x = self.relu(self.fc1(torch.flatten(x, 1)))
                return self.fc2(self.dropout(x))
                ### END SOLUTION
    """)
    nb.test("test_inception_aux", 2, """
        # InceptionAux(512, 1000) and InceptionAux(528, 1000) on 14x14 maps (inception 4a and 4d).
        handover.give(InceptionAux=handover.network_class([((512, 1000), {}), ((528, 1000), {})],
                                                          lambda args: (args[0], 14, 14)))
        ### BEGIN HIDDEN TESTS
        from course_pkg.models.inception import InceptionAux as _Reference
        for _cin in (512, 528):
            _findings = checks.diagnose_model(checks.build(InceptionAux, _cin, 1000), _Reference(_cin, 1000), (_cin, 14, 14),
                                              name=f"InceptionAux({_cin}, 1000)")
            checks.fail_on(_findings, f"auxiliary classifier on {_cin} channels")
        _out = checks.build(checks.build(InceptionAux, 512, 1000).eval(), checks.probe_input(1, 512, 14, 14))
        checks.require(tuple(_out.shape) == (1, 1000), f"output shape {tuple(_out.shape)}, expected (1, 1000)")
        ### END HIDDEN TESTS
    """)

    nb.md("""
        ## 2. GoogLeNet (Table 1)

        `GoogLeNet(num_classes=1000, aux_logits=True, cifar=False)` with these submodules:

        | name | layer (224x224 input) |
        |---|---|
        | `conv1` | 7x7/2 convolution, 64 filters, padding 3 (+ ReLU) |
        | `maxpool1`, `lrn1` | max pool 3x3/2 (`ceil_mode=True`), LRN |
        | `conv2`, `conv3` | 1x1 convolution 64, then 3x3 convolution 192 (padding 1) |
        | `lrn2`, `maxpool2` | LRN, max pool 3x3/2 (`ceil_mode=True`) |
        | `inception3a`, `inception3b`, `maxpool3` | Table 1 filters; max pool 3x3/2 |
        | `inception4a` … `inception4e`, `maxpool4` | |
        | `inception5a`, `inception5b` | |
        | `avgpool`, `dropout`, `fc` | global average pool, dropout 40%, linear 1024 → classes |
        | `aux1`, `aux2` | `InceptionAux` on the outputs of 4a and 4d (only if `aux_logits`) |

        LRN: `nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1)`.  In **training mode** (and
        with `aux_logits`) `forward` returns the tuple `(logits, aux1, aux2)`; in **eval mode**
        just the logits — the auxiliary heads are not even computed.

        With `cifar=True` (32x32 input) only the stem changes: `conv1` becomes a 3x3 convolution
        (64 filters, padding 1), `maxpool1` stays (32 → 16), `maxpool2` is dropped
        (`nn.Identity()`), and the auxiliary heads pool with `nn.AdaptiveAvgPool2d(4)`.
        Use He initialisation for every convolution and linear layer
        (`nn.init.kaiming_normal_(w, mode="fan_in", nonlinearity="relu")`, biases 0): without
        batch norm this network does not train from PyTorch's default initialisation.
    """)
    nb.solution("googlenet", """
        FILTERS = {  # Table 1: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj
            "3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64),
            "4a": (192, 96, 208, 16, 48, 64), "4b": (160, 112, 224, 24, 64, 64),
            "4c": (128, 128, 256, 24, 64, 64), "4d": (112, 144, 288, 32, 64, 64),
            "4e": (256, 160, 320, 32, 128, 128), "5a": (256, 160, 320, 32, 128, 128),
            "5b": (384, 192, 384, 48, 128, 128),
        }


        class GoogLeNet(nn.Module):
            def __init__(self, num_classes: int = 1000, aux_logits: bool = True, cifar: bool = False) -> None:
                super().__init__()
                self.aux_logits = aux_logits
                ### BEGIN SOLUTION
                if cifar:
                    self.conv1 = BasicConv2d(3, 64, 3, padding=1)
                else:
                    self.conv1 = BasicConv2d(3, 64, 7, stride=2, padding=3)
                self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
                self.lrn1 = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)
                self.conv2 = BasicConv2d(64, 64, 1)
                self.conv3 = BasicConv2d(64, 192, 3, padding=1)
                self.lrn2 = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)
                self.maxpool2 = nn.Identity() if cifar else nn.MaxPool2d(3, stride=2, ceil_mode=True)
                modules, in_channels = {}, 192
                for name, filters in FILTERS.items():
                    modules[name] = Inception(in_channels, *filters)
                    in_channels = modules[name].out_channels
                self.inception3a, self.inception3b = modules["3a"], modules["3b"]
                self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
                self.inception4a, self.inception4b = modules["4a"], modules["4b"]
                self.inception4c, self.inception4d = modules["4c"], modules["4d"]
                self.inception4e = modules["4e"]
                self.maxpool4 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
                self.inception5a, self.inception5b = modules["5a"], modules["5b"]
                self.avgpool = nn.AdaptiveAvgPool2d(1)
                self.dropout = nn.Dropout(0.4)
                self.fc = nn.Linear(1024, num_classes)
                if aux_logits:
                    pool = (lambda: nn.AdaptiveAvgPool2d(4)) if cifar else (lambda: None)
                    self.aux1 = InceptionAux(512, num_classes, pool())
                    self.aux2 = InceptionAux(528, num_classes, pool())
                else:
                    self.aux1 = self.aux2 = None
                for m in self.modules():
                    if isinstance(m, (nn.Conv2d, nn.Linear)):
                        nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                        nn.init.zeros_(m.bias)
                ### END SOLUTION

            def forward(self, x: torch.Tensor):
                ### BEGIN SOLUTION
                x = self.lrn1(self.maxpool1(self.conv1(x)))
                x = self.maxpool2(self.lrn2(self.conv3(self.conv2(x))))
                x = self.maxpool3(self.inception3b(self.inception3a(x)))
                x = self.inception4a(x)
                aux1 = self.aux1(x) if self.aux_logits and self.training else None
                x = self.inception4d(self.inception4c(self.inception4b(x)))
                aux2 = self.aux2(x) if self.aux_logits and self.training else None
                x = self.maxpool4(self.inception4e(x))
                x = self.inception5b(self.inception5a(x))
                x = self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))
                if aux1 is not None:
                    return x, aux1, aux2
                return x
                ### END SOLUTION
    """)
    nb.code(f"""
        # Self-check (not graded): the paper's network (1000 classes, 224x224) and the CIFAR version.
        checks.self_check_model(GoogLeNet(), "googlenet", (3, 224, 224), children={GOOGLENET_CHILDREN!r})
        checks.self_check_model(GoogLeNet(num_classes=10, cifar=True), "googlenet_cifar", (3, 32, 32),
                                children={GOOGLENET_CHILDREN!r}, stem="16")
    """)
    nb.test("test_googlenet_params", 3, f"""
        # Parameters of every module of the paper's network, the auxiliary heads included.
        handover.give(GoogLeNet=handover.network_class([((), {{}})], (3, 224, 224)))
        ### BEGIN HIDDEN TESTS
        from course_pkg.models import create as _create
        _findings = checks.diagnose_model(checks.build(GoogLeNet), _create("googlenet", init="pytorch"), (3, 224, 224),
                                          name="GoogLeNet", children={GOOGLENET_CHILDREN!r})
        checks.fail_on([_f for _f in _findings if _f.kind in ("params", "structure", "total")], "GoogLeNet parameters")
        ### END HIDDEN TESTS
    """)
    nb.test("test_googlenet_shapes", 2, f"""
        # Output shapes of every module at 224x224 (the ceil-mode pools give 56, 28, 14, 7).
        handover.give(GoogLeNet=handover.network_class([((), {{}})], (3, 224, 224)))
        ### BEGIN HIDDEN TESTS
        from course_pkg.models import create as _create
        _findings = checks.diagnose_model(checks.build(GoogLeNet), _create("googlenet", init="pytorch"), (3, 224, 224),
                                          name="GoogLeNet", children={GOOGLENET_CHILDREN!r})
        checks.fail_on([_f for _f in _findings if _f.kind == "shape"], "GoogLeNet shapes")
        ### END HIDDEN TESTS
    """)
    nb.test("test_aux_outputs", 2, """
        # Training mode: (logits, aux1, aux2); eval mode: logits only (CIFAR version, 32x32 input).
        handover.give(GoogLeNet=handover.network_class(
            [((), dict(num_classes=10, cifar=True)), ((), dict(num_classes=10, aux_logits=False, cifar=True))],
            (3, 32, 32), batch=2, modes=(True, False)))
        ### BEGIN HIDDEN TESTS
        _x = checks.probe_input(2, 3, 32, 32)
        _net = checks.build(GoogLeNet, num_classes=10, cifar=True).train()
        _out = checks.build(_net, _x)
        checks.require(isinstance(_out, tuple) and len(_out) == 3,
                       "in training mode forward must return (logits, aux1, aux2)")
        checks.require(all(isinstance(_o, torch.Tensor) and _o.shape == (2, 10) for _o in _out),
                       f"shapes {[tuple(getattr(_o, 'shape', ())) for _o in _out]}, expected (2, 10) each")
        _out = checks.build(_net.eval(), _x)
        checks.require(isinstance(_out, torch.Tensor) and _out.shape == (2, 10),
                       "in eval mode forward must return the logits only")
        _net = checks.build(GoogLeNet, num_classes=10, aux_logits=False, cifar=True).train()
        checks.require(isinstance(checks.build(_net, _x), torch.Tensor),
                       "with aux_logits=False, forward must return the logits only, also in training mode")
        ### END HIDDEN TESTS
    """)
    nb.test("test_cifar_model", 2, f"""
        # GoogLeNet(num_classes=10, cifar=True), layer by layer, on one 3x32x32 image.
        handover.give(GoogLeNet=handover.network_class([((), dict(num_classes=10, cifar=True))], (3, 32, 32)))
        ### BEGIN HIDDEN TESTS
        from course_pkg.models import create as _create
        _findings = checks.diagnose_model(checks.build(GoogLeNet, num_classes=10, cifar=True),
                                          _create("googlenet_cifar", stem="16"),
                                          (3, 32, 32), name="GoogLeNet(cifar=True)", children={GOOGLENET_CHILDREN!r})
        checks.fail_on(_findings, "CIFAR adaptation")
        ### END HIDDEN TESTS
    """)

    nb.md("""
        ## 3. The training loss

        `googlenet_loss(outputs, targets)`: for a tuple `(logits, aux1, aux2)` the cross-entropy
        of the main head plus 0.3 times the cross-entropy of each auxiliary head (section 5);
        for a plain tensor (eval mode, or `aux_logits=False`) just the cross-entropy.
    """)
    nb.solution("googlenet_loss", """
        def googlenet_loss(outputs, targets: torch.Tensor) -> torch.Tensor:
            ### BEGIN SOLUTION
            if isinstance(outputs, torch.Tensor):
                return F.cross_entropy(outputs, targets)
            logits, aux1, aux2 = outputs
            return F.cross_entropy(logits, targets) + 0.3 * (F.cross_entropy(aux1, targets)
                                                             + F.cross_entropy(aux2, targets))
            ### END SOLUTION
    """)
    nb.test("test_googlenet_loss", 2, """
        # googlenet_loss on three heads' logits, and on plain logits (eval mode).
        _g = torch.Generator().manual_seed(3)
        _logits, _a1, _a2 = (torch.randn(8, 10, generator=_g) for _ in range(3))
        _y = torch.randint(0, 10, (8,), generator=_g)
        handover.give(googlenet_loss=handover.function([(((_logits, _a1, _a2), _y), {}), ((_logits, _y), {})]))
        ### BEGIN HIDDEN TESTS
        _gen = torch.Generator().manual_seed(3)
        _logits, _a1, _a2 = [torch.randn(8, 10, generator=_gen) for _i in range(3)]
        _y = torch.randint(0, 10, (8,), generator=_gen)
        _main, _l1, _l2 = (F.cross_entropy(t, _y) for t in (_logits, _a1, _a2))
        _got = float(checks.build(googlenet_loss, (_logits, _a1, _a2), _y))
        _want = float(_main + 0.3 * (_l1 + _l2))
        _weight = (_got - float(_main)) / float(_l1 + _l2)
        checks.require(abs(_got - _want) < 1e-4,
                       f"googlenet_loss((logits, aux1, aux2), y) = {_got:.4f}; it behaves like main + {_weight:.3g} x "
                       "(aux1 + aux2): the paper weighs each auxiliary loss by 0.3 and adds it to the main loss")
        _plain = float(checks.build(googlenet_loss, _logits, _y))
        checks.require(abs(_plain - float(_main)) < 1e-4,
                       "for a plain logits tensor (eval mode) the loss must be the cross-entropy of the logits alone")
        ### END HIDDEN TESTS
    """)

    nb.md("""
        ## 4. Train on CIFAR-10 and save the checkpoint

        This trains your `GoogLeNet` with the course's training loop (`course_pkg.train.fit`: SGD
        with Nesterov momentum, a one-cycle learning rate, label smoothing 0.1, bf16 or fp16 mixed
        precision) and the recipe of the course's reference run `googlenet_cifar_faithful`: the same
        network, trained the same way.  `fit`'s loss is `course_pkg.train.googlenet_loss`: the
        formula you wrote above, main + 0.3 x each auxiliary head.  It saves a resumable checkpoint
        after every epoch: if the session ends, run the cell again and it continues.

        When the grader runs this notebook the cell is skipped and your submitted
        `googlenet_cifar.pt` is used instead: the grader loads it into the course's CIFAR
        GoogLeNet, so the layer names must be the ones of this assignment.  Keep the file name;
        submit it next to the notebook.
    """)
    nb.plain("""
        import os
        from pathlib import Path

        from course_pkg import pretrained
        from course_pkg.train import cpu_has_native_bf16

        CHECKPOINT = Path("googlenet_cifar.pt")
        EPOCHS = 12  # the reference run's recipe: 12 epochs of batch 128, peak learning rate 0.05

        if "googlenet_cifar_faithful" in pretrained.available():
            _ref = pretrained.info("googlenet_cifar_faithful")
            print(f"The course's reference run of this recipe: {100 * _ref['test_acc']:.1f}% test accuracy after "
                  f"{len(_ref['history'])} epochs, {_ref['cpu_minutes']:.0f} minutes on {_ref['cpu']}")
        if os.environ.get("NBGRADER_EXECUTION"):
            print("autograding: training skipped; the submitted checkpoint is graded")
        elif CHECKPOINT.exists():
            print(f"{CHECKPOINT} exists: delete it to train again")
        elif not (torch.cuda.is_available() or cpu_has_native_bf16()):
            print("No GPU, and this CPU has no native bf16: training would take most of a day here.  In Colab "
                  "choose Runtime -> Change runtime type -> GPU, then run this cell again.")
        else:
            from course_pkg.data import get_loaders
            from course_pkg.train import fit, pick_device

            device = pick_device()
            model = GoogLeNet(num_classes=10, cifar=True)
            train_loader, test_loader = get_loaders("cifar10", batch_size=128, device=device)
            history = fit(model, train_loader, epochs=EPOCHS, val_loader=test_loader, lr=0.05, weight_decay=5e-4,
                          label_smoothing=0.1, aux_weight=0.3, device=device,
                          checkpoint_path="googlenet_cifar_training.pt")
            torch.save(model.state_dict(), CHECKPOINT)
            print(f"saved {CHECKPOINT}: test accuracy {100 * history.val_acc[-1]:.1f}%")
    """)
    nb.code("""
        # Self-check (not graded): does the checkpoint load into your network, and how good is it?
        checks.self_check_checkpoint(GoogLeNet(num_classes=10, cifar=True), "googlenet_cifar.pt",
                                     course_model="googlenet_cifar")
    """)
    nb.test("test_checkpoint_loads", 2, """
        # The checkpoint loads (weights_only=True) into the course's CIFAR GoogLeNet, which has the
        # layer names and shapes you were asked to use (the grader loads and measures it itself).
        handover.give()
        ### BEGIN HIDDEN TESTS
        from course_pkg.models import create as _create
        checks.load_student_checkpoint(_create("googlenet_cifar", stem="16"), submission / "googlenet_cifar.pt")
        ### END HIDDEN TESTS
    """)
    nb.test("test_accuracy", 6, """
        # Accuracy of your checkpoint on CIFAR-10 test images chosen by the grader, measured by the
        # grader with the course's CIFAR GoogLeNet.
        handover.give()
        ### BEGIN HIDDEN TESTS
        from course_pkg.models import create as _create
        _model = _create("googlenet_cifar", stem="16")
        try:
            checks.load_student_checkpoint(_model, submission / "googlenet_cifar.pt")
        except checks.CheckFailed as _err:
            raise checks.CheckFailed(f"no accuracy without a checkpoint: {_err}") from None
        _acc = checks.subset_accuracy(_model, n=250, seed=20150607)
        _fraction = next((_f for _t, _f in ((0.80, 1.0), (0.70, 0.75), (0.55, 0.5), (0.40, 0.25)) if _acc >= _t), 0.0)
        print(f"accuracy on the grader's 250 CIFAR-10 test images: {_acc:.1%} -> {_fraction:.0%} of the points")
        checks.partial_credit(_fraction, 6)
        ### END HIDDEN TESTS
    """)
    return nb


# ============================================================================================
# 04 — multi-crop evaluation
# ============================================================================================
def multicrop() -> Notebook:
    nb = Notebook("04_multicrop")
    nb.md("""
        # Assignment 4 — Multi-crop evaluation (section 7, Table 3)

        GoogLeNet's winning entry classified every image from **144 views** and averaged the
        softmax probabilities.  You will write the 10-crop and the 144-crop views and the
        averaging, then measure what they gain on your CIFAR network from assignment 3.

        The exact protocol (the course's `course_pkg.evaluate` follows it; the graded tests
        compare your views with it pixel for pixel):

        - **resize** so the shorter side is `s`: `F.interpolate(x, size, mode="bilinear",
          antialias=True, align_corners=False)`; the longer side becomes `int(s * long / short)`;
          skip the resize when the size does not change;
        - **centre offset** of a window `c` in a side `L`: `int(round((L - c) / 2))`;
        - **10 crops** (`ten_crop`): top-left, top-right, bottom-left, bottom-right, centre, then
          the same five from the horizontally mirrored image (`torch.flip(x, [-1])`);
        - **144 crops** (`views_144`): for each scale `s`: resize; three `s x s` squares (left,
          centre, right; top, centre, bottom for portrait images); from each square the 4 corner
          crops, the centre crop and the whole square resized to `crop x crop`; each followed by
          its mirror.  Order: scale, square, position (top-left, top-right, bottom-left,
          bottom-right, centre, whole), mirror — the last varying fastest.
    """)
    setup_cell(nb, "import torch.nn.functional as F")
    nb.md("""
        ## 1. Ten crops

        `ten_crop(image, crop)`: `image` is `[C, H, W]` (float); return `[10, C, crop, crop]`.
    """)
    nb.solution("ten_crop", """
        def ten_crop(image: torch.Tensor, crop: int) -> torch.Tensor:
            ### BEGIN SOLUTION
            def five(x):
                h, w = x.shape[-2:]
                top, left = int(round((h - crop) / 2)), int(round((w - crop) / 2))
                origins = [(0, 0), (0, w - crop), (h - crop, 0), (h - crop, w - crop), (top, left)]
                return [x[..., r:r + crop, c:c + crop] for r, c in origins]

            return torch.stack(five(image) + five(torch.flip(image, [-1])))
            ### END SOLUTION
    """)
    nb.test("test_ten_crop", 3, """
        # ten_crop on a 40x48, a 51x37 and a 33x33 image, view by view.
        _g = torch.Generator().manual_seed(7)
        handover.give(ten_crop=handover.function([((torch.rand(3, _h, _w, generator=_g), _c), {})
                                                  for _h, _w, _c in ((40, 48, 32), (51, 37, 24), (33, 33, 33))]))
        ### BEGIN HIDDEN TESTS
        from course_pkg.evaluate import multicrop_views as _views
        _gen = torch.Generator().manual_seed(7)
        for _h, _w, _c in ((40, 48, 32), (51, 37, 24), (33, 33, 33)):
            _img = torch.rand(3, _h, _w, generator=_gen)
            _ref, _ = _views(_img, "ten", crop=_c, scales=None)
            checks.fail_on(checks.diagnose_views(checks.build(ten_crop, _img, _c), _ref, "ten"), f"ten_crop on a {_h}x{_w} image")
        ### END HIDDEN TESTS
    """)
    nb.md("""
        ## 2. The paper's 144 crops

        `views_144(image, scales, crop)`: `[len(scales) * 36, C, crop, crop]`.
    """)
    nb.solution("views_144", """
        def views_144(image: torch.Tensor, scales=(256, 288, 320, 352), crop: int = 224) -> torch.Tensor:
            ### BEGIN SOLUTION
            out = []
            for s in scales:
                h, w = image.shape[-2:]
                size = (s, int(s * w / h)) if h <= w else (int(s * h / w), s)
                x = image if size == (h, w) else F.interpolate(
                    image[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0]
                h, w = x.shape[-2:]
                if w >= h:
                    starts = [(0, 0), (0, int(round((w - h) / 2))), (0, w - h)]
                else:
                    starts = [(0, 0), (int(round((h - w) / 2)), 0), (h - w, 0)]
                side = min(h, w)
                for r0, c0 in starts:
                    square = x[..., r0:r0 + side, c0:c0 + side]
                    mid = int(round((side - crop) / 2))
                    origins = [(0, 0), (0, side - crop), (side - crop, 0), (side - crop, side - crop), (mid, mid)]
                    crops = [square[..., r:r + crop, c:c + crop] for r, c in origins]
                    whole = square if side == crop else F.interpolate(
                        square[None], size=(crop, crop), mode="bilinear", antialias=True, align_corners=False)[0]
                    for v in crops + [whole]:
                        out += [v, torch.flip(v, [-1])]
            return torch.stack(out)
            ### END SOLUTION
    """)
    nb.test("test_views_144", 4, """
        # views_144 on a 40x50 (four scales), a 45x30 and a 32x32 image, view by view.
        _g = torch.Generator().manual_seed(11)
        handover.give(views_144=handover.function(
            [((torch.rand(3, _h, _w, generator=_g), _scales, _c), {})
             for _h, _w, _scales, _c in ((40, 50, (40, 48, 56, 64), 32), (45, 30, (36, 44), 28), (32, 32, (32, 40), 24))]))
        ### BEGIN HIDDEN TESTS
        from course_pkg.evaluate import multicrop_views as _views
        _gen = torch.Generator().manual_seed(11)
        for _h, _w, _scales, _c in ((40, 50, (40, 48, 56, 64), 32), (45, 30, (36, 44), 28), (32, 32, (32, 40), 24)):
            _img = torch.rand(3, _h, _w, generator=_gen)
            _ref, _ = _views(_img, "googlenet144", crop=_c, scales=_scales)
            checks.fail_on(checks.diagnose_views(checks.build(views_144, _img, _scales, _c), _ref, "googlenet144"),
                           f"views_144 on a {_h}x{_w} image, scales {_scales}")
        ### END HIDDEN TESTS
    """)
    nb.md("""
        ## 3. Averaging

        `average_softmax(logits)`: `logits` is `[V, classes]` (one row per view); return the
        class probabilities `[classes]` the paper uses: the mean over views of the softmax.
    """)
    nb.solution("average_softmax", """
        def average_softmax(logits: torch.Tensor) -> torch.Tensor:
            ### BEGIN SOLUTION
            return logits.softmax(-1).mean(0)
            ### END SOLUTION
    """)
    nb.test("test_average_softmax", 2, """
        # average_softmax on the logits of 10 views of 7 classes.
        handover.give(average_softmax=handover.function(
            [((torch.randn(10, 7, generator=torch.Generator().manual_seed(5)) * 3,), {})]))
        ### BEGIN HIDDEN TESTS
        from course_pkg.evaluate import reduce_views as _reduce
        _logits = torch.randn(10, 7, generator=torch.Generator().manual_seed(5)) * 3
        _got = checks.build(average_softmax, _logits)
        for _rule, _why in (("logit_mean", "the softmax of the mean logits (torchvision's TenCrop example)"),
                            ("max", "the maximum over views (the paper tried it; it was worse)")):
            checks.require(not (isinstance(_got, torch.Tensor) and _got.shape == (7,)
                                and torch.allclose(_got, _reduce(_logits[None], _rule)[0], atol=1e-5)),
                           f"average_softmax computes {_why}; the paper averages the softmax probabilities")
        checks.require(isinstance(_got, torch.Tensor) and _got.shape == (7,),
                       f"average_softmax must return one probability per class, shape (7,) here")
        checks.require(torch.allclose(_got, _reduce(_logits[None], "softmax_mean")[0], atol=1e-5),
                       "average_softmax: take the softmax of each view's logits, then the mean over views")
        ### END HIDDEN TESTS
    """)
    nb.md("""
        ## 4. What do the crops gain on your network?

        Run this with your CIFAR-10 GoogLeNet from assignment 3 (copy its class into the cell
        below or upload `googlenet_cifar.pt` and the class).  CIFAR images are 32x32, so the
        views are made from the image upscaled: 1 crop = the image itself; 10 crops at 40 → 32;
        144 crops with scales 32, 36, 40, 44.  This part is not graded — write what you observe.
    """)
    nb.plain("""
        import os
        from course_pkg import data
        from course_pkg.evaluate import evaluate_multicrop, format_table3
        from course_pkg.models import create

        N_IMAGES = 2000  # more is better, if your GPU time allows

        if os.environ.get("NBGRADER_EXECUTION") or not os.path.exists("googlenet_cifar.pt"):
            print("skipped: needs googlenet_cifar.pt from assignment 3 (and a GPU, for speed)")
        else:
            device = "cuda" if torch.cuda.is_available() else "cpu"
            # The course's googlenet_cifar has the layer names of assignment 3: your checkpoint loads
            # into it if you kept them.  Otherwise paste your GoogLeNet class here and build that.
            model = create("googlenet_cifar", stem="16")
            checks.load_student_checkpoint(model, "googlenet_cifar.pt")
            model = model.to(device)
            images, labels = data.load_arrays("cifar10", "test", limit=N_IMAGES)
            schemes = {
                "1 crop": dict(scheme="center", crop=32, scales=None),
                "10 crops": dict(scheme="ten", crop=32, scales=[40]),
                "144 crops": dict(scheme="googlenet144", crop=32, scales=[32, 36, 40, 44]),
            }
            rows = evaluate_multicrop(model, data.prepare(images, "cifar10"), torch.as_tensor(labels), schemes,
                                      preprocess=lambda v: data.normalize(v.to(device), "cifar10"),
                                      chunk_size=4096)
            print(format_table3(rows))
    """)
    nb.md("""
        *Your observations (not graded):*
    """)
    return nb


BUILDERS = {"01_lenet_alexnet": lenet_alexnet, "02_inception_module": inception_module,
            "03_googlenet_aux": googlenet_aux, "04_multicrop": multicrop}


def main(argv: list[str] | None = None) -> int:
    names = (argv if argv is not None else sys.argv[1:]) or list(BUILDERS)
    for name in names:
        if name not in BUILDERS:
            print(f"unknown assignment {name!r}; known: {', '.join(BUILDERS)}", file=sys.stderr)
            return 2
        print(BUILDERS[name]().write().relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
