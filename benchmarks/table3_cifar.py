"""The paper's Table 3 on CIFAR-10, on the full test split, every difference with a paired interval.

    python benchmarks/table3_cifar.py                 # all tables, 10,000 images (resumable)
    python benchmarks/table3_cifar.py --limit 500 --out /tmp/t3   # a smaller check, elsewhere

Four tables, from one run (so that their timings agree), of the networks in :data:`NETWORKS`:

- ``views``: the scale-augmented network (run ``bn_scale_ft`` of ``reference_cpu.py``: random-resized
  crops of 25%-100% of the area, as the paper trained on 8%-100%) at 1, 10 and 144 crops with the
  paper's scales made 32-pixel (37 / 41 / 46 / 50 px: 256 / 288 / 320 / 352 x 32 / 224), and at the
  views of the pad-crop training;
- ``counter_example``: the same rows for the pad-crop network (the shipped ``googlenet_cifar``),
  which never saw an object larger than in the test image;
- ``models``: the three seeds of the scale-augmented network averaged, at 1, 10 and 144 crops;
- ``unequal``: an ensemble of two networks of unequal accuracy (pad-crop BN + faithful).

Each distinct view is one batched pass over the test split (:func:`course_pkg.table3.view_probabilities`),
saved in ``.cache/table3/`` as it finishes (run the command again after an interruption).  Last, the
run times :func:`course_pkg.evaluate.predict_multicrop` at 144 views against the 48 single-view
passes of the same views, back to back on the scale network and ``--timing-images`` test images (a
ratio needs no full split; the passes above may have come from the cache of an earlier process).
Writes ``benchmarks/results/table3_cifar.{json,md}``.

    python benchmarks/table3_cifar.py --timing-only   # that timing alone, on all 10,000 images

times the same two routes on the whole test split, without the tables (about an hour on a 2-core
CPU), and writes ``benchmarks/results/table3_timing.{json,md}``; chapter 8 quotes it when present.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _meta import REPO, RESULTS, meta, ship_results  # noqa: E402

from course_pkg import table3  # noqa: E402
from course_pkg.table3 import Row  # noqa: E402

KEPT = REPO / "benchmarks" / "weights"
CACHE = REPO / ".cache" / "table3"
# name -> (where its weights are: a shipped checkpoint or a kept reference run, what it is)
NETWORKS = {
    "scale": ("kept:bn_scale_ft", "BN layout fine-tuned on random-resized crops (25%-100%), seed 0"),
    "scale_s1": ("kept:bn_scale_ft_s1", "the same, seed 1"),
    "scale_s2": ("kept:bn_scale_ft_s2", "the same, seed 2"),
    "padcrop": ("shipped:googlenet_cifar", "BN layout trained on pad-4 crops and mirrors (shipped)"),
    "faithful": ("shipped:googlenet_cifar_faithful", "the paper's layout (LRN, no BN; shipped)"),
}
SEEDS = ("scale", "scale_s1", "scale_s2")


def _view_rows(net: str) -> list[Row]:
    # the paper's 1 / 10 / 144 crops, each against the 1 crop; then the views of the training
    # distribution, each against the image itself
    return [Row(f"{net}: 1 crop", (net,), "centre"),
            Row(f"{net}: 10 crops", (net,), "ten"),
            Row(f"{net}: 144 crops", (net,), "144", against=f"{net}: 10 crops"),
            Row(f"{net}: the image", (net,), "image"),
            Row(f"{net}: + mirror", (net,), "mirror", against=f"{net}: the image"),
            Row(f"{net}: padded ten-crop", (net,), "padded_ten", against=f"{net}: the image")]


TABLES: dict[str, list[Row]] = {
    "views": _view_rows("scale"),
    "counter_example": _view_rows("padcrop"),
    "models": [row for views, n in (("centre", "1 crop"), ("ten", "10 crops"), ("144", "144 crops"))
               for row in (Row(f"1 model, {n}", ("scale",), views),
                           Row(f"3 models, {n}", SEEDS, views, against=f"1 model, {n}"))],
    "unequal": [Row("pad-crop BN", ("padcrop",), "image"),
                Row("pad-crop BN + faithful", ("padcrop", "faithful"), "image"),
                Row("pad-crop BN + scale-augmented BN", ("padcrop", "scale"), "image")],
}


def load_network(name: str, where: str, device: torch.device) -> tuple[torch.nn.Module, Path]:
    from course_pkg import pretrained
    from course_pkg.checkpoint import load_model

    kind, ref = where.split(":", 1)
    path = Path(ref) if kind == "file" else (KEPT / f"{ref}.pt" if kind == "kept" else pretrained.path(ref))
    if not path.is_file():
        hint = {"kept": f"train it first: python benchmarks/reference_cpu.py {ref}",
                "file": "name an existing checkpoint file written by `course train`"}.get(
                    kind, "reinstall the package: its pretrained/ folder lacks it")
        raise SystemExit(f"network {name}: no weights at {path}; {hint}")
    model, _ = load_model(path, device)
    return model.eval(), path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def needed_keys(tables: dict[str, list[Row]]) -> dict[str, list]:
    """Every distinct view each network needs for the tables asked."""
    keys: dict[str, dict] = {}
    for rows in tables.values():
        for row in rows:
            for net in row.networks:
                keys.setdefault(net, {}).update(dict.fromkeys(table3.view_keys(table3.VIEW_SETS[row.views])))
    return {net: list(k) for net, k in keys.items()}


def compute(nets: dict[str, str], tables: dict[str, list[Row]], images, preprocess, precision: str,
            cache: Path, limit: int | None, device) -> tuple[dict, dict, dict]:
    """Per network: the probabilities of each view it needs, and the seconds of each view's pass
    (in this process or the earlier one whose cache it read); and its weights file."""
    from course_pkg.accuracy import AUTOCAST_DTYPES

    probs, seconds, files = {}, {}, {}
    for net, keys in needed_keys(tables).items():
        model, path = load_network(net, nets[net], device)
        files[net] = {"weights": str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path),
                      "sha256_16": _sha(path)}
        store = cache / f"{net}-{files[net]['sha256_16']}-{limit or 'all'}-{precision}.pt"
        saved = torch.load(store) if store.is_file() else {"probs": {}, "seconds": {}}

        def keep(key, p, s, net=net, saved=saved, store=store):
            saved["probs"][key], saved["seconds"][key] = p.half(), s
            store.parent.mkdir(parents=True, exist_ok=True)
            torch.save(saved, store)
            print(f"  {net}: view {len(saved['probs'])}/{len(keys)} {key} in {s:.1f} s", flush=True)

        done = {k: v.float() for k, v in saved["probs"].items()}
        probs[net] = table3.view_probabilities(model, images, keys, preprocess=preprocess,
                                               autocast=AUTOCAST_DTYPES[precision], done=done, on_view=keep)
        seconds[net] = dict(saved["seconds"])
    return probs, seconds, {"files": files}


def time_144(net_file: Path, images, preprocess, precision: str, device) -> dict:
    """``predict_multicrop`` at 144 views against the 48 single-view passes of the same boxes, timed
    back to back in this process on ``images``; and how far the two routes' averages are apart."""
    from course_pkg.accuracy import AUTOCAST_DTYPES
    from course_pkg.checkpoint import load_model
    from course_pkg.evaluate import predict_multicrop

    model, _ = load_model(net_file, device)
    view_set = table3.VIEW_SETS["144"]
    keys = list(dict.fromkeys(table3.view_keys(view_set)))
    seconds = {}

    def timed(key, p, s):
        seconds[key] = s
        print(f"  timing: single-view pass {len(seconds)}/{len(keys)} in {s:.1f} s", flush=True)

    single = table3.view_probabilities(model.eval(), images, keys, preprocess=preprocess,
                                       autocast=AUTOCAST_DTYPES[precision], on_view=timed)
    start = time.perf_counter()
    p = predict_multicrop(model.eval(), images, view_set.scheme, crop=view_set.crop, scales=view_set.scales,
                          preprocess=preprocess, autocast=AUTOCAST_DTYPES[precision], channels_last=True,
                          chunk_size=480)
    batched = time.perf_counter() - start
    mine = table3.set_probabilities(single, view_set)
    return {"views": 144, "distinct": len(keys), "images": len(images),
            "predict_multicrop_seconds": round(batched, 1),
            "single_view_passes_seconds": round(sum(seconds.values()), 1),
            "ratio": round(batched / sum(seconds.values()), 3),
            "max_abs_difference": float((p - mine).abs().max()),
            "same_top1": float((p.argmax(1) == mine.argmax(1)).float().mean())}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", default=",".join(TABLES), help=f"comma-separated, of: {', '.join(TABLES)}")
    parser.add_argument("--limit", type=int, help="N test images spread over the split (default: all 10,000)")
    parser.add_argument("--network", action="append", default=[], metavar="NAME=FILE",
                        help="use this checkpoint file for a network (a plumbing check)")
    parser.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto")
    parser.add_argument("--timing-images", type=int,
                        help="test images (spread over the split) of the 144-view timing (default 1,000; with "
                             "--timing-only, every image); 0: no timing")
    parser.add_argument("--timing-only", action="store_true",
                        help="only the 144-view timing, on --timing-images (default: every image of --limit)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--cache", type=Path, default=CACHE)
    args = parser.parse_args(argv)
    unknown = [t for t in args.tables.split(",") if t not in TABLES]
    if unknown:
        parser.error(f"unknown table {', '.join(unknown)}; choose from {', '.join(TABLES)}")
    tables = {t: TABLES[t] for t in args.tables.split(",")}
    nets = {name: where for name, (where, _) in NETWORKS.items()}
    for item in args.network:
        name, _, file = item.partition("=")
        if name not in nets or not file:
            parser.error(f"--network {item}: give NAME=FILE with NAME one of {', '.join(nets)}")
        nets[name] = f"file:{file}"

    from course_pkg import data
    from course_pkg.device import pick_precision

    device = torch.device("cpu" if not torch.cuda.is_available() else "cuda")
    precision = pick_precision(device, args.precision)
    raw, labels = data.load_arrays("cifar10", "test", args.limit)
    images, labels = data.prepare(raw, "cifar10"), torch.as_tensor(labels).long()

    def preprocess(v):
        return data.normalize(v, "cifar10")

    if args.timing_only:
        return timing_only(args, nets["scale"], images, preprocess, precision, device, argv)
    if args.timing_images is None:
        args.timing_images = 1000
    started = time.perf_counter()
    probs, seconds, info = compute(nets, tables, images, preprocess, precision, args.cache, args.limit, device)
    timing = None
    if args.timing_images and "scale" in probs:
        from course_pkg.data import subset_indices

        subset = images[torch.as_tensor(subset_indices(len(images), min(args.timing_images, len(images))))]
        timing = {"network": "scale", **time_144(REPO / info["files"]["scale"]["weights"], subset, preprocess,
                                                   precision, device)}
        print(f"  144 views batched on scale: {timing['predict_multicrop_seconds']} s against "
              f"{timing['single_view_passes_seconds']} s of single-view passes", flush=True)
    result = {**meta(device), "precision": precision,
              "command": "python benchmarks/table3_cifar.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "data": data.data_source("cifar10"), "images": int(labels.numel()),
              "networks": {n: {"what": NETWORKS[n][1], **info["files"][n],
                               "seconds": round(sum(seconds[n].values()), 1), "views_run": len(seconds[n])}
                           for n in probs},
              "minutes": round((time.perf_counter() - started) / 60, 1),
              "timing_144": timing,
              "tables": {name: table3.table_rows(rows, probs, labels) for name, rows in tables.items()}}
    write(result, args.out)
    return result


