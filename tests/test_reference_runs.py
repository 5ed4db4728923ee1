"""The reference runs compared (course_pkg.reference_runs): worked by hand on small synthetic records."""

from __future__ import annotations

import math

import pytest
import torch

from course_pkg import reference_runs as figures
from course_pkg.compare import correct_bits


def _record(name, accs, lr=0.05, correct=None, starts_from=None, cpu="Test CPU, 2 threads"):
    history = [{"epoch": e, "test_acc": a, "train_acc": a + 0.05, "train_loss": 1.0, "seconds": 400.0,
                "test_seconds": 20.0, "images_per_s": 125.0} for e, a in enumerate(accs, 1)]
    record = {"run": name, "what": name, "history": history, "test_acc": accs[-1], "test_n": 100,
              "recipe": {"lr": lr}, "cpu": cpu, "cpu_minutes": 70.0, "date": "2026-12-04", "commit": "abc1234"}
    if correct is not None:
        record["test_correct"] = {"images": len(correct), "order": "first", "bits": correct_bits(torch.tensor(correct))}
        record["test_acc"] = sum(correct) / len(correct)
    if starts_from:
        record["starts_from"] = {"run": starts_from}
    return record


def _bits(right: int, n: int = 100, offset: int = 0) -> list[int]:
    """``right`` images right, starting at image ``offset`` (wrapping)."""
    out = [0] * n
    for i in range(right):
        out[(offset + i) % n] = 1
    return out


def test_faithful_facts_chain_the_chunks_and_pair_each_step():
    # chunk 1 right on images 0..59; chunk 2 on 0..69 plus nothing lost; chunk 3 on 5..79 (loses 0..4, gains 70..79)
    runs = {"faithful": _record("faithful", [0.4, 0.6], lr=0.05, correct=_bits(60)),
            "faithful_chunk2": _record("faithful_chunk2", [0.5, 0.7], lr=0.04, correct=_bits(70),
                                       starts_from="faithful"),
            "faithful_chunk3": _record("faithful_chunk3", [0.65, 0.75], lr=0.02, correct=_bits(75, offset=5),
                                       starts_from="faithful_chunk2")}
    facts = figures.faithful_facts(runs, target=0.74)
    assert facts["faithful_verdict"] == "reaches" and facts["faithful_final_acc"] == "75.00"
    assert facts["faithful_total_epochs"] == "6" and facts["faithful_chunks"] == "3"
    assert facts["faithful_schedules"] == ("2 epochs peaking at 0.05, then 2 epochs peaking at 0.04, "
                                           "then 2 epochs peaking at 0.02")
    # step 2 -> 3: b = 10 (70..79 only chunk 3), c = 5 (0..4 only chunk 2), n = 100:
    # d = 0.05, se = sqrt(15 - 25/100)/100 = 0.038406, half-width 1.96 * se = 7.53 points
    se = math.sqrt(15 - 25 / 100) / 100
    assert facts["faithful_paired_halfwidth"] == f"{100 * 1.959963984540054 * se:.2f}" == "7.53"
    # the independent-sample formula at p = 0.70: 1.96 * sqrt(2 * 0.7 * 0.3 / 100) = 12.70 points
    assert facts["faithful_independent_halfwidth"] == "12.70"
    assert ("faithful_chunk3 against faithful_chunk2: +5.00 points (95% interval -2.53 to +12.53)"
            in facts["faithful_steps"])
    assert "(10 images only faithful_chunk3 gets right, 5 only faithful_chunk2)" in facts["faithful_steps"]
    assert "faithful_chunk2 stood at 50.00% after its first epoch, below the 60.00% at which faithful had ended, " \
           "and ended at 70.00%" in facts["faithful_restarts"]
    assert figures.faithful_facts(runs, target=0.80)["faithful_verdict"] == "falls short of"


@pytest.mark.parametrize("right_without, offset, against", [
    (70, 5, "is consistent with it (the interval holds it)"),  # 5 : 5 discordant, d = 0 +- 6.2 points
    (40, 0, "is larger (its interval lies above it)"),  # 30 : 0, d = +30 points
    (99, 0, "is smaller (its interval lies below it)"),  # 0 : 29, d = -29 points
])
def test_aux_facts_set_the_paired_change_against_the_papers_half_point(right_without, offset, against):
    runs = {"faithful": _record("faithful", [0.5, 0.7], correct=_bits(70)),
            "faithful_noaux": _record("faithful_noaux", [0.4, 0.6], correct=_bits(right_without, offset=offset))}
    facts = figures.aux_facts(runs)
    assert facts["aux_against_paper"] == against and facts["aux_paper"] == "0.5"
    assert facts["aux_with"] == "70.00" and facts["aux_without"] == f"{right_without:.2f}"
    assert facts["aux_reading"].startswith(f"{70 - right_without:+.2f} points (95% interval")


