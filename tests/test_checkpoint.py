"""Checkpoints: fp16 round trip, metadata, and refusal of every kind of bad file with a clear message."""

from __future__ import annotations

import os
import pickle
import zipfile

import pytest
import torch
import torch.nn as nn

from course_pkg.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_into,
    load_model,
    save_checkpoint,
)


class Tiny(nn.Module):
    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3)
        self.bn = nn.BatchNorm2d(width)
        self.fc = nn.Linear(width, 2)

    def forward(self, x):
        return self.fc(self.bn(self.conv(x)).mean((2, 3)))


def _tiny(width=4, seed=0):
    torch.manual_seed(seed)
    m = Tiny(width)
    m.bn.running_mean.uniform_(-1, 1)
    m.bn.num_batches_tracked.fill_(7)
    return m


def test_round_trip_fp16(tmp_path):
    model = _tiny()
    path = save_checkpoint(tmp_path / "m.pt", model, {"model": "tiny", "model_kwargs": {"width": 4},
                                                       "epoch": 3, "metrics": {"val_acc": 0.5}})
    raw = torch.load(path, weights_only=True)  # plain torch can read it safely
    assert raw["state_dict"]["conv.weight"].dtype == torch.float16
    assert raw["state_dict"]["bn.num_batches_tracked"].dtype == torch.int64  # ints keep their dtype

    state, meta = load_checkpoint(path)
    assert state["conv.weight"].dtype == torch.float32  # cast back for training / evaluation
    for name, value in model.state_dict().items():
        if value.is_floating_point():
            # fp16 keeps 11 significant bits: relative error <= 2**-11 (values here are O(1))
            assert torch.allclose(state[name], value, rtol=2**-11, atol=1e-7), name
            assert torch.equal(state[name], value.half().float()), name
        else:
            assert torch.equal(state[name], value), name
    assert meta["model"] == "tiny" and meta["epoch"] == 3 and meta["metrics"] == {"val_acc": 0.5}
    assert meta["torch"] == str(torch.__version__) and meta["course_pkg"] and meta["date"].startswith("20")
    assert meta["dtype"] == "float16"

    other = _tiny(seed=1)
    load_into(other, path)
    assert torch.equal(other.fc.weight, model.fc.weight.half().float())


def test_full_precision_and_bare_state_dict(tmp_path):
    model = _tiny()
    save_checkpoint(tmp_path / "f.pt", model, half=False)
    state, _ = load_checkpoint(tmp_path / "f.pt")
    assert torch.equal(state["conv.weight"], model.conv.weight)
    torch.save(model.state_dict(), tmp_path / "bare.pt")  # a plain state_dict is accepted too
    state, meta = load_checkpoint(tmp_path / "bare.pt")
    assert meta == {} and torch.equal(state["fc.bias"], model.fc.bias)


def test_metadata_must_be_plain(tmp_path):
    with pytest.raises(TypeError, match="metadata may only hold"):
        save_checkpoint(tmp_path / "x.pt", _tiny(), {"model": object()})


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at .*nothing.pt"):
        load_checkpoint(tmp_path / "nothing.pt")


@pytest.mark.parametrize("kind", ["text", "truncated", "empty"])
def test_corrupt_files(tmp_path, kind):
    path = tmp_path / "bad.pt"
    if kind == "text":
        path.write_text("this is not a checkpoint")
    elif kind == "truncated":
        save_checkpoint(tmp_path / "good.pt", _tiny())
        data = (tmp_path / "good.pt").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(b"")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert str(path) in message
    assert any(w in message for w in ("truncated", "corrupted", "empty", "not a readable"))
    assert "Traceback" not in message


class _Malicious:
    """Unpickling this would create a marker file (a stand-in for any code an attacker likes)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.mark.parametrize("container", ["raw_pickle", "torch_zip"])
def test_malicious_pickle_never_runs(tmp_path, container):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    payload = {"state_dict": {"w": torch.zeros(1)}, "meta": _Malicious(marker)}
    if container == "raw_pickle":
        path.write_bytes(pickle.dumps(payload))
    else:
        torch.save(payload, path)
    # Sanity check that the payload really is armed: plain pickle would create the marker.
    check = tmp_path / "armed"
    pickle.loads(pickle.dumps(_Malicious(check)))
    assert check.exists()

    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert not marker.exists(), "loading a checkpoint executed pickled code"
    message = str(info.value)
    assert "refused" in message or "pickle" in message
    if container == "torch_zip":
        assert "mkdir" in message  # names what the file tried to import


def test_whole_module_is_refused(tmp_path):
    path = tmp_path / "module.pt"
    torch.save(_tiny(), path)
    with pytest.raises(CheckpointError, match=r"whole pickled network .*state_dict\(\)"):
        load_checkpoint(path)


@pytest.mark.parametrize("obj, words", [
    ([torch.zeros(2)], "holds a list, not a state_dict"),
    ({"weights": torch.zeros(2), "epoch": 3}, "'epoch' is not a tensor"),
    ({}, "empty"),
])
def test_not_a_state_dict(tmp_path, obj, words):
    path = tmp_path / "odd.pt"
    torch.save(obj, path)
    with pytest.raises(CheckpointError, match=words):
        load_checkpoint(path)


def test_wrong_architecture_names_keys_and_shapes(tmp_path):
    path = save_checkpoint(tmp_path / "w4.pt", _tiny(width=4))
    with pytest.raises(CheckpointError) as info:
        load_into(_tiny(width=8), path)
    message = str(info.value)
    assert "shapes differ" in message
    assert "conv.weight: checkpoint (4, 3, 3, 3) vs model (8, 3, 3, 3)" in message

    class Renamed(Tiny):
        def __init__(self):
            super().__init__()
            self.head = self.fc
            del self.fc

        def forward(self, x):  # pragma: no cover - never called
            return x

    with pytest.raises(CheckpointError) as info:
        load_into(Renamed(), path)
    message = str(info.value)
    assert "missing from the checkpoint (2): 'head.weight', 'head.bias'" in message
    assert "not in the model (2): 'fc.weight', 'fc.bias'" in message


def test_ddp_prefix_hint():
    state = {"module." + k: v for k, v in _tiny().state_dict().items()}
    with pytest.raises(CheckpointError, match="DDP"):
        load_into(_tiny(), state)


def test_load_model_rebuilds_from_metadata(tmp_path):
    from course_pkg.models import create

    torch.manual_seed(0)
    model = create("lenet5", variant="modern")
    path = save_checkpoint(tmp_path / "l.pt", model, {"model": "lenet5", "model_kwargs": {"variant": "modern"}})
    rebuilt, meta = load_model(path)
    assert not rebuilt.training and meta["model"] == "lenet5"
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(rebuilt(x), model.eval()(x), atol=1e-2)
    save_checkpoint(tmp_path / "anon.pt", model)
    with pytest.raises(CheckpointError, match="no model name"):
        load_model(tmp_path / "anon.pt")


def test_zip_with_missing_member_is_reported(tmp_path):
    good = save_checkpoint(tmp_path / "good.pt", _tiny())
    bad = tmp_path / "bad.pt"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w") as dst:
        for item in src.infolist():
            if not item.filename.endswith("data/0"):
                dst.writestr(item, src.read(item.filename))
    with pytest.raises(CheckpointError, match="bad.pt"):
        load_checkpoint(bad)
