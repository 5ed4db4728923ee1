"""fit(): it learns, the aux-loss arithmetic, schedules, precision choice, quiet progress, resume."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import course_pkg.device as device_module
import course_pkg.train as train_module
from course_pkg.checkpoint import CheckpointError, load_checkpoint, resume_path
from course_pkg.train import (
    AUX_LOSS_WEIGHT,
    History,
    fit,
    googlenet_loss,
    cpu_has_native_bf16,
    default_channels_last,
    lr_factor,
    pick_precision,
)


def _toy_data(n=256, batch=32, seed=0):
    """A linearly separable 2-class problem on 1x8x8 'images' (fixed batches, CPU)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 8, 8, generator=g)
    y = (x[:, 0, :4].sum((1, 2)) > x[:, 0, 4:].sum((1, 2))).long()
    return [(x[i:i + batch], y[i:i + batch]) for i in range(0, n, batch)]


def _toy_model(seed=0, dropout=0.0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Dropout(dropout),
                         nn.Flatten(), nn.Linear(256, 2))


# ------------------------------------------------------------------------------------------
# the auxiliary-loss arithmetic, checked against cross-entropies computed by hand
# ------------------------------------------------------------------------------------------
class Outputs(tuple):
    """A stand-in with GoogLeNetOutputs' fields (the real one is checked below as well)."""

    def __new__(cls, logits, aux1, aux2):
        obj = super().__new__(cls, (logits, aux1, aux2))
        obj.logits, obj.aux1, obj.aux2 = logits, aux1, aux2
        return obj


def test_googlenet_loss_by_hand():
    target = torch.tensor([0])
    main = torch.tensor([[0.0, 0.0]])                 # p(0) = 1/2  -> CE = ln 2
    aux1 = torch.tensor([[math.log(3.0), 0.0]])       # p(0) = 3/4  -> CE = ln(4/3)
    aux2 = torch.tensor([[0.0, math.log(4.0)]])       # p(0) = 1/5  -> CE = ln 5
    ce = nn.CrossEntropyLoss()
    expected = math.log(2) + 0.3 * (math.log(4 / 3) + math.log(5))
    got = googlenet_loss(Outputs(main, aux1, aux2), target, ce, aux_weight=0.3)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    # other weights, and a plain tensor: just the main loss
    assert googlenet_loss(Outputs(main, aux1, aux2), target, ce, 1.0).item() == pytest.approx(
        math.log(2) + math.log(4 / 3) + math.log(5), rel=1e-6)
    assert googlenet_loss(Outputs(main, aux1, aux2), target, ce, 0.0).item() == pytest.approx(math.log(2))
    assert googlenet_loss(main, target, ce).item() == pytest.approx(math.log(2), rel=1e-6)
    # a missing aux head contributes nothing
    assert googlenet_loss(Outputs(main, None, aux2), target, ce, 0.3).item() == pytest.approx(
        math.log(2) + 0.3 * math.log(5), rel=1e-6)


def test_googlenet_loss_with_the_real_namedtuple_and_label_smoothing():
    from course_pkg.models.googlenet import AUX_LOSS_WEIGHT as model_weight, GoogLeNetOutputs

    assert AUX_LOSS_WEIGHT == model_weight == 0.3  # one number, the paper's (section 5)
    target = torch.tensor([1, 0])
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    # label smoothing 0.1 on 2 classes: target distribution (0.05, 0.95); CE = -sum q log p
    logp = F.log_softmax(logits, dim=1)
    q = torch.tensor([[0.05, 0.95], [0.95, 0.05]])
    smoothed = -(q * logp).sum(1).mean().item()
    outputs = GoogLeNetOutputs(logits, logits, logits)
    got = googlenet_loss(outputs, target, nn.CrossEntropyLoss(label_smoothing=0.1), 0.3).item()
    assert got == pytest.approx(smoothed * 1.6, rel=1e-6)


# ------------------------------------------------------------------------------------------
def test_fit_lowers_the_loss_and_fills_the_history():
    batches = _toy_data()
    model = _toy_model()
    history = fit(model, batches, epochs=4, lr=0.05, val_loader=batches, progress=False)
    assert isinstance(history, History) and len(history) == 4
    assert history.train_loss[-1] < 0.6 * history.train_loss[0]
    assert history.val_acc[-1] > 0.85
    r = history.records[-1]
    assert set(r) >= {"epoch", "train_loss", "train_acc", "val_acc", "lr", "seconds", "images_per_s"}
    assert r["epoch"] == 4 and r["val_n"] == 256
    assert r["images_per_s"] == pytest.approx(256 / r["seconds"])
    assert not model.training  # left in eval mode


