"""The shape of the paper's Table 3 on CIFAR-10: 1 vs 10 vs 144 views, one model vs an ensemble.

    python benchmarks/multicrop_cifar.py [--models NAME,NAME] [--limit N] [--device cuda] [--bf16]

On one H100, ``--bf16`` over the 10,000 test images is about 2 million forward passes per model
(the 1/10/144-view rows together: 10,000 x (1 + 10 + 4 x 48), as a square image's 144 views hold
48 distinct ones, each run once); on a CPU use ``--limit`` and ``--rows paper`` (the 1, 10 and
144-view rows only), e.g. ``--rows paper --limit 500 --stem multicrop_cifar_ensemble`` for the
ensemble of the shipped networks, or ``--rows paper10`` (1 and 10 views) for the cheapest rows.

Uses the reference ``googlenet_cifar`` checkpoints shipped in ``course_pkg.pretrained`` (all of
them by default; ``benchmarks/reference_cpu.py`` trains them on a CPU), or any
checkpoints written by ``course train`` (``--models a.pt,b.pt,...``: e.g. the BN-layout runs of
``train_cifar.py``, which differ in their recipes as the paper's seven models differed in their
sampling), and the CIFAR-10
test split from ``course_pkg.data`` (the JPEG copy when ``$COURSE_DATA`` points at it).  The
paper's protocol (section 7) is scaled from 224-pixel crops of images resized to 256-352 down to
32-pixel crops:

* 1 view   — the 32x32 test image itself (``"center"``, no resize);
* 10 views — shorter side 37 (= 256 * 32 / 224, rounded), then torchvision's ten crops of 32x32;
* 144 views — shorter sides 37, 41, 46, 50 (= 256, 288, 320, 352 * 32 / 224), ``"googlenet144"``;
  CIFAR images are square, so the three squares coincide and only 48 views are distinct (each
  runs once and counts three times: the same average; the cost column shows both counts);
* 144 views averaged by their logits and by the maximum over views (the paper found max worse),
  and one more 144-view row near the training scale (shorter sides 32, 34, 36, 38).

Softmax probabilities are averaged over views and over models (the paper's rule).  Writes
``benchmarks/results/multicrop_cifar.{json,md}`` with device, date, commit and checkpoints.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _meta import RESULTS, meta, ship_results  # noqa: E402

from course_pkg import evaluate as ev  # noqa: E402

CROP = 32
PAPER_SCALED = tuple(round(s * CROP / ev.PAPER_CROP) for s in ev.PAPER_SCALES)  # (37, 41, 46, 50)
NEAR_NATIVE = (32, 34, 36, 38)


def cifar_schemes(crop: int = CROP) -> dict[str, dict]:
    """Rows of the experiment: label -> keyword arguments of :func:`course_pkg.evaluate.predict_multicrop`."""
    scaled = tuple(round(s * crop / ev.PAPER_CROP) for s in ev.PAPER_SCALES)
    native = tuple(crop + 2 * i * crop // 32 for i in range(4))
    return {
        "1 view (the image)": dict(scheme="center", crop=crop, scales=None),
        f"10 views (ten-crop at {scaled[0]})": dict(scheme="ten", crop=crop, scales=scaled[:1]),
        f"144 views ({'/'.join(map(str, scaled))})": dict(scheme="googlenet144", crop=crop, scales=scaled),
        "144 views, logit mean": dict(scheme="googlenet144", crop=crop, scales=scaled, reduce="logit_mean"),
        "144 views, max": dict(scheme="googlenet144", crop=crop, scales=scaled, reduce="max"),
        f"144 views near native ({'/'.join(map(str, native))})": dict(scheme="googlenet144", crop=crop, scales=native),
    }


# The rows of the paper's Table 3 (1, 10, 144 views averaged by softmax): what a CPU run measures.
PAPER_ROWS = 3


def load_models(names: list[str] | None, device: torch.device) -> tuple[list[str], list[torch.nn.Module]]:
    """The shipped googlenet_cifar checkpoints (or the named ones), in eval mode on ``device``."""
    try:
        from course_pkg import pretrained
    except ImportError as err:  # the package without its pretrained module
        raise SystemExit(f"course_pkg.pretrained is not available ({err}); nothing to evaluate") from None
    shipped = pretrained.available()
    if names is None:
        names = [n for n in shipped if n.startswith("googlenet_cifar")]
    if not names:
        raise SystemExit(
            "no googlenet_cifar checkpoints are shipped in course_pkg/pretrained "
            f"(shipped: {', '.join(shipped) or 'none'}). Train them first (`python benchmarks/reference_cpu.py bn` "
            "and `... faithful`), or name checkpoints with --models."
        )
    from course_pkg.checkpoint import CheckpointError, load_model

    models = []
    for name in names:
        try:
            if name.endswith(".pt"):  # a checkpoint file written by `course train` (e.g. a benchmark run)
                if not Path(name).is_file():
                    raise SystemExit(f"--models: no checkpoint file at {name}")
                model, _ = load_model(name, device)
            else:
                model = pretrained.load(name, device)
        except (ValueError, CheckpointError) as err:
            raise SystemExit(f"--models: {name}: {err}") from None
        models.append(model.eval())
    return [Path(n).stem if n.endswith(".pt") else n for n in names], models


def load_test_set(limit: int | None) -> tuple[torch.Tensor, torch.Tensor, str]:
    """CIFAR-10 test images as uint8 ``[N, 3, 32, 32]``, labels, and where they came from."""
    from course_pkg import data

    images, labels = data.load_arrays("cifar10", "test", limit)
    return data.prepare(images, "cifar10"), torch.as_tensor(labels).long(), data.data_source("cifar10")


def run(
    models: list[torch.nn.Module],
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    schemes: dict[str, dict] | None = None,
    preprocess=None,
    chunk_size: int = 8192,
    autocast: torch.dtype | None = None,
) -> tuple[list[dict], float]:
    """Table-3 rows for 1 model and for the whole ensemble; also the seconds it took."""
    device = next(models[0].parameters()).device
    start = time.perf_counter()
    rows = ev.evaluate_multicrop(
        models,
        images.to(device),
        labels.to(device),
        schemes or cifar_schemes(),
        ensemble_sizes=sorted({1, len(models)}),
        preprocess=preprocess,
        chunk_size=chunk_size,
        autocast=autocast,
    )
    if device.type == "cuda":
        torch.cuda.synchronize()
    return rows, time.perf_counter() - start


def write(result: dict, out_dir: Path, stem: str = "multicrop_cifar") -> tuple[Path, Path]:
    """``<stem>.json`` and ``<stem>.md`` (the markdown table the book includes)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    js, md = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    js.write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Multi-crop evaluation on CIFAR-10 (the shape of the paper's Table 3)",
        "",
        f"Device: {result['device']} · date {result['date']} · commit {result['commit']} · torch {result['torch']}",
        f"Command: `{result['command']}`",
        f"Models (ensemble in this order): {', '.join(result['models'])}",
        f"Data: {result['data']}, {result['images']} test images",
        "",
        ev.format_table3(result["rows"]),
        "",
        "Cost = forward passes per image (views x models). Paper (ILSVRC 2014 val, top-5 error): 1 model "
        "10.07% / 9.15% / 7.89% for 1 / 10 / 144 crops; 7 models 8.09% / 7.62% / 6.67%.",
    ]
    md.write_text("\n".join(lines) + "\n")
    ship_results(out_dir)
    return js, md


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="comma-separated shipped checkpoint names or .pt files written by "
                        "`course train` (default: every googlenet_cifar checkpoint shipped)")
    parser.add_argument("--limit", type=int, default=None,
                        help="N test images spread evenly over the split (default: all 10,000)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--chunk-size", type=int, default=8192, help="views per forward pass")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (a GPU, or a CPU with native bf16)")
    parser.add_argument("--rows", choices=("all", "paper", "paper10"), default="all",
                        help="paper: only the 1 / 10 / 144-view rows of Table 3 (155 views an image instead "
                        "of 587; for a CPU); paper10: only the 1 and 10-view rows (11 views an image: an "
                        "ensemble on a CPU)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON and markdown results")
    parser.add_argument("--stem", default="multicrop_cifar", help="name of the result files")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    names, models = load_models(args.models.split(",") if args.models else None, device)
    images, labels, source = load_test_set(args.limit)
    from course_pkg.data import normalize

    schemes = cifar_schemes()
    if args.rows != "all":
        schemes = dict(list(schemes.items())[:PAPER_ROWS if args.rows == "paper" else PAPER_ROWS - 1])
    rows, seconds = run(
        models,
        images,
        labels,
        schemes=schemes,
        preprocess=lambda v: normalize(v, "cifar10"),
        chunk_size=args.chunk_size,
        autocast=torch.bfloat16 if args.bf16 else None,
    )
    command = ("python benchmarks/multicrop_cifar.py"
               + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip())
    result = {
        **meta(device),
        "command": command.strip(),
        "models": names,
        "data": source,
        "images": int(images.shape[0]),
        "seconds": round(seconds, 1),
        "rows": rows,
    }
    print(ev.format_table3(rows))
    if not args.no_write:
        for p in write(result, args.out, args.stem):
            print("wrote", p)
    return result


if __name__ == "__main__":
    main()
