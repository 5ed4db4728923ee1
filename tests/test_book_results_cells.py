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


def _glued_chapter7(repo_root, cells=CH7_RESULT_CELLS):
    glued = {}
    namespace = {"glue": lambda name, value, display=True: glued.__setitem__(name, value), "plt": plt}
    _exec(_cells_by_id(repo_root, "07_training_cifar10.ipynb", cells), namespace)
    return glued


def _add_correct(folder, name, right, n=10_000):
    """Give a published record per-image results: the first ``right`` images right."""
    from course_pkg.compare import correct_bits

    path = folder / f"reference_{name}.json"
    record = json.loads(path.read_text())
    bits = torch.zeros(n, dtype=torch.bool)
    bits[:right] = True
    record["test_correct"] = {"images": n, "order": "test split", "bits": correct_bits(bits)}
    path.write_text(json.dumps(record))


def test_chapter7_draws_the_reference_runs(repo_root, reference_results, monkeypatch, shown, capsys):
    monkeypatch.setattr(pretrained, "available", lambda: ["googlenet_cifar", "googlenet_cifar_faithful"])
    glued = _glued_chapter7(repo_root)
    printed = capsys.readouterr().out
    (table,) = [str(x) for x in shown]
    for run, accuracy in (("bn", "91.00%"), ("faithful_noaux", "84.00%"), ("init_pytorch", "10.00%")):
        assert f"| {run} |" in table and f"{accuracy} of 10,000" in table
    # the table states each run's schedules: the faithful chunks' three, in order
    assert "| 12 x 0.1 then 10 x 0.04 then 6 x 0.02 |" in table
    assert "commit abc1234" in table and "not in this copy" not in printed
    # learning curves, the init bars, the frontier of the BN run
    assert len(plt.get_fignums()) == 3
    curves, _, frontier = (plt.figure(n).axes[0] for n in plt.get_fignums())
    x = {line.get_label(): list(line.get_xdata()) for line in curves.get_lines()}
    assert x["bn_restart"] == [17, 18, 19, 20] and x["faithful_restart"] == [13, 14, 15, 16]
    assert x["faithful_chunk2"] == list(range(13, 23)) and x["faithful_chunk3"] == list(range(23, 29))
    # the faithful network in chunks: 12 + 10 + 6 epochs, 88.5% at the end against the 85% target
    assert (glued["faithful_final_acc"], glued["faithful_total_epochs"], glued["faithful_chunks"],
            glued["faithful_verdict"], glued["faithful_target"]) == ("88.50", "28", "3", "reaches", "85%")
    assert glued["faithful_schedules"] == ("12 epochs peaking at 0.1, then 10 epochs peaking at 0.04, "
                                           "then 6 epochs peaking at 0.02")
    # these synthetic records hold no per-image results: no interval, and the text says why
    assert glued["aux_reading"] == ("+2.00 points; no interval: the records of faithful_noaux and faithful hold "
                                    "no per-image results to pair")
    assert (glued["aux_with"], glued["aux_without"], glued["aux_epochs"]) == ("86.00", "84.00", "12")
    assert glued["init_pytorch_acc"] == "10.0" and glued["init_he_acc"] == "44.0" and glued["bn_epochs"] == "16"
    assert glued["bn_final_acc"] == "91.00" and glued["cpu_epoch_minutes"] == "6.8"  # median of 401..416 s
    assert (glued["bn_best_acc"], glued["bn_verdict"], glued["restart_acc"]) == ("92.00", "reaches it", "92.00")
    assert [glued[k] for k in ("restart_epochs", "restart_lr", "bn_lr", "restart_first_acc")] == \
        ["4", "0.02", "0.1", "23.00"]
    bn_line, restart_line = frontier.get_lines()[:2]
    assert restart_line.get_xdata()[0] == bn_line.get_xdata()[-1] and restart_line.get_ydata()[0] == 91.0
    assert len(restart_line.get_xdata()) == 5 and restart_line.get_ydata()[-1] == 92.0
    speed = json.loads((reference_results / "cpu_speed.json").read_text())
    bn_auto = next(f for f in speed["fit"] if f["layout"] == "bn" and f["config"] == "auto")
    t4 = 50_000 * 3 * speed["forward_macs"]["bn"] / (bn_auto["matmul_fraction"] * 65e12 / 2)
    assert glued["t4_epoch_seconds"] == f"{t4:.0f}"


