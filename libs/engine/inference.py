"""The one inference engine: segments a video frame by frame from a memory of earlier frames."""
from typing import Dict, Iterable, Iterator, Optional, Tuple

import numpy as np
import torch

from libs.engine.correction import correct_prediction
from libs.engine.memory import MemoryBank, PreallocatedMemoryBank
from libs.models.fold import inference_copy
from libs.models.stm import STM, QueryFeatures


def merge_given(probs: torch.Tensor, given: torch.Tensor) -> torch.Tensor:
    """Paste the objects of a given one-hot mask over a prediction (objects appearing later).

    probs [1, K+1, H, W], given [1, K'+1, H, W] -> [1, max(K, K')+1, H, W]: pixels labelled with an
    object in `given` take that label; every other pixel keeps the prediction.
    """
    channels = max(probs.shape[1], given.shape[1])
    out = probs.new_zeros(1, channels, *probs.shape[2:])
    out[:, :probs.shape[1]] = probs
    full = given.new_zeros(1, channels, *given.shape[2:])
    full[:, :given.shape[1]] = given
    labelled = full[:, 1:].sum(dim=1, keepdim=True) > 0           # [1, 1, H, W]
    return torch.where(labelled, full, out)


class InferenceEngine:
    """Owns one video's memory bank and objects; call `step` once per frame, in order.

    At frame t the previous frame t-1 is encoded with its mask (given, or the engine's own,
    possibly corrected, output) and frame t is segmented from the stored memory plus that frame;
    frame t-1 joins the stored memory when (t-1) is a multiple of `save_freq`. Every `save_freq`
    frames, `loop` correction iterations update the prediction that the next frame memorises;
    the returned (written) prediction is the one before correction.

    fast: the engine runs a frozen copy of the model taken now (`inference_copy`: batch norm folded
    into the convolutions, channels-last layout), a preallocated memory bank, the memory read by
    scaled_dot_product_attention, and a correction that differentiates only the mask (bf16 autocast
    in it too with `amp`); the same computation up to rounding. amp: bf16 autocast (on a GPU, or on a
    CPU, where it pays only with bf16 instructions such as AVX512-BF16 or AMX).
    """

    def __init__(self, model: STM, save_freq: int = 5, loop: int = 0, correction_rate: float = 150.0,
                 max_memory_frames: int = 0, amp: bool = False, fast: bool = False):
        self.model = model
        self.net = inference_copy(model) if fast else model      # the network the engine runs
        self.save_freq, self.loop, self.rate = save_freq, loop, correction_rate
        self.max_memory_frames, self.amp, self.fast = max_memory_frames, amp, fast
        self.reset()

    def reset(self) -> None:
        """Forget the current video."""
        self.bank = (PreallocatedMemoryBank(self.max_memory_frames) if self.fast
                     else MemoryBank(self.max_memory_frames))
        self.t = -1                      # index of the last frame seen, from the first given mask
        self.num_objects = 0
        self.prev_frame: Optional[torch.Tensor] = None
        self.prev_mask: Optional[torch.Tensor] = None
        self.ref_query: Optional[QueryFeatures] = None
        self.ref_mask: Optional[torch.Tensor] = None

    @property
    def started(self) -> bool:
        """Whether a first mask has been given."""
        return self.prev_frame is not None

    def _autocast(self):
        device = next(self.net.parameters()).device.type
        return torch.autocast(device, dtype=torch.bfloat16, enabled=self.amp)

    @torch.no_grad()
    def step(self, frame: torch.Tensor, given: Optional[torch.Tensor] = None) -> Optional[torch.Tensor]:
        """Segment `frame` [1, 3, H, W]; `given` [1, K+1, H, W] one-hot masks given for this frame.

        Returns the probabilities written for this frame [1, K+1, H, W] (K = objects so far), or
        None for frames before the first given mask.
        """
        if self.fast:
            frame = frame.contiguous(memory_format=torch.channels_last)
        if not self.started:
            if given is None:
                return None
            return self._start(frame, given)
        self.t += 1
        with self._autocast():
            out = self._segment(frame)
        written = out
        if given is not None:
            out = written = merge_given(out, given)
            self._set_reference(frame, out, None)
        elif self.loop > 0 and self.t % self.save_freq == 0:
            out = correct_prediction(self.net, frame, out, self.ref_query, self.ref_mask, self.num_objects,
                                     self.loop, self.rate, tuple(frame.shape[2:]), self.fast, self.amp)
        self.prev_frame, self.prev_mask = frame, out
        return written

    def _start(self, frame: torch.Tensor, given: torch.Tensor) -> torch.Tensor:
        """The first given mask: it is the first memory and the correction's reference."""
        self.t = 0
        self.prev_frame, self.prev_mask = frame, given
        self._set_reference(frame, given, None)
        return given

    def _set_reference(self, frame: torch.Tensor, mask: torch.Tensor, query: Optional[QueryFeatures]) -> None:
        """Remember the latest given frame and mask; its query features are encoded once."""
        self.num_objects = max(self.num_objects, mask.shape[1] - 1)
        self.ref_mask = mask
        if self.loop > 0:
            self.ref_query = query if query is not None else self.net.encode_query(frame)

    def _segment(self, frame: torch.Tensor) -> torch.Tensor:
        """Memorise the previous frame, read the memory, decode: merged probabilities [1, K+1, H, W]."""
        K = self.num_objects
        self.bank.grow_objects(K)
        prev = self.net.encode_memory(self.prev_frame, self.prev_mask[:, 1:K + 1])   # [1, K, hw, C]
        mem_key, mem_value, bias = self.bank.read_inputs(extra=prev)
        query = self.net.encode_query(frame)
        logits = self.net.segment(query, mem_key, mem_value, tuple(frame.shape[2:]), bias, sdpa=self.fast)
        if (self.t - 1) % self.save_freq == 0:
            self.bank.add(prev[0], prev[1], self.t - 1)
        return torch.softmax(logits.float(), dim=1)


def segment_video(engine: InferenceEngine, letterbox, frames: Iterable[np.ndarray],
                  given: Dict[int, np.ndarray], device: torch.device) -> Iterator[Tuple[int, Optional[np.ndarray]]]:
    """Run the engine over a video: the one per-frame loop of test.py, the demo and validation.

    frames: [H, W, 3] uint8 RGB in order; given: frame index -> [H, W] uint8 labels (void 255 is
    background). Yields (index, probabilities [K+1, th, tw] at network resolution, a tensor still on
    `device`) per frame; None for frames before the first given mask. Nothing here waits for the
    device: frames go up asynchronously and the consumer copies results back (results.py does it on
    its writer thread). `letterbox` maps frames and masks to the network.
    """
    engine.reset()
    for t, rgb in enumerate(frames):
        x = to_device(letterbox.frame(rgb), device)                    # [1, 3, th, tw]
        mask = None
        if t in given:
            labels = np.where(given[t] == 255, 0, given[t])
            mask = to_device(letterbox.mask(labels, int(labels.max())), device)  # [1, K+1, th, tw]
        probs = engine.step(x, mask)
        yield t, (None if probs is None else probs[0])


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host tensor on `device`; to a GPU through pinned memory without waiting for queued work."""
    if device.type != "cuda":
        return x.to(device)
    return x.pin_memory().to(device, non_blocking=True)
