"""The course's reference runs of googlenet_cifar, trained on a CPU: one command each, resumable.

    python benchmarks/reference_cpu.py bn               # BN layout -> course_pkg/pretrained/googlenet_cifar
    python benchmarks/reference_cpu.py faithful         # the paper's layout (LRN, no BN, aux 0.3)
    python benchmarks/reference_cpu.py faithful_noaux   # the aux ablation (history only)
    python benchmarks/reference_cpu.py init_pytorch init_he init_caffe   # the init ablation (histories)
    python benchmarks/reference_cpu.py --list           # the runs and their recipes

Each run is ``course train`` (called in-process) with a recipe fixed below, writing its checkpoint
after every epoch to ``.cache/reference/<run>.pt`` (git-ignored) with the optimizer state beside
it.  Run the same command again after an interruption and it continues after the last finished
epoch: the recipe must not change in between (``fit`` refuses to resume a run with other
settings).  Once every epoch is done, the command

- writes ``benchmarks/results/reference_<run>.json`` and ``.md``: the per-epoch history (test
  accuracy on the full 10,000-image test split, training and test seconds), the command, the
  CPU model, threads, date, commit, and the training minutes of this machine;
- for the runs that ship weights, copies them (fp16 ``state_dict``; no optimizer state) with the
  same metadata into ``course_pkg/pretrained/``.

The minutes are wall-clock minutes of the whole machine (every core, ``threads`` threads): that
is what a student with the same CPU waits.  Keep the machine otherwise idle while a run trains.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _meta import REPO, RESULTS, commit, device_name  # noqa: E402

PRETRAINED = REPO / "course_pkg" / "pretrained"
SCRATCH = REPO / ".cache" / "reference"

# run -> model keyword arguments, `course train` recipe flags, the name it ships under (None:
# history only), whether the shipped weights keep the auxiliary heads, and what it shows.
# batch 128: on the 2-core CPU a step of 128 images runs as fast per image as larger batches,
# and a short run learns more from twice the optimizer steps of batch 256.
RUNS: dict[str, dict] = {
    "bn": dict(
        kw={"stem": "16", "batch_norm": True},
        recipe={"epochs": 16, "batch_size": 128, "lr": 0.1, "weight_decay": 5e-4,
                "label_smoothing": 0.1, "schedule": "onecycle", "warmup": 0.2},
        ships="googlenet_cifar", keep_aux=False,
        what="BN layout (BN after every conv, no LRN), aux heads 0.3: the course's reference"),
    "faithful": dict(
        kw={"stem": "16", "batch_norm": False, "init": "he"},
        recipe={"epochs": 12, "batch_size": 128, "lr": 0.05, "weight_decay": 5e-4,
                "label_smoothing": 0.1, "schedule": "onecycle", "warmup": 0.2},
        ships="googlenet_cifar_faithful", keep_aux=True,  # assignment 3's grader loads the aux heads
        what="paper-faithful: LRN, no BN, true 5x5, aux heads 0.3, He init"),
    "faithful_noaux": dict(
        kw={"stem": "16", "batch_norm": False, "init": "he", "aux_logits": False},
        recipe={"epochs": 12, "batch_size": 128, "lr": 0.05, "weight_decay": 5e-4,
                "label_smoothing": 0.1, "schedule": "onecycle", "warmup": 0.2},
        ships=None, keep_aux=False,
        what="paper-faithful without the auxiliary heads (the aux ablation)"),
    **{f"init_{init}": dict(
        kw={"stem": "16", "batch_norm": False, "init": init},
        recipe={"epochs": 3, "batch_size": 128, "lr": 0.05, "weight_decay": 5e-4,
                "label_smoothing": 0.1, "schedule": "onecycle", "warmup": 0.2},
        ships=None, keep_aux=False,
        what=f"paper-faithful, {label} (the init ablation)")
       for init, label in (("pytorch", "PyTorch's default init"), ("he", "He (Kaiming normal, fan-in) init"),
                           ("caffe", "Caffe's Xavier + bias 0.2 (the BVLC model)"))},
}


def course_args(name: str, threads: int | None) -> list[str]:
    run = RUNS[name]
    args = ["train", "--model", "googlenet_cifar", "--data", "cifar10",
            "--kw", *[f"{k}={v}" for k, v in run["kw"].items()],
            "--out", str((SCRATCH / f"{name}.pt").relative_to(REPO)), "--seed", "0", "--no-progress"]
    for key, value in run["recipe"].items():
        args += ["--" + key.replace("_", "-"), str(value)]
    if threads:
        args += ["--threads", str(threads)]
    return args


def cpu_minutes(history: list[dict]) -> float:
    """Wall-clock minutes the run trained and tested, summed over its epochs (and resumes)."""
    return sum(r["seconds"] + (r.get("val_seconds") or 0.0) for r in history) / 60


def publish(name: str, record: dict, command: str) -> dict:
    """Write the results files of a finished run and, if it ships, its weights and metadata."""
    import torch

    from course_pkg.checkpoint import load_checkpoint, save_checkpoint

    run = RUNS[name]
    history = record["history"]
    result = {
        "run": name, "what": run["what"], "model": record["model"], "model_kwargs": record["model_kwargs"],
        "recipe": run["recipe"], "command": command, "course_train_command": record.get("command"),
        "cpu": device_name("cpu"), "threads": record.get("cpu_threads"), "torch": torch.__version__,
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d"), "commit": record.get("commit"),
        "data": "cifar10_jpeg (JPEG q75 copy), official 10,000-image test split",
        "precision": record["settings"]["precision"] if "settings" in record else None,
        "test_acc": history[-1]["val_acc"], "test_n": history[-1].get("val_n"),
        "cpu_minutes": round(cpu_minutes(history), 1),
        "history": [{"epoch": r["epoch"], "train_loss": r["train_loss"], "train_acc": r["train_acc"],
                     "test_acc": r["val_acc"], "lr": r["lr"], "seconds": round(r["seconds"], 1),
                     "test_seconds": round(r.get("val_seconds") or 0.0, 1),
                     "images_per_s": round(r["images_per_s"], 1)} for r in history],
        "ships": run["ships"],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"reference_{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / f"reference_{name}.md").write_text(markdown(result))
    if run["ships"]:
        state, meta = load_checkpoint(SCRATCH / f"{name}.pt")
        if not run["keep_aux"]:
            state = {k: v for k, v in state.items() if not k.startswith(("aux1.", "aux2."))}
            meta["model_kwargs"] = {**meta["model_kwargs"], "aux_logits": False}
        meta.update(reference_run=name, cpu_minutes=result["cpu_minutes"], cpu=result["cpu"],
                    test_acc=result["test_acc"], test_n=result["test_n"], published_by=command)
        target = PRETRAINED / f"{run['ships']}.pt"
        save_checkpoint(target, state, meta)
        from course_pkg.checkpoint import load_checkpoint as _reload  # the JSON is what the file holds
        target.with_suffix(".json").write_text(json.dumps(_reload(target)[1], indent=2) + "\n")
    return result


def markdown(result: dict) -> str:
    lines = [f"# Reference run `{result['run']}`: {result['what']}", "",
             f"CPU: {result['cpu']} · date: {result['date']} · commit: {result['commit']} · "
             f"torch {result['torch']} · precision {result['precision']} · data: {result['data']}", "",
             f"Command: `{result['command']}`", "",
             f"Test accuracy after the last epoch: **{result['test_acc']:.2%}** on {result['test_n']:,} "
             f"images, after {result['cpu_minutes']} minutes of this machine (training and the test "
             "pass of every epoch).", "",
             "| epoch | train loss | train acc | test acc | minutes so far | img/s | lr at end |",
             "|---|---|---|---|---|---|---|"]
    elapsed = 0.0
    for r in result["history"]:
        elapsed += r["seconds"] + r["test_seconds"]
        lines.append(f"| {r['epoch']} | {r['train_loss']:.4f} | {r['train_acc']:.4f} | {r['test_acc']:.4f} | "
                     f"{elapsed / 60:.1f} | {r['images_per_s']:.0f} | {r['lr']:.4g} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="*", metavar="RUN", help="one or more of: " + ", ".join(RUNS))
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--list", action="store_true", help="print the runs and their recipes")
    args = parser.parse_args(argv)
    unknown = [r for r in args.runs if r not in RUNS]
    if unknown:
        parser.error(f"unknown run {', '.join(unknown)}; choose from {', '.join(RUNS)}")
    os.chdir(REPO)  # the recorded commands name paths relative to the repository
    if args.list or not args.runs:
        for name, run in RUNS.items():
            print(f"{name:15} {run['what']}\n{'':15} course {' '.join(course_args(name, args.threads))}")
        return 0
    from course_pkg.cli import main as course

    SCRATCH.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/reference_cpu.py " + " ".join(sys.argv[1:] if argv is None else argv)
    for name in args.runs:
        status = course(course_args(name, args.threads))
        if status != 0:
            print(f"reference run {name}: course train failed with status {status}", file=sys.stderr)
            return status
        record = json.loads((SCRATCH / f"{name}.json").read_text())
        if len(record["history"]) < RUNS[name]["recipe"]["epochs"]:
            print(f"reference run {name}: only {len(record['history'])} epochs recorded", file=sys.stderr)
            return 1
        result = publish(name, record, command)
        print(f"reference run {name}: test accuracy {result['test_acc']:.4f} after {result['cpu_minutes']} "
              f"minutes; wrote benchmarks/results/reference_{name}.json"
              + (f" and course_pkg/pretrained/{RUNS[name]['ships']}.pt" if RUNS[name]["ships"] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