def test_chapter7_pairs_the_aux_ablation_and_the_chunks_on_per_image_results(repo_root, reference_results, shown):
    # 8,600 right with the heads, 8,400 without (a subset of them): 200 discordant images, all for the heads
    _add_correct(reference_results, "faithful", 8_600)
    _add_correct(reference_results, "faithful_noaux", 8_400)
    for name, right in (("faithful_chunk2", 8_800), ("faithful_chunk3", 8_850)):
        _add_correct(reference_results, name, right)
    glued = _glued_chapter7(repo_root, CH7_RESULT_CELLS[:1])
    # d = 0.02, se = sqrt(200 - 200^2 / 10,000) / 10,000 = 0.0014; the interval lies above the paper's 0.5 points
    assert glued["aux_reading"].startswith("+2.00 points (95% interval +1.73 to +2.27): higher on these images")
    assert glued["aux_against_paper"] == "is larger (its interval lies above it)"
    # the last step: 50 images only chunk 3 gets right; the independent-sample interval is far wider
    assert "faithful_chunk3 against faithful_chunk2: +0.50 points" in glued["faithful_steps"]
    assert float(glued["faithful_paired_halfwidth"]) < float(glued["faithful_independent_halfwidth"])


@pytest.mark.parametrize("restart, best, verdict", [(0.895, "89.50", "falls short of it by 0.50 points"),
                                                    (0.879, "88.00", "falls short of it by 2.00 points")])
def test_chapter7_says_by_how_much_the_bn_network_misses_its_target(repo_root, reference_results, shown,
                                                                     restart, best, verdict):
    reference = import_benchmark("reference_cpu")
    for name, record in (("bn", _reference_record(0.88, 16, batch_norm=True)),
                         ("bn_restart", _reference_record(restart, 4, batch_norm=True, aux=False, lr=0.02))):
        reference.publish(name, record, "python benchmarks/reference_cpu.py", results=reference_results,
                          pretrained=reference_results.parent / "pretrained", scratch=reference_results.parent)
    glued = _glued_chapter7(repo_root, CH7_RESULT_CELLS[:1] + ["ch7-frontier-code"])
    assert (glued["bn_best_acc"], glued["bn_verdict"]) == (best, verdict)


def test_chapter7_without_results_says_what_is_missing(repo_root, tmp_path, monkeypatch, shown, capsys):
    monkeypatch.setenv("COURSE_RESULTS", str(tmp_path))
    monkeypatch.setattr(pretrained, "available", lambda: ["lenet5_mnist"])
    glued = _glued_chapter7(repo_root)
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


def _table3_result(tmp_path, images=400):
    """A Table 3 results file written by the benchmark's own functions from made-up probabilities:
    random, except the pad-crop network's mirror, always right (its error must fall), and its padded
    views, always wrong (its error must rise)."""
    bench = import_benchmark("table3_cifar")
    from course_pkg import table3

    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 10, (images,), generator=g)
    probs = {net: {key: torch.rand(images, 10, generator=g).softmax(-1) for key in keys}
             for net, keys in bench.needed_keys(bench.TABLES).items()}
    one_hot = torch.nn.functional.one_hot
    right, wrong = one_hot(labels, 10).float(), one_hot((labels + 1) % 10, 10).float()
    for key in probs["padcrop"]:
        if key[0] == 4:  # a view of the padded image
            probs["padcrop"][key] = wrong
    probs["padcrop"][(0, 32, 32, 0, 0, 32, 32, True)] = right  # the mirror
    result = {"device": "NVIDIA H100", "date": "2026-12-01", "commit": "abc1234", "torch": "2.14", "precision": "bf16",
              "command": "c", "data": "synthetic", "images": images, "networks": {}, "minutes": 3.0,
              "timing_144": {"network": "scale", "views": 144, "distinct": 48, "images": 1000,
                             "predict_multicrop_seconds": 90.0, "single_view_passes_seconds": 100.0, "ratio": 0.9,
                             "max_abs_difference": 1e-7, "same_top1": 1.0},
              "tables": {name: table3.table_rows(rows, probs, labels) for name, rows in bench.TABLES.items()}}
    bench.write(result, tmp_path)
    return result


