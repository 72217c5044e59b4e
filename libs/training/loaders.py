"""What the trainer asks each epoch for its batches: an `EpochLoaders` (PIL DataLoader here, DALI in
libs.dataset.dali.loader), built once and passed to the Trainer's constructor."""
import signal
from typing import Any, Callable, Dict, Iterable, Protocol, Sized

from torch.utils.data import DataLoader

from .schedule import EpochSampler

Batch = Dict[str, Any]


class EpochLoaders(Protocol):
    """Gives each epoch's collated batches ({'frames', 'masks', 'num_objects', 'names', 'bad'})."""

    batch_size: int

    def __len__(self) -> int:
        """Clips per epoch (over all ranks)."""

    def epoch(self, epoch: int, sampler: EpochSampler) -> Iterable[Batch]:
        """The batches of `epoch` (0-based) in `sampler`'s order, from its position; has a len()."""


class EpochDataset(Sized, Protocol):
    """A training data set whose clips depend on the epoch (libs.dataset.training)."""

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose clips the items are."""


def ignore_stop_signals(_worker_id: int) -> None:
    """In a DataLoader worker: ignore SIGINT and SIGTERM, which Ctrl-C, `timeout` or a cluster send to the
    whole process group; the main process stops the run and then the workers (torch's own SIGTERM handler
    would kill the worker, and the main process would stop with a traceback instead of a checkpoint)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class PilLoaders:
    """Each epoch's batches from a torch DataLoader: `workers` processes read and augment the clips (PIL /
    OpenCV); a new loader per epoch, so the workers see the epoch and the curriculum just set."""

    def __init__(self, dataset: EpochDataset, collate: Callable[[list], Batch], batch_size: int, workers: int = 0,
                 pin_memory: bool = False) -> None:
        self.dataset, self.collate, self.batch_size = dataset, collate, batch_size
        self.workers, self.pin_memory = workers, pin_memory

    def __len__(self) -> int:
        return len(self.dataset)

    def epoch(self, epoch: int, sampler: EpochSampler) -> DataLoader:
        """The DataLoader of `epoch` over `sampler`'s indices (an incomplete last batch is dropped)."""
        self.dataset.set_epoch(epoch)
        return DataLoader(self.dataset, batch_size=self.batch_size, sampler=sampler, num_workers=self.workers,
                          collate_fn=self.collate, drop_last=True, worker_init_fn=ignore_stop_signals,
                          pin_memory=self.pin_memory)
