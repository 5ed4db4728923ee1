"""The CIFAR benchmark's bookkeeping: recipe flags, sweeps, the frontier, the summary the book reads.

The training itself is checked in test_train/test_cli; here the runs are either synthetic records
(for the arithmetic) or the CPU plumbing check (--quick, 32 images).
"""

from __future__ import annotations

import json

import pytest
import torch
from conftest import import_benchmark


@pytest.fixture(scope="module")
def bench():
    return import_benchmark("train_cifar")


def test_recipe_settings_become_course_train_flags(bench):
    flags = bench.train_flags({"lr": 0.4, "augment": False, "compile": True, "batch_size": "1024",
                               "channels_last": "false", "label_smoothing": 0.0})
    assert flags == ["--lr", "0.4", "--no-augment", "--compile", "--batch-size", "1024",
                     "--no-channels-last", "--label-smoothing", "0.0"]
    # and course train accepts every one of them
    from course_pkg.cli import build_parser

    args = build_parser().parse_args(["train", "--model", "googlenet_cifar", "--out", "x.pt", *flags,
                                      "--cutout", "8", "--warmup", "0.1"])
    assert (args.lr, args.augment, args.compile, args.batch_size, args.channels_last) == (0.4, False, True, 1024, False)
    assert (args.cutout, args.warmup) == (8, 0.1)


def test_every_configuration_is_in_a_group_and_changes_one_thing(bench):
    grouped = [n for names in bench.GROUPS.values() for n in names]
    assert sorted(grouped) == sorted(bench.CONFIGS) and len(grouped) == len(set(grouped))
    for name in bench.GROUPS["tricks"]:  # an ablation of the BN recipe: one change against "bn"
        config = bench.CONFIGS[name]
        changes = len(config.get("set", {})) + len(set(config["kw"].items()) - {("batch_norm", True)})
        assert config["kw"]["batch_norm"] is True and changes == 1, name


def test_bad_assignment_is_a_clear_error(bench):
    with pytest.raises(SystemExit, match="--set expects KEY=VALUE, got 'lr'"):
        bench.parse_assignments(["lr"], "--set")


def _run(name, seconds, acc, config="bn"):
    return {"name": name, "config": config, "what": "x", "epochs": 1, "test_n": 10_000,
            "final_test_acc": acc, "best_test_acc": acc, "train_seconds": seconds,
            "images_per_s_median": 1000.0, "time_to_accuracy": {}}


def test_frontier_marks_the_runs_nothing_beats(bench):
    runs = [_run("a", 30, 0.90), _run("b", 60, 0.89), _run("c", 45, 0.92), _run("d", 90, 0.93),
            _run("e", 90, 0.91)]
    marked = {r["name"]: r["frontier"] for r in bench.frontier(runs)}
    # b is slower and worse than a; e is as slow as d and worse
    assert marked == {"a": True, "c": True, "b": False, "d": True, "e": False}
    assert [r["name"] for r in bench.frontier(runs)] == ["a", "c", "b", "d", "e"]


def test_targets_are_judged_from_time_to_accuracy(bench):
    fast = _run("bn", 80, 0.931)
    fast["time_to_accuracy"] = {"0.93": {"seconds": 75.0, "epoch": 28}}
    slow = _run("faithful", 200, 0.905, config="faithful")
    slow["time_to_accuracy"] = {"0.90": {"seconds": 190.0, "epoch": 29}}
    text = bench.markdown({"environment": {"data": "d", "device_name": "H", "date": "2026", "commit": "c",
                                           "torch": "t", "command": "x"}, "runs": [fast, slow]})
    assert "- bn: ≥ 93% in ≤ 90 s — met: 93% after 75.0 s (bn)" in text
    assert "- faithful: ≥ 90% in ≤ 180 s — not met: best 90.50% (faithful, 200 s); 90% only after 190.0 s" in text
    ratio = 1000.0 / bench.NAIVE_BN_IMAGES_PER_S
    assert f"{ratio:.2f}x" in text and "not met" in text.split("throughput")[1]


