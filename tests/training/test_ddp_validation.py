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

from libs.training.checkpointer import Checkpointer
from libs.utils.dist import DistInfo
from tests.helpers.training import tiny_trainer

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
    validated = []                # rank 0: when its validation of epoch 1 ended (time.time())

    def slow_validation(epoch: int) -> float:
        if epoch == 1:
            time.sleep(VALIDATION_S)
            validated.append(time.time())
        return 0.5

    folder_ckpt = os.path.join(folder, "ckpt")
    trainer = tiny_trainer(folder_ckpt, DistInfo(rank, world, 0), epochs=2,
                           evaluate=slow_validation if rank == 0 else None,
                           checkpointer=Checkpointer(folder_ckpt, writer=rank == 0))
    started, loader = [], trainer._loader              # when each epoch's batches were asked for

    def record_epoch_start():
        started.append(time.time())
        return loader()
    trainer._loader = record_epoch_start
    trainer.run()
    torch.save({"epoch": trainer.epoch, "step": trainer.step, "weight": trainer.model.weight.detach(),
                "started": started, "validated": validated}, os.path.join(folder, f"rank{rank}.pth"))
    dist.destroy_process_group()


def test_other_ranks_wait_for_a_validation_longer_than_the_collective_timeout(tmp_path):
    """Rank 1 starts epoch 2 only once rank 0's validation has ended, having waited longer than the collectives'
    timeout allows, and both ranks finish with equal weights."""
    mp.spawn(_worker, args=(2, str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pth", weights_only=True) for r in (0, 1))
    assert (r0["epoch"], r0["step"]) == (r1["epoch"], r1["step"]) == (2, 4)
    assert torch.equal(r0["weight"], r1["weight"])
    assert len(r0["validated"]) == 1 and len(r1["started"]) == 2 and r1["validated"] == []
    assert r1["started"][1] >= r0["validated"][0]                      # rank 1 waited for the validation
    assert r1["started"][1] - r1["started"][0] > COLLECTIVE_TIMEOUT_S   # longer than a collective may wait
