"""The cells of chapters 7 and 8 that show results, run against result files and shipped checkpoints.

The book build runs them before any GPU result is committed (the "not there yet" branch). These
tests run the same cells, taken from the notebooks, against result files written by the
benchmark scripts' own functions from synthetic runs, so the branch that draws the figures and
tables works on the day the files land.
"""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from conftest import import_benchmark  # noqa: E402
from course_pkg import pretrained  # noqa: E402


# slow: each test executes chapter cells (the shipped networks evaluated, results plotted)
pytestmark = pytest.mark.slow

def _cells(repo_root, chapter, marker="results."):
    nb = json.loads((repo_root / "book" / chapter).read_text())
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code" and marker in "".join(c["source"])]


def _history(final, epochs=5):
    return [{"epoch": e, "train_loss": 2.0 / e, "train_acc": final * e / epochs, "val_acc": final * e / epochs,
             "seconds": 2.0, "lr": 0.1} for e in range(1, epochs + 1)]


def _run(name, acc, seconds=60.0, epochs=5):
    return {"name": name, "config": name.split("[")[0], "what": f"about {name}", "settings": {},
            "model": "googlenet_cifar",
            "model_kwargs": {}, "epochs": epochs, "final_test_acc": acc, "best_test_acc": acc, "test_n": 10_000,
            "train_seconds": seconds, "wall_seconds": seconds + 5, "images_per_s_median": 40_000.0,
            "first_epoch_seconds": 3.0, "time_to_accuracy": {}, "final_train_loss": 0.5, "recipe": {},
            "history": _history(acc, epochs)}


@pytest.fixture()
def shown(monkeypatch):
    """What the cells display (markdown) and how many figures they draw."""
    displayed = []
    import IPython.display

    monkeypatch.setattr(IPython.display, "display", lambda obj: displayed.append(getattr(obj, "data", obj)))
    plt.close("all")
    yield displayed
    plt.close("all")


def _exec(cells, namespace):
    for source in cells:
        exec(compile(source, "<chapter cell>", "exec"), namespace)


# the cells of chapter 7 that read the results files, in order
CH7_RESULT_CELLS = ["ea5c791f", "ch7-init-code", "ch7-frontier-code"]


def _reference_record(final, epochs, batch_norm=False, aux=True, lr=0.1):
    """What ``course train`` records for a run (the input of ``reference_cpu.publish``)."""
    history = [{"epoch": e, "train_loss": 2.3 - 1.5 * final * e / epochs, "train_acc": final * e / epochs,
                "val_acc": final * e / epochs, "val_n": 10_000, "lr": 0.1, "seconds": 400.0 + e,
                "val_seconds": 20.0, "images_per_s": 50_000 / (400.0 + e)} for e in range(1, epochs + 1)]
    return {"history": history, "model": "googlenet_cifar", "cpu_threads": 2, "commit": "abc1234",
            "model_kwargs": {"stem": 16, "batch_norm": batch_norm, "aux_logits": aux},
            "recipe": {"epochs": epochs, "lr": lr}, "command": "course train ...", "settings": {"precision": "bf16"}}


@pytest.fixture()
def reference_results(tmp_path, monkeypatch, repo_root):
    """Reference-run results written by the benchmark's own ``publish`` (no weights), and the
    committed CPU speed results, in a folder the chapter reads through $COURSE_RESULTS."""
    reference = import_benchmark("reference_cpu")
    for run in reference.RUNS.values():  # histories only: no weights to write
        monkeypatch.setitem(run, "ships", None)
        monkeypatch.setitem(run, "keeps", False)
    folder = tmp_path / "results"
    records = {"bn": _reference_record(0.91, 16, batch_norm=True),
               "bn_restart": _reference_record(0.92, 4, batch_norm=True, aux=False, lr=0.02),
               "faithful": _reference_record(0.86, 12),
               "faithful_restart": _reference_record(0.87, 4, lr=0.02),
               "faithful_chunk2": _reference_record(0.88, 10, lr=0.04),
               "faithful_chunk3": _reference_record(0.885, 6, lr=0.02),
               **{name: _reference_record(0.90, 6, batch_norm=True, aux=False, lr=0.05)
                  for name in ("bn_scale_ft", "bn_scale_ft_s1", "bn_scale_ft_s2")},
               **{name: _reference_record(0.90, 16, batch_norm=True)
                  for name in ("bn_scale", "bn_scale_s1", "bn_scale_s2")},
               "faithful_noaux": _reference_record(0.84, 12, aux=False), "init_pytorch": _reference_record(0.10, 1),
               "init_he": _reference_record(0.44, 1), "init_caffe": _reference_record(0.43, 1)}
    for name, record in records.items():
        reference.publish(name, record, f"python benchmarks/reference_cpu.py {name}", results=folder,
                          pretrained=tmp_path / "pretrained", scratch=tmp_path)
    (folder / "cpu_speed.json").write_bytes((repo_root / "benchmarks" / "results" / "cpu_speed.json").read_bytes())
    monkeypatch.setenv("COURSE_RESULTS", str(folder))
    return folder


