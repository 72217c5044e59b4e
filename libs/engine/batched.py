"""B videos segmented in lockstep by one engine: every network call runs on the whole batch [B, ...]."""
import contextlib
from typing import Dict, List, Optional

import torch

from libs.engine.batched_memory import BatchedMemoryBank
from libs.engine.batched_steps import BatchedSteps
from libs.engine.correction import frozen_parameters
from libs.engine.inference import InferenceEngine, merge_given, to_device
from libs.engine.steps import exact_float32
from libs.models.stm import QueryFeatures


def _pad_channels(x: Optional[torch.Tensor], channels: int) -> Optional[torch.Tensor]:
    """x [B, C, H, W] with zero channels appended up to `channels`."""
    if x is None or x.shape[1] >= channels:
        return x
    return torch.cat([x, x.new_zeros(x.shape[0], channels - x.shape[1], *x.shape[2:])], dim=1)


class BatchedEngine:
    """Segments up to B videos at once with the settings, network and path of `engine` (an
    `InferenceEngine`: plain or fast, bf16, compiled): slot b holds one video (its frame index, objects,
    correction reference, memory in a shared `BatchedMemoryBank`).

    `start(b, frame, given)` puts a video in slot b at its first given mask; `step({b: frame}, {b: mask})`
    segments the next frame of the videos named (other slots are computed with the batch and left as they
    are); `stop(b)` frees slot b. Videos have their own object counts (the batch pads to the largest, the
    padding masked exactly) and memory sizes. The correction runs where a video's schedule says so, on
    the whole batch with a per-video weight of 0 or 1 (a video at weight 0 is unchanged). A video's
    results equal those of `engine` on it alone, up to the rounding of batched operations.
    """

    def __init__(self, engine: InferenceEngine, slots: int):
        self.engine, self.slots = engine, slots
        self.net, self.fast, self.dtype = engine.net, engine.fast, engine.dtype
        self.save_freq, self.loop, self.rate = engine.save_freq, engine.loop, engine.rate
        self.steps = BatchedSteps(engine.compile, engine.compile_backend, engine.cuda, sdpa=engine.fast)
        self._cache: Dict[tuple, torch.Tensor] = {}
        self.release_memory()

    def release_memory(self) -> None:
        """Forget every video and free the buffers (e.g. after running out of GPU memory)."""
        self.bank = BatchedMemoryBank(self.slots, self.engine.max_memory_frames)
        self.t: List[int] = [-1] * self.slots        # per slot: index of the last frame seen (-1: idle)
        self.objects: List[int] = [0] * self.slots   # per slot: the video's objects
        self.K = 0                                   # channels of the batch: the largest object count seen
        self.prev_frame: Optional[torch.Tensor] = None    # [B, 3, H, W] in the network's layout and dtype
        self.prev_mask: Optional[torch.Tensor] = None     # [B, K+1, H, W] fp32
        self.ref_mask: Optional[torch.Tensor] = None      # [B, K+1, H, W]
        self.ref_query: Optional[QueryFeatures] = None    # [B, ...] each
        self._blank: Optional[torch.Tensor] = None        # [1, 3, H, W]: the frame of a free slot

    def active(self, b: int) -> bool:
        """Whether slot b holds a video."""
        return self.t[b] >= 0

    def _prepare(self, frame: torch.Tensor) -> torch.Tensor:
        """A frame [N, 3, H, W] in the network's layout and precision."""
        return frame.to(self.dtype, memory_format=torch.channels_last) if self.fast else frame

    def _precision(self, autocast: bool = False):
        """The plain path: exact fp32 (with `autocast`, bf16 autocast if amp: the segmentation, as the
        single-video engine); the fast path: as it is (its weights hold the precision)."""
        if self.fast:
            return contextlib.nullcontext()
        stack = contextlib.ExitStack()
        stack.enter_context(exact_float32())
        if autocast:
            stack.enter_context(self.engine._autocast())
        return stack

    @torch.no_grad()
    def start(self, b: int, frame: torch.Tensor, given: torch.Tensor) -> torch.Tensor:
        """Slot b begins a video: frame [1, 3, H, W] with its first given one-hot masks [1, K+1, H, W]
        (returned, as the frame's result)."""
        frame = self._prepare(frame)
        objects = given.shape[1] - 1
        if self.prev_frame is None or self.prev_frame.shape[2:] != frame.shape[2:]:
            self.prev_frame = frame.new_zeros(self.slots, *frame.shape[1:]).contiguous(
                memory_format=torch.channels_last if self.fast else torch.contiguous_format)
            self.prev_mask = self.ref_mask = self.ref_query = None
            self.K = 0
        self._widen(max(self.K, objects), given)
        self.prev_frame[b] = frame[0]
        self.t[b], self.objects[b] = 0, objects
        self.bank.reset(b, objects)
        self._set_reference(b, frame, given)
        self.prev_mask = self.prev_mask.clone()        # it is the last step's result: not written in place
        self.prev_mask[b] = self.ref_mask[b]
        return given

    def stop(self, b: int) -> None:
        """Slot b is free (its computation goes on with the batch, its results unused)."""
        self.t[b] = -1

    def _widen(self, K: int, like: torch.Tensor) -> None:
        """Hold K objects: the masks get channels (zeros), the bank rows."""
        if self.prev_mask is None:
            self.prev_mask = like.new_zeros(self.slots, K + 1, *like.shape[2:])
            self.ref_mask = torch.zeros_like(self.prev_mask)
        self.K = K
        self.prev_mask, self.ref_mask = _pad_channels(self.prev_mask, K + 1), _pad_channels(self.ref_mask, K + 1)
        self.bank.grow_objects(K)

    def _set_reference(self, b: int, frame: torch.Tensor, mask: torch.Tensor) -> None:
        """Slot b's correction reference: frame [1, 3, H, W] and its masks [1, k+1, H, W]."""
        self.ref_mask[b] = 0.0
        self.ref_mask[b, :mask.shape[1]] = mask[0]
        if self.loop == 0:
            return
        with self._precision():
            query = self.net.encode_query(frame)          # [1, ...] each
        if self.ref_query is None:
            self.ref_query = QueryFeatures(*(x.new_zeros(self.slots, *x.shape[1:]) for x in query))
        for mine, new in zip(self.ref_query, query):
            mine[b] = new[0]

    def _constant(self, kind: str, values: tuple, dtype: torch.dtype) -> torch.Tensor:
        """A small device tensor for a pattern of per-slot values, copied to the device once."""
        key = (kind, values)
        if key not in self._cache:
            if len(self._cache) > 256:
                self._cache.clear()
            self._cache[key] = to_device(torch.tensor(values, dtype=dtype), self.prev_frame.device)   # no sync
        return self._cache[key]

    def _present(self) -> torch.Tensor:
        """[B, K] bool: the real objects of each slot."""
        rows = tuple(tuple(k < n for k in range(self.K)) for n in self.objects)
        return self._constant("present", rows, torch.bool)

    @torch.no_grad()
    def step(self, frames: Dict[int, torch.Tensor], given: Optional[Dict[int, torch.Tensor]] = None
             ) -> Dict[int, torch.Tensor]:
        """Segment the next frame [1, 3, H, W] of each slot in `frames` (given: {slot: one-hot masks
        [1, k+1, H, W] given for that frame}). Returns {slot: probabilities [K_b+1, H, W]}, the written
        results (before correction), views of one batch tensor."""
        given = given or {}
        x = self._batch(frames)                                            # [B, 3, H, W]
        size = tuple(x.shape[2:])
        with self._precision(autocast=True):
            prev = self.steps.memory(self.net, self.prev_frame, self.prev_mask[:, 1:])   # [B, K, hw, C]
            mem_key, mem_value, bias = self.bank.read_inputs(prev)
            out = self.steps.segment(self.net, x, mem_key, mem_value, bias, self._present(), size)
        for b in frames:
            self.t[b] += 1
            if (self.t[b] - 1) % self.save_freq == 0:
                self.bank.commit(b, self.t[b] - 1)
        for b, mask in given.items():
            out = self._merge(b, x, out, mask)
        written = out
        weights = tuple(float(b in frames and b not in given and self.t[b] % self.save_freq == 0)
                        for b in range(self.slots))
        if self.loop > 0 and any(weights):
            out = self._correct(x, out, weights)
        self._keep_state(frames, x, out)
        return {b: written[b, :self.objects[b] + 1] for b in frames}

    def _keep_state(self, frames: Dict[int, torch.Tensor], x: torch.Tensor, out: torch.Tensor) -> None:
        """The stepped slots' frame and prediction are memorised next; the other slots keep theirs (a video
        started in a slot during this step)."""
        if len(frames) < self.slots:
            stepped = self._constant("stepped", tuple(b in frames for b in range(self.slots)), torch.bool)
            x = torch.where(stepped[:, None, None, None], x, self.prev_frame)         # [B, 3, H, W]
            out = torch.where(stepped[:, None, None, None], out, _pad_channels(self.prev_mask, out.shape[1]))
        self.prev_frame, self.prev_mask = x, out

    def _batch(self, frames: Dict[int, torch.Tensor]) -> torch.Tensor:
        """The slots' frames as one batch [B, 3, H, W] in the network's layout (free slots: zeros)."""
        if len(frames) < self.slots and (self._blank is None or self._blank.shape[2:] != self.prev_frame.shape[2:]):
            self._blank = torch.zeros(1, *self.prev_frame.shape[1:], device=self.prev_frame.device)
        return self._prepare(torch.cat([frames.get(b, self._blank) for b in range(self.slots)]))

    def _merge(self, b: int, x: torch.Tensor, out: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Masks given for slot b's frame are pasted over its prediction and become its reference."""
        merged = merge_given(out[b:b + 1, :self.objects[b] + 1], mask)      # [1, k+1, H, W]
        k = merged.shape[1] - 1
        if k > self.K:
            self._widen(k, out)
            out = _pad_channels(out, k + 1)
        out[b] = 0.0
        out[b, :k + 1] = merged[0]
        self.objects[b] = k
        self.bank.set_objects(b, k)
        self._set_reference(b, x[b:b + 1], merged)
        return out

    def _correct(self, x: torch.Tensor, out: torch.Tensor, weights: tuple) -> torch.Tensor:
        """`loop` batched correction iterations of the slots whose weight is 1: [B, K+1, H, W]."""
        w = self._constant("weights", weights, torch.float32)                       # [B]
        objects = self._constant("objects", tuple(self.objects), torch.long)        # [B]
        with self._precision(), frozen_parameters(self.net):
            stem = self.net.memory_stem(x)                                           # [B, 64, H/2, W/2]
            for _ in range(self.loop):
                out = self.steps.correct(self.net, x, stem, out, self.ref_query, self.ref_mask, objects,
                                         self._present(), w, self.rate, tuple(x.shape[2:]))
        return out
