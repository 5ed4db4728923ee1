"""Inside the sandbox: execute a notebook cell by cell and write what happened as data.

    python -m course_pkg.grading.harness NOTEBOOK RESULTS_DIR CELL_TIMEOUT

A cell that crashes the kernel (``os._exit``, a segfault, running out of memory) or runs past its
time limit costs that cell only: the kernel is restarted, the cells before it that ran fine are
run again (graded cells excepted: what they handed over is already saved) and execution goes on
with the next cell.  After every cell ``results.json`` is rewritten, so whatever happens later,
what ran is kept.  This process shares the sandbox with the student's code: the trusted side
treats everything it writes as untrusted data.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

MAX_RESTARTS = 4


def main(argv: list[str]) -> int:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    nb_path, results_dir, cell_timeout = Path(argv[0]), Path(argv[1]), int(argv[2])
    for d in ("HOME", "IPYTHONDIR", "JUPYTER_RUNTIME_DIR", "MPLCONFIGDIR"):
        if os.environ.get(d):
            Path(os.environ[d]).mkdir(parents=True, exist_ok=True)
    nb = nbformat.read(str(nb_path), as_version=4)
    status: dict[int, dict] = {}
    results = results_dir / "results.json"

    def save() -> None:
        cells = {str(i): {**s, "outputs": nb.cells[i].get("outputs", [])} for i, s in status.items()}
        tmp = results.with_suffix(".tmp")
        tmp.write_text(json.dumps({"cells": cells}))
        os.replace(tmp, results)

    def is_test(cell) -> bool:
        return bool(cell.get("metadata", {}).get("nbgrader", {}).get("grade"))

    code_cells = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    position, restarts = 0, 0
    while position < len(code_cells):
        client = NotebookClient(nb, timeout=cell_timeout, kernel_name="python3", allow_errors=True,
                                interrupt_on_timeout=False, startup_timeout=120,
                                skip_cells_with_tag="course-grader-never-skip",
                                resources={"metadata": {"path": str(nb_path.parent)}})
        try:
            with client.setup_kernel():
                # after a restart: run again what ran fine before (not graded cells, not failures)
                for i in code_cells[:position]:
                    if status.get(i, {}).get("status") == "ok" and not is_test(nb.cells[i]):
                        saved = nb.cells[i].get("outputs", [])
                        client.execute_cell(nb.cells[i], i)
                        nb.cells[i].outputs = saved
                while position < len(code_cells):
                    i = code_cells[position]
                    start = time.monotonic()
                    try:
                        client.execute_cell(nb.cells[i], i)
                    except CellTimeoutError:
                        status[i] = {"status": "timeout", "seconds": time.monotonic() - start,
                                     "reason": f"ran longer than the {cell_timeout} s limit per cell; stopped"}
                        position += 1
                        save()
                        raise
                    except DeadKernelError:
                        status[i] = {"status": "crashed", "seconds": time.monotonic() - start,
                                     "reason": "the kernel died while this cell ran (os._exit, a crash, "
                                               "or out of memory)"}
                        position += 1
                        save()
                        raise
                    errors = [o for o in nb.cells[i].get("outputs", []) if o.get("output_type") == "error"]
                    status[i] = {"status": "error" if errors else "ok", "seconds": time.monotonic() - start}
                    position += 1
                    save()
        except (CellTimeoutError, DeadKernelError, RuntimeError, TimeoutError) as err:
            restarts += 1
            if restarts > MAX_RESTARTS:
                for i in code_cells[position:]:
                    status[i] = {"status": "not run", "reason": f"not run: the kernel was restarted "
                                                                f"{MAX_RESTARTS} times ({type(err).__name__})"}
                save()
                break
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
