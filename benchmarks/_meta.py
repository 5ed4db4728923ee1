"""Device, date and commit for every published benchmark result."""

from __future__ import annotations

import datetime as _dt
import os
import platform
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def commit() -> str:
    """Short hash of the code that runs (``-dirty`` if it has uncommitted changes); on a copy
    without .git (the lent GPU machine) the caller names it in ``$COURSE_COMMIT``."""
    from course_pkg.cli import source_commit

    return source_commit() or "unknown"


def cpu_model() -> str:
    """The CPU's model name as the kernel reports it (a name only; capabilities come from torch)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "CPU"


def device_name(device: torch.device | str | None = None, threads: int | None = None) -> str:
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    threads = threads or torch.get_num_threads()
    return f"{cpu_model()}{_matrix_units()}, {threads} threads ({os.cpu_count()} cores visible)"


def _matrix_units() -> str:
    """" with AMX" / " without AMX": CPUs of one model name differ in it, and bf16 training speed
    with them (benchmarks/results/cpu_speed.md against cpu_speed_no_amx.md)."""
    query = getattr(torch.cpu, "_is_amx_tile_supported", None)
    try:
        return "" if query is None else (" with AMX" if query() else " without AMX")
    except RuntimeError:  # a torch build without the query's backend
        return ""


def meta(device: torch.device | str | None = None) -> dict:
    return {
        "device": device_name(device),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d"),
        "commit": commit(),
        "torch": torch.__version__,
    }


def ship_results(out_dir: Path) -> None:
    """After writing into ``benchmarks/results/``: copy the files the book reads into the package
    (``course_pkg.results.ship``), so that Colab shows them too. Other folders (tests, plumbing
    checks) are left alone."""
    if Path(out_dir).resolve() == RESULTS.resolve():
        from course_pkg import results

        results.ship(RESULTS)
