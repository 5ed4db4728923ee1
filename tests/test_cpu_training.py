"""The CPU training path: the reference-run command (train, resume, publish) and the CPU speed
benchmark, as plumbing checks on a few real images.  No training worth the name happens here."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import import_benchmark

from course_pkg.checkpoint import load_checkpoint, load_model, resume_path
from course_pkg.device import pick_precision


# slow: real (tiny) training runs of the reference-run command and the speed benchmark
pytestmark = pytest.mark.slow

@pytest.fixture(scope="module")
def reference():
    return import_benchmark("reference_cpu")


@pytest.fixture(scope="module")
def speed():
    return import_benchmark("cpu_speed")


@pytest.fixture
def keep_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_reference_runs_are_resumable_course_train_commands(reference):
    for name in reference.RUNS:
        args = reference.course_args(name, threads=None)
        assert args[0] == "train" and "--no-resume" not in args  # a second call continues the run
        out = args[args.index("--out") + 1]
        assert out == f".cache/reference/{name}.pt"  # git-ignored, relative: the command reads the same anywhere
        assert int(args[args.index("--epochs") + 1]) == reference.recipe(name)["epochs"]
    ships = [r["ships"] for r in reference.RUNS.values() if r["ships"]]
    assert sorted(set(ships)) == ["googlenet_cifar", "googlenet_cifar_faithful"]
    # a training in chunks ships its latest chunk over the earlier one's
    assert reference.RUNS["faithful_chunk3"]["ships"] == "googlenet_cifar_faithful"
    assert reference.RUNS["faithful_chunk3"]["start"][0] == "faithful_chunk2"
    # a continued run starts from its parent's weights, named by commit (git keeps them after it ships)
    args = reference.course_args("bn_restart", threads=None)
    assert args[args.index("--init-from") + 1] == ".cache/reference/bn_restart.start.pt"
    assert reference.RUNS["bn_restart"]["start"][0] == "bn"
    # a continued run starts from weights its parent committed (shipped, or kept in benchmarks/weights/)
    for name, run in reference.RUNS.items():
        if "start" in run:
            assert reference.weights_path(run["start"][0]).is_relative_to(reference.REPO), name
    assert reference.weights_path("faithful_chunk2") == reference.REPO / "benchmarks" / "weights" / "faithful_chunk2.pt"
    with pytest.raises(SystemExit, match="history only"):
        reference.weights_path("faithful_noaux")
    # the faithful checkpoint keeps the aux heads: assignment 3's grader loads the student's whole network
    assert reference.RUNS["faithful"]["keep_aux"] and not reference.RUNS["bn"]["keep_aux"]
    # the book lists the runs it expects from the package's own list
    from course_pkg import results

    assert results.REFERENCE_RUNS == tuple(reference.RUNS)


def test_quick_plumbing_never_writes_into_the_repository(reference, tmp_path):
    with pytest.raises(SystemExit):
        reference.main(["bn", "--quick"])
    with pytest.raises(SystemExit):
        reference.main(["bn", "--out-dir", str(tmp_path)])
    with pytest.raises(SystemExit):
        reference.main(["resnet"])


def test_reference_run_trains_resumes_and_publishes(reference, tmp_path, course_data, monkeypatch, keep_threads):
    monkeypatch.setenv("COURSE_QUIET", "1")
    assert reference.main(["bn", "--quick", "--out-dir", str(tmp_path), "--threads", "1"]) == 0
    shipped = tmp_path / "pretrained" / "googlenet_cifar.pt"
    state, meta = load_checkpoint(shipped)
    # fp16 weights, no optimizer state, no aux heads (nothing loads the BN model's heads)
    assert not any(k.startswith(("aux1.", "aux2.")) for k in state)
    raw = torch.load(shipped, weights_only=True)
    assert set(raw) == {"format", "state_dict", "meta"}
    assert all(v.dtype == torch.float16 for v in raw["state_dict"].values() if v.is_floating_point())
    model, _ = load_model(shipped)
    assert model.aux1 is None and model.aux2 is None
    # the metadata a reader needs: the commands, the CPU, the date, the commit, the minutes, the history
    for key in ("command", "published_by", "cpu", "date", "commit", "cpu_minutes", "history", "check"):
        assert meta.get(key) not in (None, ""), key
    assert meta["cpu_minutes"] == pytest.approx(
        sum(r["seconds"] + r["val_seconds"] for r in meta["history"]) / 60, abs=0.05)
    assert json.loads(shipped.with_suffix(".json").read_text())["check"] == meta["check"]
    result = json.loads((tmp_path / "results" / "reference_bn.json").read_text())
    assert not (tmp_path / "pretrained" / "results").exists()  # only benchmarks/results/ is shipped
    assert result["test_acc"] == meta["test_acc"] and len(result["history"]) == 1
    # which test images it gets right, for paired comparisons with other runs on the same images
    from course_pkg.compare import from_bits

    right = from_bits(result["test_correct"]["bits"], result["test_correct"]["images"])
    assert right.numel() == 32 and float(right.float().mean()) == pytest.approx(result["test_correct"]["accuracy"])
    assert result["commit"] and result["date"] and "threads" in result["cpu"]
    assert "NOT" not in result["cpu"] and result["command"].startswith("python benchmarks/reference_cpu.py bn")

    # a second call finds every epoch done: it trains nothing and publishes the same run again
    before = resume_path(tmp_path / "checkpoints" / "bn.pt").stat().st_mtime_ns
    assert reference.main(["bn", "--quick", "--out-dir", str(tmp_path), "--threads", "1"]) == 0
    assert resume_path(tmp_path / "checkpoints" / "bn.pt").stat().st_mtime_ns == before
    again = json.loads((tmp_path / "results" / "reference_bn.json").read_text())
    assert again["history"] == result["history"]


def test_continued_run_starts_from_its_parents_weights(reference, tmp_path, course_data, monkeypatch, keep_threads):
    monkeypatch.setenv("COURSE_QUIET", "1")
    # HEAD's file stands in for the named commit, which a shallow clone may not have
    monkeypatch.setitem(reference.RUNS["bn_restart"], "start", ("bn", "HEAD"))
    # it ships nothing (it did not beat bn); a continued run that does carries its start in the meta
    monkeypatch.setitem(reference.RUNS["bn_restart"], "ships", "googlenet_cifar")
    assert reference.main(["bn_restart", "--quick", "--out-dir", str(tmp_path), "--threads", "1"]) == 0
    start = tmp_path / "checkpoints" / "bn_restart.start.pt"
    shipped = reference.REPO / "course_pkg" / "pretrained" / "googlenet_cifar.pt"
    assert start.read_bytes() == shipped.read_bytes()  # git's copy of the file at that commit
    record = json.loads((tmp_path / "checkpoints" / "bn_restart.json").read_text())
    assert record["init_from"]["path"].endswith("bn_restart.start.pt")
    # one step at a tiny rate from the trained weights: far above chance on its 32 images
    assert record["history"][0]["val_acc"] > 0.5
    result = json.loads((tmp_path / "results" / "reference_bn_restart.json").read_text())
    parent = json.loads((reference.RESULTS / "reference_bn.json").read_text())
    assert result["starts_from"] == {"run": "bn", "commit": "HEAD", "test_acc": parent["test_acc"],
                                     "epochs": len(parent["history"]), "cpu_minutes": parent["cpu_minutes"]}
    assert result["cpu_minutes_total"] == pytest.approx(parent["cpu_minutes"] + result["cpu_minutes"], abs=0.05)
    assert "Starts from the weights run `bn` published at commit HEAD" in (
        tmp_path / "results" / "reference_bn_restart.md").read_text()
    _, meta = load_checkpoint(tmp_path / "pretrained" / "googlenet_cifar.pt")
    assert meta["starts_from"] == result["starts_from"] and meta["reference_run"] == "bn_restart"

    # after this machine's own run of the parent, the restart starts from that run instead
    own = tmp_path / "own"
    assert reference.main(["bn", "--quick", "--out-dir", str(own), "--threads", "1"]) == 0
    assert reference.main(["bn_restart", "--quick", "--out-dir", str(own), "--threads", "1"]) == 0
    parent_state, _ = load_checkpoint(own / "checkpoints" / "bn.pt")
    start_state, start_meta = load_checkpoint(own / "checkpoints" / "bn_restart.start.pt")
    assert set(start_state) == {k for k in parent_state if not k.startswith(("aux1.", "aux2."))}
    assert all(torch.equal(start_state[k], parent_state[k]) for k in start_state)
    assert start_meta["model_kwargs"]["aux_logits"] is False

    # a chunk that keeps its weights (for the next chunk) writes them beside the results, not into the package
    monkeypatch.setitem(reference.RUNS["bn_restart"], "ships", None)
    monkeypatch.setitem(reference.RUNS["bn_restart"], "keeps", True)
    assert reference.main(["bn_restart", "--quick", "--out-dir", str(own), "--threads", "1"]) == 0
    kept_state, kept_meta = load_checkpoint(own / "weights" / "bn_restart.pt")
    assert kept_meta["reference_run"] == "bn_restart" and kept_meta["check"]["images"] > 0
    assert set(kept_state) == set(start_state)
    assert json.loads((own / "results" / "reference_bn_restart.json").read_text())["keeps"] is True

    # a commit git does not have: a clear message, not a traceback
    monkeypatch.setitem(reference.RUNS["bn_restart"], "start", ("bn", "0" * 40))
    with pytest.raises(SystemExit, match="cannot read"):
        reference.extract_start("bn_restart", tmp_path / "elsewhere")


def test_cpu_speed_benchmark_plumbing(speed, tmp_path, course_data, keep_threads):
    torch.set_num_threads(1)
    with pytest.raises(SystemExit):  # plumbing numbers never land in benchmarks/results/
        speed.main(["--quick"])
    assert speed.main(["--quick", "--out-dir", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "cpu_speed.json").read_text())
    rows = {(r["layout"], r["config"]): r for r in result["fit"]}
    configs = ("fp32_nchw", "fp32_cl", "bf16_cl", "auto")
    assert set(rows) == {(layout, config) for layout in ("bn", "faithful") for config in configs}
    chosen = pick_precision(torch.device("cpu"), "auto")
    assert result["auto"]["precision"] == chosen and result["auto"]["cpu_bf16_speedup"] > 0
    for layout in ("bn", "faithful"):
        base, auto = rows[(layout, "fp32_nchw")], rows[(layout, "auto")]
        assert base["precision"] == "fp32" and base["speedup"] == 1.0
        assert rows[(layout, "fp32_cl")]["precision"] == "fp32" and rows[(layout, "bf16_cl")]["precision"] == "bf16"
        # the default row is the measurement of the configuration fit takes here, not a third run
        assert auto["same_as"] == f"{chosen}_cl" and auto["precision"] == chosen
        assert auto["images_per_s"] == rows[(layout, auto["same_as"])]["images_per_s"]
        assert auto["speedup"] == pytest.approx(auto["images_per_s"] / base["images_per_s"])
        macs = 3 * result["forward_macs"][layout] * auto["images_per_s"]
        assert auto["matmul_fraction"] == pytest.approx(macs / result["matmul"]["bf16"]["macs_per_s"])
    assert result["targets"]["ratio"] == rows[("bn", "auto")]["speedup"]
    text = (tmp_path / "cpu_speed.md").read_text()
    assert text.startswith("**PLUMBING CHECK") and f"`auto` chose **{chosen}**" in text


def test_precision_benchmark_judges_bf16_against_the_seed_spread():
    bench = import_benchmark("cpu_precision")
    run = lambda precision, seed, acc, s: {"precision": precision, "seed": seed, "test_acc": acc,  # noqa: E731
                                           "test_n": 2000, "train_seconds": s, "train_loss": 1.0, "epochs": 2}
    spread = [run("fp32", 0, 0.60, 300.0), run("bf16", 0, 0.59, 120.0), run("fp32", 1, 0.61, 300.0)]
    v = bench.verdict(spread)
    # |0.59 - 0.60| = 1 point, within the seed spread (1 point) plus 2 standard errors (2.19 points)
    assert v["same_accuracy"]
    assert v["allowed"] == pytest.approx(0.01 + 2 * (0.6 * 0.4 / 2000) ** 0.5)
    off = [run("fp32", 0, 0.60, 300.0), run("bf16", 0, 0.50, 120.0), run("fp32", 1, 0.605, 300.0)]
    assert not bench.verdict(off)["same_accuracy"]
    with pytest.raises(SystemExit):  # plumbing numbers never land in benchmarks/results/
        bench.main(["--quick"])


def test_assignment3_accuracy_tiers_follow_the_faithful_reference_run(repo_root):
    """Assignment 3's accuracy points are calibrated against the shipped faithful reference run:
    a student who matches it gets them all with room for the noise of 250 images, an untrained
    network gets none, and the tiers fall with the accuracy."""
    import ast
    import re

    from course_pkg import pretrained

    source = (repo_root / "assignments_src" / "03_googlenet_aux.py").read_text()
    tiers = ast.literal_eval(re.search(r"for _t, _f in (\(\(.*?\)\)) if _acc >= _t", source).group(1))
    thresholds, fractions = zip(*tiers)
    assert list(thresholds) == sorted(thresholds, reverse=True) and list(fractions) == sorted(fractions, reverse=True)
    assert fractions[0] == 1.0
    reference = pretrained.info("googlenet_cifar_faithful")
    noise = (reference["test_acc"] * (1 - reference["test_acc"]) / 250) ** 0.5  # one standard error
    assert reference["test_acc"] - 0.10 <= thresholds[0] <= reference["test_acc"] - noise, (
        tiers, reference["test_acc"])
    assert thresholds[-1] >= 0.10 + 4 * (0.1 * 0.9 / 250) ** 0.5  # chance (10 classes) scores nothing


def test_scale_augmented_run_trains_on_random_resized_crops_and_keeps_its_weights(reference, tmp_path, course_data,
                                                                                  monkeypatch, keep_threads):
    monkeypatch.setenv("COURSE_QUIET", "1")
    args = reference.course_args("bn_scale_s2", threads=None)
    assert args[args.index("--scale") + 1:args.index("--scale") + 3] == ["0.25", "1.0"]
    assert args[args.index("--seed") + 1] == "2"
    assert reference.main(["bn_scale", "--quick", "--out-dir", str(tmp_path), "--threads", "1"]) == 0
    record = json.loads((tmp_path / "checkpoints" / "bn_scale.json").read_text())
    assert record["recipe"]["scale"] == [0.25, 1.0]
    state, meta = load_checkpoint(tmp_path / "weights" / "bn_scale.pt")
    assert meta["reference_run"] == "bn_scale" and not any(k.startswith("aux") for k in state)
    assert not (tmp_path / "pretrained").exists()  # kept beside the results, not shipped
