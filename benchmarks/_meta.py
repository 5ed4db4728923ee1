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


def device_name(device: torch.device | str | None = None) -> str:
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or "CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {torch.get_num_threads()} threads ({os.cpu_count()} cores visible)"


def meta(device: torch.device | str | None = None) -> dict:
    return {
        "device": device_name(device),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d"),
        "commit": commit(),
        "torch": torch.__version__,
    }
