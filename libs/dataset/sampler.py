"""Which frames of a video form one training clip, and the max_skip curriculum that widens the gaps."""
import random
from typing import Any, Dict, List, Union

import numpy as np

from ..errors import VOSError

RandomSource = Union[random.Random, np.random.Generator]


def _randint(rng: RandomSource, low: int, high: int) -> int:
    """A uniform integer in [low, high] (both included) from either kind of generator."""
    if isinstance(rng, np.random.Generator):
        return int(rng.integers(low, high + 1))
    return rng.randint(low, high)


def _check_int(key: str, value: Any, minimum: int) -> int:
    """`value` as an int, or a VOSError naming the configuration key when it is not an int >= minimum."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise VOSError(f"{key} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class ClipSampler:
    """Picks `sampled_frames` frame positions in temporal order with gaps of at most `max_skip`.

    `max_skip` follows a curriculum: it grows by `increment` every `epochs_per_increment` epochs,
    never beyond `max_skip_cap`. Positions index whatever list of frames the caller samples from
    (for training: the sorted annotated frames of a video).
    """

    def __init__(self, sampled_frames: int, max_skip: int, increment: int, max_skip_cap: int = 100,
                 name: str = "") -> None:
        self.sampled_frames = _check_int("sampled_frames", sampled_frames, 1)
        self.base_max_skip = _check_int("max_skip", max_skip, 1)
        self.increment = _check_int("max_skip increment", increment, 0)
        self.max_skip_cap = _check_int("max_skip_cap", max_skip_cap, 1)
        self.name = name
        if self.base_max_skip > self.max_skip_cap:
            raise VOSError(f"max_skip {self.base_max_skip}{self._for()} exceeds max_skip_cap "
                           f"{self.max_skip_cap}; lower max_skip or raise max_skip_cap")
        self.max_skip = self.base_max_skip
        self.epoch = 0

    def _for(self) -> str:
        """' for data set NAME' when the sampler has a name, else ''."""
        return f" for data set {self.name}" if self.name else ""

    def max_skip_at(self, epoch: int, epochs_per_increment: int) -> int:
        """The curriculum's max_skip in `epoch` (0-based): base + increment per completed period, capped."""
        period = _check_int("epochs_per_increment", epochs_per_increment, 1)
        grown = self.base_max_skip + self.increment * (max(int(epoch), 0) // period)
        return min(grown, self.max_skip_cap)

    def set_epoch(self, epoch: int, epochs_per_increment: int) -> None:
        """Move the curriculum to `epoch`: later `sample` calls use that epoch's max_skip."""
        self.max_skip = self.max_skip_at(epoch, epochs_per_increment)
        self.epoch = int(epoch)

    def state_dict(self) -> Dict[str, int]:
        """The curriculum state stored in checkpoints."""
        return {"base_max_skip": self.base_max_skip, "max_skip": self.max_skip, "increment": self.increment,
                "max_skip_cap": self.max_skip_cap, "epoch": self.epoch}

    def load_state_dict(self, state: Dict[str, int]) -> None:
        """Restore a state from `state_dict` (the checkpoint's values replace the configured ones)."""
        missing = [key for key in self.state_dict() if key not in state]
        if missing:
            raise VOSError(f"checkpoint sampler state{self._for()} lacks {', '.join(missing)}; "
                           "it was not written by this version's trainer")
        self.base_max_skip = _check_int("max_skip", state["base_max_skip"], 1)
        self.increment = _check_int("max_skip increment", state["increment"], 0)
        self.max_skip_cap = _check_int("max_skip_cap", state["max_skip_cap"], 1)
        self.max_skip = _check_int("max_skip", state["max_skip"], 1)
        self.epoch = _check_int("epoch", state["epoch"], 0)

    def sample(self, num_frames: int, rng: RandomSource, video: str = "") -> List[int]:
        """`sampled_frames` increasing positions in [0, num_frames) with consecutive gaps <= max_skip."""
        count = self.sampled_frames
        if num_frames < count:
            what = f"video {video!r}" if video else "a video"
            raise VOSError(f"{what}{self._for()} has {num_frames} frames to sample from (annotated frames), "
                           f"fewer than sampled_frames={count}; lower sampled_frames or remove the video")
        positions = [_randint(rng, 0, num_frames - count)]
        for k in range(1, count):
            last_allowed = num_frames - count + k   # leaves room for the count-1-k frames still to pick
            high = min(positions[-1] + self.max_skip, last_allowed)
            positions.append(_randint(rng, positions[-1] + 1, high))
        return positions
