"""The max_skip curriculum: the largest gap between the sampled frames of each training set's clips grows
by its increment every `epochs_per_increment` epochs, up to max_skip_cap.

The trainer moves it to each epoch before that epoch's loader is built (so DataLoader workers and DALI
planners see the new gaps) and saves its state in checkpoints under CHECKPOINT_KEY; checkpoints written
before that key existed hold the same state under "max_skip".
"""
from typing import Any, Dict, Mapping

from ..dataset.sampler import ClipSampler
from ..errors import VOSError

CHECKPOINT_KEY = "curriculum"
OLD_CHECKPOINT_KEY = "max_skip"


class Curriculum:
    """The clip samplers of the training sets, by data set name, moved together epoch by epoch."""

    def __init__(self, samplers: Mapping[str, ClipSampler], epochs_per_increment: int) -> None:
        if epochs_per_increment < 1:
            raise VOSError(f"epochs_per_increment must be >= 1, got {epochs_per_increment}")
        self.samplers, self.epochs_per_increment = dict(samplers), int(epochs_per_increment)

    def set_epoch(self, epoch: int) -> None:
        """Move every sampler to `epoch` (0-based): later clips use that epoch's max_skip."""
        for sampler in self.samplers.values():
            sampler.set_epoch(epoch, self.epochs_per_increment)

    def max_skips(self) -> Dict[str, int]:
        """The current max_skip of each training set (for the logs)."""
        return {name: sampler.max_skip for name, sampler in self.samplers.items()}

    def state_dict(self) -> Dict[str, Dict[str, int]]:
        """Each sampler's state by data set name, for checkpoints."""
        return {name: sampler.state_dict() for name, sampler in self.samplers.items()}

    def load_state_dict(self, state: Mapping[str, Mapping[str, int]]) -> None:
        """Restore what `state_dict` saved; a training set missing from it is a VOSError."""
        for name, sampler in self.samplers.items():
            if name not in state:
                raise VOSError(f"checkpoint has no sampler state for training data set {name} (it has "
                               f"{', '.join(sorted(state)) or 'none'}); train it from the start")
            sampler.load_state_dict(dict(state[name]))

    def load_checkpoint(self, data: Mapping[str, Any]) -> None:
        """Restore the state a checkpoint holds (under CHECKPOINT_KEY, or an older one's "max_skip");
        nothing when it holds none (a run without video training sets)."""
        state = data.get(CHECKPOINT_KEY, data.get(OLD_CHECKPOINT_KEY))
        if state:
            self.load_state_dict(state)
