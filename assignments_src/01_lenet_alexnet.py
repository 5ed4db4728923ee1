# %% [markdown]
# # Assignment 1 — LeNet-5 and AlexNet, layer by layer
#
# Before GoogLeNet: the two networks it set out to beat in depth and cost.  You will build
# both, predict every output shape and parameter count by hand, and then see why a 1x1
# convolution in front of a big one is the idea that made GoogLeNet affordable.
#
# Every graded part has a self-check cell after it: it compares your network or your answers
# with the course's reference implementations (`course_pkg.models`), says right or wrong, names
# the first cause of a difference on its first line and the points at stake; it never prints
# the expected value.  Use the layer names given below; do not import the course's own classes.

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

torch.manual_seed(0)


# %% [markdown]
# ## 1. LeNet-5 (LeCun et al., 1998), the modern way
#
# The layout of the paper's section II.B with today's usual simplifications: ReLU instead
# of the scaled tanh, 2x2 max pooling instead of trainable subsampling, a C3 connected to
# all six maps of S2, and a linear output layer.  Input: one 32x32 grey image.
#
# | name | layer |
# |---|---|
# | `c1` | 6 filters 5x5 |
# | `s2` | max pool 2x2, stride 2 |
# | `c3` | 16 filters 5x5 |
# | `s4` | max pool 2x2, stride 2 |
# | `c5` | 120 filters 5x5 |
# | `f6` | linear, 84 units |
# | `output` | linear, `num_classes` units |
#
# ReLU after `c1`, `c3`, `c5` and `f6`.

# %% nbgrader={"grade": false, "grade_id": "lenet5", "locked": false, "schema_version": 3, "solution": true, "task": false}
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


# %%
# Self-check (not graded): your LeNet5 against course_pkg's "lenet5" (variant="modern").
checks.self_check_model(LeNet5(), "lenet5", (1, 32, 32), children=['c1', 's2', 'c3', 's4', 'c5', 'f6', 'output'],
                        points=3, variant="modern")

# %% nbgrader={"grade": true, "grade_id": "test_lenet5", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# LeNet5(), layer by layer, on one 1x32x32 image.
handover.give(LeNet5=handover.network_class([((), {})], (1, 32, 32)))
### BEGIN HIDDEN TESTS
from course_pkg.models import create as _create
checks.fail_on(checks.diagnose_model(checks.build(LeNet5), _create("lenet5", variant="modern"), (1, 32, 32),
                                     name="LeNet5", children=['c1', 's2', 'c3', 's4', 'c5', 'f6', 'output']), "LeNet5")
_out = checks.build(checks.build(LeNet5).eval(), checks.probe_input(1, 1, 32, 32))
checks.require(tuple(_out.shape) == (1, 10), f"output shape {tuple(_out.shape)}, expected (1, 10)")
### END HIDDEN TESTS

# %% [markdown]
# ### By hand
#
# For one 32x32 input, give the output shape `(channels, height, width)` of `c1`, `s2`,
# `c3`, `s4` and `c5`, and the number of parameters (weights and biases) of `c1`, `c3`,
# `c5`, `f6` and `output` (10 classes).  Whole numbers, not code that counts.

# %% nbgrader={"grade": false, "grade_id": "lenet_by_hand", "locked": false, "schema_version": 3, "solution": true, "task": false}
# lenet_shapes = {"c1": (c, h, w), "s2": ..., "c3": ..., "s4": ..., "c5": ...}
# lenet_params = {"c1": ..., "c3": ..., "c5": ..., "f6": ..., "output": ...}
### BEGIN SOLUTION
lenet_shapes = {"c1": (6, 28, 28), "s2": (6, 14, 14), "c3": (16, 10, 10), "s4": (16, 5, 5),
                "c5": (120, 1, 1)}
lenet_params = {"c1": 5 * 5 * 6 + 6, "c3": 5 * 5 * 6 * 16 + 16, "c5": 5 * 5 * 16 * 120 + 120,
                "f6": 120 * 84 + 84, "output": 84 * 10 + 10}
### END SOLUTION

# %%
# Self-check (not graded): lenet_shapes and lenet_params, right or wrong entry by entry.
checks.self_check_answers(globals(), "lenet_by_hand", points=2)

# %% nbgrader={"grade": true, "grade_id": "test_lenet_by_hand", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
handover.give("lenet_shapes", "lenet_params")
### BEGIN HIDDEN TESTS
checks.defined(globals(), "lenet_shapes", "lenet_params")
# the shapes and counts of the course's LeNet-5 and the hint for missing biases, as the self-check
# above computes them (course_pkg.checks.answers)
checks.fail_on(checks.diagnose_by_hand(globals(), "lenet_by_hand"), "LeNet-5 by hand")
### END HIDDEN TESTS

