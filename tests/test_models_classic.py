"""The classic networks before GoogLeNet: LeNet-5, AlexNet, VGG-16, Network in Network.

Expected parameter counts are computed here by hand arithmetic from the papers' layer
descriptions (never read back from the code under test), then compared with the figures the
papers print.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torchvision

from course_pkg.models import available, create
from course_pkg.models import alexnet as alexnet_mod
from course_pkg.models import lenet as lenet_mod


def conv_params(c_in: int, c_out: int, k: int, groups: int = 1) -> int:
    return c_out * (c_in // groups) * k * k + c_out


def linear_params(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ----------------------------------------------------------------------------------- registry


def test_registry_lists_and_builds_the_classic_networks():
    for name in ("lenet5", "alexnet", "vgg16", "nin"):
        assert name in available()
    assert isinstance(create("lenet5"), nn.Module)
    assert isinstance(create("nin", num_classes=5), nn.Module)


def test_unknown_model_name_says_what_is_available():
    with pytest.raises(ValueError) as info:
        create("nope")
    message = str(info.value)
    assert "nope" in message
    for name in ("lenet5", "alexnet", "vgg16", "nin"):
        assert name in message


# ------------------------------------------------------------------------------------ LeNet-5

# Table I of LeCun et al. 1998, rebuilt from the paper's own description: the first six C3 maps
# read every contiguous (cyclic) triple of S2 maps, the next six every contiguous quadruple, the
# next three the discontinuous quadruples shown in the table, the last one all six maps.
C3_FROM_PAPER = (
    [sorted({i % 6, (i + 1) % 6, (i + 2) % 6}) for i in range(6)]
    + [sorted({i % 6, (i + 1) % 6, (i + 2) % 6, (i + 3) % 6}) for i in range(6)]
    + [[0, 1, 3, 4], [1, 2, 4, 5], [0, 2, 3, 5]]
    + [[0, 1, 2, 3, 4, 5]]
)


def test_lenet_c3_table_is_the_papers():
    assert lenet_mod.c3_connections() == C3_FROM_PAPER
    mask = create("lenet5").c3.mask
    for j, inputs in enumerate(C3_FROM_PAPER):
        assert mask[j].nonzero().flatten().tolist() == inputs


def test_lenet_original_parameter_counts_match_the_paper():
    c3 = sum(len(inputs) for inputs in C3_FROM_PAPER) * 5 * 5 + 16
    expected = {
        "c1": conv_params(1, 6, 5),
        "s2": 2 * 6,                     # one coefficient + one bias per map
        "c3": c3,
        "s4": 2 * 16,
        "c5": conv_params(16, 120, 5),
        "f6": linear_params(120, 84),
        "output": 0,                     # RBF centres are fixed, as in the paper
    }
    # Figures printed in section II.B of the paper.
    printed = {"c1": 156, "s2": 12, "c3": 1_516, "s4": 32, "c5": 48_120, "f6": 10_164}
    for layer, count in printed.items():
        assert expected[layer] == count, layer
    model = create("lenet5")
    assert lenet_mod.param_counts(model) == expected
    assert n_params(model) == sum(expected.values()) == 60_000  # the paper's ~60,000


def test_lenet_other_variants_and_the_explained_differences():
    linear_out = create("lenet5", output="linear")
    assert n_params(linear_out) == 60_000 + linear_params(84, 10)
    modern = create("lenet5", variant="modern")
    expected_modern = (conv_params(1, 6, 5) + conv_params(6, 16, 5) + conv_params(16, 120, 5)
                       + linear_params(120, 84) + linear_params(84, 10))
    assert n_params(modern) == expected_modern == 61_706
    # The difference to 60,000: full C3 (+900 weights), parameter-free pooling (-44), linear output (+850).
    assert expected_modern - 60_000 == (16 * 6 - 60) * 25 - (12 + 32) + linear_params(84, 10)
    assert any(isinstance(m, nn.MaxPool2d) for m in modern.modules())
    assert any(isinstance(m, nn.ReLU) for m in modern.modules())


@pytest.mark.parametrize("kwargs", [{}, {"variant": "modern"}, {"output": "linear"}, {"num_classes": 26}])
def test_lenet_output_shape(kwargs):
    model = create("lenet5", **kwargs).eval()
    out = model(torch.randn(3, 1, 32, 32))
    assert out.shape == (3, kwargs.get("num_classes", 10))
    assert torch.isfinite(out).all()


def test_lenet_rejects_28x28_with_advice():
    with pytest.raises(ValueError, match="32"):
        create("lenet5")(torch.randn(1, 1, 28, 28))
    with pytest.raises(ValueError, match="modern"):
        create("lenet5", variant="modern", output="rbf")


def test_lenet_c3_gradient_reaches_only_connected_s2_maps():
    c3 = create("lenet5").c3
    s2_out = torch.randn(1, 6, 14, 14, requires_grad=True)
    for j, inputs in enumerate(C3_FROM_PAPER):
        (grad,) = torch.autograd.grad(c3(s2_out)[0, j].sum(), s2_out)
        reached = [i for i in range(6) if grad[0, i].abs().sum() > 0]
        assert reached == inputs, f"C3 map {j}"


def test_lenet_building_blocks_follow_the_paper():
    model = create("lenet5")
    # Scaled tanh 1.7159 tanh(2a/3): f(1) = 1, f(-1) = -1 (Appendix A).
    act = model.act(torch.tensor([-1.0, 0.0, 1.0]))
    assert torch.allclose(act, torch.tensor([-1.0, 0.0, 1.0]), atol=1e-4)
    # Subsampling: (sum of each 2x2 block) * coefficient + bias, per map.
    s2 = model.s2
    with torch.no_grad():
        s2.weight.copy_(torch.arange(1.0, 7.0))
        s2.bias.copy_(torch.full((6,), 0.5))
    x = torch.randn(2, 6, 28, 28)
    block_sums = x.reshape(2, 6, 14, 2, 14, 2).sum(dim=(3, 5))
    expected = block_sums * torch.arange(1.0, 7.0).view(1, 6, 1, 1) + 0.5
    assert torch.allclose(s2(x), expected, atol=1e-5)
    # RBF output: minus the squared distance to each fixed ±1 code; no trainable parameters.
    rbf = model.output
    assert set(rbf.centers.unique().tolist()) == {-1.0, 1.0}
    assert list(rbf.parameters()) == []
    f6 = torch.randn(4, 84)
    expected_rbf = -torch.cdist(f6, rbf.centers) ** 2
    assert torch.allclose(rbf(f6), expected_rbf, atol=1e-3)


# ------------------------------------------------------------------------------------ AlexNet


def alexnet_expected(groups: int, num_classes: int = 1000) -> dict[str, int]:
    """Section 3.5 of the paper, Figure 2: kernels per layer and which maps they read."""
    return {
        "conv1": conv_params(3, 96, 11),
        "conv2": conv_params(96, 256, 5, groups),
        "conv3": conv_params(256, 384, 3),           # reads both GPUs
        "conv4": conv_params(384, 384, 3, groups),
        "conv5": conv_params(384, 256, 3, groups),
        "fc6": linear_params(256 * 6 * 6, 4096),
        "fc7": linear_params(4096, 4096),
        "fc8": linear_params(4096, num_classes),
    }


def test_alexnet_parameter_counts_against_the_paper():
    with torch.device("meta"):  # counting only
        split = create("alexnet", groups=2)
        single = create("alexnet")
    exp2, exp1 = alexnet_expected(2), alexnet_expected(1)
    for name in exp2:
        assert n_params(getattr(split, name)) == exp2[name], name
        assert n_params(getattr(single, name)) == exp1[name], name
    assert n_params(split) == sum(exp2.values()) == 60_965_224
    assert n_params(single) == sum(exp1.values()) == 62_378_344
    # The paper: "60 million parameters" — the split network is within 2% of it.
    assert abs(n_params(split) - 60e6) / 60e6 < 0.02
    # Where they live: the FC layers hold the bulk (94% without the split, 96% with it).
    fc = exp2["fc6"] + exp2["fc7"] + exp2["fc8"]
    share = alexnet_mod.param_split(split)
    assert share["fc"] == fc and share["conv"] == n_params(split) - fc
    assert share["fc_fraction"] == pytest.approx(fc / sum(exp2.values()))
    fc1 = exp1["fc6"] + exp1["fc7"] + exp1["fc8"]
    assert alexnet_mod.param_split(single)["fc_fraction"] == pytest.approx(fc1 / sum(exp1.values()))
    assert round(100 * fc1 / sum(exp1.values())) == 94 and round(100 * fc / sum(exp2.values())) == 96


def test_alexnet_groups_halve_exactly_conv2_conv4_conv5():
    with torch.device("meta"):
        split, single = create("alexnet", groups=2), create("alexnet")
    for name in ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"):
        w2, w1 = getattr(split, name).weight, getattr(single, name).weight
        if name in ("conv2", "conv4", "conv5"):
            assert w2.numel() * 2 == w1.numel(), name
            assert w2.shape[1] * 2 == w1.shape[1], name
        else:
            assert w2.shape == w1.shape, name
    # Output map 0 of conv2 (first GPU) does not read the second GPU's 48 maps.
    conv2 = split.conv2.to_empty(device="cpu")
    conv2.reset_parameters()
    x = torch.randn(1, 96, 9, 9, requires_grad=True)
    (grad,) = torch.autograd.grad(conv2(x)[0, 0].sum(), x)
    assert grad[0, :48].abs().sum() > 0 and grad[0, 48:].abs().sum() == 0


@pytest.mark.parametrize("groups", [1, 2])
def test_alexnet_forward_shapes(groups):
    model = create("alexnet", groups=groups, num_classes=7).eval()
    sizes = {}
    hooks = [getattr(model, n).register_forward_hook(
        lambda m, i, o, n=n: sizes.__setitem__(n, tuple(o.shape[1:])))
        for n in ("conv1", "pool1", "pool2", "conv5", "pool5")]
    with torch.no_grad():
        out = model(torch.randn(1, 3, 227, 227))
    for h in hooks:
        h.remove()
    assert out.shape == (1, 7)
    assert sizes == {"conv1": (96, 55, 55), "pool1": (96, 27, 27), "pool2": (256, 13, 13),
                     "conv5": (256, 13, 13), "pool5": (256, 6, 6)}
    with pytest.raises(ValueError, match="227"):
        model(torch.randn(1, 3, 224, 224))


def paper_lrn(a: torch.Tensor, k=2.0, n=5, alpha=1e-4, beta=0.75) -> torch.Tensor:
    """Section 3.3, written out loop by loop."""
    channels = a.shape[1]
    out = torch.empty_like(a)
    for i in range(channels):
        lo, hi = max(0, i - n // 2), min(channels - 1, i + n // 2)
        out[:, i] = a[:, i] / (k + alpha * (a[:, lo:hi + 1] ** 2).sum(dim=1)) ** beta
    return out


def test_alexnet_lrn_is_the_papers_formula_within_each_gpu():
    a = torch.rand(2, 96, 3, 3) * 30  # large activations so the normalization matters
    with torch.device("meta"):
        single, split = create("alexnet"), create("alexnet", groups=2)
    assert torch.allclose(single.lrn1(a), paper_lrn(a), rtol=1e-5)
    halves = torch.cat([paper_lrn(a[:, :48]), paper_lrn(a[:, 48:])], dim=1)
    assert torch.allclose(split.lrn1(a), halves, rtol=1e-5)
    assert not torch.allclose(split.lrn1(a), paper_lrn(a), rtol=1e-5)
    # PyTorch's own module divides alpha by n: the paper's formula is alpha = n * 1e-4 there.
    assert torch.allclose(nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)(a), paper_lrn(a), rtol=1e-5)


def test_alexnet_paper_init():
    model = create("alexnet", init="paper")
    assert torch.all(model.conv2.bias == 1) and torch.all(model.fc7.bias == 1)
    assert torch.all(model.conv1.bias == 0) and torch.all(model.fc8.bias == 0)
    assert model.conv3.weight.std().item() == pytest.approx(0.01, rel=0.05)


# ------------------------------------------------------------------------------------- VGG-16

VGG_D_STAGES = [[64] * 2, [128] * 2, [256] * 3, [512] * 3, [512] * 3]  # Table 1, column D


def vgg16_expected(num_classes: int = 1000) -> int:
    total, c_in = 0, 3
    for stage in VGG_D_STAGES:
        for c_out in stage:
            total += conv_params(c_in, c_out, 3)
            c_in = c_out
    return total + linear_params(512 * 7 * 7, 4096) + linear_params(4096, 4096) + linear_params(4096, num_classes)


def test_vgg16_parameter_count():
    with torch.device("meta"):  # counting only: no memory, no init time
        ours = create("vgg16")
        theirs = torchvision.models.vgg16(weights=None)
        ours_bn = create("vgg16", batch_norm=True)
        theirs_bn = torchvision.models.vgg16_bn(weights=None)
        ours_10 = create("vgg16", num_classes=10)
    assert vgg16_expected() == 138_357_544
    assert n_params(ours) == vgg16_expected() == n_params(theirs)
    assert round(n_params(ours) / 1e6) == 138  # Table 2 prints "138" (million) for D
    bn_extra = 2 * sum(sum(stage) for stage in VGG_D_STAGES)  # gamma and beta per channel
    assert n_params(ours_bn) == vgg16_expected() + bn_extra == n_params(theirs_bn)
    assert n_params(ours_10) == vgg16_expected(10)
    assert sum(isinstance(m, nn.Conv2d) for m in ours.modules()) == 13
    assert sum(isinstance(m, nn.Linear) for m in ours.modules()) == 3


def test_vgg16_matches_torchvision_on_a_small_input():
    torch.manual_seed(0)
    ours = create("vgg16", num_classes=10).eval()
    with torch.device("meta"):  # skip torchvision's init: it gets our tensors below
        theirs = torchvision.models.vgg16(weights=None, num_classes=10).eval()
    # Same state-dict layout: every key and shape matches, so torchvision's weights would load.
    theirs.load_state_dict(ours.state_dict(), assign=True)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        out = ours(x)
        ref = theirs(x)
    assert out.shape == (1, 10)
    assert torch.allclose(out, ref, atol=1e-5)


# -------------------------------------------------------------------------- Network in Network


def nin_expected(num_classes: int = 10) -> int:
    blocks = [(3, (192, 160, 96), 5), (96, (192, 192, 192), 5), (192, (192, 192, num_classes), 3)]
    total = 0
    for c_in, (c0, c1, c2), k in blocks:
        total += conv_params(c_in, c0, k) + conv_params(c0, c1, 1) + conv_params(c1, c2, 1)
    return total


def test_nin_parameter_count_and_no_fully_connected_layer():
    model = create("nin")
    assert n_params(model) == nin_expected() == 966_986
    assert n_params(create("nin", num_classes=100)) == nin_expected(100)
    assert not any(isinstance(m, nn.Linear) for m in model.modules())
    one_by_one = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)]
    assert len(one_by_one) == 6


def test_nin_forward_is_global_average_of_class_maps():
    model = create("nin", num_classes=10).eval()
    seen = {}
    model.block3.register_forward_hook(lambda m, i, o: seen.__setitem__("maps", o))
    model.pool1.register_forward_hook(lambda m, i, o: seen.__setitem__("pool1", o.shape))
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)
    assert seen["pool1"] == (2, 96, 16, 16)
    assert seen["maps"].shape == (2, 10, 8, 8)
    assert torch.allclose(out, seen["maps"].mean(dim=(2, 3)), atol=1e-6)


def test_mlpconv_block_structure():
    from course_pkg.models.nin import MLPConv

    block = MLPConv(3, (8, 6, 4), kernel_size=3, padding=1)
    assert block.out_channels == 4
    assert n_params(block) == conv_params(3, 8, 3) + conv_params(8, 6, 1) + conv_params(6, 4, 1)
    assert block(torch.randn(1, 3, 5, 5)).shape == (1, 4, 5, 5)
    with pytest.raises(ValueError, match="three"):
        MLPConv(3, (8, 4), kernel_size=3)
