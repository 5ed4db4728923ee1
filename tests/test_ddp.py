"""fit() under torchrun with DistributedDataParallel (gloo, 2 CPU processes) == one process.

Both runs see the same global batches: each of the 2 ranks gets half of every global batch of 16.
DDP averages the gradients of the ranks, and each rank's loss is a mean over its 8 images, so the
averaged gradient equals the single-process gradient of the mean over all 16 — up to float
rounding (sums happen in a different order).  Pitfalls kept out on purpose: the toy network has
no BatchNorm (DDP normalises each rank's half-batch with its own statistics unless SyncBatchNorm
is used) and no dropout (each rank draws its own masks), so the comparison is exact arithmetic.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest
import torch

from course_pkg.checkpoint import load_checkpoint
from course_pkg.train import fit

GLOBAL_BATCH, N, EPOCHS = 16, 128, 3

# slow: torchrun starts two processes that train together
pytestmark = pytest.mark.slow

COMMON = textwrap.dedent(
    """
    import torch, torch.nn as nn

    def toy_data():
        g = torch.Generator().manual_seed(0)
        x = torch.randn(%(N)d, 1, 8, 8, generator=g)
        y = (x[:, 0, :4].sum((1, 2)) > x[:, 0, 4:].sum((1, 2))).long()
        return [(x[i:i + %(B)d], y[i:i + %(B)d]) for i in range(0, %(N)d, %(B)d)]

    def toy_model():
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(256, 2))

    class Shard:
        "Rank r of w gets rows r::w of every global batch."
        def __init__(self, batches, rank, world_size):
            self.batches, self.rank, self.world_size = batches, rank, world_size
        def __len__(self):
            return len(self.batches)
        def __iter__(self):
            for x, y in self.batches:
                yield x[self.rank::self.world_size], y[self.rank::self.world_size]
    """
) % {"N": N, "B": GLOBAL_BATCH}

WORKER = COMMON + textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    torch.set_num_threads(1)
    from course_pkg.train import distributed_env, fit
    rank, world, _ = distributed_env()
    out = Path(sys.argv[1])
    data = toy_data()
    model = toy_model()
    history = fit(model, Shard(data, rank, world), epochs=%(E)d, lr=0.05, val_loader=Shard(data, rank, world),
                  device="cpu", progress=False, seed=0, checkpoint_path=out / "ddp.pt", meta={"model": "toy"},
                  precision="fp32")  # exact comparison: bf16 rounds half-batch sums differently
    torch.save(model.state_dict(), out / f"weights{rank}.pt")
    (out / f"history{rank}.json").write_text(json.dumps(history.to_list()))
    """
) % {"E": EPOCHS}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun_two_ranks(tmp_path, source: str, name: str) -> None:
    """Run ``source`` as 2 CPU ranks under torchrun, with ``tmp_path`` as its argument; it must succeed."""
    script = tmp_path / name
    script.write_text(source)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COURSE_QUIET": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
           "--master_addr=127.0.0.1", f"--master_port={_free_port()}", str(script), str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_ddp_two_processes_match_one(tmp_path):
    _torchrun_two_ranks(tmp_path, WORKER, "worker.py")

    namespace: dict = {}
    exec(COMMON, namespace)  # the same data and model definitions as the workers
    single = namespace["toy_model"]()
    history = fit(single, namespace["toy_data"](), epochs=EPOCHS, lr=0.05, val_loader=namespace["toy_data"](),
                  device="cpu", progress=False, seed=0, precision="fp32")

    w0 = torch.load(tmp_path / "weights0.pt", weights_only=True)
    w1 = torch.load(tmp_path / "weights1.pt", weights_only=True)
    for name, value in single.state_dict().items():
        assert torch.equal(w0[name], w1[name]), f"ranks disagree on {name}"  # DDP keeps replicas equal
        assert torch.allclose(w0[name], value, atol=1e-5, rtol=1e-4), name

    ddp_history = json.loads((tmp_path / "history0.json").read_text())
    assert [r["train_loss"] for r in ddp_history] == pytest.approx(history.train_loss, rel=1e-5)
    assert [r["train_acc"] for r in ddp_history] == pytest.approx(history.train_acc)
    assert [r["val_acc"] for r in ddp_history] == pytest.approx(history.val_acc)
    assert [r["val_n"] for r in ddp_history] == [N] * EPOCHS  # all-reduced over both ranks
    assert json.loads((tmp_path / "history1.json").read_text())[-1]["train_loss"] == pytest.approx(
        ddp_history[-1]["train_loss"])

    # only rank 0 wrote the checkpoint; it holds the (fp16) final weights
    state, meta = load_checkpoint(tmp_path / "ddp.pt")
    assert meta["epoch"] == EPOCHS and meta["settings"]["world_size"] == 2
    assert torch.allclose(state["3.weight"], w0["3.weight"], atol=1e-3)


AUTO_WORKER = COMMON + textwrap.dedent(
    """
    import sys
    from pathlib import Path
    torch.set_num_threads(1)
    import course_pkg.device, course_pkg.train
    from course_pkg.train import distributed_env, fit
    rank, world, _ = distributed_env()
    # both CPUs have native bf16, but only rank 0's probe finds it faster than fp32
    torch.cpu._is_avx512_bf16_supported = lambda: True
    course_pkg.device.cpu_bf16_speedup = lambda: 2.0 if rank == 0 else 0.5
    used = set()
    real = course_pkg.train.autocast
    course_pkg.train.autocast = lambda device, precision: used.add(precision) or real(device, precision)
    data = toy_data()
    fit(toy_model(), Shard(data, rank, world), epochs=1, lr=0.05, device="cpu", progress=False, seed=0)
    Path(sys.argv[1], f"precision{rank}.txt").write_text(",".join(sorted(used)))
    """
)


def test_ddp_ranks_agree_on_the_cpu_precision(tmp_path):
    """precision="auto" probes each process's CPU; the ranks of one run must still train alike."""
    _torchrun_two_ranks(tmp_path, AUTO_WORKER, "auto_worker.py")
    assert [(tmp_path / f"precision{r}.txt").read_text() for r in (0, 1)] == ["fp32", "fp32"]