def test_fit_bf16_autocast_and_channels_last_on_cpu():
    """The GPU code paths (autocast, channels_last) run on the CPU too, and still learn."""
    batches = _toy_data()
    model = _toy_model()
    history = fit(model, batches, epochs=3, lr=0.05, precision="bf16", channels_last=True, progress=False)
    assert history.train_loss[-1] < 0.7 * history.train_loss[0]
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert model[0].weight.dtype == torch.float32  # autocast computes in bf16, weights stay fp32


@pytest.mark.slow  # GoogLeNet trained for a few steps
def test_fit_trains_googlenet_aux_heads():
    """One step on GoogLeNet (CIFAR stem): the loss includes both aux heads, so they get gradients."""
    from course_pkg.models import create

    torch.manual_seed(0)
    model = create("googlenet_cifar", batch_norm=True)
    # parameters only: BN running statistics in the heads change in any training-mode forward
    before = {k: p.detach().clone() for k, p in model.named_parameters() if k.startswith("aux")}
    x = torch.randn(4, 3, 32, 32)
    y = torch.tensor([0, 1, 2, 3])
    fit(model, [(x, y)], epochs=1, lr=0.01, progress=False, schedule="constant")
    changed = [k for k, p in model.named_parameters() if k in before and not torch.equal(p, before[k])]
    assert any(k.startswith("aux1.") for k in changed) and any(k.startswith("aux2.") for k in changed)


def test_schedules():
    total = 100
    one = [lr_factor("onecycle", s, total, warmup=0.2) for s in range(total + 1)]
    assert one[0] == pytest.approx(0.1) and one[20] == pytest.approx(1.0) and one[100] == pytest.approx(0.0)
    assert max(one) == pytest.approx(1.0) and one[60] == pytest.approx(0.5)
    cos = [lr_factor("cosine", s, total, warmup=0.2) for s in range(total + 1)]
    assert cos[20] == pytest.approx(1.0) and cos[60] == pytest.approx(0.5) and cos[100] == pytest.approx(0.0)
    step = [lr_factor("step", s, total) for s in range(total)]
    assert step[49] == 1.0 and step[50] == pytest.approx(0.1) and step[75] == pytest.approx(0.01)
    with pytest.raises(ValueError, match="schedule must be one of"):
        lr_factor("exponential", 0, total)


def test_lr_in_history_follows_the_schedule():
    batches = _toy_data(n=64, batch=16)  # 4 steps per epoch, 8 in all
    history = fit(_toy_model(), batches, epochs=2, lr=0.1, schedule="onecycle", warmup=0.25, progress=False)
    # after step 4 of 8 (end of epoch 1): 1 - (0.5 - 0.25) / 0.75 = 2/3; after step 8: 0
    assert history.lr[0] == pytest.approx(0.1 * 2 / 3)
    assert history.lr[1] == pytest.approx(0.0)


@pytest.fixture
def cpu_bf16(monkeypatch):
    """Make torch's CPU capability queries answer as a CPU with (True) or without (False) native
    bf16, and the bf16 probe measure ``speedup`` (bf16 over fp32)."""
    def set_native(native: bool, speedup: float = 2.0) -> None:
        for query in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
            monkeypatch.setattr(torch.cpu, query, lambda native=native: native, raising=False)
        monkeypatch.setattr(device_module, "cpu_bf16_speedup", lambda: speedup)
    return set_native


def test_precision_choice_on_cpus_with_and_without_bf16(cpu_bf16):
    cpu = torch.device("cpu")
    cpu_bf16(True, speedup=2.0)  # AMD Zen 4, a Xeon with AMX: bf16 pays
    assert cpu_has_native_bf16()
    assert pick_precision(cpu, "auto") == "bf16"
    cpu_bf16(True, speedup=0.8)  # native but slower than fp32 (a Xeon with AVX-512 BF16, no AMX)
    assert pick_precision(cpu, "auto") == "fp32"
    cpu_bf16(True, speedup=device_module.CPU_BF16_MIN_SPEEDUP)
    assert pick_precision(cpu, "auto") == "bf16"
    cpu_bf16(False, speedup=3.0)  # emulated bf16 is never chosen, whatever a probe says
    assert not cpu_has_native_bf16()
    assert pick_precision(cpu, "auto") == "fp32"
    # NHWC in either precision: it pays for fp32 training too
    assert default_channels_last(cpu) is True
    # explicit choices are kept whatever the CPU can do, and checked
    assert pick_precision(cpu, "bf16") == "bf16" and pick_precision(cpu, "fp32") == "fp32"
    with pytest.raises(ValueError, match="fp16.*needs a CUDA GPU"):
        pick_precision(cpu, "fp16")
    with pytest.raises(ValueError, match="precision must be"):
        pick_precision(cpu, "int8")


