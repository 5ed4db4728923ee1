"""LeNet-5 — LeCun, Bottou, Bengio & Haffner, "Gradient-Based Learning Applied to Document
Recognition", Proc. IEEE 86(11), 1998, section II.B.

Two variants behind one builder, ``create("lenet5", variant=...)``:

``"original"`` (the paper)
    32x32 single-channel input.  C1: 6 maps, 5x5 conv.  S2: trainable subsampling (the sum of
    each 2x2 block times a trainable coefficient plus a trainable bias, one pair per map).  C3:
    16 maps, 5x5 conv, each map connected only to the subset of S2's maps marked in the paper's
    Table I.  S4: trainable subsampling.  C5: 120 maps, a 5x5 conv on the 5x5 maps of S4 (so
    each C5 unit sees all of S4, but C5 is a convolution in the paper, not a linear layer).
    F6: 84 units.  Every layer up to F6 is followed by the paper's squashing function
    ``1.7159 * tanh(2/3 * a)`` (Appendix A).  Output: Euclidean RBF units, see
    :class:`EuclideanRBF`.  Weights start uniform in ``±2.4 / fan_in`` (Appendix C).

``"modern"`` (what most tutorials call LeNet-5)
    ReLU, 2x2 max pooling, a full 6→16 C3, PyTorch's default init, and a Linear 84→classes
    output.

Parameter count.  The paper: "C1 … 156 trainable parameters", "S2 … 12", "C3 … 1,516",
"S4 … 32", "C5 … 48,120", "F6 … 10,164" — exactly 60,000 in all, the paper's figure of about
60,000 trainable parameters for LeNet-5.  The original variant has exactly
60,000 because the RBF centres are fixed buffers, as in the paper, where they were "chosen by
hand and kept fixed (at least initially)".  With ``output="linear"`` it has 60,850 (84·10 + 10 more).  The modern
variant has 61,706: its C3 is fully connected (16·6·25 + 16 = 2,416 instead of 1,516), its
pooling has no parameters (−44) and its output is linear (+850).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .registry import register

# The paper's Table I.  Rows are S2's maps 0–5, columns C3's maps 0–15; "X" marks a connection.
# "The first six C3 feature maps take inputs from every contiguous subsets of three feature maps
# in S2.  The next six take input from every contiguous subset of four.  The next three take
# input from some discontinuous subsets of four.  Finally the last one takes input from all S2
# feature maps."
C3_TABLE: tuple[str, ...] = (
    "X   XXX  XXXX XX",
    "XX   XXX  XXXX X",
    "XXX   XXX  X XXX",
    " XXX  XXXX  X XX",
    "  XXX  XXXX XX X",
    "   XXX  XXXX XXX",
)

# Trainable parameters per layer as printed in section II.B (facts to compare against).
PAPER_PARAMS: dict[str, int] = {
    "c1": 156, "s2": 12, "c3": 1_516, "s4": 32, "c5": 48_120, "f6": 10_164,
}
PAPER_TOTAL = 60_000

#: LeNet5 submodules holding the layers, in the paper's order (activations are separate).
LAYER_NAMES: tuple[str, ...] = ("c1", "s2", "c3", "s4", "c5", "f6", "output")


def c3_connections(table: Sequence[str] = C3_TABLE) -> list[list[int]]:
    """For each C3 map, the S2 maps it reads (from a table drawn like the paper's Table I)."""
    n_out = len(table[0])
    if any(len(row) != n_out for row in table):
        raise ValueError("every row of the connection table must have one mark per C3 map")
    return [[i for i, row in enumerate(table) if row[j] == "X"] for j in range(n_out)]


class ScaledTanh(nn.Module):
    """The paper's squashing function ``A * tanh(S * a)`` with A = 1.7159, S = 2/3 (Appendix A).

    Chosen so that f(±1) = ±1 and the second derivative peaks at ±1, where the targets lie.
    """

    def __init__(self, amplitude: float = 1.7159, slope: float = 2.0 / 3.0) -> None:
        super().__init__()
        self.amplitude = amplitude
        self.slope = slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.amplitude * torch.tanh(self.slope * x)

    def extra_repr(self) -> str:
        return f"amplitude={self.amplitude}, slope={self.slope:.4f}"


class Subsampling(nn.Module):
    """S2/S4: per map, the sum of each non-overlapping k×k block times a trainable coefficient,
    plus a trainable bias (section II.B).  Two parameters per map."""

    def __init__(self, channels: int, kernel_size: int = 2) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size
        block_sum = F.avg_pool2d(x, k) * (k * k)
        return block_sum * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return f"channels={self.weight.numel()}, kernel_size={self.kernel_size}"


class PartialConv2d(nn.Module):
    """A convolution in which output map j reads only the input maps ``connections[j]``.

    Only the connected kernels are parameters (so the count is the paper's 1,516 for C3, not the
    2,416 of a full 6→16 convolution); the forward pass scatters them into a dense kernel whose
    unconnected entries are zero, so no gradient reaches an unconnected input map.  A
    multiply-add counter therefore sees the dense convolution (240,000 for C3 at 10x10), of which
    150,000 are real connections (the paper's 151,600 "connections" add one per bias).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        connections: Sequence[Sequence[int]],
    ) -> None:
        super().__init__()
        if len(connections) != out_channels:
            raise ValueError(
                f"connections lists {len(connections)} output maps but out_channels is "
                f"{out_channels}; give one list of input maps per output map"
            )
        pairs = [(j, i) for j, inputs in enumerate(connections) for i in inputs]
        bad = sorted({i for _, i in pairs if not 0 <= i < in_channels})
        if bad:
            raise ValueError(f"connections name input maps {bad}, but in_channels is {in_channels}")
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.weight = nn.Parameter(torch.empty(len(pairs), kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.register_buffer("out_index", torch.tensor([j for j, _ in pairs]), persistent=False)
        self.register_buffer("in_index", torch.tensor([i for _, i in pairs]), persistent=False)
        nn.init.uniform_(self.weight, -0.1, 0.1)

    @property
    def mask(self) -> torch.Tensor:
        """Boolean (out_channels, in_channels): True where output map j reads input map i."""
        m = torch.zeros(self.out_channels, self.in_channels, dtype=torch.bool)
        m[self.out_index.cpu(), self.in_index.cpu()] = True
        return m

    def dense_weight(self) -> torch.Tensor:
        k = self.kernel_size
        dense = self.weight.new_zeros(self.out_channels, self.in_channels, k, k)
        return dense.index_put((self.out_index, self.in_index), self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.dense_weight(), self.bias)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"connections={self.weight.shape[0]}")


class EuclideanRBF(nn.Module):
    """The paper's output layer: unit i outputs ``y_i = sum_j (x_j - w_ij)^2`` (eq. 7), the
    squared distance of F6's 84 outputs to a fixed ±1 code for class i.

    Returned negated, ``-y_i``, so the result works as logits: cross-entropy on ``-y`` is
    ``y_D + log sum_i exp(-y_i)``, the paper's criterion (eq. 9) without its constant "rubbish
    class" term ``exp(-j)``.  The paper drew each code as a stylized 7x12 bitmap of the
    character; we do not have those bitmaps, so the codes are a fixed pseudo-random ±1 pattern
    (seed 0).  They are a buffer, not parameters, as in the paper (chosen by hand and kept fixed).
    """

    def __init__(self, in_features: int = 84, num_classes: int = 10, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        codes = torch.randint(0, 2, (num_classes, in_features), generator=generator) * 2.0 - 1.0
        self.register_buffer("centers", codes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -((x.unsqueeze(1) - self.centers) ** 2).sum(dim=-1)

    def extra_repr(self) -> str:
        return f"in_features={self.centers.shape[1]}, num_classes={self.centers.shape[0]}"


class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al. 1998); see the module docstring for the two variants."""

    def __init__(
        self,
        num_classes: int = 10,
        variant: str = "original",
        output: str | None = None,
        in_channels: int = 1,
    ) -> None:
        super().__init__()
        if variant not in ("original", "modern"):
            raise ValueError(f"variant must be 'original' or 'modern', not {variant!r}")
        output = output or ("rbf" if variant == "original" else "linear")
        if output not in ("rbf", "linear"):
            raise ValueError(f"output must be 'rbf' or 'linear', not {output!r}")
        if output == "rbf" and variant == "modern":
            raise ValueError(
                "output='rbf' needs F6 outputs in [-1.7, 1.7] to reach the ±1 codes; the modern "
                "variant's ReLU cannot go negative. Use output='linear' with variant='modern'."
            )
        self.variant, self.in_channels = variant, in_channels
        original = variant == "original"

        self.c1 = nn.Conv2d(in_channels, 6, kernel_size=5)
        self.s2 = Subsampling(6) if original else nn.MaxPool2d(2)
        self.c3 = PartialConv2d(6, 16, 5, c3_connections()) if original else nn.Conv2d(6, 16, 5)
        self.s4 = Subsampling(16) if original else nn.MaxPool2d(2)
        self.c5 = nn.Conv2d(16, 120, kernel_size=5)
        self.f6 = nn.Linear(120, 84)
        self.output = EuclideanRBF(84, num_classes) if output == "rbf" else nn.Linear(84, num_classes)
        self.act = ScaledTanh() if original else nn.ReLU()
        if original:
            self._init_as_paper()

    def _init_as_paper(self) -> None:
        """Appendix C: weights uniform in ±2.4/F_i, F_i the unit's fan-in.  (The paper does not
        say how biases start; they start at zero here.)"""
        for layer, fan_in in ((self.c1, self.in_channels * 25), (self.c5, 16 * 25), (self.f6, 120)):
            nn.init.uniform_(layer.weight, -2.4 / fan_in, 2.4 / fan_in)
            nn.init.zeros_(layer.bias)
        if isinstance(self.output, nn.Linear):
            nn.init.uniform_(self.output.weight, -2.4 / 84, 2.4 / 84)
            nn.init.zeros_(self.output.bias)
        with torch.no_grad():  # C3: each map's fan-in is 25 times the number of maps it reads
            fan_in = torch.bincount(self.c3.out_index).float()[self.c3.out_index] * 25
            bound = (2.4 / fan_in).view(-1, 1, 1)
            self.c3.weight.uniform_(-1.0, 1.0).mul_(bound)
        for sub in (self.s2, self.s4):  # a subsampling unit sums 4 inputs
            nn.init.uniform_(sub.weight, -2.4 / 4, 2.4 / 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels or x.shape[-2:] != (32, 32):
            raise ValueError(
                f"LeNet-5 expects images of shape (batch, {self.in_channels}, 32, 32), got "
                f"{tuple(x.shape)}; pad 28x28 MNIST digits by 2 pixels on each side "
                "(the paper centres them in a 32x32 field)"
            )
        x = self.act(self.c1(x))   # 6 x 28 x 28
        x = self.act(self.s2(x))   # 6 x 14 x 14
        x = self.act(self.c3(x))   # 16 x 10 x 10
        x = self.act(self.s4(x))   # 16 x 5 x 5
        x = self.act(self.c5(x))   # 120 x 1 x 1
        x = self.act(self.f6(x.flatten(1)))  # 84
        return self.output(x)


def param_counts(model: LeNet5) -> dict[str, int]:
    """Trainable parameters of each LeNet-5 layer, in the paper's order (``{"c1": 156, ...}``).

    Compare with :data:`PAPER_PARAMS`; the output layer is ``"output"`` (0 for the fixed RBF).
    """
    return {
        name: sum(p.numel() for p in getattr(model, name).parameters() if p.requires_grad)
        for name in LAYER_NAMES
    }


@register("lenet5")
def lenet5(
    num_classes: int = 10,
    variant: str = "original",
    output: str | None = None,
    in_channels: int = 1,
) -> LeNet5:
    """LeNet-5 (LeCun et al. 1998, section II.B): ~60,000 trainable parameters in the paper;
    exactly 60,000 for ``variant="original"`` with its RBF output, 61,706 for ``"modern"``.

    ``output`` is ``"rbf"`` (default for the original) or ``"linear"`` (84→num_classes).
    """
    return LeNet5(num_classes=num_classes, variant=variant, output=output, in_channels=in_channels)