def test_chapter8_shows_table3_and_glues_its_directions(repo_root, tmp_path, monkeypatch, shown, capsys):
    from test_book import glue_names_used

    from course_pkg import table3_figures

    result = _table3_result(tmp_path)
    monkeypatch.setenv("COURSE_RESULTS", str(tmp_path))
    glued = {}
    _exec(_cells(repo_root, "08_multicrop.ipynb", "table3_figures"),
          {"glue": lambda name, value, display=True: glued.__setitem__(name, value)})
    assert "No table3_cifar.json" not in capsys.readouterr().out
    assert [str(x) for x in shown] == list(table3_figures.tables_markdown(result).values()) and len(shown) == 4
    assert "**The pad-crop network" in str(shown[1]) and "(400 test images)" in str(shown[1])
    assert len(plt.get_fignums()) == 1
    # every direction word is the one its row's interval allows (recomputed here from the numbers)
    words = {name: glued[name] for name in glued if name.endswith("_dir")}
    for name, vs in table3_figures.claims(result).items():
        expected = "falls" if vs["high"] < 0 else "rises" if vs["low"] > 0 else "does not change measurably"
        assert words.pop(name) == expected, (name, vs)
        change = glued[name.removesuffix("_dir") + "_change"]
        assert change.startswith(f"{vs['difference'] + 0.0:+.2f} points, paired 95% interval"), change
    assert words == {}  # no direction word glued that the table does not decide
    assert glued["t3_p_mirror_dir"] == "falls" and glued["t3_p_padded_dir"] == "rises"
    assert glued["t3_p_err_padded_ten"] == "100.00" and glued["t3_ratio"] == "0.90"
    # the chapter's prose shows only names its code or this dict glues
    code = "\n".join(_cells(repo_root, "08_multicrop.ipynb", ""))
    literal = {name for name in glue_names_used(repo_root / "book" / "08_multicrop.ipynb")
               if f'"{name}"' in code}
    assert glue_names_used(repo_root / "book" / "08_multicrop.ipynb") - literal <= set(glued)


def test_chapter8_quotes_the_cost_of_144_views_from_a_timing_run_of_its_own(repo_root, tmp_path, monkeypatch, shown):
    result = _table3_result(tmp_path)
    timing = {"device": "Test CPU with AMX, 2 threads", "date": "2026-12-05", "commit": "def5678",
              "timing_144": {**result["timing_144"], "images": 10_000, "predict_multicrop_seconds": 1234.0,
                             "single_view_passes_seconds": 1200.0, "ratio": 1.028}}
    (tmp_path / "table3_timing.json").write_text(json.dumps(timing))
    monkeypatch.setenv("COURSE_RESULTS", str(tmp_path))
    glued = {}
    _exec(_cells(repo_root, "08_multicrop.ipynb", "table3_figures"),
          {"glue": lambda name, value, display=True: glued.__setitem__(name, value)})
    assert glued["t3_timing_images"] == "10,000" and glued["t3_ratio"] == "1.03"
    assert glued["t3_batched_s"] == "1234" and glued["t3_single_s"] == "1200"
    assert glued["t3_timing_where"] == "Test CPU with AMX, 2 threads; 2026-12-05, commit def5678"
    assert glued["t3_commit"] == "abc1234"  # the tables themselves still come from the table's run


def test_chapter8_without_table3_says_how_to_make_it(repo_root, tmp_path, monkeypatch, shown, capsys):
    monkeypatch.setenv("COURSE_RESULTS", str(tmp_path))
    glued = {}
    _exec(_cells(repo_root, "08_multicrop.ipynb", "table3_figures"),
          {"glue": lambda name, value, display=True: glued.__setitem__(name, value)})
    out = capsys.readouterr().out
    assert "No table3_cifar.json in this copy: `python benchmarks/table3_cifar.py` measures it" in out
    assert shown == [] and glued == {} and plt.get_fignums() == []


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
    glued = {}
    namespace = {"QUICK": True, "torch": torch, "plt": plt,
                 "glue": lambda name, value, display=True: glued.__setitem__(name, value)}
    exec("from course_pkg import data, training_figures as figures\nfrom IPython.display import Markdown, display\n"
         "from course_pkg.recipes import CIFAR10", namespace)
    _exec(_cells_by_id(repo_root, "07_training_cifar10.ipynb", ["ch7-trained-code", "ch7-finetune-code"]), namespace)
    info = pretrained.info("googlenet_cifar")
    accuracy = (namespace["predicted"] == namespace["truth"]).float().mean().item()
    # 1,000 spread test images against the full split's recorded figure (4 sigma + bf16/fp32)
    assert abs(accuracy - info["test_acc"]) <= 4 * (info["test_acc"] * (1 - info["test_acc"]) / 1000) ** 0.5 + 0.01
    assert len(namespace["truth"]) == 1000 and len(plt.get_fignums()) == 1
    assert glued["shipped_here_acc"] == f"{100 * accuracy:.1f}"
    assert glued["shipped_acc"] == f"{100 * info['test_acc']:.2f}"
    # a network continued from another run's weights counts the epochs of both
    assert glued["shipped_epochs"] == str(len(info["history"]) + info.get("starts_from", {}).get("epochs", 0))
    (table,) = (str(x) for x in shown)
    rows = [line for line in table.splitlines() if line.startswith("| 0.002 |")]
    small_lr = float(rows[0].rsplit("|", 2)[-2].strip().rstrip("%")) / 100
    assert small_lr >= accuracy - 0.05, table
