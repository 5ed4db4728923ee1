"""CPU training speed of googlenet_cifar through ``fit``, against this CPU's own matmul limit.

    python benchmarks/cpu_speed.py                 # 10-20 minutes on the 2-core machine; keep it idle
    python benchmarks/cpu_speed.py --compile       # also torch.compile (inductor), compile time reported

In one run it measures

- the CPU's **matmul rate** in fp32 and bf16 (square matrices, median of repeats): the ceiling
  for convolutions, which oneDNN runs as matrix products;
- ``fit``'s **training images/s** for the BN and the faithful layout (stem 16), each in
  ``fp32_nchw`` (fit's default before bf16 was chosen automatically: fp32 and NCHW on the CPU),
  ``fp32_cl`` (fp32, channels_last) and ``bf16_cl`` (bf16 autocast, channels_last); the row
  ``auto`` repeats the one of these two that ``fit`` takes by default on this CPU (bf16 where it
  is native and its one-layer probe, ``course_pkg.device.cpu_bf16_speedup``, says it pays), so the
  table shows whether the probe chose the faster; with ``--compile``, ``auto`` under
  ``torch.compile``.  Real CIFAR-10 images, the default
  augmentation, SGD, batch 128 (the reference runs' batch).  Each configuration trains several
  short epochs; the figure is the median over the epochs after the first (warm-up);
- a **bare step** for comparison, in the precision ``auto`` chose: forward, loss, backward and
  SGD on one fixed batch, channels_last, no data path, no bookkeeping;
- the ratios, and the achieved multiply-adds per second (training ~ 3x the forward count of
  ``course_pkg.profile.count_macs``) as a fraction of the bf16 matmul rate.

Writes ``benchmarks/results/cpu_speed.json`` and ``.md`` with the CPU model, date and commit.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _meta import RESULTS, meta, ship_results  # noqa: E402

LAYOUTS = {"bn": {"batch_norm": True}, "faithful": {"batch_norm": False, "init": "he"}}
# (name, fit keyword arguments); the row "auto" (what fit and `course train` do by default) is the
# channels_last row of the precision pick_precision chooses here, measured once
CONFIGS = [("fp32_nchw", dict(precision="fp32", channels_last=False)),
           ("fp32_cl", dict(precision="fp32", channels_last=True)),
           ("bf16_cl", dict(precision="bf16", channels_last=True))]
TARGET_RATIO = 2.8           # BN layout, auto over fp32_nchw
TARGET_MATMUL_FRACTION = 0.75


def _amx() -> bool | None:
    """Whether torch sees AMX tiles (Intel Sapphire Rapids and later): bf16 matrix units."""
    query = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(query()) if query is not None else None


def matmul_rate(dtype: torch.dtype, n: int, repeats: int) -> dict:
    """Multiply-adds per second of an n x n matrix product (median over repeats)."""
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    for _ in range(2):
        a @ b
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    return {"n": n, "repeats": repeats, "median_seconds": median, "macs_per_s": n ** 3 / median}


def fit_speed(layout: str, config: dict, images: torch.Tensor, labels: torch.Tensor, batch: int,
              epochs: int, compile: bool = False) -> dict:
    """Training images/s of ``fit`` (median over epochs 2..), the precision it chose, compile time."""
    from course_pkg.data import GpuLoader
    from course_pkg.models import create
    from course_pkg.train import fit, pick_precision

    torch.manual_seed(0)
    model = create("googlenet_cifar", stem="16", **LAYOUTS[layout])
    loader = GpuLoader(images, labels, batch, shuffle=True, augment=True, device="cpu", drop_last=True)
    history = fit(model, loader, epochs=epochs, lr=0.05, progress=False, device="cpu",
                  compile=compile, **config)
    speeds = history.images_per_s
    steady = speeds[1:] or speeds
    return {"layout": layout, "images_per_s": statistics.median(steady), "epochs": [round(s, 1) for s in speeds],
            "first_epoch_seconds": history.seconds[0],
            "precision": pick_precision(torch.device("cpu"), config["precision"])}


def bare_step_speed(layout: str, batch: int, steps: int, precision: str) -> float:
    """Images/s of a bare channels_last SGD step on one fixed batch (median over steps)."""
    from course_pkg.models import create
    from course_pkg.train import googlenet_loss

    torch.manual_seed(0)
    model = create("googlenet_cifar", stem="16", **LAYOUTS[layout]).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))
    criterion = torch.nn.CrossEntropyLoss()
    times = []
    for step in range(steps + 1):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = googlenet_loss(model(x), y, criterion)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step:  # the first step is warm-up
            times.append(time.perf_counter() - t0)
    return batch / statistics.median(times)


def markdown(r: dict) -> str:
    m = r["matmul"]
    lines = [
        "# googlenet_cifar (stem 16): CPU training speed through `fit`", "",
        f"CPU: {r['device']} · date {r['date']} · commit {r['commit']} · torch {r['torch']} · "
        f"torch's CPU capability {r['cpu_capability']['torch']}, native bf16: {r['cpu_capability']['native_bf16']}", "",
        f"Command: `{r['command']}`", "",
        f"Matmul limit ({m['fp32']['n']}² products, median of {m['fp32']['repeats']}): "
        f"fp32 {m['fp32']['macs_per_s'] / 1e9:.0f} GMAC/s, bf16 {m['bf16']['macs_per_s'] / 1e9:.0f} GMAC/s "
        f"(bf16/fp32 = {r['bf16_over_fp32_matmul']:.2f}).", "",
        f"`fit`: {r['images_per_epoch']} real CIFAR-10 images per epoch, batch {r['batch']}, default augmentation, "
        f"{r['epochs']} epochs per configuration, median images/s over epochs 2 onward.", "",
        "| layout | configuration | precision | images/s | x fp32_nchw | GMAC/s (3x forward) | of bf16 matmul rate |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in r["fit"]:
        config = f"{row['config']} (= {row['same_as']})" if row.get("same_as") else row["config"]
        lines.append(f"| {row['layout']} | {config} | {row['precision']} | {row['images_per_s']:.1f} | "
                     f"{row['speedup']:.2f} | {row['gmacs']:.0f} | {row['matmul_fraction']:.0%} |")
    auto = r.get("auto", {"precision": "bf16"})  # records before the probe: auto was bf16 wherever native
    for layout, speed in r["bare_step"].items():
        lines.append(f"| {layout} | bare step ({auto['precision']}, channels_last, no data path) | "
                     f"{auto['precision']} | {speed:.1f} | | | |")
    if "cpu_bf16_speedup" in auto:
        pair = [row for row in r["fit"] if row["config"] in ("fp32_cl", "bf16_cl")]
        fastest = {layout: max((row for row in pair if row["layout"] == layout),
                               key=lambda row: row["images_per_s"])["config"] for layout in r["forward_macs"]}
        lines += ["", f"`auto` chose **{auto['precision']}**: its probe convolves {auto['cpu_bf16_speedup']:.2f}x "
                  f"as fast in bf16 as in fp32 (bf16 needs {auto['min_speedup']}x and native bf16). Through `fit`, "
                  "the faster of fp32_cl and bf16_cl is " + ", ".join(f"{v} for {k}" for k, v in fastest.items()) + "."]
    t = r["targets"]
    lines += ["", "Targets for the BN layout through `fit` (the default configuration):",
              f"- ≥ {TARGET_RATIO}x fp32 NCHW: {t['ratio']:.2f}x — {'met' if t['ratio_met'] else 'not met'}",
              f"- ≥ {TARGET_MATMUL_FRACTION:.0%} of the bf16 matmul rate: {t['matmul_fraction']:.0%} — "
              f"{'met' if t['matmul_fraction_met'] else 'not met'}",
              *([f"- **On this CPU bf16 matrix products are slower than fp32** (bf16/fp32 = "
                 f"{r['bf16_over_fp32_matmul']:.2f}; AMX matrix units: "
                 f"{'yes' if r['cpu_capability'].get('amx') else 'no'}), so the bf16 "
                 "matmul rate is no ceiling here and the fraction above says nothing: compare the images/s."]
                if r["bf16_over_fp32_matmul"] < 1 else []),
              "", "Forward multiply-adds per image (course_pkg.profile.count_macs): "
              + ", ".join(f"{k} {v:,}" for k, v in r["forward_macs"].items()) + ".",
              "Timings on a CPU depend on what else runs: the ratios are the comparison.", ""]
    if r.get("quick"):
        lines.insert(0, "**PLUMBING CHECK (--quick): NOT A RESULT.**\n")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1024, help="training images per epoch")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per configuration (first is warm-up)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--matmul-n", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=7, help="matmul repeats")
    parser.add_argument("--compile", action="store_true", help="also measure torch.compile (inductor)")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    parser.add_argument("--name", default="cpu_speed",
                        help="result file name: keep cpu_speed for the machine that trained the reference runs "
                        "(the book reads it), another name for other CPUs")
    parser.add_argument("--quick", action="store_true", help="tiny plumbing check; not a result")
    parser.add_argument("--render", action="store_true", help="only rewrite <name>.md from <name>.json")
    args = parser.parse_args(argv)
    if args.render:
        (args.out_dir / f"{args.name}.md").write_text(
            markdown(json.loads((args.out_dir / f"{args.name}.json").read_text())))
        return 0
    if args.quick:
        if args.out_dir.resolve() == RESULTS.resolve():
            parser.error("--quick numbers are not results: give --out-dir outside benchmarks/results/")
        args.images, args.epochs, args.batch, args.matmul_n, args.repeats = 16, 2, 8, 64, 2

    from course_pkg.data import load_arrays
    from course_pkg.models import create
    from course_pkg.profile import count_macs
    from course_pkg.device import CPU_BF16_MIN_SPEEDUP, cpu_bf16_speedup
    from course_pkg.train import cpu_has_native_bf16, pick_precision

    images, labels = load_arrays("cifar10", "train", args.images)
    result = {**meta("cpu"),
              "command": " ".join(["python benchmarks/cpu_speed.py", *(sys.argv[1:] if argv is None else argv)]),
              "threads": torch.get_num_threads(), "batch": args.batch, "images_per_epoch": len(labels),
              "epochs": args.epochs, "quick": args.quick,
              "cpu_capability": {"torch": torch.backends.cpu.get_cpu_capability(),
                                 "native_bf16": cpu_has_native_bf16(), "amx": _amx()}}
    result["matmul"] = {name: matmul_rate(dtype, args.matmul_n, args.repeats)
                        for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))}
    result["bf16_over_fp32_matmul"] = result["matmul"]["bf16"]["macs_per_s"] / result["matmul"]["fp32"]["macs_per_s"]
    result["forward_macs"] = {layout: count_macs(create("googlenet_cifar", stem="16", **kw).eval(), (3, 32, 32))
                              for layout, kw in LAYOUTS.items()}
    auto = pick_precision(torch.device("cpu"), "auto")
    result["auto"] = {"precision": auto, "cpu_bf16_speedup": cpu_bf16_speedup(), "min_speedup": CPU_BF16_MIN_SPEEDUP}
    configs = CONFIGS + ([("auto_compiled", dict(precision="auto", channels_last=None))] if args.compile else [])
    rows = []
    for layout in LAYOUTS:
        for name, config in configs:
            print(f"fit: {layout} {name} ...", file=sys.stderr, flush=True)
            row = fit_speed(layout, config, images, labels, args.batch, args.epochs,
                            compile=name.endswith("compiled"))
            row["config"] = name
            rows.append(row)
            if name == f"{auto}_cl":  # what fit does by default here: the same run, not measured twice
                rows.append({**row, "config": "auto", "same_as": name})
    bf16_rate = result["matmul"]["bf16"]["macs_per_s"]
    for row in rows:
        base = next(r for r in rows if r["layout"] == row["layout"] and r["config"] == "fp32_nchw")
        row["speedup"] = row["images_per_s"] / base["images_per_s"]
        macs = 3 * result["forward_macs"][row["layout"]] * row["images_per_s"]
        row["gmacs"] = macs / 1e9
        row["matmul_fraction"] = macs / bf16_rate
    result["fit"] = rows
    steps = 3 if args.quick else 10
    result["bare_step"] = {layout: bare_step_speed(layout, args.batch, steps, auto) for layout in LAYOUTS}
    best_bn = max((r for r in rows if r["layout"] == "bn" and r["config"].startswith("auto")),
                  key=lambda r: r["images_per_s"])
    result["targets"] = {"config": best_bn["config"], "ratio": best_bn["speedup"],
                         "ratio_met": best_bn["speedup"] >= TARGET_RATIO,
                         "matmul_fraction": best_bn["matmul_fraction"],
                         "matmul_fraction_met": best_bn["matmul_fraction"] >= TARGET_MATMUL_FRACTION}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out_dir / f"{args.name}.md").write_text(markdown(result))
    ship_results(args.out_dir)
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
