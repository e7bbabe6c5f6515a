"""Checkpoints refused before they are read (decompression bombs, oversized files), weights a
model cannot use (non-finite, bool, complex, meta, sparse), files that are not checkpoints at all
(plain pickles, FIFOs, devices), JSON without NaN, and the note a neutralised pickle leaves.

Every file is generated here, small: the bombs deflate tens of MB of zeros into a few hundred KB.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from tests.test_hostile_input import TINY, _huge_tensor_pickle, assert_one_sentence, tiny_entry  # noqa: F401
from uniformer import jsonsafe
from uniformer.errors import CheckpointError
from uniformer.models import checkpoint_guard
from uniformer.models.checkpoint import load_checkpoint, read_checkpoint
from uniformer.models.checkpoint_guard import check_tensors, declared_bytes, model_budget, state_dict_bytes
from uniformer.predict import Predictor, main
from uniformer.zoo import create_model

pytestmark = pytest.mark.usefixtures("one_thread")


def write_zip_bomb(path: Path, numel: int) -> Path:
    """A torch zip checkpoint ``{"w": float tensor of numel}`` whose storage entry is deflated zeros:
    the archive is a few hundred KB, its storage claims ``4 * numel`` bytes."""
    good = io.BytesIO()
    torch.save({"w": torch.zeros(4)}, good)
    chunk = bytes(1 << 20)
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(path, "w") as zout:
        prefix = zin.namelist()[0].split("/")[0]
        for name in zin.namelist():
            if name.endswith("/data.pkl"):
                zout.writestr(name, _huge_tensor_pickle(numel))
            elif "/data/" not in name:
                zout.writestr(name, zin.read(name))
        info = zipfile.ZipInfo(f"{prefix}/data/0")
        info.compress_type = zipfile.ZIP_DEFLATED
        with zout.open(info, "w", force_zip64=True) as f:
            left = 4 * numel
            while left:
                f.write(chunk[: min(left, len(chunk))])
                left -= min(left, len(chunk))
    return path


@pytest.fixture(scope="module")
def tiny_sd() -> OrderedDict:
    torch.manual_seed(0)
    return create_model(TINY).state_dict()


# =================================================================================== bombs
def test_zip_bomb_is_refused_from_its_directory_without_inflating(tmp_path, monkeypatch):
    bomb = write_zip_bomb(tmp_path / "bomb.pth", 32 * 2**20)  # claims 128 MB
    assert bomb.stat().st_size < 2**20
    head = bomb.read_bytes()[:4096]
    assert declared_bytes(bomb, head, bomb.stat().st_size)[1] >= 128 * 2**20

    def no_load(*args, **kwargs):
        raise AssertionError("torch.load ran on a refused file")

    monkeypatch.setattr(torch, "load", no_load)  # refusing must not inflate anything
    model = create_model(TINY)
    assert model_budget(model) < 128 * 2**20  # tiny model: 4 x 2.3 MB + 64 MB
    with pytest.raises(CheckpointError, match="declares 128.0 MB of uncompressed zip storage") as info:
        create_model(TINY, checkpoint=bomb)
    assert_one_sentence(info.value)
    assert "decompression bomb" in str(info.value) and "times its" in str(info.value)
    with pytest.raises(CheckpointError, match="more than the target model can use"):
        load_checkpoint(model, bomb)
    with pytest.raises(CheckpointError):
        read_checkpoint(bomb, max_bytes=16 * 2**20)


def test_absolute_cap_applies_without_a_model(tmp_path, monkeypatch):
    bomb = write_zip_bomb(tmp_path / "bomb.pth", 4 * 2**20)  # claims 16 MB
    monkeypatch.setattr(checkpoint_guard, "ABSOLUTE_CAP_BYTES", 8 * 2**20)
    with pytest.raises(CheckpointError, match="declares 16.0 MB"):
        read_checkpoint(bomb)
    monkeypatch.setattr(checkpoint_guard, "ABSOLUTE_CAP_BYTES", 64 * 2**20)
    assert read_checkpoint(bomb)["w"].shape == (4 * 2**20,)  # under the cap the same file is simply read


def test_safetensors_and_legacy_are_bounded_by_what_they_declare(tmp_path, tiny_sd):
    st = tmp_path / "big.safetensors"
    save_file({"w": torch.zeros(2**20)}, str(st))  # 4 MB of tensor data
    assert declared_bytes(st, st.read_bytes()[:4096], st.stat().st_size) == ("safetensors tensor data", 4 * 2**20)
    with pytest.raises(CheckpointError, match="declares 4.0 MB of safetensors tensor data"):
        read_checkpoint(st, max_bytes=2**20)
    legacy = tmp_path / "legacy.pth"
    torch.save({"w": torch.zeros(2**20)}, legacy, _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError, match="declares 4.0 MB of file"):
        read_checkpoint(legacy, max_bytes=2**20)
    # a normal checkpoint of the model is well inside its budget, in every format
    for name, save in (("ok.pth", lambda p: torch.save(tiny_sd, p)),
                       ("ok_legacy.pth", lambda p: torch.save(tiny_sd, p, _use_new_zipfile_serialization=False)),
                       ("ok.safetensors", lambda p: save_file(dict(tiny_sd), str(p)))):
        save(tmp_path / name)
        model = create_model(TINY, checkpoint=tmp_path / name)
        assert torch.equal(model.state_dict()["head.weight"], tiny_sd["head.weight"])
    assert state_dict_bytes(create_model(TINY)) == sum(t.numel() * t.element_size() for t in tiny_sd.values())


def test_legacy_storage_claiming_more_than_it_holds_is_named(tmp_path):
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(4)}, buf, _use_new_zipfile_serialization=False)
    data = buf.getvalue()
    at = data.index(b"K\x04", data.index(b"cpu"))  # the storage's element count in its persistent id
    path = tmp_path / "claims_3gb.pth"
    path.write_bytes(data[:at] + b"J" + (750_000_000).to_bytes(4, "little") + data[at + 2:])
    with pytest.raises(CheckpointError, match="declares another size than the data stored for it") as info:
        read_checkpoint(path)
    assert_one_sentence(info.value)


# ============================================================================ bad values
@pytest.mark.parametrize("case, expected", [
    ("nan", "non-finite value"),
    ("inf", "Inf"),
    ("bool", "dtype bool"),
    ("complex", "dtype complex64"),
    ("meta", "meta tensor"),
    ("sparse", "sparse_coo layout"),
])
def test_weights_a_model_cannot_use_are_refused_by_name(case, expected, tmp_path, tiny_sd):
    sd = OrderedDict(tiny_sd)
    key = "head.weight"
    w = sd[key].clone()
    if case == "nan":
        w[0, 0] = float("nan")
    elif case == "inf":
        w[1, 1] = float("inf")
    elif case == "bool":
        w = w > 0
    elif case == "complex":
        w = w.to(torch.complex64)
    elif case == "meta":
        w = torch.empty(w.shape, device="meta")
    elif case == "sparse":
        w = w.to_sparse()
    sd[key] = w
    path = tmp_path / f"{case}.pth"
    torch.save(sd, path)
    for load in (lambda: create_model(TINY, checkpoint=path), lambda: load_checkpoint(create_model(TINY), path)):
        with pytest.raises(CheckpointError) as info:
            load()
        msg = str(info.value)
        assert f"tensor '{key}'" in msg and expected in msg, msg
        assert_one_sentence(info.value)


def test_integer_and_half_weights_still_pass():
    check_tensors({"a": torch.zeros(3, dtype=torch.int64), "b": torch.ones(2, dtype=torch.float16),
                   "c": torch.ones(2, dtype=torch.bfloat16), "d": torch.zeros(2, dtype=torch.uint8)})


def test_all_nan_checkpoint_exits_2_from_the_cli(tmp_path, tiny_sd, capsys):
    sd = OrderedDict((k, torch.full_like(v, float("nan")) if v.is_floating_point() else v) for k, v in tiny_sd.items())
    path = tmp_path / "nan.pth"
    torch.save(sd, path)
    clip = Path(__file__).resolve().parents[1] / "assets" / "clips" / "pedestrians_576p_10s.mp4"
    assert main([str(clip), "--model", TINY, "--checkpoint", str(path), "--views", "1x1", "--json"]) == 2
    err = capsys.readouterr().err
    assert "non-finite" in err and "NaN" in err and "Traceback" not in err


def test_json_never_holds_nan_or_infinity():
    doc = {"p": float("nan"), "q": [1.0, float("inf"), -float("inf")], "t": torch.tensor(float("nan")),
           "ok": 0.5, "n": 3, "s": "NaN"}
    text = jsonsafe.dumps(doc)
    assert json.loads(text) == {"p": None, "q": [1.0, None, None], "t": None, "ok": 0.5, "n": 3, "s": "NaN"}
    with pytest.raises(ValueError):  # allow_nan=False: what a missed case would do
        json.dumps(float("nan"), allow_nan=False)
    assert "NaN" not in jsonsafe.dumps({"x": [float("nan")] * 3}).replace('"NaN"', "")


# ====================================================================== message fixes
def test_plain_python_pickle_is_named_as_such(tmp_path):
    for i, obj in enumerate(({"a": [1, 2, 3]}, {"w": list(range(10))})):
        for proto in (2, 4, 5):
            path = tmp_path / f"raw{i}_{proto}.pth"
            path.write_bytes(pickle.dumps(obj, protocol=proto))
            with pytest.raises(CheckpointError, match="plain Python pickle, not a PyTorch checkpoint") as info:
                read_checkpoint(path)
            assert "incomplete zip" not in str(info.value)
            assert_one_sentence(info.value)
    legacy = tmp_path / "legacy4.pth"  # torch's own legacy format is still read, whatever its protocol
    torch.save({"w": torch.ones(3)}, legacy, _use_new_zipfile_serialization=False, pickle_protocol=4)
    assert torch.equal(read_checkpoint(legacy)["w"], torch.ones(3))


def test_fifo_and_devices_are_named_not_regular_files(tmp_path):
    fifo = tmp_path / "pipe.pth"
    os.mkfifo(fifo)  # opening it would block: the reader must not
    cases = {fifo: "a FIFO"}
    if os.path.exists("/dev/zero"):
        cases[Path("/dev/zero")] = "a character device"
    for path, kind in cases.items():
        with pytest.raises(CheckpointError, match="not a regular file") as info:
            read_checkpoint(path)
        assert kind in str(info.value) and "empty" not in str(info.value)
        assert_one_sentence(info.value)


class CfgNode(dict):
    """A stand-in for a training config object pickled into a checkpoint."""


def test_neutralised_pickled_extras_show_in_the_prediction_notes(tmp_path, tiny_sd):
    path = tmp_path / "with_cfg.pth"
    torch.save({"model_state": tiny_sd, "cfg": CfgNode(LR=0.1)}, path)
    predictor = Predictor(TINY, checkpoint=path, device="cpu")
    notes = [n for n in predictor.notes if "inert placeholders" in n]
    assert len(notes) == 1 and "CfgNode" in notes[0] and "never run" in notes[0], predictor.notes
    plain = tmp_path / "plain.pth"
    torch.save(tiny_sd, plain)
    assert not any("placeholders" in n for n in Predictor(TINY, checkpoint=plain, device="cpu").notes)