def test_aux_facts_count_what_the_heads_cost_and_compare_minutes_only_on_one_cpu():
    runs = {"faithful": _record("faithful", [0.5, 0.7], correct=_bits(70)),
            "faithful_noaux": _record("faithful_noaux", [0.4, 0.6], correct=_bits(60))}
    runs["faithful"]["cpu_minutes"], runs["faithful_noaux"]["cpu_minutes"] = 136.6, 130.9
    assert figures.aux_facts(runs)["aux_minutes"] == "137 and 131 minutes on the same CPU"
    runs["faithful_noaux"]["cpu"] = "Other CPU, 2 threads"
    assert figures.aux_facts(runs)["aux_minutes"] == ("137 minutes (Test CPU) and 131 minutes (Other CPU); "
                                                      "two machines, so those minutes do not compare")
    runs["faithful"].update(model="googlenet_cifar", model_kwargs={"stem": 16, "batch_norm": False, "init": "he"})
    facts = figures.aux_facts(runs)
    # the two CIFAR heads: 6,344,704 multiply-adds (tests/test_profile.py) on a trunk of 391,620,608;
    # parameters: 1x1 conv (512 or 528 in, 128 out), fc 2048 -> 1024 and fc 1024 -> 10, with biases
    params = sum(cin * 128 + 128 + 2048 * 1024 + 1024 + 1024 * 10 + 10 for cin in (512, 528))
    assert facts["aux_params"] == f"{params / 1e6:.2f}" == "4.35"
    assert facts["aux_macs_share"] == f"{100 * 6_344_704 / 391_620_608:.1f}" == "1.6"


def test_a_record_without_per_image_results_gets_no_interval_and_says_so():
    runs = {"faithful": _record("faithful", [0.5, 0.7], correct=_bits(70)),
            "faithful_noaux": _record("faithful_noaux", [0.4, 0.68])}
    facts = figures.aux_facts(runs)
    assert facts["aux_reading"] == ("+2.00 points; no interval: the record of faithful_noaux holds no "
                                    "per-image results to pair")
    assert facts["aux_against_paper"] == "cannot be judged without an interval"


def test_continued_history_numbers_epochs_after_the_parents():
    runs = {"faithful": _record("faithful", [0.1, 0.2, 0.3]),
            "faithful_chunk2": _record("faithful_chunk2", [0.4, 0.5], starts_from="faithful")}
    assert [r["epoch"] for r in figures.continued_history("faithful_chunk2", runs)] == [4, 5]
    assert [r["epoch"] for r in figures.continued_history("faithful", runs)] == [1, 2, 3]


def test_missing_runs_name_the_command_that_makes_each():
    lines = figures.missing_runs({"bn": {}}, names=("bn", "faithful_noaux"))
    assert lines == ["reference run faithful_noaux is not in this copy: "
                     "`python benchmarks/reference_cpu.py faithful_noaux` makes it"]


def test_reference_facts_skip_the_parts_whose_runs_are_absent():
    runs = {"init_pytorch": _record("init_pytorch", [0.1])}
    facts = figures.reference_facts(runs)
    assert facts == {"init_pytorch_acc": "10.0", "init_pytorch_loss": "1.00", "ln10": "2.30"}


def test_bn_facts_read_the_restart_and_the_target():
    runs = {"bn": _record("bn", [0.80, 0.88], lr=0.1, correct=_bits(88)),
            "bn_restart": _record("bn_restart", [0.86, 0.89], lr=0.02, correct=_bits(89), starts_from="bn")}
    facts = figures.bn_facts(runs, target=0.90)
    assert facts["bn_verdict"] == "falls short of it by 1.00 points" and facts["bn_best_acc"] == "89.00"
    assert facts["restart_first_acc"] == "86.00" and facts["restart_lr"] == "0.02" and facts["bn_lr"] == "0.1"
    # one image only the restart gets right, none only bn: +1 point, interval 0 +- 1.96 * sqrt(1 - 1/100)/100
    assert facts["restart_reading"].startswith("+1.00 points (95% interval -0.95 to +2.95)")
    assert facts["cpu_epoch_minutes"] == f"{400 / 60:.1f}" and facts["cpu_images_per_s"] == "125"
    assert figures.bn_facts(runs, target=0.885)["bn_verdict"] == "reaches it"


def test_chapter7_glues_every_name_its_prose_shows(repo_root):
    """Chapter 7 glues the dicts of course_pkg functions: run them (on the committed reference
    records, the shipped network's record and small stand-ins for what the chapter measures) and
    check that together with the names the chapter glues itself they cover every name its prose
    shows.  (tests/test_book.py checks the other chapters' names in their code.)"""
    import json
    import re

    from course_pkg import results, training_figures

    nb = json.loads((repo_root / "book" / "07_training_cifar10.ipynb").read_text())
    prose = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    used = set(re.findall(r"\{glue(?::\w+)?\}`([\w.-]+)(?::[^`]*)?`", prose))
    literal = set(re.findall(r"""glue\(["'](\w+)["']""", code))
    measured = {"16": {"params": 6, "macs": 1e9, "images_per_s": 5.0},
                "32": {"params": 6, "macs": 3e9, "images_per_s": 2.0}}
    spread = {init: [("conv1", 1.0), ("dropout", 0.5)] for init in ("pytorch", "caffe", "he")}
    truth = torch.arange(10).repeat(3)
    produced = (set(training_figures.stem_facts(measured)) | set(training_figures.spread_facts(spread))
                | set(training_figures.shipped_facts("googlenet_cifar", truth.roll(1), truth))
                | set(figures.reference_facts(results.reference_runs(), results.load("cpu_speed"))))
    unglued = sorted(used - literal - produced)
    assert not unglued, f"chapter 7 shows glue names nothing glues: {unglued}"
    # and each dict the chapter glues is one it calls
    for function in ("stem_facts", "spread_facts", "shipped_facts", "reference_facts"):
        assert f".{function}(" in code, function
