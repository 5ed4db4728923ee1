"""CPU evaluation cost of the googlenet_cifar stems — what grading a class costs on a 2-core CPU.

    python benchmarks/cpu_eval_cost.py [--images 200] [--repeats 5]

Times eval-mode forward passes (batch 100, fp32, no_grad) of each stem on random 32x32 inputs and
reports the median over repeats, the per-1,000-image extrapolation that the grading budget is
stated in (the course's target: <= 60 s for 1,000 test images), the multiply-adds counted by
course_pkg.profile, and the ratio between the stems.  Writes benchmarks/results/cpu_eval_cost.{json,md}.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time

import torch

from _meta import RESULTS, meta
from course_pkg.models import create
from course_pkg.profile import count_macs, count_params


def seconds_per_image(model: torch.nn.Module, images: int, batch: int, repeats: int,
                      channels_last: bool) -> list[float]:
    x = torch.randn(batch, 3, 32, 32)
    if channels_last:  # what course_pkg.train.evaluate_accuracy does by default
        x = x.contiguous(memory_format=torch.channels_last)
    times = []
    with torch.inference_mode():
        model(x[:8])  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(max(1, images // batch)):
                model(x)
            times.append((time.perf_counter() - start) / (max(1, images // batch) * batch))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200, help="images per timed repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()

    rows = []
    for stem, layout in itertools.product(("16", "32"), ("channels_last", "NCHW")):
        model = create("googlenet_cifar", stem=stem).eval()
        per_image = seconds_per_image(model, args.images, args.batch, args.repeats,
                                      layout == "channels_last")
        median = statistics.median(per_image)
        rows.append({
            "stem": stem,
            "layout": layout,
            "macs": count_macs(model, (3, 32, 32)),
            "params_inference": count_params(create("googlenet_cifar", stem=stem, aux_logits=False)),
            "median_s_per_1000_images": round(1000 * median, 2),
            "repeats_s_per_1000_images": [round(1000 * t, 2) for t in per_image],
            "meets_60s_grading_budget": 1000 * median <= 60,
        })

    def median_of(stem, layout):
        return next(r["median_s_per_1000_images"] for r in rows if (r["stem"], r["layout"]) == (stem, layout))

    ratio = median_of("32", "channels_last") / median_of("16", "channels_last")
    layout_gain = median_of("16", "NCHW") / median_of("16", "channels_last")
    result = {**meta("cpu"), "images_per_repeat": args.images, "batch": args.batch,
              "repeats": args.repeats, "stems": rows, "time_ratio_32_over_16": round(ratio, 2),
              "nchw_over_channels_last_stem16": round(layout_gain, 2)}
    print(json.dumps(result, indent=2))
    if args.no_write:
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cpu_eval_cost.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# googlenet_cifar: CPU evaluation cost by stem",
        "",
        f"Device: {result['device']} · date {result['date']} · commit {result['commit']} · torch {result['torch']}",
        f"Command: `python benchmarks/cpu_eval_cost.py --images {args.images} --repeats {args.repeats}`"
        f" (median of {args.repeats} repeats, batch {args.batch}, fp32, eval mode)",
        "",
        "| stem | 3a runs at | layout | multiply-adds / image | params (inference) | s per 1,000 images (median) "
        "| within 60 s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['stem']} | {r['stem']}x{r['stem']} | {r['layout']} | {r['macs']:,} | "
                     f"{r['params_inference']:,} | "
                     f"{r['median_s_per_1000_images']} | {'yes' if r['meets_60s_grading_budget'] else 'no'} |")
    lines += ["", f"stem 32 / stem 16 time ratio (channels_last): {ratio:.2f}; "
              f"NCHW / channels_last (stem 16): {layout_gain:.2f}",
              "", "Absolute CPU seconds depend on the machine's load; the ratios are the comparison."]
    (RESULTS / "cpu_eval_cost.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