def timing_only(args, where: str, images, preprocess, precision: str, device, argv) -> dict:
    """The 144-view timing alone (``--timing-only``), written to ``table3_timing.{json,md}``."""
    from course_pkg.data import subset_indices

    if args.timing_images == 0:
        raise SystemExit("--timing-only with --timing-images 0 times nothing: give a number of images, or "
                         "leave it out for every image")
    n = len(images) if args.timing_images is None else min(args.timing_images, len(images))
    subset = images[torch.as_tensor(subset_indices(len(images), n))]
    _, path = load_network("scale", where, device)
    started = time.perf_counter()
    timing = {"network": "scale", **time_144(path, subset, preprocess, precision, device)}
    result = {**meta(device), "precision": precision,
              "command": "python benchmarks/table3_cifar.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "weights": str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path),
              "sha256_16": _sha(path), "minutes": round((time.perf_counter() - started) / 60, 1),
              "timing_144": timing}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "table3_timing.json").write_text(json.dumps(result, indent=2) + "\n")
    text = "\n".join(["# 144 views batched against 48 single-view passes", "",
                      f"Device: {result['device']} · date {result['date']} · commit {result['commit']} · torch "
                      f"{result['torch']} · precision {result['precision']}", "",
                      f"Command: `{result['command']}`", "", timing_sentence(timing), ""])
    (args.out / "table3_timing.md").write_text(text)
    ship_results(args.out)
    print(text)
    return result


