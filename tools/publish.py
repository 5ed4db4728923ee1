"""Build the published student set: what students may see, and nothing else.

    python tools/publish.py [--out _publish]      # or: make publish

This repository is the *instructor* repository and must stay private: ``solutions/`` holds the
solutions and the hidden tests, written by ``tools/assignments.py`` from their sources in
``assignments_src/``, and the hidden tests hold the grader's thresholds and seeds.  Students get the folder this
script writes, pushed as the
public repository named in ``_config.yml`` (``repository.url``): the Colab install line of every
notebook (``pip install git+<url>``) and the book's launch buttons point there.

It holds:

- ``course_pkg/`` and ``pyproject.toml`` (so ``pip install git+<url>`` works) and
  ``dist/course_pkg-<version>-py3-none-any.whl`` (the same package as a wheel);
- ``assignments/`` — the student versions nbgrader generated (no solutions, no hidden tests);
- the book: its sources (``book/``, ``_toc.yml``, ``_config.yml``, ``benchmarks/results/`` that
  chapters 7 and 8 read) and, when built, the HTML in ``html/``;
- a README for students.

and never ``solutions/``, ``assignments_src/``, ``tools/``, ``tests/``, ``nbgrader_config.py``, a
gradebook or anything under ``.nbgrader/``.  ``tests/test_publish.py`` scans the result for every hidden-test line,
threshold and seed.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints", "*.egg-info")

STUDENT_README = """\
# Going Deeper — from LeNet to GoogLeNet (student edition)

The book, the four assignments and the course's PyTorch package, `course_pkg`.

- Read the book: `html/index.html` (or the course's web site).
- Every assignment has a self-check cell after each graded part: it compares your code with the
  course's reference implementation, says right or wrong, names the first cause of a difference on
  its first line and the points at stake. The graded tests check the same things when your
  instructor grades your notebook.

## Set up: one command per platform

**Colab** (nothing to install by hand): open an assignment from the book's assignment boxes; its
first cell installs this package beside Colab's own torch. For assignment 3's training choose
Runtime → Change runtime type → GPU.

**A laptop or desktop without a GPU** (Linux, macOS, Windows; Python 3.10 or later). The default
torch on PyPI is the CUDA build on Linux (several GB); the CPU build comes from PyTorch's CPU index.
In this folder:

```bash
python -m venv .venv && . .venv/bin/activate        # Windows: .venv\\Scripts\\activate
pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu
pip install "{wheel}[student]"
```

**A machine with an NVIDIA GPU**: the same without the CPU index (PyPI's torch for Linux is the
CUDA build; on Windows pick the CUDA index that matches your driver from pytorch.org):

```bash
python -m venv .venv && . .venv/bin/activate
pip install "{wheel}[student]"
```

`[student]` adds what the notebooks need outside Colab: Jupyter (`notebook`), `ipykernel`,
`nbconvert` and `ipywidgets`. `pip install -e ".[student]"` here installs the same from the sources,
and `pip install "course_pkg[student] @ git+{url}"` from the course's public repository.

## Data

The notebooks load MNIST and CIFAR-10 with torchvision, which downloads them once (under 200 MB)
into `~/.cache/course_pkg`. Offline, or to share one copy, set `COURSE_DATA` to a folder holding
`mnist.npz` and `cifar10_jpeg.npz` (your instructor may provide them):

```bash
export COURSE_DATA=/path/to/data                     # Windows: set COURSE_DATA=C:\\path\\to\\data
```

## Run an assignment

```bash
jupyter notebook assignments/01_lenet_alexnet/01_lenet_alexnet.ipynb
```

or, to run a whole notebook from the command line and keep its outputs:

```bash
jupyter nbconvert --to notebook --execute --inplace assignments/01_lenet_alexnet/01_lenet_alexnet.ipynb
```

Assignment 3 trains a network: its section 4 states the accuracy each step of the points needs, how
long each kind of machine takes, and a quick mode (`COURSE_QUICK=1`, or `QUICK = True` in the
training cell) that checks in a few minutes on a CPU that your code trains. Submit each notebook
(and, for assignment 3, `googlenet_cifar.pt`) as your instructor says.
"""


def _repo_url() -> str:
    import re

    text = (ROOT / "_config.yml").read_text()
    match = re.search(r"^repository:\s*\n\s+url:\s*(\S+)", text, re.M)
    return match.group(1) if match else ""


def build_wheel(dest: Path) -> Path:
    """``pip wheel`` of the package from a clean copy (offline: no build isolation)."""
    stage = dest.parent / ".wheel-src"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    shutil.copytree(ROOT / "course_pkg", stage / "course_pkg", ignore=IGNORE)
    shutil.copy(ROOT / "pyproject.toml", stage)
    (stage / "README.md").write_text(student_readme())
    dest.mkdir(parents=True, exist_ok=True)
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          "-w", str(dest), str(stage)], capture_output=True, text=True)
    shutil.rmtree(stage, ignore_errors=True)
    if out.returncode != 0:
        raise SystemExit(f"building the wheel failed:\n{out.stdout}\n{out.stderr}")
    return next(dest.glob("course_pkg-*.whl"))


BUILT_HTML = ROOT / "_build" / "html"


def student_readme(wheel: str = "./dist/course_pkg-<version>-py3-none-any.whl") -> str:
    return STUDENT_README.format(wheel=wheel, url=_repo_url())


def publish(out: Path, html: bool = True) -> Path:
    """Write the student set into ``out``.  ``html``: with the built book, which must exist
    (``make book``); the students' README points at ``html/index.html``."""
    if html and not (BUILT_HTML / "index.html").is_file():
        shown = BUILT_HTML.relative_to(ROOT) if BUILT_HTML.is_relative_to(ROOT) else BUILT_HTML
        raise SystemExit(f"{shown}/index.html does not exist: build the book first "
                         "(`make book`), or publish without it (`python tools/publish.py --no-html`; students "
                         "then read the book on the course's web site)")
    if out.resolve() == ROOT or ROOT in out.resolve().parents and out.name in ("solutions", "assignments"):
        raise SystemExit(f"refusing to publish into {out}")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    shutil.copytree(ROOT / "course_pkg", out / "course_pkg", ignore=IGNORE)
    shutil.copy(ROOT / "pyproject.toml", out)
    shutil.copytree(ROOT / "assignments", out / "assignments", ignore=IGNORE)
    shutil.copytree(ROOT / "book", out / "book", ignore=IGNORE)
    for name in ("_toc.yml", "_config.yml"):
        shutil.copy(ROOT / name, out)
    if (ROOT / "benchmarks" / "results").is_dir():
        shutil.copytree(ROOT / "benchmarks" / "results", out / "benchmarks" / "results", ignore=IGNORE)
    if html:
        shutil.copytree(BUILT_HTML, out / "html", ignore=IGNORE)
    wheel = build_wheel(out / "dist")
    (out / "README.md").write_text(student_readme("./" + wheel.relative_to(out).as_posix()))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "_publish")
    p.add_argument("--no-html", action="store_true", help="leave out the built book (_build/html)")
    args = p.parse_args(argv)
    out = publish(args.out, html=not args.no_html)
    print(f"published student set in {out}: {', '.join(sorted(p.name for p in out.iterdir()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
