"""LeNet-5 (modern variant) on MNIST on the CPU: accuracy against training time, and the shipped
checkpoint.

    python benchmarks/train_lenet.py              # 1, 2, 3 and 4 epochs (the MNIST recipe's 4)
    python benchmarks/train_lenet.py --publish    # + copy the recipe's run to course_pkg/pretrained/

Every run is the repo's own training command (``course train --model lenet5 --kw variant=modern
--epochs N --threads T``), called in-process.  The shorter runs answer the book's question "what
does a quick run (≤ 60 s of training on the course's 2-core CPU) reach?"; each is a full
one-cycle schedule over its own number of epochs, not a truncated longer run.

``--threads 1`` is the default because on a shared 2-core machine two torch threads ran about 5x
slower than one (measured while other jobs were running; on an idle machine two may be faster).
Results: ``benchmarks/results/lenet5_mnist_<date>_cpu.{json,md}`` with device, date and commit.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _meta import REPO, RESULTS, commit, device_name  # noqa: E402  (device, date, commit stamps)

PRETRAINED = REPO / "course_pkg" / "pretrained"
SCRATCH = REPO / ".cache" / "benchmarks"  # git-ignored: checkpoints of every run
QUICK_BUDGET_SECONDS = 60.0  # the book's quick mode trains in <= 60 s on the 2-core CPU


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--publish", action="store_true", help="ship the run with the recipe's epochs")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    parser.add_argument("--limit", type=int, help="plumbing checks only: a subset (results not comparable)")
    args = parser.parse_args(argv)

    from course_pkg.cli import main as course
    from course_pkg.recipes import MNIST

    at = commit()  # before --publish writes the checkpoint into the tree, which would read as -dirty
    work = SCRATCH / "lenet" if args.out_dir == RESULTS else args.out_dir / "checkpoints"
    work.mkdir(parents=True, exist_ok=True)
    runs = []
    for epochs in args.epochs:
        out = work / f"lenet5_mnist_{epochs}ep.pt"
        cmd = ["train", "--model", "lenet5", "--kw", "variant=modern", "--data", "mnist",
               "--epochs", str(epochs), "--threads", str(args.threads), "--out", str(out),
               "--no-resume", "--no-progress"]
        if args.limit:
            cmd += ["--limit", str(args.limit)]
        print(f"course {' '.join(cmd)}", file=sys.stderr, flush=True)
        if course(cmd) != 0:
            return 1
        record = json.loads(out.with_suffix(".json").read_text())
        runs.append({"epochs": epochs, "test_acc": record["test_acc"], "test_n": record["test_n"],
                     "train_seconds": round(record["train_seconds"], 1),
                     "within_quick_budget": record["train_seconds"] <= QUICK_BUDGET_SECONDS,
                     "command": record["command"]})
        if args.publish and epochs == MNIST.epochs and not args.limit:
            for suffix in (".pt", ".json"):
                shutil.copyfile(out.with_suffix(suffix), PRETRAINED / f"lenet5_mnist{suffix}")

    date = dt.datetime.now(dt.timezone.utc)
    env = {"device": "cpu", "device_name": device_name("cpu"),
           "threads": args.threads, "date": date.isoformat(timespec="seconds"), "commit": at,
           "load_average_1min": round(os.getloadavg()[0], 2), "limit": args.limit,
           "command": "python benchmarks/train_lenet.py " + " ".join(sys.argv[1:] if argv is None else argv)}
    quick = [r for r in runs if r["within_quick_budget"]]
    best_quick = max(quick, key=lambda r: r["test_acc"]) if quick else None
    result = {"environment": env, "runs": runs, "best_within_60s": best_quick}
    suffix = "_subset" if args.limit else ""
    stem = args.out_dir / f"lenet5_mnist_{date:%Y%m%d}_cpu{suffix}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["# LeNet-5 (modern) on MNIST, CPU", "",
             f"Device: {env['device_name']}, {args.threads} torch thread(s), load average "
             f"{env['load_average_1min']} at the end (a shared machine: times vary) · date: {env['date']} · "
             f"commit: {env['commit']} · command: `{env['command']}`", "",
             "| epochs | test acc | test images | training seconds | ≤ 60 s? |", "|---|---|---|---|---|"]
    for r in runs:
        lines.append(f"| {r['epochs']} | {r['test_acc']:.4f} | {r['test_n']} | {r['train_seconds']} | "
                     f"{'yes' if r['within_quick_budget'] else 'no'} |")
    if best_quick:
        lines += ["", f"Best run within the 60 s quick-mode budget: {best_quick['epochs']} epoch(s), "
                      f"{best_quick['test_acc']:.2%} in {best_quick['train_seconds']} s."]
    lines.append("")
    stem.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
