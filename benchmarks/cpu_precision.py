"""Does bf16 training on the CPU learn as well as fp32? A short run, same seed and data, each way.

    python benchmarks/cpu_precision.py              # ~10 minutes on the idle 2-core machine
    python benchmarks/cpu_precision.py --render     # rewrite the markdown from the JSON
    python benchmarks/cpu_precision.py --quick --out-dir /tmp/x    # plumbing check, seconds

The BN layout of ``googlenet_cifar`` (stem 16) trains for a few epochs on a fixed subset of the
CIFAR-10 training split through ``fit``, with the reference recipe's settings (batch 128, one-cycle,
label smoothing 0.1), three times:

- ``fp32``, seed 0 — the reference arithmetic;
- ``bf16``, seed 0 — ``fit``'s default on CPUs with native bf16 (autocast; the weights and the
  optimizer stay fp32). Same initial weights, same batches, same augmentation;
- ``fp32``, seed 1 — how far two fp32 runs that differ only in their seed land apart: the noise
  against which the bf16 - fp32 difference is judged.

All three use channels_last, so precision is the only difference between the first two. Test
accuracy is measured in fp32 on a fixed subset of the test split. The verdict: bf16 matches fp32
when ``|bf16 - fp32|`` is no larger than ``|fp32 seed 1 - fp32 seed 0|`` plus two binomial standard
errors of the test subset (the accuracies are themselves estimates).

Writes ``benchmarks/results/cpu_precision.json`` and ``.md`` with the CPU model, date and commit.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _meta import RESULTS, meta  # noqa: E402

RUNS = [("fp32", 0), ("bf16", 0), ("fp32", 1)]
FULL = {"train_images": 8_000, "test_images": 2_000, "epochs": 2}
QUICK = {"train_images": 64, "test_images": 64, "epochs": 1}



def train_once(precision: str, seed: int, size: dict, batch_size: int) -> dict:
    """One short run; returns its test accuracy (fp32 evaluation) and its training seconds."""
    from course_pkg.data import get_loaders
    from course_pkg.models import create
    from course_pkg.recipes import CIFAR10
    from course_pkg.train import evaluate_accuracy, fit

    torch.manual_seed(seed)
    model = create("googlenet_cifar", stem="16", batch_norm=True)
    train, test = get_loaders("cifar10", batch_size=batch_size, device="cpu", limit=size["train_images"],
                              test_limit=size["test_images"], seed=seed, download=False)
    start = time.perf_counter()
    recipe = CIFAR10.replace(epochs=size["epochs"], precision=precision)  # only these two differ
    history = fit(model, train, **recipe.fit_kwargs(), device="cpu", seed=seed, progress=False)
    seconds = time.perf_counter() - start
    accuracy, n = evaluate_accuracy(model, test, "cpu", precision="fp32")
    return {"precision": precision, "seed": seed, "test_acc": accuracy, "test_n": n, "train_seconds": seconds,
            "train_loss": history.train_loss[-1], "epochs": size["epochs"]}


def verdict(runs: list[dict]) -> dict:
    """bf16 against fp32 (seed 0), judged against the seed-to-seed spread of fp32."""
    by = {(r["precision"], r["seed"]): r for r in runs}
    fp32, bf16, other = by[("fp32", 0)], by[("bf16", 0)], by[("fp32", 1)]
    n = fp32["test_n"]
    p = fp32["test_acc"]
    stderr = (p * (1 - p) / n) ** 0.5
    allowed = abs(other["test_acc"] - fp32["test_acc"]) + 2 * stderr
    return {"bf16_minus_fp32": bf16["test_acc"] - fp32["test_acc"],
            "seed1_minus_seed0_fp32": other["test_acc"] - fp32["test_acc"],
            "two_standard_errors": 2 * stderr, "allowed": allowed,
            "same_accuracy": abs(bf16["test_acc"] - fp32["test_acc"]) <= allowed}


def markdown(result: dict) -> str:
    v = result["verdict"]
    lines = [("**PLUMBING CHECK (--quick): not a result.**\n\n" if result["quick"] else "")
             + "# bf16 against fp32 training on the CPU (googlenet_cifar, BN layout, stem 16)", "",
             f"CPU: {result['device']} · date {result['date']} · commit {result['commit']} · torch {result['torch']}",
             f"Command: `{result['command']}`", "",
             f"{result['size']['epochs']} epochs on {result['size']['train_images']:,} training images (spread over "
             f"the split), batch {result['batch']}, one-cycle peak lr {result['recipe']['lr']}, label smoothing "
             f"{result['recipe']['label_smoothing']}, channels_last in every run; test accuracy in fp32 on "
             f"{result['size']['test_images']:,} test images.", "",
             "| precision | seed | test accuracy | last train loss | training s |", "|---|---|---|---|---|"]
    for r in result["runs"]:
        lines.append(f"| {r['precision']} | {r['seed']} | {100 * r['test_acc']:.2f}% | {r['train_loss']:.4f} | "
                     f"{r['train_seconds']:.0f} |")
    lines += ["", f"bf16 - fp32 (seed 0): {100 * v['bf16_minus_fp32']:+.2f} points; fp32 seed 1 - seed 0: "
              f"{100 * v['seed1_minus_seed0_fp32']:+.2f} points; two standard errors of the test subset: "
              f"{100 * v['two_standard_errors']:.2f} points.",
              f"**Same accuracy: {'yes' if v['same_accuracy'] else 'NO'}** (|bf16 - fp32| ≤ the seed spread plus "
              f"two standard errors = {100 * v['allowed']:.2f} points).", "",
              "The training seconds are wall-clock seconds of one run each and depend on what else the machine "
              "ran; they are no speed comparison. `benchmarks/cpu_speed.py` measures speed."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="plumbing check on a few images; needs --out-dir")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--render", action="store_true", help="only rewrite cpu_precision.md from cpu_precision.json")
    args = parser.parse_args(argv)
    if args.render:
        result = json.loads((args.out_dir / "cpu_precision.json").read_text())
        result["verdict"] = verdict(result["runs"])
        (args.out_dir / "cpu_precision.md").write_text(markdown(result))
        return 0
    if args.quick and args.out_dir.resolve() == RESULTS.resolve():
        parser.error("--quick writes plumbing numbers: give --out-dir outside benchmarks/results/")
    from course_pkg.train import cpu_has_native_bf16

    if not cpu_has_native_bf16():
        print("this CPU has no native bf16: fit trains in fp32 here, so there is nothing to compare", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    size = QUICK if args.quick else FULL
    from course_pkg.recipes import CIFAR10

    batch = 16 if args.quick else CIFAR10.batch_size
    runs = []
    for precision, seed in RUNS:
        runs.append(train_once(precision, seed, size, batch))
        print(f"{precision} seed {seed}: test accuracy {runs[-1]['test_acc']:.4f} in {runs[-1]['train_seconds']:.0f} s",
              flush=True)
    command = "python benchmarks/cpu_precision.py" + ("" if argv is None and len(sys.argv) == 1 else
                                                      " " + " ".join(sys.argv[1:] if argv is None else argv))
    result = {**meta(torch.device("cpu")), "command": command, "quick": args.quick, "size": size, "batch": batch,
              "recipe": CIFAR10.replace(epochs=size["epochs"]).as_dict(), "runs": runs, "verdict": verdict(runs)}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "cpu_precision.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out_dir / "cpu_precision.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
