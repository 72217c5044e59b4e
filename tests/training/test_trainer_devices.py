"""Trainer fixes that CPU training does not reach by itself: the TensorBoard grid of a batch that lives on
another device (DALI puts it on the GPU), and resuming with fewer CUDA devices than the checkpoint saw."""
import logging

import pytest
import torch

from libs.training.board import prediction_grid
from libs.training.rng import rng_state, set_rng_state
from tests.helpers.training import tiny_trainer


class _Writer:
    """Records what TensorBoard would receive."""

    def __init__(self):
        self.images = {}

    def add_scalar(self, *args):
        pass

    def add_images(self, tag, images, step):
        self.images[tag] = images


class _Bar:
    def set_postfix(self, **values):
        pass

    def update(self, n):
        pass


def test_the_prediction_grid_is_computed_on_the_batch_device(tmp_path):
    """A batch on another device than the CPU constants (the 'meta' device stands in for DALI's GPU batch)."""
    writer = _Writer()
    trainer = tiny_trainer(str(tmp_path), writer=writer)
    trainer.batch = 1                                     # the epoch's first optimizer step logs the grid
    frames = torch.zeros(2, 3, 3, 8, 8, device="meta")   # [B, T, 3, H, W]
    pred = torch.zeros(2, 3, 8, 8, device="meta")        # [B, K+1, H, W]
    trainer._optimizer_step(torch.tensor(1.0), 0.01, 0.0, _Bar(), {"pred": pred}, {"frames": frames})
    grid = writer.images["train/predictions"]
    assert grid.device.type == "meta" and grid.shape == (2, 3, 8, 8)


def test_the_prediction_grid_values(tmp_path):
    frames = torch.zeros(1, 2, 3, 4, 4)                   # normalised 0 = the ImageNet mean colour
    pred = torch.zeros(1, 3, 4, 4)
    pred[:, 0], pred[0, 1, :2] = 1, 2                      # object 1 wins in the top half
    grid = prediction_grid(frames, pred)
    mean = torch.tensor([0.485, 0.456, 0.406])
    assert torch.allclose(grid[0, :, 3, 0], mean)
    assert torch.allclose(grid[0, :, 0, 0], 0.5 * mean + 0.5 * torch.tensor([1.0, 0.0, 0.0]))


def _fake_cuda(monkeypatch, devices):
    """torch.cuda with `devices` devices whose set_rng_state fails for a device that does not exist."""
    restored = {}

    def set_state(state, device=0):
        if int(device) >= devices:
            raise RuntimeError(f"CUDA error: invalid device ordinal {device}")
        restored[int(device)] = state

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: devices)
    monkeypatch.setattr(torch.cuda, "set_rng_state", set_state)
    monkeypatch.setattr(torch.cuda.random, "set_rng_state", set_state)   # what set_rng_state_all calls
    return restored


def test_resume_on_fewer_cuda_devices_restores_what_fits_and_says_so(monkeypatch, caplog):
    state = rng_state()
    state["cuda"] = [torch.full((16,), i, dtype=torch.uint8) for i in range(4)]
    restored = _fake_cuda(monkeypatch, devices=2)
    with caplog.at_level(logging.WARNING):
        set_rng_state(state)
    assert sorted(restored) == [0, 1] and torch.equal(restored[1], state["cuda"][1])
    assert "CUDA RNG states of 4 device(s), this machine has 2: restored 2" in caplog.text


def test_resume_on_more_cuda_devices_restores_the_saved_ones(monkeypatch, caplog):
    state = rng_state()
    state["cuda"] = [torch.zeros(16, dtype=torch.uint8)]
    restored = _fake_cuda(monkeypatch, devices=2)
    with caplog.at_level(logging.WARNING):
        set_rng_state(state)
    assert sorted(restored) == [0] and "restored 1" in caplog.text


def test_same_device_count_restores_all_silently(monkeypatch, caplog):
    state = rng_state()
    state["cuda"] = [torch.zeros(16, dtype=torch.uint8)] * 2
    restored = _fake_cuda(monkeypatch, devices=2)
    with caplog.at_level(logging.WARNING):
        set_rng_state(state)
    assert sorted(restored) == [0, 1] and "CUDA RNG" not in caplog.text


@pytest.mark.parametrize("epoch,batch,text", [(0, 5, "in epoch 1/2 after batch 5"), (1, 0, "after epoch 1/2")])
def test_the_position_is_counted_as_the_progress_bar_counts(tmp_path, epoch, batch, text):
    trainer = tiny_trainer(str(tmp_path))
    trainer.s.epochs, trainer.epoch, trainer.batch = 2, epoch, batch
    assert trainer.position() == text
