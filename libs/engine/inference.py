"""The one inference engine: segments a video frame by frame from a memory of earlier frames."""
from typing import Dict, Iterable, Iterator, Optional, Tuple

import numpy as np
import torch

from libs.engine.correction import correct_prediction
from libs.engine.memory import MemoryBank, PreallocatedMemoryBank
from libs.engine.steps import FastSteps, exact_float32
from libs.errors import VOSError
from libs.models.fold import inference_copy
from libs.models.stm import STM, QueryFeatures
from libs.utils.constants import VOID_LABEL


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

    Plain path (fast False): the model itself, in exact fp32 (TF32 off on GPUs while a frame runs);
    amp: bf16 autocast. fast: a frozen copy of the model taken now (`inference_copy`: batch norm
    folded into the convolutions, channels-last layout; with `amp` its weights in bf16, the softmaxes,
    soft aggregation, correction loss and update in fp32), a preallocated memory bank, the memory read
    by scaled_dot_product_attention, a correction that differentiates only the mask; the same
    computation up to rounding (TF32 as the user's torch settings allow). compile (needs fast): the
    steps of `libs.engine.steps` compiled by torch.compile (`compile_backend`) on a fixed-shape bank.
    """

    def __init__(self, model: STM, save_freq: int = 5, loop: int = 0, correction_rate: float = 150.0,
                 max_memory_frames: int = 0, amp: bool = False, fast: bool = False, compile: bool = False,
                 compile_backend="inductor"):
        if compile and not fast:
            raise VOSError("compile True needs fast_inference True (the compiled steps are the fast path's)")
        self.model = model
        self.dtype = torch.bfloat16 if fast and amp else torch.float32     # the fast copy's weights
        self.net = inference_copy(model, dtype=self.dtype) if fast else model    # the network the engine runs
        self.save_freq, self.loop, self.rate = save_freq, loop, correction_rate
        self.max_memory_frames, self.amp, self.fast, self.compile = max_memory_frames, amp, fast, compile
        cuda = next(model.parameters()).device.type == "cuda"
        self.compile_backend, self.cuda = compile_backend, cuda
        self.steps = FastSteps(compile, compile_backend, cuda) if fast else None
        self.bank = None
        self.reset()

    def release_memory(self) -> None:
        """Forget the current video and free the memory bank's buffers (kept across videos when compiled),
        e.g. after running out of GPU memory: the next video allocates them anew."""
        self.bank = None
        self.reset()

    def reset(self) -> None:
        """Forget the current video."""
        if not self.fast:
            self.bank = MemoryBank(self.max_memory_frames)
        elif self.compile and self.bank is not None:
            self.bank.clear()                  # the same buffers: compiled graphs stay valid
        else:
            self.bank = PreallocatedMemoryBank(self.max_memory_frames, fixed_shape=self.compile)
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
        """bf16 autocast for the plain path with amp (the fast path holds bf16 weights instead)."""
        device = next(self.net.parameters()).device.type
        return torch.autocast(device, dtype=torch.bfloat16, enabled=self.amp and not self.fast)

    @torch.no_grad()
    def step(self, frame: torch.Tensor, given: Optional[torch.Tensor] = None) -> Optional[torch.Tensor]:
        """Segment `frame` [1, 3, H, W]; `given` [1, K+1, H, W] one-hot masks given for this frame.

        Returns the probabilities written for this frame [1, K+1, H, W] (K = objects so far), or
        None for frames before the first given mask.
        """
        if self.fast:
            frame = frame.to(self.dtype, memory_format=torch.channels_last)
            return self._step(frame, given)
        with exact_float32():
            return self._step(frame, given)

    def _step(self, frame: torch.Tensor, given: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        """`step` after the frame is in the network's layout and precision."""
        if not self.started:
            if given is None:
                return None
            return self._start(frame, given)
        self.t += 1
        out = self._segment_fast(frame) if self.fast else self._segment(frame)
        written = out
        if given is not None:
            out = written = merge_given(out, given)
            self._set_reference(frame, out, None)
        elif self.loop > 0 and self.t % self.save_freq == 0:
            out = correct_prediction(self.net, frame, out, ref_query=self.ref_query, ref_mask=self.ref_mask,
                                     num_objects=self.num_objects, loop=self.loop, rate=self.rate,
                                     out_size=tuple(frame.shape[2:]), fast=self.fast,
                                     step=self.steps.correct if self.fast else None)
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
        """Plain path: memorise the previous frame, read the memory, decode: [1, K+1, H, W]."""
        K = self.num_objects
        self.bank.grow_objects(K)
        with self._autocast():
            prev = self.net.encode_memory(self.prev_frame, self.prev_mask[:, 1:K + 1])   # [1, K, hw, C]
            mem_key, mem_value, bias = self.bank.read_inputs(extra=prev)
            query = self.net.encode_query(frame)
            logits = self.net.segment(query, mem_key, mem_value, tuple(frame.shape[2:]), bias)
        self._store(prev)
        return torch.softmax(logits.float(), dim=1)

    def _segment_fast(self, frame: torch.Tensor) -> torch.Tensor:
        """Fast path: the same through `FastSteps` on the preallocated bank: [1, K+1, H, W] fp32."""
        K = self.num_objects
        self.bank.grow_objects(K)
        prev = self.steps.memory(self.net, self.prev_frame, self.prev_mask[:, 1:K + 1])   # [1, K, hw, C]
        mem_key, mem_value, bias = self.bank.read_inputs(extra=prev)      # fixed shapes when compiled
        out = self.steps.segment(self.net, frame, mem_key, mem_value, bias, tuple(frame.shape[2:]))
        return self._store(prev, out)

    def _store(self, prev: Tuple[torch.Tensor, torch.Tensor], out: Optional[torch.Tensor] = None
               ) -> Optional[torch.Tensor]:
        """Add the previous frame's memory to the bank when its index is a multiple of save_freq; returns `out`."""
        if (self.t - 1) % self.save_freq == 0:
            self.bank.add(prev[0], prev[1], self.t - 1)
        return out


def segment_video(engine: InferenceEngine, letterbox, frames: Iterable[np.ndarray],
                  given: Dict[int, np.ndarray], device: torch.device) -> Iterator[Tuple[int, Optional[np.ndarray]]]:
    """Run the engine over a video: the one per-frame loop of test.py, the demo and validation.

    frames: [H, W, 3] uint8 RGB in order; given: frame index -> [H, W] uint8 labels (void 255 is
    background). Yields (index, probabilities [K+1, th, tw] at network resolution, a tensor still on
    `device`) per frame; None for frames before the first given mask. Nothing here waits for the
    device: frames go up asynchronously and the consumer copies results back (libs/runner/video.py does it on
    its writer thread). `letterbox` maps frames and masks to the network.
    """
    engine.reset()
    for t, rgb in enumerate(frames):
        x = to_device(letterbox.frame(rgb), device)                    # [1, 3, th, tw]
        mask = None
        if t in given:
            labels = np.where(given[t] == VOID_LABEL, 0, given[t])
            mask = to_device(letterbox.mask(labels, int(labels.max())), device)  # [1, K+1, th, tw]
        probs = engine.step(x, mask)
        yield t, (None if probs is None else probs[0])


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host tensor on `device`; to a GPU through pinned memory without waiting for queued work."""
    if device.type != "cuda":
        return x.to(device)
    return x.pin_memory().to(device, non_blocking=True)
