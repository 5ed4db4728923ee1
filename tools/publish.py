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
- Open an assignment in Colab from the book's assignment boxes, or locally:
  `pip install -e .` here, then open `assignments/<name>/<name>.ipynb` in Jupyter.
- Install the package anywhere: `pip install "git+{url}"` or the wheel in `dist/`.

Every assignment has self-check cells that compare your code with the course's reference
implementation and tell you precisely what differs. The graded tests check the same things, and
a few more, when your instructor grades your notebook.
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
    (stage / "README.md").write_text(STUDENT_README.format(url=_repo_url()))
    dest.mkdir(parents=True, exist_ok=True)
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          "-w", str(dest), str(stage)], capture_output=True, text=True)
    shutil.rmtree(stage, ignore_errors=True)
    if out.returncode != 0:
        raise SystemExit(f"building the wheel failed:\n{out.stdout}\n{out.stderr}")
    return next(dest.glob("course_pkg-*.whl"))


def publish(out: Path, html: bool = True) -> Path:
    if out.resolve() == ROOT or ROOT in out.resolve().parents and out.name in ("solutions", "assignments"):
        raise SystemExit(f"refusing to publish into {out}")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    shutil.copytree(ROOT / "course_pkg", out / "course_pkg", ignore=IGNORE)
    shutil.copy(ROOT / "pyproject.toml", out)
    (out / "README.md").write_text(STUDENT_README.format(url=_repo_url()))
    shutil.copytree(ROOT / "assignments", out / "assignments", ignore=IGNORE)
    shutil.copytree(ROOT / "book", out / "book", ignore=IGNORE)
    for name in ("_toc.yml", "_config.yml"):
        shutil.copy(ROOT / name, out)
    if (ROOT / "benchmarks" / "results").is_dir():
        shutil.copytree(ROOT / "benchmarks" / "results", out / "benchmarks" / "results", ignore=IGNORE)
    built = ROOT / "_build" / "html"
    if html and built.is_dir():
        shutil.copytree(built, out / "html", ignore=IGNORE)
    build_wheel(out / "dist")
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
