"""The checkpointer: atomic saves, pruning to keep_checkpoints, `resume auto`, strict loading."""
import os

import pytest
import torch
from torch import nn

from libs.models.checkpoint import read_checkpoint
from libs.training.checkpointer import Checkpointer, check_resumable, epoch_file, newest_checkpoint
from libs.errors import VOSError

STATE = {"state_dict": {"w": torch.ones(2)}, "optimizer": {}, "epoch": 1, "batch": 0, "step": 3, "rng": {}}


def test_keep_prunes_to_the_newest_epoch_files_and_never_latest(tmp_path):
    ckpt = Checkpointer(str(tmp_path), keep=2)
    for epoch in (1, 2, 3, 4):
        assert ckpt.save({**STATE, "epoch": epoch}, epoch) == str(tmp_path / "latest.pth")
    assert sorted(os.listdir(tmp_path)) == ["epoch-0003.pth", "epoch-0004.pth", "latest.pth"]
    assert torch.load(newest_checkpoint(ckpt.folder), weights_only=True)["epoch"] == 4
    ckpt.save({**STATE, "epoch": 4})                      # a mid-epoch save touches only latest.pth
    assert sorted(os.listdir(tmp_path)) == ["epoch-0003.pth", "epoch-0004.pth", "latest.pth"]


def test_a_rerun_into_an_old_folder_keeps_the_file_it_just_wrote(tmp_path):
    ckpt = Checkpointer(str(tmp_path), keep=2)
    for epoch in range(1, 7):                             # an earlier, longer run left epochs 5 and 6
        ckpt.save({**STATE, "epoch": epoch}, epoch)
    for epoch in (1, 2, 3):                               # the new run starts again from epoch 1
        ckpt.save({**STATE, "epoch": epoch}, epoch)
        assert os.path.isfile(tmp_path / epoch_file(epoch))
    assert sorted(os.listdir(tmp_path)) == ["epoch-0002.pth", "epoch-0003.pth", "epoch-0005.pth",
                                            "epoch-0006.pth", "latest.pth"]


def test_keep_zero_keeps_everything_and_epochs_sort_by_number(tmp_path):
    ckpt = Checkpointer(str(tmp_path))
    for epoch in (9999, 10000, 2):
        ckpt.save(STATE, epoch)
    names = [os.path.basename(p) for p in ckpt.epoch_checkpoints()]
    assert names == ["epoch-0002.pth", "epoch-9999.pth", "epoch-10000.pth"] and epoch_file(7) == "epoch-0007.pth"
    (tmp_path / "epoch-best.pth").write_text("not mine")  # only epoch-NNNN.pth files are ever pruned
    Checkpointer(str(tmp_path), keep=1).prune()
    assert sorted(os.listdir(tmp_path)) == ["epoch-10000.pth", "epoch-best.pth", "latest.pth"]


def test_resume_auto_prefers_latest_then_the_newest_epoch(tmp_path):
    ckpt = Checkpointer(str(tmp_path))
    with pytest.raises(VOSError, match="resume auto: no checkpoint in .*; train without `resume`"):
        newest_checkpoint(ckpt.folder)
    ckpt.save(STATE, 2)
    ckpt.save(STATE, 10)
    assert newest_checkpoint(ckpt.folder) == str(tmp_path / "latest.pth")
    os.remove(tmp_path / "latest.pth")
    assert newest_checkpoint(ckpt.folder) == str(tmp_path / "epoch-0010.pth")


def test_only_the_writer_writes(tmp_path):
    assert Checkpointer(str(tmp_path), writer=False).save(STATE, 1) is None
    assert os.listdir(tmp_path) == []


def test_bad_keep_and_unwritable_folder_are_clear_errors(tmp_path):
    with pytest.raises(VOSError, match="keep_checkpoints must be >= 0"):
        Checkpointer(str(tmp_path), keep=-1)
    (tmp_path / "file").write_text("")
    with pytest.raises(VOSError, match=r"cannot write checkpoints to .*file/ckpt' \(Not a directory\)"):
        Checkpointer(str(tmp_path / "file" / "ckpt")).save(STATE, 1)


def test_a_weights_only_file_is_refused_for_resume(tmp_path):
    ckpt = Checkpointer(str(tmp_path))
    ckpt.save({**STATE, "state_dict": nn.Linear(2, 1).state_dict()}, 1)
    data = read_checkpoint(newest_checkpoint(str(tmp_path)))
    assert check_resumable(data, "x")["step"] == 3
    with pytest.raises(VOSError, match="'w.pth' holds weights only .*use it as `initial`, not `resume`"):
        check_resumable({"state_dict": {}}, "w.pth")


def test_the_quickstart_keeps_the_checkpoint_it_tests_and_latest(tmp_path):
    from libs.config import load_cfg

    cfg = load_cfg("configs/quickstart.yaml")
    ckpt = Checkpointer(str(tmp_path), keep=cfg.keep_checkpoints)
    for epoch in range(1, cfg.epochs + 1):
        ckpt.save(STATE, epoch)
    assert sorted(os.listdir(tmp_path)) == [f"epoch-{cfg.epochs:04d}.pth", "latest.pth"]


def test_a_failed_write_keeps_the_previous_checkpoint_and_names_the_folder(tmp_path, monkeypatch):
    import errno
    import libs.models.checkpoint as checkpoint

    ckpt = Checkpointer(str(tmp_path))
    ckpt.save(STATE, 1)
    before = sorted(os.listdir(tmp_path))

    def disk_full(self, data):
        self.error = OSError(errno.ENOSPC, "No space left on device")
        raise self.error
    monkeypatch.setattr(checkpoint._WriteErrors, "write", disk_full)     # torch.save then fails as on a full disk
    with pytest.raises(VOSError) as err:
        ckpt.save({**STATE, "epoch": 2}, 2)
    assert str(err.value) == (f"cannot write checkpoints to {str(tmp_path)!r} (No space left on device); the "
                              "checkpoints already there are intact: free space there (or make it writable) and run "
                              "again with `resume auto`, or set `checkpoint` to another folder (with `resume "
                              f"{tmp_path / 'latest.pth'}`)")
    assert sorted(os.listdir(tmp_path)) == before                       # no temporary file left
    assert torch.load(newest_checkpoint(ckpt.folder), weights_only=True)["epoch"] == 1