# %% [markdown]
# ## 2. AlexNet (Krizhevsky et al., 2012), on one GPU
#
# Input 3x227x227 (the paper says 224, but only 227 gives its 55x55 maps).  ReLU after
# every convolution and hidden linear layer; after the ReLUs of `conv1` and `conv2`, local
# response normalisation and then a max pool 3x3 with stride 2 (in this order: the paper's
# pools follow its normalisation layers); one more such pool after the ReLU of `conv5`;
# dropout 0.5 before `fc7` and `fc8`.  No two-GPU split here (`groups=1`).
#
# The normalisation is the paper's formula (chapter 3): k = 2, n = 5, α = 1e-4, β = 0.75.
# PyTorch's `nn.LocalResponseNorm` divides its `alpha` by the size n (as Caffe does), so the
# paper's layer is `nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2)`.
#
# | name | layer |
# |---|---|
# | `conv1` | 96 filters 11x11, stride 4 |
# | `conv2` | 256 filters 5x5, padding 2 |
# | `conv3` | 384 filters 3x3, padding 1 |
# | `conv4` | 384 filters 3x3, padding 1 |
# | `conv5` | 256 filters 3x3, padding 1 |
# | `fc6`, `fc7` | linear, 4096 units |
# | `fc8` | linear, `num_classes` units |

# %% nbgrader={"grade": false, "grade_id": "alexnet", "locked": false, "schema_version": 3, "solution": true, "task": false}
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
        self.lrn = nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)  # alpha / 5 = the paper's 1e-4
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


# %%
# Self-check (not graded): your AlexNet against course_pkg's "alexnet" (groups=1).
checks.self_check_model(AlexNet(), "alexnet", (3, 227, 227), children=['conv1', 'conv2', 'conv3', 'conv4', 'conv5', 'fc6', 'fc7', 'fc8'],
                        points=3)

# %% nbgrader={"grade": true, "grade_id": "test_alexnet", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# AlexNet(), layer by layer, on one 3x227x227 image.
handover.give(AlexNet=handover.network_class([((), {})], (3, 227, 227)))
### BEGIN HIDDEN TESTS
from course_pkg.models import create as _create
checks.fail_on(checks.diagnose_model(checks.build(AlexNet), _create("alexnet"), (3, 227, 227), name="AlexNet",
                                     children=['conv1', 'conv2', 'conv3', 'conv4', 'conv5', 'fc6', 'fc7', 'fc8']), "AlexNet")
### END HIDDEN TESTS

# %% [markdown]
# ### Where are AlexNet's parameters?
#
# Give the fraction of all parameters of your one-GPU AlexNet (1000 classes) that sit in
# the three linear layers, as a number between 0 and 1 (three decimals are enough), in
# `alexnet_fc_fraction`, and the output shape `(channels, height, width)` of `conv1` for one
# 227x227 image in `alexnet_conv1_shape`.

# %% nbgrader={"grade": false, "grade_id": "alexnet_by_hand", "locked": false, "schema_version": 3, "solution": true, "task": false}
# alexnet_fc_fraction = ...   # a number between 0 and 1
# alexnet_conv1_shape = (c, h, w)
### BEGIN SOLUTION
_conv = (11 * 11 * 3 * 96 + 96) + (5 * 5 * 96 * 256 + 256) + (3 * 3 * 256 * 384 + 384) \
    + (3 * 3 * 384 * 384 + 384) + (3 * 3 * 384 * 256 + 256)
_fc = (9216 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * 1000 + 1000)
alexnet_fc_fraction = _fc / (_fc + _conv)
alexnet_conv1_shape = (96, 55, 55)
### END SOLUTION

# %%
# Self-check (not graded): alexnet_fc_fraction and alexnet_conv1_shape, right or wrong.
checks.self_check_answers(globals(), "alexnet_by_hand", points=2)

# %% nbgrader={"grade": true, "grade_id": "test_alexnet_by_hand", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
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

# %% [markdown]
# ## 3. The 1x1 bottleneck
#
# Inception 3a's 5x5 branch sees a 28x28x192 input and produces 32 maps.  Directly, a 5x5
# convolution 192→32 costs a lot; GoogLeNet first reduces to 16 channels with a 1x1
# convolution.  Give the parameters (with biases) and multiply-adds for one image of both
# options (no padding issues: assume "same" padding, 28x28 outputs).

# %% nbgrader={"grade": false, "grade_id": "bottleneck", "locked": false, "schema_version": 3, "solution": true, "task": false}
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

# %%
# Self-check (not graded): the four numbers of `bottleneck`, right or wrong.
checks.self_check_answers(globals(), "bottleneck", points=2)

# %% nbgrader={"grade": true, "grade_id": "test_bottleneck", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
handover.give("bottleneck")
### BEGIN HIDDEN TESTS
checks.defined(globals(), "bottleneck")
# the counts of both designs and the hints (per position, map size), as the self-check computes them
checks.fail_on(checks.diagnose_by_hand(globals(), "bottleneck"), "1x1 bottleneck")
### END HIDDEN TESTS