def test_bf16_probe_measures_once():
    """The probe times a real convolution in both dtypes: a positive ratio, measured once a process."""
    device_module.cpu_bf16_speedup.cache_clear()
    first = device_module.cpu_bf16_speedup()
    assert math.isfinite(first) and first > 0
    assert device_module.cpu_bf16_speedup() == first and device_module.cpu_bf16_speedup.cache_info().hits >= 1


def test_precision_choice_when_torch_lacks_the_query(monkeypatch):
    """An older torch (Colab may pin one) without the capability queries falls back to fp32."""
    for query in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.delattr(torch.cpu, query, raising=False)
    assert pick_precision(torch.device("cpu"), "auto") == "fp32"


def test_precision_choice_on_gpus(monkeypatch):
    cuda = torch.device("cuda", 0)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert pick_precision(cuda, "auto") == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)  # a T4
    assert pick_precision(cuda, "auto") == "fp16"
    assert default_channels_last(cuda) is True


@pytest.mark.parametrize("native, speedup, precision", [(True, 2.0, "bf16"), (True, 0.7, "fp32"), (False, 1.0, "fp32")])
def test_fit_auto_follows_the_cpu(cpu_bf16, monkeypatch, native, speedup, precision):
    """fit(precision="auto") trains in bf16 exactly where the CPU has bf16 and it pays; channels_last either way."""
    cpu_bf16(native, speedup)
    seen = []
    real_autocast = train_module.autocast
    monkeypatch.setattr(train_module, "autocast", lambda device, p: seen.append(p) or real_autocast(device, p))
    model = _toy_model()
    history = fit(model, _toy_data(n=64), epochs=1, lr=0.05, progress=False, device="cpu")
    assert seen and set(seen) == {precision}
    # channels_last strides of the [4, 1, 3, 3] weight: the channel axis has stride 1
    assert model[0].weight.stride(1) == 1
    assert len(history) == 1


def test_progress_is_quiet_in_book_builds(capsys, monkeypatch):
    batches = _toy_data(n=64)
    monkeypatch.setenv("COURSE_QUIET", "1")
    fit(_toy_model(), batches, epochs=1, progress="auto")
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    fit(_toy_model(), batches, epochs=1, progress=True)
    assert "epoch 1/1" in capsys.readouterr().err


def test_fit_minimises_the_callers_loss(tmp_path):
    """loss_fn replaces the default loss: a loss that ignores the labels trains the weights to its
    own minimum (here: every logit pushed to 3), and a resume with another loss is refused."""
    def logits_to_three(outputs, targets):
        return (outputs - 3).pow(2).mean()

    model, data = _toy_model(), _toy_data(n=256)
    history = fit(model, data, epochs=5, lr=0.05, loss_fn=logits_to_three, progress=False,
                  checkpoint_path=tmp_path / "toy.pt")
    assert history.train_loss[-1] < 0.1 * history.train_loss[0]
    with torch.no_grad():
        assert (model(data[0][0]) - 3).abs().mean() < 0.3
    with pytest.raises(CheckpointError, match=r"loss: saved '.*logits_to_three', now None"):
        fit(_toy_model(), data, epochs=5, lr=0.05, progress=False, checkpoint_path=tmp_path / "toy.pt")


# ------------------------------------------------------------------------------------------
# resume after an interruption == an uninterrupted run
# ------------------------------------------------------------------------------------------
class Interrupt(Exception):
    pass


