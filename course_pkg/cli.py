"""The ``course`` command line.

    course train --model googlenet_cifar [--kw batch_norm=true ...] --epochs 30 --out bn.pt
    course train --model lenet5 --kw variant=modern --data mnist --out lenet5_mnist.pt
    course evaluate --checkpoint bn.pt [--limit 1000] [--json]
    course evaluate --pretrained lenet5_mnist --json
    course pretrained                  # what ships inside the package
    course grade ...                   # instructor grading (course_pkg.grading)

Multi-GPU: ``torchrun --nproc_per_node=8 -m course_pkg.cli train ...`` (each process reads its
shard of the data; only rank 0 prints and writes the checkpoint).

Hyperparameters default to the data set's recipe in :mod:`course_pkg.recipes` (``CIFAR10``,
``MNIST``); every flag replaces one field.  Mistakes (a missing file, an unknown model, no
data) print one line on stderr and exit with status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

EXIT_USER_ERROR = 2


class UserError(Exception):
    """A mistake in how the command was called; printed without a traceback."""


def _parse_value(text: str) -> Any:
    lowered = text.lower()
    if lowered in {"true", "false"}:
        return lowered == "true"
    if lowered in {"none", "null"}:
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_kwargs(items: Sequence[str] | None) -> dict[str, Any]:
    """``["batch_norm=true", "stem=16"]`` → ``{"batch_norm": True, "stem": 16}``."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise UserError(f"--kw expects key=value (like batch_norm=true), got {item!r}")
        out[key] = _parse_value(value)
    return out


def default_dataset(model: str) -> str:
    return "mnist" if model.startswith("lenet") else "cifar10"


def source_commit() -> str | None:
    """The commit of the code that runs: ``$COURSE_COMMIT`` if set (a copy of the tree without
    its .git, as on a lent GPU machine, says which commit it is), else git's short hash with
    ``-dirty`` for uncommitted changes, else None."""
    given = os.environ.get("COURSE_COMMIT", "").strip()
    if given:
        return given
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, cwd=Path(__file__).resolve().parent,
                               timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def _data():
    try:
        from . import data
    except ImportError as err:  # the data module is part of the package; this is a broken install
        raise UserError(f"course_pkg.data could not be imported ({err}); reinstall course_pkg") from None
    return data


# --------------------------------------------------------------------------------------------
# course train
# --------------------------------------------------------------------------------------------
def _init_from(model, path: str) -> dict:
    """Load ``path``'s weights into the new ``model``; what the checkpoint says of itself, for the meta."""
    from .checkpoint import CheckpointError, load_into

    if not Path(path).is_file():
        raise UserError(f"--init-from {path}: no such file; give a checkpoint written by course train")
    try:
        meta = load_into(model, path)
    except CheckpointError as err:
        raise UserError(f"--init-from: {err}") from None
    return {"path": str(path), **{k: meta[k] for k in ("model", "model_kwargs", "commit", "test_acc") if k in meta}}


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from .models import available, create
    from .checkpoint import load_checkpoint
    from .recipes import RECIPES, Recipe
    from .train import distributed_env, fit, is_main_process, pick_device, seed_everything

    if args.model not in available():
        raise UserError(f"unknown model {args.model!r}; available: {', '.join(available())}")
    dataset = args.data or default_dataset(args.model)
    if dataset not in RECIPES:
        raise UserError(f"unknown data set {dataset!r}; choose one of {', '.join(RECIPES)}")
    # the data set's recipe (course_pkg.recipes), each flag given replacing one field
    flags = {f: getattr(args, f) for f in Recipe.__dataclass_fields__ if getattr(args, f, None) is not None}
    if args.compile_mode:
        if args.compile is False:
            raise UserError("--compile-mode needs compile: drop --no-compile")
        flags["compile"] = args.compile_mode
    for augmentation in ("cutout", "scale"):
        if flags.get(augmentation) and flags.get("augment") is False:
            raise UserError(f"--{augmentation} is an augmentation: it cannot be combined with --no-augment")
    if flags.get("scale") is not None:
        flags["scale"] = tuple(flags["scale"])
    try:
        recipe = RECIPES[dataset].replace(**flags)
    except (TypeError, ValueError) as err:
        raise UserError(f"{err} (check the flags)") from None
    kwargs = parse_kwargs(args.kw)
    seed_everything(args.seed)
    try:
        model = create(args.model, **kwargs)
    except (TypeError, ValueError) as err:
        raise UserError(f"cannot build {args.model!r} with {kwargs}: {err}") from None

    init_from = _init_from(model, args.init_from) if args.init_from else None
    device = pick_device(args.device)
    rank, world, _ = distributed_env()
    data = _data()
    train_loader, test_loader = data.get_loaders(
        **recipe.loader_kwargs(), device=device, limit=args.limit, seed=args.seed, rank=rank, world_size=world,
        channels_last=bool(recipe.channels_last) and device.type == "cuda")
    main = rank == 0
    if main:
        print(f"training {args.model} {kwargs or ''} on {dataset} ({len(train_loader)} batches of "
              f"{recipe.batch_size} per epoch) on {device}", file=sys.stderr)

    def report(history) -> None:
        r = history.records[-1]
        if is_main_process():
            val = f"  test acc {r['val_acc']:.4f}" if r["val_acc"] is not None else ""
            print(f"epoch {r['epoch']}/{recipe.epochs}  loss {r['train_loss']:.4f}  train acc "
                  f"{r['train_acc']:.4f}{val}  {r['seconds']:.1f} s  {r['images_per_s']:.0f} img/s",
                  file=sys.stderr, flush=True)

    meta = {
        "model": args.model, "model_kwargs": kwargs, "dataset": dataset,
        "train_limit": args.limit, "val_split": "test", "seed": args.seed,
        "command": "course " + " ".join(sys.argv[1:] if args.argv is None else args.argv),
        "commit": source_commit(), "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "recipe": {k: v for k, v in recipe.as_dict().items() if k not in ("dataset", "measured_in")},
        "cpu_threads": torch.get_num_threads(),
    }
    if init_from:
        meta["init_from"] = init_from
    history = fit(model, train_loader, val_loader=None if args.no_val else test_loader, **recipe.fit_kwargs(),
                  device=device, seed=args.seed, checkpoint_path=args.out, meta=meta,
                  resume=not args.no_resume, callback=report, progress=args.progress)
    if main:
        # The JSON beside the checkpoint: the same metadata, readable without torch.
        _, saved = load_checkpoint(args.out)
        last = history.records[-1]
        saved["test_acc"], saved["test_n"] = last.get("val_acc"), last.get("val_n")
        saved["train_seconds"] = history.total_seconds
        Path(args.out).with_suffix(".json").write_text(json.dumps(saved, indent=2) + "\n")
        print(json.dumps({"checkpoint": str(args.out), "test_acc": last.get("val_acc"),
                          "test_n": last.get("val_n"), "train_seconds": round(history.total_seconds, 2)}))
    return 0