def test_chapter7_draws_the_reference_runs(repo_root, reference_results, monkeypatch, shown, capsys):
    glued = {}
    namespace = {"glue": lambda name, value, display=True: glued.__setitem__(name, value), "plt": plt}
    monkeypatch.setattr(pretrained, "available", lambda: ["googlenet_cifar", "googlenet_cifar_faithful"])
    _exec(_cells_by_id(repo_root, "07_training_cifar10.ipynb", CH7_RESULT_CELLS), namespace)
    printed = capsys.readouterr().out
    (table,) = [str(x) for x in shown]
    for run, accuracy in (("bn", "91.00%"), ("faithful_noaux", "84.00%"), ("init_pytorch", "10.00%")):
        assert f"| {run} |" in table and f"{accuracy} of 10,000" in table
    assert "commit abc1234" in table and "not in this copy" not in printed
    # the aux ablation: 86% with the heads, 84% without, 12 epochs each; two points is four times
    # the noise of a difference on 10,000 images (sqrt(2 * 0.86 * 0.14 / 10,000) = 0.49 points)
    assert [glued[k] for k in ("aux_with", "aux_without", "aux_diff", "aux_noise", "aux_epochs")] == \
        ["86.00", "84.00", "2.00", "0.5", 12]
    assert glued["aux_verdict"] == "helped"
    assert (glued["aux_first_with"], glued["aux_first_without"]) == (f"{86 / 12:.1f}", f"{84 / 12:.1f}")
    # learning curves, the init bars, the frontier of the BN run
    assert len(plt.get_fignums()) == 3
    assert glued["init_pytorch_acc"] == "10.0" and glued["init_he_acc"] == "44.0" and glued["bn_epochs"] == 16
    assert glued["bn_final_acc"] == "91.00" and glued["cpu_epoch_minutes"] == "6.8"  # median of 401..416 s
    # the restart continues the BN run: its 4 epochs follow bn's 16, in the curves and on the frontier
    assert (glued["bn_best_acc"], glued["bn_verdict"], glued["restart_acc"]) == ("92.00", "reaches it", "92.00")
    assert glued["restart_reading"] == "a real gain of 1.00 points"  # 2 sigma of the difference: 0.81
    assert [glued[k] for k in ("restart_epochs", "restart_lr", "bn_lr", "restart_first_acc")] == \
        [4, "0.02", "0.1", "23.00"]
    curves, _, frontier = (plt.figure(n).axes[0] for n in plt.get_fignums())
    restart_curve = next(line for line in curves.get_lines() if line.get_label() == "bn_restart")
    assert list(restart_curve.get_xdata()) == [17, 18, 19, 20]
    # the faithful restart: 87% after 4 more epochs against 86%, 2 sigma of the difference 0.98 points
    assert glued["faithful_more"].startswith("trained 4 more epochs on a one-cycle schedule peaking at a learning "
                                             "rate of 0.02 instead of 0.1")
    assert glued["faithful_more"].endswith("ended at 87.00%: a real gain of 1.00 points. "
                                           "The better of the two runs reaches the target")
    faithful_more = next(line for line in curves.get_lines() if line.get_label() == "faithful_restart")
    assert list(faithful_more.get_xdata()) == [13, 14, 15, 16]  # after the faithful run's 12 epochs
    bn_line, restart_line = frontier.get_lines()[:2]
    assert restart_line.get_xdata()[0] == bn_line.get_xdata()[-1] and restart_line.get_ydata()[0] == 91.0
    assert len(restart_line.get_xdata()) == 5 and restart_line.get_ydata()[-1] == 92.0
    assert (glued["faithful_acc"], glued["faithful_epochs"], glued["faithful_verdict"]) == ("86.00", 12, "reaches")
    assert glued["faithful_target"] == "85%" and glued["faithful_cpu"].startswith(json.loads(
        (reference_results / "reference_faithful.json").read_text())["cpu"])
    speed = json.loads((reference_results / "cpu_speed.json").read_text())
    bn_auto = next(f for f in speed["fit"] if f["layout"] == "bn" and f["config"] == "auto")
    t4 = 50_000 * 3 * speed["forward_macs"]["bn"] / (bn_auto["matmul_fraction"] * 65e12 / 2)
    assert glued["t4_epoch_seconds"] == f"{t4:.0f}"