def test_resume_gives_the_same_result(tmp_path):
    batches = _toy_data(n=128, batch=16)
    loader = torch.utils.data.DataLoader(  # shuffles with the global RNG: resume must restore it
        torch.utils.data.TensorDataset(torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])),
        batch_size=16, shuffle=True)
    settings = dict(epochs=4, lr=0.05, val_loader=batches, progress=False, seed=3)

    reference = _toy_model(dropout=0.2)  # dropout uses the RNG too
    full = fit(reference, loader, **settings)

    def stop_after_two(history):
        if len(history) == 2:
            raise Interrupt

    path = tmp_path / "run.pt"
    with pytest.raises(Interrupt):
        fit(_toy_model(dropout=0.2), loader, checkpoint_path=path, callback=stop_after_two, **settings)
    assert load_checkpoint(path)[1]["epoch"] == 2 and resume_path(path).exists()

    resumed_model = _toy_model(seed=99, dropout=0.2)  # different init: the resume state must win
    resumed = fit(resumed_model, loader, checkpoint_path=path, **settings)
    assert len(resumed) == 4
    assert resumed.train_loss == pytest.approx(full.train_loss, rel=1e-6)
    assert resumed.val_acc == full.val_acc
    for (name, a), b in zip(reference.state_dict().items(), resumed_model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name
    state, meta = load_checkpoint(path)
    assert meta["epoch"] == 4 and len(meta["history"]) == 4

    # a finished run resumes to "nothing to do"; other settings are refused with a clear message
    again = fit(_toy_model(), loader, checkpoint_path=path, **settings)
    assert len(again) == 4
    with pytest.raises(CheckpointError, match="other settings.*lr: saved 0.05, now 0.1"):
        fit(_toy_model(), loader, checkpoint_path=path, **{**settings, "lr": 0.1})
    fresh = fit(_toy_model(), loader, checkpoint_path=path, resume=False, **{**settings, "epochs": 1})
    assert len(fresh) == 1


def test_resume_may_switch_between_bf16_and_fp32(tmp_path):
    """precision="auto" differs between CPUs, so a run may continue in the other CPU precision."""
    batches = _toy_data(n=64, batch=16)
    path = tmp_path / "run.pt"

    def stop_after_one(history):
        raise Interrupt

    with pytest.raises(Interrupt):
        fit(_toy_model(), batches, epochs=2, lr=0.05, progress=False, checkpoint_path=path, precision="bf16",
            callback=stop_after_one)
    assert load_checkpoint(path)[1]["epoch"] == 1
    resumed = fit(_toy_model(), batches, epochs=2, lr=0.05, progress=False, checkpoint_path=path, precision="fp32")
    assert len(resumed) == 2 and load_checkpoint(path)[1]["settings"]["precision"] == "fp32"
    with pytest.raises(CheckpointError, match="other settings.*epochs: saved 2, now 3") as refused:
        fit(_toy_model(), batches, epochs=3, lr=0.05, progress=False, checkpoint_path=path, precision="bf16")
    assert "precision" not in str(refused.value)


def test_fused_optimizer_is_the_same_update():
    """fit uses the fused (one-kernel) SGD on GPUs; it must compute the same update as the loop."""
    from course_pkg.train import make_optimizer

    results = []
    for fused in (False, True):
        model = _toy_model(seed=1)
        opt = make_optimizer(model, "sgd", lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4, fused=fused)
        assert opt.defaults["fused"] is fused
        for x, y in _toy_data(n=96, batch=32):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
        results.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.allclose(results[0], results[1], atol=1e-6)
    assert not torch.equal(results[0], torch.cat([p.flatten() for p in _toy_model(seed=1).parameters()]))
    # auto: the CPU keeps the ordinary loop (fused is chosen only when every parameter is on a GPU)
    assert make_optimizer(_toy_model()).defaults["fused"] is False


def test_compile_mode_reaches_torch_compile(monkeypatch):
    from course_pkg import cli, train

    calls = []
    monkeypatch.setattr(torch, "compile", lambda net, mode=None: calls.append(mode) or net)
    fit(_toy_model(), _toy_data(n=64), epochs=1, compile="reduce-overhead", progress=False)
    fit(_toy_model(), _toy_data(n=64), epochs=1, compile=True, progress=False)
    assert calls == ["reduce-overhead", None]
    with pytest.raises(ValueError, match="compile must be True, False or one of default, reduce-overhead"):
        fit(_toy_model(), _toy_data(n=64), epochs=1, compile="fast")
    assert cli.COMPILE_MODES_CLI == train.COMPILE_MODES  # the CLI's list (kept free of torch) agrees
