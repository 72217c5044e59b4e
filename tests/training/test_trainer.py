"""Training: the cyclic loss learns, checkpoints resume exactly, NaN stops, DDP keeps ranks equal."""
import copy
import os
import subprocess
import sys

import pytest
import torch

from libs.dataset.sampler import ClipSampler
from libs.dataset.synthetic import write_dataset
from libs.dataset.training import TrainClipDataset, build_mixed_dataset, collate_clips
from libs.dataset.transforms import build_train_transforms
from libs.dataset.davis import DAVIS17
from libs.training.cyclic import CyclicConfig, CyclicObjective, cyclic_loss
from libs.training.schedule import EpochSampler, lr_at
from libs.training.trainer import Trainer, TrainSettings
from libs.errors import VOSError
from libs.models.stm import STM
from libs.utils.dist import DistInfo

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SIZE = (32, 48)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("train_data")
    write_dataset(str(root / "SYNTHETIC"), num_videos=2, num_frames=5, size=(40, 64), seed=3, split="train")
    write_dataset(str(root / "SYNTHETIC"), num_videos=1, num_frames=4, size=(40, 64), seed=4, split="val")
    return str(root)


def make_trainer(data_root, ckpt, dist=DistInfo(), epochs=2, iter_size=2, seed=0):
    """A tiny trainer on the SYNTHETIC training split (also used by ddp_worker.py)."""
    torch.manual_seed(seed)
    reader = DAVIS17(os.path.join(data_root, "SYNTHETIC"), "train")
    data = TrainClipDataset(reader.videos, ClipSampler(3, 2, 1, 10, "SYNTHETIC"), build_train_transforms(SIZE, 2),
                            samples_per_video=2, max_objects=2, seed=seed, name="SYNTHETIC")
    data = build_mixed_dataset([data], [1])
    model = STM("resnet18", keydim=8, valdim=16).eval()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    settings = TrainSettings(epochs=epochs, batch_size=1, iter_size=iter_size, learning_rate=1e-4, gamma=0.1,
                             milestones=(1,), epochs_per_increment=1, epoch_per_test=1, checkpoint_dir=ckpt,
                             seed=seed)
    return Trainer(CyclicObjective(model, CyclicConfig()), optimizer, data, collate_clips, settings,
                   torch.device("cpu"), dist)


def test_lr_schedule_steps_by_gamma():
    assert [lr_at(e, 1.0, 0.1, [2, 4]) for e in range(6)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])


def test_epoch_sampler_shards_are_disjoint_and_cover():
    shards = [list(EpochSampler(10, seed=1, rank=r, world_size=3)) for r in range(3)]
    assert [len(s) for s in shards] == [4, 4, 4]
    assert set(sum(shards, [])) == set(range(10))
    s = EpochSampler(10, seed=1)
    s.set_epoch(1)
    full = list(s)
    s.set_epoch(1, skip=4)
    assert list(s) == full[4:]
    s.set_epoch(2)
    assert list(s) != full


def _two_clips():
    """frames [2, 3, 3, 32, 48] and one-hot masks [2, 3, 3, 32, 48]: clip 0 has 2 objects, clip 1 one."""
    frames = torch.randn(2, 3, 3, 32, 48)
    masks = torch.zeros(2, 3, 3, 32, 48)
    masks[:, :, 1, 4:16, 4:20] = 1
    masks[0, :, 2, 18:30, 24:44] = 1
    masks[:, :, 0] = 1 - masks[:, :, 1:].sum(2)
    return frames, masks