# --------------------------------------------------------------------------------------------
# course evaluate
# --------------------------------------------------------------------------------------------
def cmd_evaluate(args: argparse.Namespace) -> int:
    from .checkpoint import load_model
    from .train import evaluate_accuracy, pick_device, pick_precision

    device = pick_device(args.device)
    precision = pick_precision(device, args.precision)
    if args.pretrained:
        from . import pretrained

        try:
            ckpt = pretrained.path(args.pretrained)
        except ValueError as err:
            raise UserError(str(err)) from None
    else:
        ckpt = Path(args.checkpoint)
    model, meta = load_model(ckpt, device)
    dataset = args.data or meta.get("dataset") or default_dataset(meta.get("model", ""))
    t0 = time.perf_counter()
    data = _data()
    # limit: images spread evenly over the split (class-balanced on the class-sorted JPEG copy)
    images, labels = data.load_arrays(dataset, "test", args.limit)
    loader = data.GpuLoader(images, labels, args.batch_size, dataset=dataset, device=device)
    load_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    acc, n = evaluate_accuracy(model, loader, device, precision=precision)
    seconds = time.perf_counter() - t0
    result = {
        "accuracy": acc, "n": n, "seconds": round(seconds, 3), "data_seconds": round(load_seconds, 3),
        "model": meta.get("model"), "model_kwargs": meta.get("model_kwargs"), "dataset": dataset,
        "checkpoint": str(ckpt), "device": str(device), "precision": precision, "limit": args.limit,
        "recorded_test_acc": (meta.get("metrics") or {}).get("val_acc"),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['model']} on {dataset} test ({n} images): accuracy {acc:.4f}  "
              f"({seconds:.1f} s on {device}, {precision})")
    return 0


# --------------------------------------------------------------------------------------------
# course pretrained / course grade
# --------------------------------------------------------------------------------------------
def cmd_pretrained(args: argparse.Namespace) -> int:
    from . import pretrained

    rows = []
    for name in pretrained.available():
        meta = pretrained.info(name)
        rows.append({"name": name, "model": meta.get("model"), "model_kwargs": meta.get("model_kwargs"),
                     "dataset": meta.get("dataset"), "test_acc": meta.get("test_acc"),
                     "epochs": meta.get("epoch"), "megabytes": round(pretrained.path(name).stat().st_size / 1e6, 2)})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        acc = f"{r['test_acc']:.4f}" if isinstance(r["test_acc"], float) else "?"
        print(f"{r['name']:<28} {r['model']} {r['model_kwargs']} on {r['dataset']}: test acc {acc}, "
              f"{r['epochs']} epochs, {r['megabytes']} MB")
    return 0


def cmd_grade(argv: Sequence[str]) -> int:
    try:
        from . import grading
    except ImportError as err:
        raise UserError(f"`course grade` needs course_pkg.grading, which could not be imported ({err}); "
                        "install the grading extra: pip install 'course_pkg[grade]'") from None
    if not hasattr(grading, "main"):
        raise UserError("course_pkg.grading has no main(argv); this installation is incomplete")
    return int(grading.main(list(argv)) or 0)


