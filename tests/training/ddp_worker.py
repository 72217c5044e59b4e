"""Run under torchrun by test_trainer.py: trains briefly with DDP and saves each rank's parameters."""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from tests.helpers.training import synthetic_trainer  # noqa: E402
from libs.utils.dist import init_distributed, shutdown  # noqa: E402


def main() -> None:
    """argv: data_root out_dir."""
    data_root, out = sys.argv[1], sys.argv[2]
    dist = init_distributed(use_cuda=False)
    trainer = synthetic_trainer(data_root, os.path.join(out, "ckpt"), dist=dist, epochs=1)
    seen = []
    dataset = trainer.loaders.dataset
    original = dataset.__getitem__
    dataset.__class__.__getitem__ = lambda self, i: (seen.append(i), original(i))[1]
    trainer.run()
    torch.save({"params": trainer.model.state_dict(), "seen": seen}, os.path.join(out, f"rank{dist.rank}.pth"))
    shutdown()


if __name__ == "__main__":
    main()