def test_cyclic_loss_decreases_on_a_fixed_clip():
    torch.manual_seed(0)
    model = STM("resnet18", keydim=16, valdim=32).eval()
    frames, masks = _two_clips()
    num = torch.tensor([2, 1])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    losses = []
    for _ in range(6):
        loss = cyclic_loss(model, frames, masks, num, CyclicConfig())["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]


@pytest.mark.parametrize("mode", ["mask", "threshold"])
def test_other_memory_modes_run(mode):
    torch.manual_seed(0)
    model = STM("resnet18", keydim=8, valdim=16).eval()
    masks = torch.zeros(1, 3, 2, 32, 48)
    masks[:, :, 1, 4:16, 4:20] = 1
    masks[:, :, 0] = 1 - masks[:, :, 1]
    out = cyclic_loss(model, torch.randn(1, 3, 3, 32, 48), masks, torch.tensor([1]), CyclicConfig(mode=mode))
    assert torch.isfinite(out["loss"]) and out["pred"].shape == (1, 2, 32, 48)


def _loss_and_grad(sdpa: bool, amp: bool = False):
    """The cyclic loss of two fixed clips and the gradient of one weight, from the same random model."""
    torch.manual_seed(0)
    model = STM("resnet18", keydim=8, valdim=16).eval()
    frames, masks = _two_clips()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        loss = cyclic_loss(model, frames, masks, torch.tensor([2, 1]), CyclicConfig(sdpa=sdpa))["loss"]
    loss.backward()
    return loss.item(), model.KV_M_r4.Key.weight.grad.flatten()


def test_sdpa_memory_read_gives_the_same_loss_and_gradients():
    (plain, g_plain), (sdpa, g_sdpa) = _loss_and_grad(False), _loss_and_grad(True)
    assert sdpa == pytest.approx(plain, rel=1e-5)
    assert torch.allclose(g_plain, g_sdpa, rtol=1e-3, atol=1e-6)


def test_bf16_autocast_loss_and_gradients_stay_close_to_fp32():
    (fp32, g32), (bf16, g16) = _loss_and_grad(True), _loss_and_grad(True, amp=True)
    assert bf16 == pytest.approx(fp32, rel=0.02)
    assert torch.nn.functional.cosine_similarity(g32, g16, dim=0) > 0.95


def _params(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def uninterrupted(data_root, tmp_path_factory):
    """Final parameters and checkpoints of a run that was never stopped."""
    folder = str(tmp_path_factory.mktemp("uninterrupted"))
    full = make_trainer(data_root, folder)
    full.run()
    return full, folder


def test_stop_and_resume_equals_uninterrupted(data_root, tmp_path, uninterrupted):
    full, _ = uninterrupted
    first = make_trainer(data_root, str(tmp_path / "b"))
    calls = {"n": 0}
    step = first._optimizer_step

    def stop_after_two(*args):
        step(*args)
        calls["n"] += 1
        if calls["n"] == 1:          # mid-epoch, as a SIGTERM would
            first.stop_requested = True
    first._optimizer_step = stop_after_two
    first.run()
    assert first.epoch == 0 and first.batch == 2
    torch.manual_seed(123)                       # the global RNG differs until resumed
    resumed = make_trainer(data_root, str(tmp_path / "b"))
    resumed.resume(str(tmp_path / "b" / "latest.pth"))
    resumed.run()
    a, b = _params(full.model), _params(resumed.model)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.step == full.step == 4


def test_max_minutes_stops_with_a_checkpoint_and_resume_finishes_the_run(data_root, tmp_path, uninterrupted,
                                                                         caplog):
    full, _ = uninterrupted
    first = make_trainer(data_root, str(tmp_path / "b"))
    first.s.max_minutes = 1e-9                   # up at the first optimizer step
    first.run()
    assert (first.epoch, first.batch, first.step) == (0, 2, 1)
    assert "max_minutes 1e-09 reached" in caplog.text
    resumed = make_trainer(data_root, str(tmp_path / "b"))
    resumed.s.max_minutes = 60.0                 # far away: the run ends at `epochs`
    resumed.resume(str(tmp_path / "b" / "latest.pth"))
    resumed.run()
    a, b = _params(full.model), _params(resumed.model)
    assert resumed.step == full.step == 4 and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_from_epoch_checkpoint_equals_uninterrupted(data_root, tmp_path, uninterrupted):
    full, folder = uninterrupted
    resumed = make_trainer(data_root, str(tmp_path / "b"))
    resumed.resume(os.path.join(folder, "epoch-0001.pth"))
    assert resumed.epoch == 1 and resumed.batch == 0
    resumed.run()
    a, b = _params(full.model), _params(resumed.model)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_nan_loss_steps_are_skipped_and_too_many_in_a_row_stop(data_root, tmp_path, caplog):
    trainer = make_trainer(data_root, str(tmp_path), epochs=2)
    trainer.s.epochs, trainer.s.max_nonfinite_steps = 1, 2
    trainer.run()
    before = open(tmp_path / "latest.pth", "rb").read()
    weights, adam = _params(trainer.model), copy.deepcopy(trainer.optimizer.state_dict())
    trainer.s.epochs = 2
    forward = trainer.objective.forward
    trainer.wrapped.forward = lambda *a: {**forward(*a), "loss": forward(*a)["loss"] * float("nan")}
    with pytest.raises(VOSError, match=r"2 optimizer step\(s\) in a row had a non-finite loss or gradient \(the last "
                       r"at epoch 2/2 batch 4, loss nan\), max_nonfinite_steps is 2; stopped without saving"):
        trainer.run()
    assert "at epoch 2/2 batch 2: optimizer step skipped (clips of this process: synth-train-00" in caplog.text
    assert open(tmp_path / "latest.pth", "rb").read() == before          # nothing saved
    after = _params(trainer.model)                                       # no update: no NaN in the weights
    assert all(torch.equal(weights[k], after[k]) for k in weights) and trainer.step == 2
    assert all(p.grad is None for p in trainer.model.parameters())
    state = trainer.optimizer.state_dict()["state"]                     # the Adam moments and counts untouched
    assert state.keys() == adam["state"].keys()
    assert all(torch.equal(state[i][k], adam["state"][i][k]) for i in state for k in state[i])


def test_checkpoint_every_steps_saves_latest_between_epochs(data_root, tmp_path):
    trainer = make_trainer(data_root, str(tmp_path), epochs=1)
    trainer.s.checkpoint_every_steps = 1
    saved = []
    save = trainer.checkpointer.save
    trainer.checkpointer.save = lambda state, epoch=None: (saved.append((state["step"], state["batch"], epoch)),
                                                           save(state, epoch))[1]
    trainer.run()
    assert saved == [(1, 2, None), (2, 0, 1)]      # after step 1 (mid-epoch), then at the epoch end only


def test_resume_of_weights_only_file_is_refused(data_root, tmp_path):
    from libs.models import save_weights
    trainer = make_trainer(data_root, str(tmp_path))
    save_weights(trainer.model, str(tmp_path / "w.pth"))
    with pytest.raises(VOSError, match="use it as `initial`, not `resume`"):
        trainer.resume(str(tmp_path / "w.pth"))


@pytest.mark.slow
def test_ddp_two_gloo_processes_keep_parameters_equal(data_root, tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           os.path.join(ROOT, "tests", "training", "ddp_worker.py"), data_root, str(tmp_path)]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
    subprocess.run(cmd, check=True, cwd=ROOT, env=env, timeout=300, capture_output=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pth", weights_only=True) for r in (0, 1))
    assert all(torch.equal(r0["params"][k], r1["params"][k]) for k in r0["params"])
    assert not set(r0["seen"]) & set(r1["seen"])          # each rank its own shard
    assert len(r0["seen"]) == len(r1["seen"]) == 2
    initial = make_trainer(data_root, str(tmp_path / "x")).model.state_dict()
    assert not torch.equal(initial["Decoder.pred2.weight"], r0["params"]["Decoder.pred2.weight"])
