"""Checkpoint loading: strict, weights_only, clear errors; atomic saving in the released layout."""
import os

import pytest
import torch

from libs.errors import VOSError
from libs.models.checkpoint import guess_arch, load_weights, save_weights
from libs.models.stm import STM


@pytest.fixture(scope="module")
def r18():
    torch.manual_seed(0)
    return STM("resnet18")


def test_round_trip_released_layout(r18, tmp_path):
    path = str(tmp_path / "model.pth")
    save_weights(r18, path, epoch=3)
    data = torch.load(path, weights_only=True)
    assert set(data) == {"state_dict", "epoch"}
    other = STM("resnet18")
    load_weights(other, path)
    for k, v in r18.state_dict().items():
        assert torch.equal(other.state_dict()[k], v)
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp")]


def test_bare_state_dict_and_module_prefix(r18, tmp_path):
    bare, prefixed = str(tmp_path / "bare.pth"), str(tmp_path / "ddp.pth")
    torch.save(r18.state_dict(), bare)
    torch.save({"state_dict": {"module." + k: v for k, v in r18.state_dict().items()}}, prefixed)
    for path in (bare, prefixed):
        model = STM("resnet18")
        load_weights(model, path)
        assert torch.equal(model.Decoder.pred2.weight, r18.Decoder.pred2.weight)


def test_missing_and_unexpected_keys_are_listed(r18, tmp_path):
    state = dict(r18.state_dict())
    del state["Decoder.pred2.bias"]
    state["extra.weight"] = torch.zeros(1)
    path = str(tmp_path / "bad.pth")
    torch.save({"state_dict": state}, path)
    with pytest.raises(VOSError) as err:
        load_weights(STM("resnet18"), path)
    assert "1 missing keys: Decoder.pred2.bias" in str(err.value)
    assert "1 unexpected keys: extra.weight" in str(err.value)


def test_checkpoint_of_another_arch_names_it(r18, tmp_path):
    path = str(tmp_path / "r18.pth")
    save_weights(r18, path)
    assert guess_arch(r18.state_dict()) == "resnet18"
    with pytest.raises(VOSError, match="built with arch resnet18: pass `arch resnet18`"):
        load_weights(STM("resnet50"), path)


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_code_running_pickle_is_refused(tmp_path):
    path = str(tmp_path / "evil.pth")
    torch.save({"state_dict": {}, "payload": Evil()}, path)
    with pytest.raises(VOSError, match="refused to load"):
        load_weights(STM("resnet18"), path)


def test_missing_and_garbage_files(tmp_path):
    with pytest.raises(VOSError, match="not found"):
        load_weights(STM("resnet18"), str(tmp_path / "nope.pth"))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(VOSError, match="cannot read checkpoint"):
        load_weights(STM("resnet18"), str(junk))