def test_summary_keeps_the_latest_run_of_each_name_and_ignores_quick(bench, tmp_path):
    def results(date, runs, quick=False):
        return {"environment": {"date": date, "quick": quick, "data": "d", "device_name": "H100",
                                "commit": "sha" + date[8:10], "torch": "t", "command": "c"}, "runs": runs}

    (tmp_path / "cifar_20261101_h100_a.json").write_text(json.dumps(
        results("2026-11-01T10:00:00", [_run("bn", 60, 0.90), _run("faithful", 90, 0.88, "faithful")])))
    (tmp_path / "cifar_20261102_h100_b.json").write_text(json.dumps(
        results("2026-11-02T10:00:00", [_run("bn", 55, 0.92)])))
    (tmp_path / "cifar_20261103_cpu_c_quick.json").write_text(json.dumps(
        results("2026-11-03T10:00:00", [_run("bn", 1, 0.10)], quick=True)))
    path = bench.write_summary(tmp_path)
    summary = json.loads(path.read_text())
    got = {r["name"]: (r["final_test_acc"], r["environment"]["file"]) for r in summary["runs"]}
    assert got == {"bn": (0.92, "cifar_20261102_h100_b.json"), "faithful": (0.88, "cifar_20261101_h100_a.json")}
    assert "H100 · 2026-11-02 · sha02" in path.with_suffix(".md").read_text()


def test_quick_sweep_and_stop_after(bench, tmp_path, course_data, monkeypatch):
    monkeypatch.setenv("COURSE_QUIET", "1")
    threads = torch.get_num_threads()
    try:
        assert bench.main(["--quick", "--only", "bn", "--sweep", "label_smoothing=0,0.2",
                           "--out-dir", str(tmp_path), "--tag", "t1"]) == 0
        # a budget already spent: nothing starts, and the file says which runs did not
        assert bench.main(["--quick", "--group", "published", "--stop-after", "0",
                           "--out-dir", str(tmp_path), "--tag", "t2"]) == 0
    finally:
        torch.set_num_threads(threads)
    (first,) = tmp_path.glob("cifar_*_t1_quick.json")
    runs = json.loads(first.read_text())["runs"]
    assert [r["name"] for r in runs] == ["bn[label_smoothing=0]", "bn[label_smoothing=0.2]"]
    assert [r["recipe"]["label_smoothing"] for r in runs] == [0.0, 0.2]
    assert "## Frontier: bn" in first.with_suffix(".md").read_text()
    (second,) = tmp_path.glob("cifar_*_t2_quick.json")
    assert json.loads(second.read_text())["not_run"] == ["bn", "faithful"]
    assert not (tmp_path / "cifar_summary.json").exists()  # plumbing checks never reach the summary
    with pytest.raises(SystemExit):
        bench.main(["--only", "bn", "--sweep", "lr=0.1,0.2", "--publish", "--out-dir", str(tmp_path)])


def test_commit_can_be_named_where_there_is_no_git(bench, monkeypatch):
    import _meta

    monkeypatch.setenv("COURSE_COMMIT", "0123abc")
    assert _meta.commit() == "0123abc"
    monkeypatch.delenv("COURSE_COMMIT")
    monkeypatch.setenv("GIT_DIR", "/nonexistent")  # as on the GPU machine: a tree without .git
    assert _meta.commit() == "unknown"


def _session(repo_root, tmp_path, *steps, **env):
    import os
    import subprocess

    full_env = {**os.environ, "OUT": str(tmp_path / "out"), **env}
    return subprocess.run(["bash", str(repo_root / "benchmarks" / "gpu_session.sh"), *steps],
                          capture_output=True, text=True, env=full_env, timeout=120)


def test_gpu_session_script_refuses_what_would_waste_device_time(repo_root, tmp_path, course_data):
    proc = _session(repo_root, tmp_path, "published", GIT_DIR="/nonexistent", COURSE_COMMIT="")
    assert proc.returncode == 2 and "name the commit" in proc.stderr
    proc = _session(repo_root, tmp_path, "published", COURSE_DATA=str(tmp_path))
    assert proc.returncode == 2 and "cifar10_jpeg.npz" in proc.stderr
    proc = _session(repo_root, tmp_path, "no_such_step", COURSE_DATA=str(course_data))
    assert proc.returncode == 2 and "unknown step no_such_step" in proc.stdout


def test_gpu_session_script_keeps_its_deadline_and_packs(repo_root, tmp_path, course_data):
    import tarfile

    # a budget already spent: every step is skipped, and the packing still happens
    proc = _session(repo_root, tmp_path, "published", "multicrop", COURSE_DATA=str(course_data), BUDGET="0",
                    CKPTS=str(tmp_path / "none"))
    assert proc.returncode == 0, proc.stderr
    log = (tmp_path / "out" / "log.txt").read_text()
    assert log.count("skipped (budget spent)") == 3  # published; multicrop's throughput and Table 3
    assert "fewer than two BN-layout checkpoints" in log
    with tarfile.open(tmp_path / "out" / "results.tar.gz") as tar:
        assert tar.getnames() == []  # nothing ran, so nothing new to bring back
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["log.txt", "results.tar.gz"]
