"""DDP: while rank 0 validates (longer than the collectives' timeout), the other ranks wait at a barrier
instead of timing out in the next epoch's first collective. Two gloo processes on the CPU.

Robust by design on a loaded machine: the processes meet through a file in the test's own folder (no TCP port
that another process could take between choosing and binding it), wait for each other before the group
exists, and the collectives' timeout leaves seconds for a rank that the scheduler holds back."""
import os
import time
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from libs.dataset.training import collate_clips
from libs.training.checkpointer import Checkpointer
from libs.training.trainer import Trainer, TrainSettings
from libs.utils.dist import DistInfo
from tests.training.tiny_training import TinyClips, TinyObjective

COLLECTIVE_TIMEOUT_S = 8      # the default group's timeout here (NCCL's is 10 minutes); a tiny step takes ms
VALIDATION_S = 14             # rank 0's validation after epoch 1 takes longer than that


def _wait_for_each_other(folder: str, rank: int, world: int) -> None:
    """A file barrier before the process group exists, so that start-up times do not eat the short timeout."""
    open(os.path.join(folder, f"ready{rank}"), "w").close()
    while not all(os.path.exists(os.path.join(folder, f"ready{r}")) for r in range(world)):
        time.sleep(0.05)


def _worker(rank: int, world: int, folder: str) -> None:
    torch.set_num_threads(1)
    _wait_for_each_other(folder, rank, world)
    dist.init_process_group("gloo", init_method=f"file://{os.path.join(folder, 'store')}", rank=rank, world_size=world,
                            timeout=timedelta(seconds=COLLECTIVE_TIMEOUT_S))
    objective = TinyObjective()
    settings = TrainSettings(epochs=2, batch_size=1, iter_size=1, learning_rate=0.01, gamma=0.1, milestones=(),
                             epochs_per_increment=1, epoch_per_test=1, checkpoint_dir=os.path.join(folder, "ckpt"))

    def slow_validation(epoch: int) -> float:
        if epoch == 1:
            time.sleep(VALIDATION_S)
        return 0.5

    trainer = Trainer(objective, torch.optim.SGD(objective.parameters(), lr=0.01), TinyClips(), collate_clips, settings,
                      torch.device("cpu"), DistInfo(rank, world, 0), validate=slow_validation if rank == 0 else None,
                      checkpointer=Checkpointer(settings.checkpoint_dir, writer=rank == 0))
    trainer.run()
    torch.save({"epoch": trainer.epoch, "step": trainer.step, "weight": objective.model.weight.detach()},
               os.path.join(folder, f"rank{rank}.pth"))
    dist.destroy_process_group()


def test_other_ranks_wait_for_a_validation_longer_than_the_collective_timeout(tmp_path):
    start = time.monotonic()
    mp.spawn(_worker, args=(2, str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pth", weights_only=True) for r in (0, 1))
    assert (r0["epoch"], r0["step"]) == (r1["epoch"], r1["step"]) == (2, 4)
    assert torch.equal(r0["weight"], r1["weight"])
    assert time.monotonic() - start >= VALIDATION_S
