"""course_pkg.results: what chapters 7 and 8 draw from the benchmark results files (synthetic files here)."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from course_pkg import results  # noqa: E402


def _run(name, acc, seconds=60.0, speed=40_000.0, history=None):
    return {"name": name, "config": name.split("[")[0], "what": f"about {name}", "epochs": 30,
            "final_test_acc": acc, "train_seconds": seconds, "images_per_s_median": speed,
            "history": history or [], "environment": {"device_name": "NVIDIA H100", "date": "2026-12-01T10:00",
                                                      "commit": "abc1234"}}


SUMMARY = {"runs": [_run("bn", 0.9012), _run("bn_noaugment", 0.8350), _run("bn_nosmoothing", 0.9040)]}


def test_load_missing_corrupt_and_present(tmp_path, monkeypatch):
    assert results.load("cifar_summary", tmp_path) is None
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ValueError, match="broken.json is not a readable results file.*regenerate"):
        results.load("broken", tmp_path)
    (tmp_path / "cifar_summary.json").write_text(json.dumps(SUMMARY))
    monkeypatch.setenv("COURSE_RESULTS", str(tmp_path))
    assert results.load("cifar_summary")["runs"][0]["final_test_acc"] == 0.9012


def test_learning_curves_plot_each_epoch_and_skip_missing_values():
    histories = {
        "bn": [{"epoch": 1, "val_acc": 0.5}, {"epoch": 2, "val_acc": 0.7}, {"epoch": 3, "val_acc": 0.8}],
        "faithful": [{"epoch": 1, "val_acc": None}, {"epoch": 2, "val_acc": 0.6}],
    }
    fig = results.plot_learning_curves(histories)
    lines = {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in fig.axes[0].lines}
    assert lines == {"bn": ([1, 2, 3], [0.5, 0.7, 0.8]), "faithful": ([2], [0.6])}
    plt.close(fig)


def test_the_repository_results_folder_is_found():
    # the book build reads benchmarks/results/ of the checkout; the CPU results are committed there
    assert (results.REPO_RESULTS / "cpu_eval_cost.json").is_file()
    assert results.load("cpu_eval_cost", results.REPO_RESULTS) is not None


def test_results_the_book_reads_travel_with_the_package():
    """Every result file the book reads is in the package, byte for byte, and nothing stale is."""
    repo = sorted(p.name for p in results.REPO_RESULTS.glob("*.json") if results.is_shipped(p.name))
    shipped = sorted(p.name for p in results.SHIPPED_RESULTS.glob("*.json"))
    assert "cpu_speed.json" in repo and any(n.startswith("reference_") for n in repo)
    assert shipped == repo, "run `python -c 'from course_pkg import results; results.ship()'` and commit"
    for name in repo:
        assert (results.SHIPPED_RESULTS / name).read_bytes() == (results.REPO_RESULTS / name).read_bytes(), name


def test_an_installed_copy_reads_the_shipped_results(tmp_path, monkeypatch):
    source, package = tmp_path / "repo", tmp_path / "package"
    source.mkdir()
    (source / "reference_bn.json").write_text(json.dumps({"run": "bn", "test_acc": 0.9}))
    (source / "cifar_summary.json").write_text("{}")  # not read by the book: not shipped
    (package).mkdir()
    (package / "reference_gone.json").write_text("{}")  # no longer in the repository: removed
    assert [p.name for p in results.ship(source, package)] == ["reference_bn.json"]
    assert sorted(p.name for p in package.iterdir()) == ["reference_bn.json"]
    # no checkout beside the package: the shipped copy answers
    monkeypatch.delenv("COURSE_RESULTS", raising=False)
    monkeypatch.setattr(results, "REPO_RESULTS", tmp_path / "absent")
    monkeypatch.setattr(results, "SHIPPED_RESULTS", package)
    assert results.load("reference_bn") == {"run": "bn", "test_acc": 0.9}
    assert results.reference_runs() == {"bn": {"run": "bn", "test_acc": 0.9}}
    assert results.load("cifar_summary") is None


def _record(epochs, lr, acc, parent=None, bits=None):
    r = {"what": "a run", "history": [{}] * epochs, "recipe": {"lr": lr}, "test_acc": acc, "test_n": 10_000,
         "cpu_minutes": 10.0 * epochs, "cpu": "a CPU", "date": "2026-12-04", "commit": "abc1234"}
    if parent:
        r["starts_from"] = {"run": parent}
    if bits is not None:
        from course_pkg.compare import correct_bits

        r["test_correct"] = {"images": len(bits), "order": "the test split's own order", "bits": correct_bits(bits)}
    return r


def test_reference_rows_state_every_schedule_behind_the_weights():
    runs = {"faithful": _record(6, 0.05, 0.73), "chunk2": _record(10, 0.04, 0.84, parent="faithful"),
            "chunk3": _record(6, 0.02, 0.85, parent="chunk2"), "bn": _record(16, 0.1, 0.89)}
    assert results.lineage("chunk3", runs) == ["faithful", "chunk2", "chunk3"]
    rows = {r["run"]: r for r in results.reference_rows(runs)}
    # the confound of comparing bn with chunk3 is in the table: 16 epochs at 0.1 against 22 in three schedules
    assert rows["chunk3"]["epochs"] == "6 (22 in all)" and rows["bn"]["epochs"] == "16"
    assert rows["chunk3"]["schedules (epochs x peak lr)"] == "6 x 0.05 then 10 x 0.04 then 6 x 0.02"
    assert rows["bn"]["schedules (epochs x peak lr)"] == "16 x 0.1"
    runs["faithful"]["starts_from"] = {"run": "chunk3"}
    with pytest.raises(ValueError, match="circle"):
        results.lineage("chunk3", runs)


def test_two_runs_compare_paired_on_the_images_their_records_name():
    import torch

    before = torch.tensor([True] * 80 + [False] * 20)
    after = torch.tensor([True] * 75 + [False] * 5 + [True] * 10 + [False] * 10)
    d = results.paired_runs(_record(1, 0.1, 0.80, bits=before), _record(1, 0.1, 0.85, bits=after))
    assert (d["only_a"], d["only_b"]) == (5, 10) and d["difference"] == pytest.approx(0.05)
    assert results.paired_runs(_record(1, 0.1, 0.8), _record(1, 0.1, 0.85, bits=after)) is None  # an old record
    with pytest.raises(ValueError, match="different test images"):
        results.paired_runs(_record(1, 0.1, 0.8, bits=before[:50]), _record(1, 0.1, 0.85, bits=after))