def timing_sentence(t: dict) -> str:
    return (f"144 views of `{t['network']}` on {t['images']:,} test images with `predict_multicrop`: "
            f"{t['predict_multicrop_seconds']} s; the {t['distinct']} "
            f"distinct views as single-view passes: {t['single_view_passes_seconds']} s (ratio "
            f"{t['ratio']}; timed back to back in this run); "
            f"largest difference of a probability {t['max_abs_difference']:.2g}, same top-1 on "
            f"{t['same_top1']:.2%} of the images.")


def markdown(result: dict) -> str:
    lines = ["# The paper's Table 3 on CIFAR-10: views and models, paired", "",
             f"Device: {result['device']} · date {result['date']} · commit {result['commit']} · torch "
             f"{result['torch']} · precision {result['precision']}", "",
             f"Command: `{result['command']}`", "",
             f"Data: {result['data']}, {result['images']:,} test images; softmax averaged over views and "
             "networks (the paper's rule).  Changes are of top-1 error in points, with a paired 95% "
             "interval on the same images; \"falls\" or \"rises\" only where the interval excludes 0.", "",
             "Networks: " + "; ".join(f"`{n}` {v['what']} ({v['weights']}, {v['views_run']} views in "
                                      f"{v['seconds'] / 60:.1f} min)" for n, v in result["networks"].items()), ""]
    for name, rows in result["tables"].items():
        lines += [f"## {name}", "", table3.format_rows(rows), ""]
    t = result.get("timing_144")
    if t:
        lines += [timing_sentence(t), ""]
    return "\n".join(lines)


def write(result: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "table3_cifar.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "table3_cifar.md").write_text(markdown(result))
    ship_results(out)
    print(markdown(result))


if __name__ == "__main__":
    main()
