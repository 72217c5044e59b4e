"""Training: the cyclic loss learns, checkpoints resume exactly, NaN stops, DDP keeps ranks equal."""
import copy
import os
import subprocess
import sys

import pytest
import torch

from libs.errors import VOSError
from libs.models.stm import STM
from libs.training.cyclic import CyclicConfig, cyclic_loss
from libs.training.schedule import EpochSampler, lr_at
from tests.helpers.training import resume, synthetic_trainer, write_train_val

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return write_train_val(str(tmp_path_factory.mktemp("train_data")), train_frames=5, seed=3)


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


def _memorised_masks(mode: str, iou_threshold: float):
    """The object masks the forward pass memorises for frames 0 and 1 of a hand-made 3-frame clip, with the
    network's segmentation fixed: frame 1's prediction covers the left half of its true object (IoU 0.5)."""
    torch.manual_seed(0)
    model = STM("resnet18", keydim=8, valdim=16).eval()
    H, W = 32, 48
    masks = torch.zeros(1, 3, 2, H, W)                 # [B, T, K+1, H, W]
    masks[:, :, 1, 4:16, 4:20] = 1                     # the object: 12 x 16 pixels in every frame
    masks[:, :, 0] = 1 - masks[:, :, 1]
    logits = torch.full((1, 2, H, W), -10.0)           # [1, K+1, H, W]
    logits[:, 0] = 10.0
    logits[:, 1, 4:16, 4:12], logits[:, 0, 4:16, 4:12] = 10.0, -10.0     # predicted: 12 x 8 of the 12 x 16
    prediction = torch.softmax(logits, 1)[:, 1:]                        # [1, K, H, W]
    seen, encode = [], model.encode_memory
    model.encode_memory = lambda frame, probs, *a: (seen.append(probs.detach().clone()), encode(frame, probs, *a))[1]
    model.segment = lambda query, *a, **k: logits.expand(query.key.shape[0], -1, -1, -1)
    cyclic_loss(model, torch.randn(1, 3, 3, H, W), masks, torch.tensor([1]),
                CyclicConfig(mode=mode, iou_threshold=iou_threshold))
    return seen[0], seen[1], masks[:, 1, 1:], prediction


@pytest.mark.parametrize("mode, iou_threshold, stores", [("mask", 0.65, "truth"), ("recurrent", 0.65, "prediction"),
                                                         ("threshold", 0.65, "truth"),        # IoU 0.5 <= 0.65
                                                         ("threshold", 0.4, "prediction")])   # IoU 0.5 > 0.4
def test_each_memory_mode_stores_its_mask_of_frame_1(mode, iou_threshold, stores):
    """Frame 0 is memorised with its truth in every mode; frame 1 with its truth ('mask'), the network's
    prediction ('recurrent'), or the prediction only when its IoU with the truth exceeds iou_threshold."""
    first, second, truth, prediction = _memorised_masks(mode, iou_threshold)
    assert torch.equal(first, truth)                       # frames 0 and 1 hold the same hand-made object
    expected, other = (truth, prediction) if stores == "truth" else (prediction, truth)
    assert torch.equal(second, expected) and not torch.equal(second, other)


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
    full = synthetic_trainer(data_root, folder)
    full.run()
    return full, folder


def test_stop_and_resume_equals_uninterrupted(data_root, tmp_path, uninterrupted):
    full, _ = uninterrupted
    first = synthetic_trainer(data_root, str(tmp_path / "b"))
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
    resumed = synthetic_trainer(data_root, str(tmp_path / "b"))
    resume(resumed, str(tmp_path / "b" / "latest.pth"))
    resumed.run()
    a, b = _params(full.model), _params(resumed.model)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.step == full.step == 4


def test_max_minutes_stops_with_a_checkpoint_and_resume_finishes_the_run(data_root, tmp_path, uninterrupted,
                                                                         caplog):
    full, _ = uninterrupted
    first = synthetic_trainer(data_root, str(tmp_path / "b"))
    first.s.max_minutes = 1e-9                   # up at the first optimizer step
    first.run()
    assert (first.epoch, first.batch, first.step) == (0, 2, 1)
    assert "max_minutes 1e-09 reached" in caplog.text
    resumed = synthetic_trainer(data_root, str(tmp_path / "b"))
    resumed.s.max_minutes = 60.0                 # far away: the run ends at `epochs`
    resume(resumed, str(tmp_path / "b" / "latest.pth"))
    resumed.run()
    a, b = _params(full.model), _params(resumed.model)
    assert resumed.step == full.step == 4 and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_from_epoch_checkpoint_equals_uninterrupted(data_root, tmp_path, uninterrupted):
    full, folder = uninterrupted
    resumed = synthetic_trainer(data_root, str(tmp_path / "b"))
    resume(resumed, os.path.join(folder, "epoch-0001.pth"))
    assert resumed.epoch == 1 and resumed.batch == 0
    resumed.run()
    a, b = _params(full.model), _params(resumed.model)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_nan_loss_steps_are_skipped_and_too_many_in_a_row_stop(data_root, tmp_path, caplog):
    trainer = synthetic_trainer(data_root, str(tmp_path), epochs=2)
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
    trainer = synthetic_trainer(data_root, str(tmp_path), epochs=1)
    trainer.s.checkpoint_every_steps = 1
    saved = []
    save = trainer.checkpointer.save
    trainer.checkpointer.save = lambda state, epoch=None: (saved.append((state["step"], state["batch"], epoch)),
                                                           save(state, epoch))[1]
    trainer.run()
    assert saved == [(1, 2, None), (2, 0, 1)]      # after step 1 (mid-epoch), then at the epoch end only


def test_resume_of_weights_only_file_is_refused(data_root, tmp_path):
    from libs.models import save_weights
    trainer = synthetic_trainer(data_root, str(tmp_path))
    save_weights(trainer.model, str(tmp_path / "w.pth"))
    with pytest.raises(VOSError, match="use it as `initial`, not `resume`"):
        resume(trainer, str(tmp_path / "w.pth"))


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
    initial = synthetic_trainer(data_root, str(tmp_path / "x")).model.state_dict()
    assert not torch.equal(initial["Decoder.pred2.weight"], r0["params"]["Decoder.pred2.weight"])
