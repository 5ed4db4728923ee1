"""The reports of a grading run: ``grades.csv``, the score histogram, the summary in words."""

from __future__ import annotations

import csv
from pathlib import Path

from .course import StudentResult

def write_csv(path: Path, results: dict[str, StudentResult], cells: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["student", "status", "score", "max_score", "seconds", "reason", "flags",
                    "needs_manual_grade", "log", *cells])
        for r in sorted(results.values(), key=lambda r: r.student):
            w.writerow([r.student, r.status, "" if r.score is None else f"{r.score:g}",
                        "" if r.max_score is None else f"{r.max_score:g}", f"{r.seconds:.1f}", r.reason,
                        "; ".join(r.flags), "yes" if r.manual else "", r.log,
                        *["" if r.cells.get(c) is None else f"{r.cells[c]:g}" for c in cells]])


def write_histogram(path: Path, results: dict[str, StudentResult], assignment: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    graded = [r for r in results.values() if r.status == "graded" and r.max_score]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if graded:
        top = max(r.max_score for r in graded)
        ax.hist([r.score for r in graded], bins=min(20, max(5, int(top))), range=(0, top), color="#4a7")
        ax.set_xlim(0, top)
    failed = sum(r.status == "failed" for r in results.values())
    ax.set_title(f"{assignment}: {len(graded)} graded" + (f", {failed} failed (not shown)" if failed else ""))
    ax.set_xlabel("score")
    ax.set_ylabel("students")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)



def summary(results: dict[str, StudentResult], assignment: str, unsafe: bool = False,
            logs: Path | None = None) -> str:
    graded = [r for r in results.values() if r.status == "graded"]
    failed = [r for r in results.values() if r.status == "failed"]
    lines = [f"{assignment}: {len(graded)} graded, {len(failed)} failed, {len(results)} submissions"]
    if unsafe:
        lines.append("  UNSAFE: student code ran WITHOUT a sandbox (--unsafe-no-sandbox), with your rights")
    if graded:
        scores = sorted(r.score or 0.0 for r in graded)
        top = graded[0].max_score
        mid = (scores[len(scores) // 2] if len(scores) % 2
               else (scores[len(scores) // 2 - 1] + scores[len(scores) // 2]) / 2)
        lines.append(f"  scores out of {top:g}: mean {sum(scores) / len(scores):.1f}, median {mid:g}, "
                     f"min {scores[0]:g}, max {scores[-1]:g}; slowest {max(r.seconds for r in graded):.0f} s")
    for r in sorted(failed, key=lambda r: r.student):
        lines.append(f"  FAILED {r.student}: {r.reason}" + (f" (log: {r.log})" if r.log else ""))
    for r in sorted(results.values(), key=lambda r: r.student):
        if r.manual:
            lines.append(f"  needs manual grade: {r.student}")
        for f in r.flags:
            lines.append(f"  flag {r.student}: {f}")
        for n in r.notes:
            lines.append(f"  note {r.student}: {n}")
    if logs is not None:
        lines.append(f"  logs: {logs}")
    return "\n".join(lines)
