"""GoogLeNet as published: counts, shapes and behaviour, checked against arithmetic done here.

The expected numbers are computed in this file from the paper's Table 1 filter numbers (inputs),
independently of course_pkg's code, and cross-checked against the BVLC Caffe model
(models/bvlc_googlenet/deploy.prototxt in BVLC/caffe) and torchvision's googlenet.py.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from course_pkg.models import available, create
from course_pkg.models.googlenet import AUX_LOSS_WEIGHT, GoogLeNetOutputs
from course_pkg.models.inception import Inception, InceptionNaive
from course_pkg.profile import count_macs, count_params

# Table 1 of the paper, typed from the paper: in_channels, #1x1, #3x3red, #3x3, #5x5red, #5x5, pool proj
TABLE1 = {
    "3a": (192, 64, 96, 128, 16, 32, 32),
    "3b": (256, 128, 128, 192, 32, 96, 64),
    "4a": (480, 192, 96, 208, 16, 48, 64),
    "4b": (512, 160, 112, 224, 24, 64, 64),
    "4c": (512, 128, 128, 256, 24, 64, 64),
    "4d": (512, 112, 144, 288, 32, 64, 64),
    "4e": (528, 256, 160, 320, 32, 128, 128),
    "5a": (832, 256, 160, 320, 32, 128, 128),
    "5b": (832, 384, 192, 384, 48, 128, 128),
}
SPATIAL = {"3": 28, "4": 14, "5": 7}


def module_weights(cin, c1, r3, c3, r5, c5, pp):
    return cin * c1 + cin * r3 + 9 * r3 * c3 + cin * r5 + 25 * r5 * c5 + cin * pp


def module_biases(cin, c1, r3, c3, r5, c5, pp):
    return c1 + r3 + c3 + r5 + c5 + pp


def aux_head(cin, classes):
    return (cin * 128 + 128) + (2048 * 1024 + 1024) + (1024 * classes + classes)


def main_counts(classes=1000):
    weights = 7 * 7 * 3 * 64 + 64 * 64 + 3 * 3 * 64 * 192 + 1024 * classes
    biases = 64 + 64 + 192 + classes
    for row in TABLE1.values():
        weights += module_weights(*row)
        biases += module_biases(*row)
    return weights, biases


@pytest.fixture(scope="module")
def paper():
    return create("googlenet")


def test_registry_lists_the_course_networks():
    assert {"googlenet", "googlenet_cifar", "inception", "inception_naive"} <= set(available())
    with pytest.raises(ValueError, match="available models"):
        create("googlenet_v9")


def test_main_network_parameter_count(paper):
    weights, biases = main_counts()
    assert (weights, biases) == (6_990_272, 8_280)  # the BVLC deploy.prototxt's layers, counted
    main = sum(p.numel() for n, p in paper.named_parameters() if not n.startswith("aux"))
    assert main == weights + biases == 6_998_552
    assert count_params(create("googlenet", aux_logits=False)) == 6_998_552


def test_aux_heads_parameter_counts(paper):
    assert count_params(paper.aux1) == aux_head(512, 1000) == 3_188_840
    assert count_params(paper.aux2) == aux_head(528, 1000) == 3_190_888
    assert count_params(paper) == 6_998_552 + 3_188_840 + 3_190_888 == 13_378_280


def test_per_module_weights(paper):
    expected = {  # Table 1's filter numbers multiplied out by hand, weights only
        "3a": 163_328, "3b": 388_096, "4a": 375_552, "4b": 448_512, "4c": 509_440,
        "4d": 604_672, "4e": 867_328, "5a": 1_042_432, "5b": 1_442_816,
    }
    for name, row in TABLE1.items():
        module = getattr(paper, f"inception{name}")
        assert module_weights(*row) == expected[name]
        assert count_params(module, weights_only=True) == expected[name], name
        assert count_params(module) == expected[name] + module_biases(*row), name


def test_multiply_adds_at_224(paper):
    # Independent arithmetic: weights x output positions for every conv, plus the classifier.
    macs = 7 * 7 * 3 * 64 * 112 * 112 + (64 * 64 + 9 * 64 * 192) * 56 * 56 + 1024 * 1000
    for name, row in TABLE1.items():
        macs += module_weights(*row) * SPATIAL[name[0]] ** 2
    assert macs == 1_582_671_872
    assert count_macs(paper, (3, 224, 224)) == macs


def test_ten_class_counts():
    weights, biases = main_counts(classes=10)
    assert weights + biases == 5_983_802  # the same network with a 10-way classifier
    model = create("googlenet", num_classes=10)
    assert count_params(model) == 5_983_802 + aux_head(512, 10) + aux_head(528, 10)


def test_spatial_sizes_follow_ceil_mode_pooling(paper):
    sizes = {}
    hooks = [
        getattr(paper, n).register_forward_hook(lambda m, i, o, n=n: sizes.update({n: o.shape[-1]}))
        for n in ("conv1", "maxpool1", "maxpool2", "maxpool3", "maxpool4")
    ]
    paper.eval()
    with torch.no_grad():
        out = paper(torch.zeros(1, 3, 224, 224))
    for h in hooks:
        h.remove()
    assert [sizes[n] for n in ("conv1", "maxpool1", "maxpool2", "maxpool3", "maxpool4")] == [112, 56, 28, 14, 7]
    assert out.shape == (1, 1000)
    # floor-mode pooling would have given 55 after the first pool
    assert nn.MaxPool2d(3, 2)(torch.zeros(1, 1, 112, 112)).shape[-1] == 55


def test_depth_22_layers_with_parameters_27_with_pooling(paper):
    # "22 layers deep when counting only layers with parameters (or 27 layers if we also count pooling)":
    # an inception module counts as 2 layers deep; pools inside modules are not counted.
    stem = [paper.conv1, paper.conv2, paper.conv3]
    modules = [m for m in paper.children() if isinstance(m, Inception)]
    depth = len(stem) + 2 * len(modules) + 1  # + the linear classifier
    pools = [m for n, m in paper.named_children() if isinstance(m, (nn.MaxPool2d, nn.AdaptiveAvgPool2d))]
    assert len(modules) == 9
    assert depth == 22
    assert depth + len(pools) == 27


def test_aux_outputs_only_in_training_mode(paper):
    x = torch.randn(2, 3, 224, 224)
    paper.train()
    out = paper(x)
    assert isinstance(out, GoogLeNetOutputs)
    assert [t.shape for t in out] == [(2, 1000)] * 3
    paper.eval()
    with torch.no_grad():
        out = paper(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 1000)
    no_aux = create("googlenet", aux_logits=False).train()
    assert isinstance(no_aux(x), torch.Tensor)
    assert AUX_LOSS_WEIGHT == 0.3


def test_faithful_details(paper):
    m = paper.inception3a
    assert m.branch5x5[1].conv.kernel_size == (5, 5) and m.branch5x5[1].conv.padding == (2, 2)
    assert m.branch3x3[1].conv.padding == (1, 1)
    pool = m.branch_pool[0]
    assert (pool.kernel_size, pool.stride, pool.padding) == (3, 1, 1)
    lrn = paper.lrn1
    assert isinstance(lrn, nn.LocalResponseNorm)
    assert (lrn.size, lrn.alpha, lrn.beta, lrn.k) == (5, 1e-4, 0.75, 1.0)
    assert paper.dropout.p == 0.4 and paper.aux1.dropout.p == 0.7
    assert all(m.bias is not None for m in paper.modules() if isinstance(m, nn.Conv2d))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in paper.modules())


def test_lrn_matches_caffe_formula():
    # Caffe ACROSS_CHANNELS: b = a / (k + alpha/n * sum_{window} a^2)^beta, window of n=5 channels.
    x = torch.randn(1, 8, 3, 3)
    ours = create("googlenet").lrn1(x)
    sq = x.pow(2)
    padded = torch.nn.functional.pad(sq, (0, 0, 0, 0, 2, 2))
    window = sum(padded[:, i : i + 8] for i in range(5))
    expected = x / (1.0 + 1e-4 / 5 * window) ** 0.75
    torch.testing.assert_close(ours, expected)


def test_caffe_init_is_xavier_with_bias_0_2():
    torch.manual_seed(0)
    model = create("googlenet", init="caffe")
    w = model.inception4a.branch3x3[1].conv.weight  # fan_in = 96 * 9
    bound = (3.0 / (96 * 9)) ** 0.5
    assert w.abs().max() <= bound
    assert abs(w.std().item() - bound / 3**0.5) < 0.05 * bound  # uniform: std = bound / sqrt(3)
    assert torch.all(model.conv1.conv.bias == 0.2)
    he = create("googlenet", init="he").inception4a.branch3x3[1].conv
    assert abs(he.weight.std().item() - (2 / (96 * 9)) ** 0.5) < 0.05 * (2 / (96 * 9)) ** 0.5
    assert torch.all(he.bias == 0)


def test_batch_norm_variant_swaps_lrn_for_bn():
    model = create("googlenet", batch_norm=True, aux_logits=False)
    assert not any(isinstance(m, nn.LocalResponseNorm) for m in model.modules())
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(convs) == len(bns) == 57 and all(c.bias is None for c in convs)
    # BN adds 2 parameters per channel and removes each conv's bias (1 per channel)
    channels = sum(c.out_channels for c in convs)
    assert count_params(model) == 6_998_552 + channels


def test_bottleneck_arithmetic_of_a_5x5_branch():
    # 5x5 conv, 32 filters, on a 28x28x192 input (3a's 5x5 branch), with and without the 1x1 to 16.
    direct = nn.Conv2d(192, 32, 5, padding=2)
    reduced = nn.Sequential(nn.Conv2d(192, 16, 1), nn.Conv2d(16, 32, 5, padding=2))
    direct_macs = 5 * 5 * 192 * 32 * 28 * 28
    reduced_macs = (192 * 16 + 5 * 5 * 16 * 32) * 28 * 28
    assert count_macs(direct, (192, 28, 28)) == direct_macs == 120_422_400
    assert count_macs(reduced, (192, 28, 28)) == reduced_macs == 12_443_648
    assert count_params(direct, weights_only=True) == 153_600
    assert count_params(reduced, weights_only=True) == 3_072 + 12_800
    assert direct_macs / reduced_macs > 9.6


def test_naive_module_grows_channels_and_costs_more():
    naive = InceptionNaive(192, 64, 128, 32)
    reduced = Inception(192, *TABLE1["3a"][1:])
    x = torch.randn(1, 192, 28, 28)
    assert naive(x).shape == (1, 64 + 128 + 32 + 192, 28, 28)
    assert reduced(x).shape == (1, 256, 28, 28)
    naive_weights = 192 * 64 + 9 * 192 * 128 + 25 * 192 * 32
    assert count_params(naive, weights_only=True) == naive_weights
    assert count_macs(naive, (192, 28, 28)) == naive_weights * 28 * 28
    assert count_macs(naive, (192, 28, 28)) > 2 * count_macs(reduced, (192, 28, 28))


def test_concatenation_order_is_1x1_3x3_5x5_pool():
    module = Inception(8, 1, 2, 3, 2, 4, 5).eval()
    x = torch.randn(1, 8, 6, 6)
    out = module(x)
    parts = [module.branch1x1(x), module.branch3x3(x), module.branch5x5(x), module.branch_pool(x)]
    assert out.shape[1] == module.out_channels == 1 + 3 + 4 + 5
    torch.testing.assert_close(out, torch.cat(parts, 1))


@pytest.mark.parametrize("stem,size3a", [("16", 16), ("32", 32)])
def test_cifar_variant(stem, size3a):
    model = create("googlenet_cifar", stem=stem)
    seen = {}
    model.inception3a.register_forward_hook(lambda m, i, o: seen.update({"3a": o.shape[-1]}))
    model.train()
    out = model(torch.randn(2, 3, 32, 32))
    assert isinstance(out, GoogLeNetOutputs) and all(t.shape == (2, 10) for t in out)
    assert seen["3a"] == size3a
    # the nine modules keep the paper's filter numbers
    for name, row in TABLE1.items():
        assert count_params(getattr(model, f"inception{name}"), weights_only=True) == module_weights(*row)
    stem_weights = 3 * 3 * 3 * 64 + 64 * 64 + 9 * 64 * 192
    main = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("aux"))
    assert main == 5_983_802 - 7 * 7 * 3 * 64 + 3 * 3 * 3 * 64
    assert stem_weights > 0


def test_cifar_stem_16_is_about_four_times_cheaper():
    small = count_macs(create("googlenet_cifar", stem="16"), (3, 32, 32))
    large = count_macs(create("googlenet_cifar", stem="32"), (3, 32, 32))
    assert 3.5 < large / small < 4.5


def test_bad_inputs_have_clear_messages():
    with pytest.raises(ValueError, match=r"\[N, 3, H, W\]"):
        create("googlenet", aux_logits=False).eval()(torch.zeros(3, 224, 224))
    with pytest.raises(ValueError, match="init must be"):
        create("googlenet", init="glorot")
    with pytest.raises(ValueError, match="stem must be"):
        create("googlenet_cifar", stem="8")
    aux = create("googlenet").aux1
    with pytest.raises(ValueError, match="4x4"):
        aux(torch.zeros(1, 512, 28, 28))


def test_torchvision_googlenet_is_told_apart_module_by_module(paper):
    from torchvision.models import googlenet as tv_googlenet

    from course_pkg.profile import compare_modules

    tv = tv_googlenet(weights=None, aux_logits=True, init_weights=False)
    assert count_params(tv) == 13_004_888  # torchvision's googlenet.py with aux heads (its aux fc1 takes 2048 inputs)
    table = compare_modules(paper, tv, names=[f"inception{n}" for n in TABLE1])
    assert not any(table.column("same")), "every inception module should differ"
    for name, row in TABLE1.items():
        theirs = getattr(tv, f"inception{name}")
        # torchvision's "5x5" branch is branch3 with a 3x3 kernel and BN, no conv biases
        assert theirs.branch3[1].conv.kernel_size == (3, 3)
        cin, c1, r3, c3, r5, c5, pp = row
        with_3x3 = module_weights(*row) - 25 * r5 * c5 + 9 * r5 * c5
        bn_params = 2 * module_biases(*row)
        assert count_params(theirs) == with_3x3 + bn_params, name
    assert isinstance(tv.maxpool4, nn.MaxPool2d) and tv.maxpool4.kernel_size == 2
    assert tv.dropout.p == 0.2 and paper.dropout.p == 0.4
