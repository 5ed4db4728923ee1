"""What the 144 views cost beyond the forward passes: GoogLeNet's multi-crop evaluation throughput.

    python benchmarks/multicrop_throughput.py [--batch 576] [--images 32] [--bf16] [--channels-last]
    python benchmarks/multicrop_throughput.py --quick          # tiny CPU smoke run, writes nothing

Times, on one device, the paper-faithful ``create("googlenet")`` in eval mode:

* **plain**: forward passes of ready-made, normalised ``batch x 3 x 224 x 224`` tensors;
* **multi-crop**: ``course_pkg.evaluate.predict_multicrop(..., "googlenet144", chunk_size=batch)``
  on uint8 photographs of ``--image-size`` (ImageNet's typical 375x500) already on the device:
  resizing to 256/288/320/352, cutting the 144 views, normalising them, the same forward passes
  with ``batch`` views each, and the softmax averaging;
* **views only**: view generation + normalisation without the network.

and reports views per second for each and the overhead ``time(multi-crop) / time(plain, same
number of views) - 1``.  The course's target is an overhead of at most 10% on an H100; only a CUDA run
without ``--quick`` is judged against it.  Writes ``benchmarks/results/multicrop_throughput.{json,md}``
(``--quick`` writes only when ``--out`` is given).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _meta import RESULTS, meta  # noqa: E402

from course_pkg import evaluate as ev  # noqa: E402
from course_pkg.models import create  # noqa: E402

TARGET_OVERHEAD = 0.10  # view generation and averaging cost <= 10% on top of the forwards
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

QUICK = dict(device="cpu", crop=32, scales=(37,), image_size=(40, 53), images=1, batch=36, repeats=1, warmup=0,
             model_kwargs={"num_classes": 10})


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device: torch.device, repeats: int, warmup: int = 1) -> list[float]:
    for _ in range(warmup):  # cuDNN autotuning, allocator
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


def measure(
    model: torch.nn.Module,
    device: torch.device,
    *,
    crop: int = 224,
    scales: tuple[int, ...] = ev.PAPER_SCALES,
    image_size: tuple[int, int] = (375, 500),
    images: int = 32,
    batch: int = 576,
    repeats: int = 5,
    warmup: int = 1,
    autocast: torch.dtype | None = None,
    channels_last: bool = False,
) -> dict:
    """Median seconds of each of the three runs and the derived views/s and overhead."""
    model = model.to(device).eval()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    v = ev.n_views("googlenet144", scales)
    # the forward passes predict_multicrop makes: views with the same pixels run once (a square
    # image's three squares), so the plain baseline runs as many
    total_views = images * len(ev.distinct_views(*image_size, "googlenet144", crop, scales)[0])
    g = torch.Generator().manual_seed(0)
    photos = torch.randint(0, 256, (images, 3, *image_size), generator=g, dtype=torch.uint8).to(device)
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)

    def normalise(x: torch.Tensor) -> torch.Tensor:
        return (x.float().div_(255) - mean) / std

    ready = normalise(torch.randint(0, 256, (batch, 3, crop, crop), generator=g, dtype=torch.uint8).to(device))
    if channels_last:
        ready = ready.contiguous(memory_format=torch.channels_last)
    n_full, rest = divmod(total_views, batch)
    amp = (lambda: torch.autocast(device.type, dtype=autocast)) if autocast is not None else None

    def plain() -> None:
        with torch.inference_mode(), (amp() if amp else nullcontext()):
            for _ in range(n_full):
                model(ready)
            if rest:
                model(ready[:rest])

    def multicrop() -> None:
        ev.predict_multicrop(model, photos, "googlenet144", crop=crop, scales=scales, chunk_size=batch,
                             preprocess=normalise, autocast=autocast, channels_last=channels_last)

    per_views = max(1, batch // v)

    def views_only() -> None:
        with torch.inference_mode():
            for i in range(0, images, per_views):
                views, _ = ev.multicrop_views(photos[i : i + per_views], "googlenet144", crop, scales)
                normalise(views)

    t_plain = statistics.median(_timed(plain, device, repeats, warmup))
    t_multi = statistics.median(_timed(multicrop, device, repeats, warmup))
    t_views = statistics.median(_timed(views_only, device, repeats, warmup))
    return {
        "views_per_image": v,
        "total_views": total_views,
        "seconds_plain": t_plain,
        "seconds_multicrop": t_multi,
        "seconds_views_only": t_views,
        "views_per_s_plain": total_views / t_plain,
        "views_per_s_multicrop": total_views / t_multi,
        "views_per_s_generation_only": total_views / t_views,
        "overhead": t_multi / t_plain - 1.0,
    }


def write(result: dict, out_dir: Path, stem: str = "multicrop_throughput") -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    js, md = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    js.write_text(json.dumps(result, indent=2) + "\n")
    r = result
    verdict = {True: "met", False: "NOT met", None: "not judged (only a full CUDA run is)"}[r["target_met"]]
    lines = [
        "# GoogLeNet 144-view evaluation: throughput and overhead",
        "",
        f"Device: {r['device']} · date {r['date']} · commit {r['commit']} · torch {r['torch']}"
        + (" · **quick smoke setting, not a measurement**" if r["quick"] else ""),
        f"Command: `{r['command']}`",
        f"Setting: create(\"googlenet\") eval, crop {r['crop']}, scales {r['scales']}, {r['images']} images of "
        f"{r['image_size'][0]}x{r['image_size'][1]} (uint8 on the device), {r['batch']} views per forward, "
        f"autocast {r['autocast']}, channels_last {r['channels_last']}, median of {r['repeats']} repeats",
        "",
        "| run | seconds | views / s |",
        "|---|---:|---:|",
        f"| plain forward (ready tensors) | {r['seconds_plain']:.3f} | {r['views_per_s_plain']:,.0f} |",
        f"| multi-crop (views + forward + averaging) | {r['seconds_multicrop']:.3f} | {r['views_per_s_multicrop']:,.0f} |",
        f"| view generation + normalisation only | {r['seconds_views_only']:.3f} | {r['views_per_s_generation_only']:,.0f} |",
        "",
        f"Overhead of multi-crop over plain forward: **{100 * r['overhead']:.1f}%** "
        f"(target <= {100 * TARGET_OVERHEAD:.0f}% on an H100: {verdict}).",
    ]
    md.write_text("\n".join(lines) + "\n")
    return js, md


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny CPU setting for tests (crop 32, one scale)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--batch", type=int, default=576, help="views per forward pass (576 = 4 images x 144)")
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--image-size", default="375x500", help="HxW of the input photographs")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help=f"results folder (default {RESULTS})")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)

    settings = dict(crop=224, scales=ev.PAPER_SCALES, image_size=tuple(int(s) for s in args.image_size.split("x")),
                    images=args.images, batch=args.batch, repeats=args.repeats, warmup=1,
                    model_kwargs={})
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.quick:
        settings.update({k: v for k, v in QUICK.items() if k != "device"})
        device = args.device or QUICK["device"]
    device = torch.device(device)
    model = create("googlenet", **settings.pop("model_kwargs"))
    autocast = torch.bfloat16 if args.bf16 else None
    numbers = measure(model, device, autocast=autocast, channels_last=args.channels_last, **settings)
    judged = device.type == "cuda" and not args.quick
    result = {
        **meta(device),
        "command": "python benchmarks/multicrop_throughput.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "quick": args.quick,
        **{k: (list(v) if isinstance(v, tuple) else v) for k, v in settings.items()},
        "autocast": str(autocast).replace("torch.", "") if autocast else "off",
        "channels_last": args.channels_last,
        **numbers,
        "target_overhead": TARGET_OVERHEAD,
        "target_met": (numbers["overhead"] <= TARGET_OVERHEAD) if judged else None,
    }
    result["command"] = result["command"].strip()
    print(json.dumps(result, indent=2))
    out = args.out or (None if args.quick else RESULTS)
    if out is not None and not args.no_write:
        for p in write(result, out):
            print("wrote", p)
    return result


if __name__ == "__main__":
    main()