@pytest.mark.parametrize("without, verdict", [(0.855, "made no difference larger than the noise"),
                                              (0.80, "helped"), (0.90, "hurt")])
def test_chapter7_weighs_the_aux_ablation_against_the_noise(repo_root, reference_results, shown, without, verdict):
    reference = import_benchmark("reference_cpu")
    reference.publish("faithful_noaux", _reference_record(without, 12, aux=False), "python benchmarks/reference_cpu.py",
                      results=reference_results, pretrained=reference_results.parent / "pretrained",
                      scratch=reference_results.parent)
    glued = {}
    _exec(_cells_by_id(repo_root, "07_training_cifar10.ipynb", CH7_RESULT_CELLS[:1]),
          {"glue": lambda name, value, display=True: glued.__setitem__(name, value), "plt": plt})
    assert glued["aux_verdict"] == verdict
    assert glued["aux_without"] == f"{100 * without:.2f}"


@pytest.mark.parametrize("restart, best, verdict, reading", [
    (0.895, "89.50", "falls short of it by 0.50 points", "a real gain of 1.50 points"),
    (0.879, "88.00", "falls short of it by 2.00 points", "a change of -0.10 points, inside the noise")])
def test_chapter7_says_by_how_much_the_bn_network_misses_its_target(repo_root, reference_results, shown,
                                                                     restart, best, verdict, reading):
    reference = import_benchmark("reference_cpu")
    for name, record in (("bn", _reference_record(0.88, 16, batch_norm=True)),
                         ("bn_restart", _reference_record(restart, 4, batch_norm=True, aux=False, lr=0.02))):
        reference.publish(name, record, "python benchmarks/reference_cpu.py", results=reference_results,
                          pretrained=reference_results.parent / "pretrained", scratch=reference_results.parent)
    glued = {}
    _exec(_cells_by_id(repo_root, "07_training_cifar10.ipynb", CH7_RESULT_CELLS[:1] + ["ch7-frontier-code"]),
          {"glue": lambda name, value, display=True: glued.__setitem__(name, value), "plt": plt})
    assert (glued["bn_best_acc"], glued["bn_verdict"], glued["restart_reading"]) == (best, verdict, reading)


def test_chapter7_reads_the_faithful_restart_against_the_noise_and_the_target(repo_root, reference_results,
                                                                               shown):
    reference = import_benchmark("reference_cpu")
    for name, record in (("faithful", _reference_record(0.73, 6, lr=0.05)),
                         ("faithful_restart", _reference_record(0.735, 4, lr=0.02))):
        reference.publish(name, record, "python benchmarks/reference_cpu.py", results=reference_results,
                          pretrained=reference_results.parent / "pretrained", scratch=reference_results.parent)
    glued = {}
    cells = _cells_by_id(repo_root, "07_training_cifar10.ipynb", CH7_RESULT_CELLS[:1])
    _exec(cells, {"glue": lambda name, value, display=True: glued.__setitem__(name, value), "plt": plt})
    assert "instead of 0.05" in glued["faithful_more"] and "(bf16, on " in glued["faithful_more"]
    assert glued["faithful_more"].endswith("ended at 73.50%: a change of +0.50 points, inside the noise. "
                                           "The better of the two runs is still 11.50 points short of the target")
    (reference_results / "reference_faithful_restart.json").unlink()
    _exec(cells, {"glue": lambda name, value, display=True: glued.__setitem__(name, value), "plt": plt})
    assert glued["faithful_more"] == "has not been trained for this copy of the book"


