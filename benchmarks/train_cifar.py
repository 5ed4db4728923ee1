"""CIFAR-10 benchmark of the googlenet_cifar layouts: throughput, time-to-accuracy, final accuracy.

One command, on a GPU (the course's GPU targets are stated for one H100):

    python benchmarks/train_cifar.py                          # every configuration below
    python benchmarks/train_cifar.py --group published --publish   # bn + faithful, shipped
    python benchmarks/train_cifar.py --group ablation tricks  # aux/init, then the recipe's tricks
    python benchmarks/train_cifar.py --only bn --sweep epochs=10,15,20,30 --tag frontier
    python benchmarks/train_cifar.py --only bn --set lr=0.4 batch_size=1024   # try a recipe change

Each configuration is trained by the repo's own training command (``course train``, called
in-process through :func:`course_pkg.cli.main`), with the test split evaluated after every epoch.
The script then reads the JSON the command writes beside each checkpoint and reports:

- **throughput**: median training images/s over epochs 2.. (epoch 1 pays for warm-up/compile)
- **time-to-accuracy**: training seconds (validation excluded, compile included) until the test
  accuracy first reaches each threshold
- **final accuracy**: single-view test accuracy after the last epoch (10,000 images)

``--set KEY=VALUE`` changes the recipe of every run (any ``course train`` option: ``lr``,
``batch_size``, ``epochs``, ``label_smoothing``, ``cutout``, ``schedule``, ``warmup``, ...);
``--sweep KEY=V1,V2,..`` runs every configuration once per value (several ``--sweep`` keys make a
grid). The markdown then adds the **frontier**: final accuracy against training time, with the
points no other run beats on both marked.

Results go to ``benchmarks/results/cifar_<date>_<device>_<tag>.json`` and ``.md`` (device, date,
commit, torch version, the data copy), rewritten after every run so that a run cut short by a
time limit keeps what finished. ``cifar_summary.json``/``.md`` then collect the latest result of
every configuration over all those files; the book reads the summary. ``--publish`` copies the BN
and faithful checkpoints (fp16 state_dict + JSON) into ``course_pkg/pretrained/`` as
``googlenet_cifar_bn`` and ``googlenet_cifar_faithful``. ``--stop-after SECONDS`` starts no new
run once that much wall time has passed (the lent GPU allows 10 minutes per command).

``--quick`` is a plumbing check for the CPU (32 images, one epoch, batches of 16, one thread): it
only proves the script runs end to end.  Its numbers are meaningless, it refuses to write into
``benchmarks/results/`` and its markdown says so in its first line.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _meta import REPO, RESULTS, commit, device_name  # noqa: E402  (device, date, commit stamps)

PRETRAINED = REPO / "course_pkg" / "pretrained"
SCRATCH = REPO / ".cache" / "benchmarks"  # git-ignored: checkpoints of every run

# name -> model keyword arguments (kw), recipe changes (set: `course train` options), epochs
# (None: the recipe's), and what it shows. The init ablation uses the faithful layout (no BN),
# where the init decides whether it trains at all. The speed configurations only measure
# throughput, so they run a few epochs.
ABLATION_EPOCHS = 10
SPEED_EPOCHS = 4
# What a GPU run changes in the CIFAR-10 recipe (course_pkg.recipes.CIFAR10, measured on a 2-core
# CPU at batch 128), every run below starting from it.  All guessed for an H100, not yet recorded
# in benchmarks/results/: a larger batch fills the GPU (0.37 GMAC per image), the peak learning rate
# grows with it, and at GPU speed 30 epochs still fit the time target.
GPU_CHANGES = {"batch_size": 512, "lr": 0.2, "epochs": 30}
CONFIGS: dict[str, dict] = {
    "bn": dict(kw={"batch_norm": True}, epochs=None,
               what="BN layout (Inception-BN style: BN after every conv, no LRN), aux heads 0.3"),
    "faithful": dict(kw={"batch_norm": False}, epochs=None,
                     what="paper-faithful: no BN, LRN, true 5x5, aux heads 0.3, He init"),
    "faithful_noaux": dict(kw={"batch_norm": False, "aux_logits": False}, epochs=None,
                           what="paper-faithful without the auxiliary heads"),
    "init_pytorch": dict(kw={"batch_norm": False, "init": "pytorch"}, epochs=ABLATION_EPOCHS,
                         what="faithful, PyTorch default init"),
    "init_he": dict(kw={"batch_norm": False, "init": "he"}, epochs=ABLATION_EPOCHS,
                    what="faithful, He (Kaiming normal, fan-in) init"),
    "init_caffe": dict(kw={"batch_norm": False, "init": "caffe"}, epochs=ABLATION_EPOCHS,
                       what="faithful, Caffe's Xavier + bias 0.2 (the BVLC model)"),
    # what each trick of the recipe buys: the BN layout with one thing changed
    "bn_noaugment": dict(kw={"batch_norm": True}, set={"augment": False}, epochs=None,
                         what="BN layout without augmentation (no crop, no flip)"),
    "bn_nosmoothing": dict(kw={"batch_norm": True}, set={"label_smoothing": 0.0}, epochs=None,
                           what="BN layout without label smoothing"),
    "bn_cosine": dict(kw={"batch_norm": True}, set={"schedule": "cosine"}, epochs=None,
                      what="BN layout, cosine schedule instead of one-cycle"),
    "bn_step": dict(kw={"batch_norm": True}, set={"schedule": "step"}, epochs=None,
                    what="BN layout, step schedule (x0.1 at 50% and 75%)"),
    "bn_cutout": dict(kw={"batch_norm": True}, set={"cutout": 8}, epochs=None,
                      what="BN layout + cutout 8x8"),
    "bn_noaux": dict(kw={"batch_norm": True, "aux_logits": False}, epochs=None,
                     what="BN layout without the auxiliary heads"),
    # the stem: accuracy and GPU time of 3a at 32x32 (1.52 GMAC) against 16x16 (0.37 GMAC)
    "bn_stem32": dict(kw={"batch_norm": True, "stem": "32"}, epochs=None,
                      what="BN layout, stem keeping 32x32 maps up to 3a"),
    # speed: throughput only (a few epochs)
    "speed_fp32": dict(kw={"batch_norm": True}, set={"precision": "fp32"}, epochs=SPEED_EPOCHS,
                       what="BN layout in fp32 (no autocast): throughput only"),
    "speed_nchw": dict(kw={"batch_norm": True}, set={"channels_last": False}, epochs=SPEED_EPOCHS,
                       what="BN layout, NCHW instead of channels_last: throughput only"),
    "speed_compile": dict(kw={"batch_norm": True}, set={"compile": True}, epochs=SPEED_EPOCHS,
                          what="BN layout under torch.compile: throughput (compile in epoch 1)"),
    "speed_graphs": dict(kw={"batch_norm": True}, set={"compile_mode": "reduce-overhead"}, epochs=SPEED_EPOCHS,
                         what="BN layout, torch.compile with CUDA graphs (reduce-overhead): throughput"),
    "speed_batch1024": dict(kw={"batch_norm": True}, set={"batch_size": 1024, "lr": 0.4}, epochs=SPEED_EPOCHS,
                            what="BN layout, batches of 1024 (lr scaled to 0.4): throughput"),
}
GROUPS: dict[str, list[str]] = {
    "published": ["bn", "faithful"],
    "ablation": ["faithful_noaux", "init_pytorch", "init_he", "init_caffe"],
    "tricks": ["bn_noaugment", "bn_nosmoothing", "bn_cosine", "bn_step", "bn_cutout", "bn_noaux"],
    "stem": ["bn_stem32"],
    "speed": ["speed_fp32", "speed_nchw", "speed_compile", "speed_graphs", "speed_batch1024"],
}
assert sorted(sum(GROUPS.values(), [])) == sorted(CONFIGS), "every configuration is in one group"
PUBLISH = {"bn": "googlenet_cifar_bn", "faithful": "googlenet_cifar_faithful"}
THRESHOLDS = (0.80, 0.85, 0.90, 0.93)

# The GPU targets on one H100 (accuracy, seconds of training) and a naive eager baseline for the
# same (16x16 stem, BN) layout from an H100 run in 2026-11 (its result file is not in this repo).
TARGETS = {"bn": (0.93, 90.0), "faithful": (0.90, 180.0)}
NAIVE_BN_IMAGES_PER_S = 22_700


def parse_assignments(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise SystemExit(f"train_cifar.py: error: {what} expects KEY=VALUE, got {item!r}")
        out[key.strip().replace("-", "_")] = value.strip()
    return out


def train_flags(settings: dict) -> list[str]:
    """`course train` options for recipe settings: {"lr": 0.4, "augment": False} ->
    ["--lr", "0.4", "--no-augment"]."""
    flags = []
    for key, value in settings.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool) or str(value).lower() in {"true", "false"}:
            on = value if isinstance(value, bool) else str(value).lower() == "true"
            flags.append(flag if on else "--no-" + key.replace("_", "-"))
        else:
            flags += [flag, str(value)]
    return flags


def run_label(name: str, point: dict) -> str:
    return name if not point else name + "[" + ",".join(f"{k}={v}" for k, v in point.items()) + "]"


def summarize(name: str, label: str, settings: dict, record: dict, wall_seconds: float) -> dict:
    """Benchmark figures from the JSON `course train` wrote (history per epoch)."""
    history = record["history"]
    speeds = [r["images_per_s"] for r in history]
    steady = speeds[1:] or speeds
    elapsed, reached = 0.0, {}
    for r in history:
        elapsed += r["seconds"]
        for t in THRESHOLDS:
            if f"{t:.2f}" not in reached and r["val_acc"] is not None and r["val_acc"] >= t:
                reached[f"{t:.2f}"] = {"seconds": round(elapsed, 2), "epoch": r["epoch"]}
    final = history[-1]
    return {
        "name": label, "config": name, "what": CONFIGS[name]["what"], "settings": settings,
        "model": record["model"], "model_kwargs": record["model_kwargs"], "epochs": len(history),
        "final_test_acc": final["val_acc"], "best_test_acc": max(r["val_acc"] or 0 for r in history),
        "test_n": final.get("val_n"),
        "train_seconds": round(sum(r["seconds"] for r in history), 2),
        "wall_seconds": round(wall_seconds, 2),
        "images_per_s_median": round(statistics.median(steady), 1),
        "first_epoch_seconds": round(history[0]["seconds"], 2),
        "time_to_accuracy": reached,
        "final_train_loss": final["train_loss"],
        "recipe": record.get("recipe"),
        "history": [{k: r.get(k) for k in ("epoch", "train_loss", "train_acc", "val_acc", "seconds", "lr")}
                    for r in history],
    }


def frontier(runs: list[dict]) -> list[dict]:
    """Runs sorted by training time, each marked `best` if no other run is both faster (or as
    fast) and more accurate (or as accurate) -- the accuracy-against-time frontier."""
    ordered = sorted(runs, key=lambda r: (r["train_seconds"], -r["final_test_acc"]))
    out, best_acc = [], -1.0
    for r in ordered:
        on_front = r["final_test_acc"] > best_acc
        best_acc = max(best_acc, r["final_test_acc"])
        out.append({**r, "frontier": on_front})
    return out


def markdown(results: dict, title: str | None = None) -> str:
    env = results["environment"]
    lines = []
    if env.get("quick"):
        lines += ["**PLUMBING CHECK (--quick) — NOT A RESULT.** 32 images, one epoch; "
                  "these numbers mean nothing.", ""]
    lines += [f"# {title or 'googlenet_cifar on CIFAR-10'} ({env['data']})", ""]
    if "device_name" in env:
        lines += [f"Device: {env['device_name']} · date: {env['date']} · commit: {env['commit']} · "
                  f"torch {env['torch']} · command: `{env['command']}`", ""]
    per_run_env = "environment" in (results["runs"][0] if results["runs"] else {})
    header = ("| run | what | epochs | test images | final test acc | best | train s | img/s (median) | "
              + " | ".join(f"s to {t:.0%}" for t in THRESHOLDS) + " |")
    if per_run_env:
        header += " device · date · commit |"
    lines += [header, "|---" * (8 + len(THRESHOLDS) + per_run_env) + "|"]
    for r in results["runs"]:
        tta = [str(r["time_to_accuracy"].get(f"{t:.2f}", {}).get("seconds", "—")) for t in THRESHOLDS]
        row = (f"| {r['name']} | {r['what']} | {r['epochs']} | {r['test_n']} | {r['final_test_acc']:.4f} | "
               f"{r['best_test_acc']:.4f} | {r['train_seconds']} | {r['images_per_s_median']:.0f} | "
               + " | ".join(tta) + " |")
        if per_run_env:
            e = r["environment"]
            row += f" {e['device_name']} · {e['date'][:10]} · {e['commit']} |"
        lines.append(row)

    by_config: dict[str, list[dict]] = {}
    for r in results["runs"]:
        by_config.setdefault(r["config"], []).append(r)
    for config, runs in by_config.items():
        if len(runs) < 2:
            continue
        lines += ["", f"## Frontier: {config} (final test accuracy against training time)", "",
                  "| run | train s | final test acc | on the frontier |", "|---|---|---|---|"]
        for r in frontier(runs):
            lines.append(f"| {r['name']} | {r['train_seconds']} | {r['final_test_acc']:.4f} | "
                         f"{'yes' if r['frontier'] else ''} |")

    lines += ["", "## Targets (one H100)", ""]
    if not any(name in by_config for name in (*TARGETS, "speed_compile", "speed_graphs", "speed_batch1024")):
        lines.append("- no run of " + ", ".join(TARGETS) + " here: the targets are checked where those run")
    for name, (acc, seconds) in TARGETS.items():
        runs = by_config.get(name, [])
        if not runs:
            continue
        hits = [(r["time_to_accuracy"][f"{acc:.2f}"]["seconds"], r["name"]) for r in runs
                if f"{acc:.2f}" in r["time_to_accuracy"]]
        best = max(runs, key=lambda r: r["best_test_acc"])
        if hits and min(hits)[0] <= seconds:
            verdict = f"met: {acc:.0%} after {min(hits)[0]} s ({min(hits)[1]})"
        else:
            verdict = f"not met: best {best['best_test_acc']:.2%} ({best['name']}, {best['train_seconds']} s)"
            if hits:
                verdict += f"; {acc:.0%} only after {min(hits)[0]} s ({min(hits)[1]})"
        lines.append(f"- {name}: ≥ {acc:.0%} in ≤ {seconds:.0f} s — {verdict}")
    throughput = [r for name in ("bn", "speed_compile", "speed_graphs", "speed_batch1024")
                  for r in by_config.get(name, [])]
    if throughput:
        fastest = max(throughput, key=lambda r: r["images_per_s_median"])
        ratio = fastest["images_per_s_median"] / NAIVE_BN_IMAGES_PER_S
        lines.append(f"- BN-layout throughput ≥ 2x the naive eager baseline ({NAIVE_BN_IMAGES_PER_S:,} img/s, "
                     f"earlier H100 run): {ratio:.2f}x ({fastest['name']}, "
                     f"{fastest['images_per_s_median']:,.0f} img/s) — {'met' if ratio >= 2 else 'not met'}")
    lines += ["", "Time-to-accuracy counts training seconds only (test passes excluded; compile time "
              "included in epoch 1). Throughput is the median over epochs 2 onward. Accuracy is "
              "single-view on the 10,000-image test split of the JPEG copy, which runs lower than "
              "the official files.", ""]
    return "\n".join(lines)


def write_summary(out_dir: Path) -> Path | None:
    """Collect the latest result of every run name over all (non-quick) result files in
    `out_dir` into cifar_summary.json/.md: the figures the book shows."""
    latest: dict[str, dict] = {}
    for path in sorted(out_dir.glob("cifar_2*.json")):
        try:
            results = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        env = results.get("environment", {})
        if env.get("quick") or "runs" not in results:
            continue
        for r in results["runs"]:
            entry = {**r, "environment": {**env, "file": path.name}}
            old = latest.get(r["name"])
            if old is None or old["environment"]["date"] <= env["date"]:
                latest[r["name"]] = entry
    if not latest:
        return None
    order = {name: i for i, name in enumerate(CONFIGS)}
    runs = sorted(latest.values(), key=lambda r: (order.get(r["config"], 99), r["train_seconds"]))
    summary = {"environment": {"data": runs[0]["environment"]["data"],
                               "note": "latest result of each run over benchmarks/results/cifar_2*.json; "
                                       "each run names its own device, date and commit"},
               "runs": runs}
    path = out_dir / "cifar_summary.json"
    path.write_text(json.dumps(summary, indent=2) + "\n")
    path.with_suffix(".md").write_text(markdown(summary, "googlenet_cifar on CIFAR-10: summary of all runs"))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=list(CONFIGS), default=[], help="these configurations")
    parser.add_argument("--group", nargs="+", choices=list(GROUPS), default=[],
                        help="these groups: " + "; ".join(f"{g} = {' '.join(n)}" for g, n in GROUPS.items()))
    parser.add_argument("--epochs", type=int, help="override the recipe's epochs for the main configs")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="recipe change for every run (a `course train` option, e.g. lr=0.4)")
    parser.add_argument("--sweep", nargs="+", default=[], metavar="KEY=V1,V2",
                        help="run every configuration once per value (several keys: a grid)")
    parser.add_argument("--tag", help="name part of the result files (default: from the runs)")
    parser.add_argument("--stem", default="16", choices=["16", "32"])
    parser.add_argument("--compile", action="store_true", help="torch.compile (compile time is counted)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--out-dir", type=Path, default=None, help=f"default: {RESULTS}")
    parser.add_argument("--publish", action="store_true",
                        help="copy the bn/faithful checkpoints into course_pkg/pretrained/")
    parser.add_argument("--stop-after", type=float, metavar="SECONDS",
                        help="start no new run after this much wall time")
    parser.add_argument("--quick", action="store_true", help="CPU plumbing check, tiny settings; not a result")
    args = parser.parse_args(argv)

    from course_pkg.cli import main as course
    from course_pkg.train import pick_device

    device = str(pick_device(args.device))
    out_dir = args.out_dir or RESULTS
    if args.quick and out_dir.resolve() == RESULTS.resolve():
        parser.error("--quick numbers are not results: give --out-dir outside benchmarks/results/")
    if args.quick and args.publish:
        parser.error("--quick checkpoints must not be published")
    fixed = parse_assignments(args.set, "--set")
    sweep = {k: v.split(",") for k, v in parse_assignments(args.sweep, "--sweep").items()}
    if args.publish and sweep:
        parser.error("--publish ships one run per layout: choose the setting, then rerun with --set")
    if "epochs" in fixed and args.epochs:
        parser.error("give the epochs once: --epochs or --set epochs=N")
    if not args.quick and not device.startswith("cuda"):
        print("warning: no GPU; the full benchmark takes days on a CPU (use --quick to check the "
              "plumbing)", file=sys.stderr)
    names = list(dict.fromkeys([n for g in args.group for n in GROUPS[g]] + args.only)) or list(CONFIGS)
    points = [dict(zip(sweep, values)) for values in itertools.product(*sweep.values())] or [{}]
    ckpt_dir = SCRATCH / "cifar" if args.out_dir is None else out_dir / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)

    date = dt.datetime.now(dt.timezone.utc)
    environment = {
        "device": device, "device_name": device_name(device), "date": date.isoformat(timespec="seconds"),
        "commit": commit(), "torch": str(torch.__version__), "quick": args.quick,
        "data": "cifar10_jpeg (JPEG q75 copy), official 10,000-image test split",
        "command": "python benchmarks/train_cifar.py " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    slug = "".join(c if c.isalnum() else "-" for c in environment["device_name"].lower()).strip("-")
    tag = args.tag or "-".join(args.group + args.only) or "all"
    if sweep and not args.tag:
        tag += "-sweep-" + "-".join(sweep)
    tag = "".join(c if c.isalnum() or c in "-_" else "-" for c in tag)[:60]
    stem = f"cifar_{date:%Y%m%d}_{slug[:40]}_{tag}" + ("_quick" if args.quick else "")
    results = {"environment": environment, "runs": [], "not_run": []}

    def write() -> None:
        (out_dir / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
        (out_dir / f"{stem}.md").write_text(markdown(results))
        if not args.quick:
            write_summary(out_dir)

    t_start = time.perf_counter()
    for name, point in itertools.product(names, points):
        label = run_label(name, point)
        fname = "".join(c if c.isalnum() or c in "-_.=," else "_" for c in label)  # checkpoint file name
        if args.stop_after is not None and time.perf_counter() - t_start > args.stop_after:
            results["not_run"].append(label)
            print(f"[{label}] not started: --stop-after {args.stop_after:.0f} s has passed", file=sys.stderr)
            continue
        config = CONFIGS[name]
        kw = {"stem": args.stem, **config["kw"]}
        settings = {**GPU_CHANGES, **config.get("set", {}), **fixed, **point}
        if args.quick:
            settings.update(epochs=1, batch_size=16)
        elif not ({"epochs"} & ({*config.get("set", {}), *fixed, *point})) and (config["epochs"] or args.epochs):
            settings["epochs"] = config["epochs"] or args.epochs
        if args.compile:
            settings.setdefault("compile", True)
        cmd = ["train", "--model", "googlenet_cifar", "--kw", *[f"{k}={v}" for k, v in kw.items()],
               "--data", "cifar10", "--out", str(ckpt_dir / f"{fname}.pt"), "--no-resume",
               "--seed", "0", *train_flags(settings)]
        if args.device:
            cmd += ["--device", args.device]
        if args.quick:
            cmd += ["--limit", "32", "--threads", "1", "--no-progress"]
        print(f"[{label}] course {' '.join(cmd)}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        status = course(cmd)
        if status != 0:
            print(f"[{label}] course train failed with status {status}", file=sys.stderr)
            results["failed"] = {"run": label, "status": status}
            write()
            return status
        record = json.loads((ckpt_dir / f"{fname}.json").read_text())
        results["runs"].append(summarize(name, label, settings, record, time.perf_counter() - t0))
        write()
        if args.publish and name in PUBLISH:
            for suffix in (".pt", ".json"):
                shutil.copyfile(ckpt_dir / f"{fname}{suffix}", PRETRAINED / f"{PUBLISH[name]}{suffix}")

    write()
    print(markdown(results))
    print(f"wrote {out_dir / stem}.json and .md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