# --------------------------------------------------------------------------------------------
# train.COMPILE_MODES, spelled out so that building the parser does not import torch (a test
# checks that the two agree)
COMPILE_MODES_CLI = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="course", description="Going Deeper: train, evaluate, grade.")
    sub = parser.add_subparsers(dest="command", metavar="{train,evaluate,pretrained,grade}")

    t = sub.add_parser("train", help="train a network (defaults: the data set's recipe in course_pkg.recipes)")
    t.add_argument("--model", required=True, help="a name from course_pkg.models.available()")
    t.add_argument("--kw", nargs="*", default=[], metavar="KEY=VALUE", help="model keyword arguments")
    t.add_argument("--data", choices=["mnist", "cifar10"], help="default: mnist for lenet*, else cifar10")
    t.add_argument("--out", required=True, help="checkpoint file to write every epoch (and resume from)")
    t.add_argument("--epochs", type=int)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--optimizer", choices=["sgd", "adamw"])
    t.add_argument("--lr", type=float, help="peak learning rate")
    t.add_argument("--weight-decay", type=float)
    t.add_argument("--schedule", choices=["onecycle", "cosine", "step", "constant"])
    t.add_argument("--warmup", type=float, help="fraction of the steps spent warming up (onecycle, cosine)")
    t.add_argument("--label-smoothing", type=float)
    t.add_argument("--aux-weight", type=float, help="weight of each auxiliary loss (paper: 0.3)")
    t.add_argument("--precision", choices=["auto", "bf16", "fp16", "fp32"])
    t.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None)
    t.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None)
    t.add_argument("--compile-mode", choices=COMPILE_MODES_CLI,
                   help="torch.compile with this mode (implies --compile); reduce-overhead uses CUDA graphs")
    t.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None)
    t.add_argument("--cutout", type=int, metavar="PIXELS", help="also blank a random square of this size (0: off)")
    t.add_argument("--scale", type=float, nargs=2, metavar=("LOW", "HIGH"),
                   help="random-resized crop of LOW..HIGH of the image area (the paper's scale augmentation, "
                        "aspect 3/4..4/3) instead of the padded crop")
    t.add_argument("--limit", type=int, help="use only N training and N test images, spread evenly over each split")
    t.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: a GPU if there is one)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, help="CPU threads for torch (1 is fastest on a busy CPU)")
    t.add_argument("--no-val", action="store_true", help="skip the test-set pass after each epoch")
    t.add_argument("--no-resume", action="store_true", help="start over even if --out can be resumed")
    t.add_argument("--init-from", metavar="CHECKPOINT",
                   help="start from these weights (same architecture) instead of a fresh initialisation")
    t.add_argument("--progress", action=argparse.BooleanOptionalAction, default="auto")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="test accuracy of a checkpoint")
    src = e.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="a .pt file written by course train / save_checkpoint")
    src.add_argument("--pretrained", help="a shipped checkpoint (see `course pretrained`)")
    e.add_argument("--data", choices=["mnist", "cifar10"], help="default: the one in the checkpoint")
    e.add_argument("--limit", type=int, help="evaluate on N test images spread evenly over the split")
    e.add_argument("--batch-size", type=int, default=500)
    e.add_argument("--precision", choices=("auto", "bf16", "fp16", "fp32"), default="auto",
                   help="auto: bf16 where the device has it natively, else fp32 (fp32: the exact figure)")
    e.add_argument("--device")
    e.add_argument("--threads", type=int, help="CPU threads for torch")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("pretrained", help="list the checkpoints shipped with the package")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_pretrained)

    sub.add_parser("grade", help="grade submissions (arguments go to course_pkg.grading)", add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "grade":
            return cmd_grade(argv[1:])
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help(sys.stderr)
            return EXIT_USER_ERROR
        args.argv = argv
        if getattr(args, "limit", None) is not None and args.limit < 1:
            raise UserError("--limit must be a positive number of images")
        if getattr(args, "threads", None) is not None:
            if args.threads < 1:
                raise UserError("--threads must be at least 1")
            import torch

            torch.set_num_threads(args.threads)
        return args.func(args)
    except KeyboardInterrupt:
        print("course: interrupted (run the same `course train` command again to resume)", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001
        if not _is_user_error(err):
            raise
        print(f"course: error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR


def _is_user_error(err: Exception) -> bool:
    from .checkpoint import CheckpointError

    kinds: tuple[type, ...] = (UserError, CheckpointError, FileNotFoundError, ValueError, PermissionError)
    data = sys.modules.get("course_pkg.data")
    for name in ("DataNotFoundError", "DataError"):
        kind = getattr(data, name, None)
        if isinstance(kind, type):
            kinds += (kind,)
    return isinstance(err, kinds)


if __name__ == "__main__":
    sys.exit(main())