def test_chapter7_without_results_says_what_is_missing(repo_root, tmp_path, monkeypatch, shown, capsys):
    monkeypatch.setenv("COURSE_RESULTS", str(tmp_path))
    monkeypatch.setattr(pretrained, "available", lambda: ["lenet5_mnist"])
    glued = {}
    _exec(_cells_by_id(repo_root, "07_training_cifar10.ipynb", CH7_RESULT_CELLS),
          {"glue": lambda name, value, display=True: glued.__setitem__(name, value), "plt": plt})
    printed = capsys.readouterr().out
    assert "`python benchmarks/reference_cpu.py bn` makes it" in printed
    assert shown == [] and plt.get_fignums() == [] and glued == {}


class _Tiny(torch.nn.Module):
    """A stand-in network: a linear layer on the image's mean colour."""

    def __init__(self, seed):
        super().__init__()
        torch.manual_seed(seed)
        self.fc = torch.nn.Linear(3, 10)

    def forward(self, x):
        return self.fc(x.float().mean((2, 3)))


def test_chapter8_draws_table3(repo_root, tmp_path, monkeypatch, shown, capsys):
    multicrop = import_benchmark("multicrop_cifar")
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    rows, _ = multicrop.run([_Tiny(0), _Tiny(1)], images, torch.arange(4), preprocess=lambda v: v.float() / 255)
    multicrop.write({"device": "NVIDIA H100", "date": "2026-12-01", "commit": "abc1234", "torch": "2.11",
                     "command": "c", "models": ["googlenet_cifar_bn", "googlenet_cifar_faithful"],
                     "data": "cifar10_jpeg", "images": 4, "rows": rows}, tmp_path)
    monkeypatch.setenv("COURSE_RESULTS", str(tmp_path))
    from course_pkg import evaluate

    glued = {}
    _exec(_cells(repo_root, "08_multicrop.ipynb"),
          {"evaluate": evaluate, "glue": lambda name, value, display=True: glued.__setitem__(name, value)})
    out = capsys.readouterr().out
    # the file's own ensemble rows are in its table; the text's ensemble comes from its own file
    assert "No multi-crop results in this copy" not in out and "No ensemble in this copy" in out
    (table,) = [str(x) for x in shown]
    assert "googlenet_cifar_bn, googlenet_cifar_faithful on 4 test images (NVIDIA H100" in table
    assert evaluate.format_table3(rows) in table
    assert len(plt.get_fignums()) == 1
    # the text's figures are the one-model rows of the file (softmax averaging), 1 / 10 / 144 views
    single = {r["crops"]: r for r in rows if r["models"] == 1 and r["reduce"] == "softmax_mean"}
    assert glued["t3_images"] == "4" and set(single) == {1, 10, 144}
    for crops in (1, 10, 144):
        assert glued[f"t3_err_{crops}"] == f"{100 * (1 - single[crops]['top1']):.2f}"
    assert glued["t3_ms_144"] == f"{single[144]['ms_per_image']:.1f}"


def test_multicrop_rows_choose_the_views(monkeypatch):
    multicrop = import_benchmark("multicrop_cifar")
    images = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    monkeypatch.setattr(multicrop, "load_models", lambda names, device: (["a", "b"], [_Tiny(0), _Tiny(1)]))
    monkeypatch.setattr(multicrop, "load_test_set", lambda limit: (images, torch.arange(3), "synthetic"))
    for rows, crops in (("paper", {1, 10, 144}), ("paper10", {1, 10})):
        result = multicrop.main(["--rows", rows, "--no-write", "--device", "cpu"])
        assert {r["crops"] for r in result["rows"]} == crops
        assert {r["models"] for r in result["rows"]} == {1, 2}  # the first network and the ensemble
        assert {r["reduce"] for r in result["rows"]} == {"softmax_mean"}


