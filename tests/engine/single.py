"""A test driver: one video through an `InferenceCore` of one slot, frame by frame, as the scheduler runs
it (None before the first given mask, the given mask itself at that frame)."""
from typing import Optional

import torch

from libs.inference.backend import Backend
from libs.inference.core import InferenceCore
from libs.inference.settings import InferenceSettings


class OneVideo:
    """`step(frame [1, 3, H, W], given [1, K+1, H, W] or None)` -> probabilities [1, K+1, H, W] or None."""

    def __init__(self, model, **settings):
        settings = InferenceSettings(**settings)
        self.core = InferenceCore(Backend.from_settings(model, settings), settings)
        self.started = False

    @classmethod
    def on(cls, backend: Backend, **settings) -> "OneVideo":
        """A video through a core on an existing backend (e.g. onnxruntime's)."""
        video = cls.__new__(cls)
        video.core, video.started = InferenceCore(backend, InferenceSettings(**settings)), False
        return video

    def step(self, frame: torch.Tensor, given: Optional[torch.Tensor] = None) -> Optional[torch.Tensor]:
        """The core's result for the video's next frame."""
        if not self.started:
            if given is None:
                return None
            self.core.start(0, frame, given)
            self.started = True
            return given
        return self.core.step({0: frame}, None if given is None else {0: given})[0][None]

    def reset(self) -> None:
        """Forget the video (the core keeps its buffers: compiled graphs stay valid)."""
        if self.started:
            self.core.stop(0)
        self.started = False

    @property
    def bank(self):
        """The core's memory bank."""
        return self.core.bank

    @property
    def net(self):
        """The network the core runs."""
        return self.core.backend.net

    @property
    def prev_mask(self) -> torch.Tensor:
        """What the video's next frame memorises [1, K+1, H, W]."""
        return self.core.prev_mask

    @property
    def frame_ids(self):
        """The frames stored in the video's memory, oldest first."""
        return self.core.bank.rows[0].frame_ids
