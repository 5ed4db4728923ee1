"""course_pkg.profile: tables of parameters and multiply-adds, and the paper's Table 1 check."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch.nn as nn

import course_pkg.profile as profile
from course_pkg.models import create


def test_count_macs_uses_flop_counter_for_any_module():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 5))
    assert profile.count_macs(model, (3, 4, 4)) == 3 * 8 * 9 * 16 + 128 * 5
    assert profile.count_params(model) == 3 * 8 * 9 + 8 + 128 * 5 + 5
    assert profile.count_params(model, weights_only=True) == 3 * 8 * 9 + 128 * 5


def test_count_macs_in_training_mode_adds_the_auxiliary_heads_and_leaves_the_model_as_it_was():
    # each CIFAR head: 4x4 average pool, 1x1 conv to 128 filters, fc 2048 -> 1024, fc 1024 -> 10;
    # its input has 512 channels (after inception4a) and 528 (after inception4d)
    heads = sum(cin * 128 * 4 * 4 + 128 * 4 * 4 * 1024 + 1024 * 10 for cin in (512, 528))
    assert heads == 6_344_704
    faithful = dict(stem="16", batch_norm=False, init="he")
    with_aux, without = create("googlenet_cifar", **faithful), create("googlenet_cifar", aux_logits=False, **faithful)
    assert profile.count_macs(with_aux, (3, 32, 32)) == profile.count_macs(without, (3, 32, 32))
    assert profile.count_macs(with_aux, (3, 32, 32), training=True) - profile.count_macs(without, (3, 32, 32)) == heads
    assert profile.count_macs(without, (3, 32, 32), training=True) == profile.count_macs(without, (3, 32, 32))
    bn = create("googlenet_cifar", stem="16", batch_norm=True).eval()
    before = {k: v.clone() for k, v in bn.state_dict().items()}
    assert profile.count_macs(bn, (3, 32, 32), training=True) > profile.count_macs(bn, (3, 32, 32))
    assert not bn.training and all((bn.state_dict()[k] == v).all() for k, v in before.items())


def test_layer_table_rows_and_totals():
    model = create("googlenet", aux_logits=False)
    table = profile.layer_table(model, (3, 224, 224), depth=1)
    assert table.column("layer")[:3] == ["conv1", "maxpool1", "lrn1"]
    assert table.row("maxpool3")["output"] == (480, 14, 14)
    assert table.row("inception5b")["output"] == (1024, 7, 7)
    assert table.row("conv1")["kernel/stride"] == "7x7/2x2"
    assert sum(table.column("params")) == 6_998_552
    assert sum(table.column("MACs")) == profile.count_macs(model, (3, 224, 224)) == 1_582_671_872
    leaves = profile.layer_table(model, (3, 224, 224))
    assert sum(leaves.column("params")) == 6_998_552
    assert "inception3a.branch5x5.1.conv" in leaves.column("layer")
    assert "inception3a.branch5x5.1.conv" in leaves.to_markdown()
    assert "<table>" in leaves._repr_html_()


def test_layer_table_keeps_aux_params_but_no_macs_in_eval():
    table = profile.layer_table(create("googlenet"), (3, 224, 224), depth=1)
    row = table.row("aux1")
    assert row["params"] == 3_188_840 and row["MACs"] == 0 and row["output"] is None


def test_paper_table1_flags_exactly_the_wrong_rows():
    table = profile.paper_table1()
    wrong = {row["row"] for row in table.rows if not row["ok"]}
    # As printed in the paper, the params column of conv1, 4a, 4c, 4d, 4e, 5a and 5b disagrees with
    # the row's own filter numbers (checked by hand from Table 1 of Szegedy et al. 2015).
    expected = {"convolution 7x7/2"} | {f"inception ({n})" for n in ("4a", "4c", "4d", "4e", "5a", "5b")}
    assert wrong == expected
    conv1 = table.row("convolution 7x7/2")
    assert conv1["computed params"] == f"{7 * 7 * 3 * 64 / 1024:.1f}K"
    assert "follow the printed params" in conv1["why"]
    five_a = table.row("inception (5a)")
    assert "follow the printed params" in five_a["why"] and "1072K" in five_a["why"]
    assert "follow the printed params" not in table.row("inception (4c)")["why"]
    assert "1.502G" in "\n".join(table.notes) and "1,582,671,872" in "\n".join(table.notes)


@pytest.mark.slow  # a Python process profiles GoogLeNet
def test_paper_table1_from_the_command_line():
    out = subprocess.run(
        [sys.executable, "-c", "import course_pkg.profile as p; print(p.paper_table1())"],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout
    assert "printed params" in out and "computed params" in out
    assert out.count(" no ") >= 7