def test_chapter8_quotes_the_ensemble(repo_root, tmp_path, monkeypatch, shown, capsys):
    multicrop = import_benchmark("multicrop_cifar")
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    labels = torch.tensor([0, 1, 2, 3, 4, 5])
    schemes = multicrop.cifar_schemes()
    paper = dict(list(schemes.items())[:3])
    env = {"device": "cpu", "date": "2026-12-01", "commit": "abc1234", "torch": "2.14", "command": "c",
           "data": "cifar10_jpeg", "images": 6}
    single, _ = multicrop.run([_Tiny(0)], images, labels, schemes=paper, preprocess=lambda v: v.float() / 255)
    multicrop.write({**env, "models": ["net_a"], "rows": single}, tmp_path)
    rows, _ = multicrop.run([_Tiny(0), _Tiny(1)], images, labels, schemes=paper, preprocess=lambda v: v.float() / 255)
    multicrop.write({**env, "models": ["net_a", "net_b"], "rows": rows}, tmp_path, "multicrop_cifar_ensemble")
    monkeypatch.setenv("COURSE_RESULTS", str(tmp_path))
    from course_pkg import evaluate

    glued = {}
    _exec(_cells(repo_root, "08_multicrop.ipynb"),
          {"evaluate": evaluate, "glue": lambda name, value, display=True: glued.__setitem__(name, value)})
    assert "No ensemble in this copy" not in capsys.readouterr().out
    assert len(shown) == 2 and "net_a, net_b on 6 test images" in str(shown[1])
    by = {(r["models"], r["crops"]): r for r in rows}
    for crops in (1, 10, 144):
        assert glued[f"t3e_err_{crops}"] == f"{100 * (1 - by[2, crops]['top1']):.2f}"
        assert glued[f"t3e_first_{crops}"] == f"{100 * (1 - by[1, crops]['top1']):.2f}"
    assert (glued["t3e_models"], glued["t3e_images"]) == ("net_a and net_b", "6")


def test_chapter8_without_table3_says_how_to_make_it(repo_root, tmp_path, monkeypatch, shown, capsys):
    monkeypatch.setenv("COURSE_RESULTS", str(tmp_path))
    from course_pkg import evaluate

    glued = {}
    _exec(_cells(repo_root, "08_multicrop.ipynb"),
          {"evaluate": evaluate, "glue": lambda name, value, display=True: glued.__setitem__(name, value)})
    out = capsys.readouterr().out
    assert "No multi-crop results in this copy" in out and "No ensemble in this copy" in out and shown == []
    assert glued["t3_err_144"] == "n/a" and glued["t3_images"] == "no"
    assert glued["t3e_err_1"] == "n/a" and glued["t3e_images"] == "no"


def _cells_by_id(repo_root, chapter, ids):
    nb = json.loads((repo_root / "book" / chapter).read_text())
    found = {c.get("id"): "".join(c["source"]) for c in nb["cells"]}
    return [found[i] for i in ids]


def test_chapter7_shows_the_shipped_network(repo_root, course_data, shown, monkeypatch):
    """The trained-network cells of chapter 7, run on the checkpoint the package ships: the
    accuracy they state is the one measured here, and one epoch of fine-tuning at a small learning
    rate keeps the network near it."""
    if "googlenet_cifar" not in pretrained.available():
        pytest.skip("googlenet_cifar is not shipped yet: `python benchmarks/reference_cpu.py bn` trains it "
                    "(about 2.5 hours of a 2-core CPU); the chapter then shows it")
    monkeypatch.setenv("COURSE_QUIET", "1")
    namespace = {"QUICK": True, "torch": torch, "plt": plt, "glue": lambda *a, **k: None}
    exec("from course_pkg import data", namespace)
    _exec(_cells_by_id(repo_root, "07_training_cifar10.ipynb", ["ch7-trained-code", "ch7-finetune-code"]), namespace)
    accuracy, info = namespace["accuracy"], namespace["info"]
    # 1,000 spread test images against the full split's recorded figure (4 sigma + bf16/fp32)
    assert abs(accuracy - info["test_acc"]) <= 4 * (info["test_acc"] * (1 - info["test_acc"]) / 1000) ** 0.5 + 0.01
    assert int(namespace["confusion"].sum()) == 1000 and len(plt.get_fignums()) == 1
    summary, table = (str(x) for x in shown)
    assert f"right {100 * accuracy:.1f}% of the time" in summary and f"{100 * info['test_acc']:.2f}%" in summary
    # a network continued from another run's weights counts the epochs of both
    assert f"after {len(info['history']) + info.get('starts_from', {}).get('epochs', 0)} epochs" in summary
    rows = [line for line in table.splitlines() if line.startswith("| 0.002 |")]
    small_lr = float(rows[0].rsplit("|", 2)[-2].strip().rstrip("%")) / 100
    assert small_lr >= accuracy - 0.05, table
