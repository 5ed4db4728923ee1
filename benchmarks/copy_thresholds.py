"""The measurements behind ``course grade``'s copied-work flags.

    python benchmarks/copy_thresholds.py

Two tables, each row a pair and its measure, beside the threshold the grader flags at
(:mod:`course_pkg.grading.copying`):

- weights: the relative L2 distance between a checkpoint and the shipped faithful network
  (``NEAR_SHIPPED``): copies with noise, further training, the course's own first run (what an
  honest student following assignment 3 runs: same seed, initialisation and recipe; taken from git
  history, commit be28743, when that run was what the package shipped), fresh networks;
- code: the share of a hidden reference definition that a notebook's cell holds
  (``PASTED_REFERENCE``: the course's solutions, pasted source) and the Jaccard similarity of
  two implementations of one specification (``SIMILAR_PAIR``).

Reads only committed files (and git history).  tests/test_grading_free_marks.py runs it.
"""

from __future__ import annotations

import importlib
import inspect
import io
import re
import subprocess
from pathlib import Path

import nbformat
import torch

from course_pkg import pretrained
from course_pkg.grading import copying
from course_pkg.models import create

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENTS = ("01_lenet_alexnet", "02_inception_module", "03_googlenet_aux", "04_multicrop")
FIRST_RUN = "be28743"  # the faithful network's first 6-epoch schedule, as then shipped


def _weights(obj) -> dict[str, torch.Tensor]:
    return copying._weights_of(obj)


def _noisy(state: dict[str, torch.Tensor], fraction: float, seed: int = 5) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: v.float() + fraction * v.float().std() * torch.randn(v.shape, generator=g) for k, v in state.items()}


def weight_rows() -> list[tuple[str, float]]:
    """(pair, relative L2 distance to the shipped faithful network)."""
    shipped = _weights(pretrained.load("googlenet_cifar_faithful").state_dict())
    rows = []

    def add(name: str, state: dict[str, torch.Tensor]) -> None:
        found = copying.weight_distance(_weights(state), shipped)
        rows.append((name, found[0] if found else float("nan")))

    for fraction in (0.01, 0.1, 0.5):
        add(f"shipped + noise of {fraction:g} x each tensor's std (copy)", _noisy(shipped, fraction))
    chunk2 = torch.load(ROOT / "benchmarks/weights/faithful_chunk2.pt", map_location="cpu", weights_only=True)
    add("its chunk 2 (the shipped weights are 6 epochs on from it)", chunk2)
    try:
        raw = subprocess.run(["git", "show", f"{FIRST_RUN}:course_pkg/pretrained/googlenet_cifar_faithful.pt"],
                             cwd=ROOT, capture_output=True, check=True).stdout
        add("the course's first run: seed 0, He init, the assignment's recipe, 6 epochs (honest)",
            torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True))
    except (subprocess.CalledProcessError, OSError, RuntimeError):
        pass  # a shallow clone: the row is left out
    for seed in (0, 1):
        torch.manual_seed(seed)
        add(f"untrained, seed {seed}, He init (honest)", create("googlenet_cifar", stem="16").state_dict())
    add("the batch-normalised shipped network (another run)", pretrained.load("googlenet_cifar").state_dict())
    return rows


def _notebook(kind: str, assignment: str):
    return nbformat.read(str(ROOT / kind / assignment / f"{assignment}.ipynb"), as_version=4)


def _starter(assignment: str) -> set[int]:
    nb = _notebook("assignments", assignment)
    return set().union(*(copying.code_shingles(c.source) for c in nb.cells if c.cell_type == "code"))


def code_rows() -> list[tuple[str, str, float]]:
    """(kind, pair, measure): the share of a reference definition held by the best cell
    (``reference``), and the Jaccard similarity of two implementations (``pair``)."""
    rows = []
    for assignment in ASSIGNMENTS:
        starter = _starter(assignment)
        cells = [copying.code_shingles(src) for _, src in copying.written_code(_notebook("solutions", assignment))]
        for name, source in copying.reference_sources(assignment).items():
            ref = copying.code_shingles(source) - starter
            if len(ref) < copying.MIN_SHINGLES:
                continue
            best = max(len(ref & cell) / len(ref) for cell in cells)
            rows.append(("reference", f"{assignment} solution holds of {name} (honest)", best))
            renamed = re.sub(r"\bself\b", "me", source)
            rows.append(("reference", f"{name} pasted, renamed (copy)",
                         len(ref & copying.code_shingles(renamed)) / len(ref)))

    def jaccard(a: str, b: str, assignment: str) -> float:
        starter = _starter(assignment)
        x, y = copying.code_shingles(a) - starter, copying.code_shingles(b) - starter
        return len(x & y) / len(x | y)

    def cell(assignment: str, grade_id: str) -> str:
        return next(src for gid, src in copying.written_code(_notebook("solutions", assignment)) if gid == grade_id)

    tv_googlenet = importlib.import_module("torchvision.models.googlenet")
    tv_alexnet = importlib.import_module("torchvision.models.alexnet")
    rows.append(("pair", "Inception: torchvision's and the course solution's (honest)",
                 jaccard(inspect.getsource(tv_googlenet.Inception), cell("02_inception_module", "inception_module"),
                         "02_inception_module")))
    rows.append(("pair", "AlexNet: torchvision's and the course solution's (honest)",
                 jaccard(inspect.getsource(tv_alexnet.AlexNet), cell("01_lenet_alexnet", "alexnet"),
                         "01_lenet_alexnet")))
    reference = copying.reference_sources("02_inception_module")["course_pkg/models/inception.py:Inception"]
    rows.append(("pair", "Inception: the course's reference and its solution (same authors)",
                 jaccard(reference, cell("02_inception_module", "inception_module"), "02_inception_module")))
    return rows


def main() -> None:
    print(f"weights: relative L2 distance to googlenet_cifar_faithful (flagged below {copying.NEAR_SHIPPED})")
    for name, value in weight_rows():
        print(f"  {value:7.3f}  {name}")
    print(f"code: share of a reference definition (flagged from {copying.PASTED_REFERENCE}), "
          f"Jaccard of two implementations (flagged from {copying.SIMILAR_PAIR})")
    for kind, name, value in code_rows():
        print(f"  {value:7.3f}  {kind:9s} {name}")


if __name__ == "__main__":
    main()
