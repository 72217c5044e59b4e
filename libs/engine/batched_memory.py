"""The memory of B videos segmented together: one set of fixed-shape buffers, per-video bookkeeping."""
from typing import List, Optional, Tuple

import torch

from libs.engine.inference import to_device

NEG_INF = float("-inf")


class _Video:
    """One video's use of the shared buffers: its stored frames, their slots and objects."""

    def __init__(self) -> None:
        self.frame_ids: List[int] = []      # stored frames, oldest first
        self.slot_of: List[int] = []        # the slot of each stored frame
        self.start_of: List[int] = []       # objects with memory in each stored frame
        self.objects = 0                    # the video's objects (more channels are padding)
        self.staged: Optional[int] = None   # the slot of the previous frame read as `extra`, not stored yet

    def free_slot(self, capacity: int) -> Optional[int]:
        """The lowest slot no stored frame uses, None when all are used."""
        used = set(self.slot_of)
        return next((s for s in range(capacity) if s not in used), None)


class BatchedMemoryBank:
    """Stored memory frames of B videos in buffers key [B, K, S*hw, C_k], value [B, K, S*hw, C_v] and a
    bias [B, K, S*hw] (0: readable, -inf: masked), as `PreallocatedMemoryBank` with fixed_shape for one.

    Every video has S slots of hw positions; a video uses as many as it stores (+1 for the previous
    frame), the others are masked by the bias, so videos with different numbers of memory frames share
    the buffers. K is the batch's largest object count: a video's padding objects read all its memory
    (their outputs are discarded; a fully masked row would give NaN). The previous frames of all videos
    are written by one indexed copy per buffer; the capacity doubles (for all) when a video needs more.
    """

    def __init__(self, videos: int, max_frames: int = 0, initial_slots: int = 8):
        self.max_frames = max_frames
        self.initial_slots = max_frames + 1 if max_frames else max(1, initial_slots)
        self.videos = [_Video() for _ in range(videos)]
        self.key: Optional[torch.Tensor] = None     # [B, K, S*hw, C_k]
        self.value: Optional[torch.Tensor] = None   # [B, K, S*hw, C_v]
        self.bias: Optional[torch.Tensor] = None    # [B, K, S*hw]
        self.hw = 0
        self._index: dict = {}                      # cached device index tensors per slot pattern

    @property
    def capacity(self) -> int:
        """Slots per video."""
        return 0 if self.key is None else self.key.shape[2] // self.hw

    def stored(self, b: int) -> int:
        """Memory frames video `b` has stored."""
        return len(self.videos[b].frame_ids)

    def reset(self, b: int, objects: int) -> None:
        """Video slot `b` starts a new video with `objects` objects: its memory is forgotten."""
        self.videos[b] = _Video()
        self.videos[b].objects = objects
        if self.bias is not None:
            self.bias[b] = NEG_INF

    def set_objects(self, b: int, objects: int) -> None:
        """Video `b` has `objects` objects now (objects given at a later frame)."""
        if objects != self.videos[b].objects:
            self.videos[b].objects = objects
            self._rebuild_bias(b)

    def _allocate(self, key: torch.Tensor, value: torch.Tensor) -> None:
        """Buffers for memory shaped like key [B, K, hw, C_k], value [B, K, hw, C_v]."""
        B, K, self.hw = key.shape[:3]
        n = self.initial_slots * self.hw
        self.key = key.new_zeros(B, K, n, key.shape[3])
        self.value = value.new_zeros(B, K, n, value.shape[3])
        self.bias = torch.full((B, K, n), NEG_INF, device=key.device)

    def _fits(self, key: torch.Tensor, value: torch.Tensor) -> bool:
        """Whether the buffers hold memory shaped like `key` and `value`."""
        return (self.key is not None and self.hw == key.shape[2] and self.key.shape[3] == key.shape[3]
                and self.value.shape[3] == value.shape[3] and self.key.dtype == key.dtype
                and self.key.device == key.device)

    def _grow_slots(self) -> None:
        """Double every video's slots, keeping what is stored."""
        B, K, n, _ = self.key.shape
        self.key = torch.cat([self.key, self.key.new_zeros(B, K, n, self.key.shape[3])], dim=2)
        self.value = torch.cat([self.value, self.value.new_zeros(B, K, n, self.value.shape[3])], dim=2)
        self.bias = torch.cat([self.bias, torch.full_like(self.bias, NEG_INF)], dim=2)

    def grow_objects(self, objects: int) -> None:
        """Widen the buffers to `objects` objects (every video's new rows are padding until it has them)."""
        if self.key is None or objects <= self.key.shape[1]:
            return
        B, K, n, _ = self.key.shape
        extra = objects - K
        self.key = torch.cat([self.key, self.key.new_zeros(B, extra, n, self.key.shape[3])], dim=1)
        self.value = torch.cat([self.value, self.value.new_zeros(B, extra, n, self.value.shape[3])], dim=1)
        self.bias = torch.cat([self.bias, self.bias.new_full((B, extra, n), NEG_INF)], dim=1)
        for b in range(B):
            self._rebuild_bias(b)

    def _where(self, slot: int) -> slice:
        """The memory positions of `slot`."""
        return slice(slot * self.hw, (slot + 1) * self.hw)

    def _rebuild_bias(self, b: int) -> None:
        """Video b's bias from its bookkeeping: an object reads a stored frame if it had memory there or
        is padding; everything reads the staged previous frame."""
        if self.bias is None:
            return
        video = self.videos[b]
        self.bias[b] = NEG_INF
        for slot, start in zip(video.slot_of, video.start_of):
            self.bias[b, :start, self._where(slot)] = 0.0
            self.bias[b, video.objects:, self._where(slot)] = 0.0
        if video.staged is not None:
            self.bias[b, :, self._where(video.staged)] = 0.0

    def read_inputs(self, extra: Tuple[torch.Tensor, torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Write every video's previous frame extra = (key [B, K, hw, C_k], value) to a free slot of its own
        and return the whole buffers mem_key [B, K, S*hw, C_k], mem_value and the bias [B, K, S*hw]."""
        key, value = extra
        if not self._fits(key, value):
            self._allocate(key, value)
        self.grow_objects(key.shape[1])
        slots = [self._stage_slot(b) for b in range(len(self.videos))]
        B, K, n, _ = self.key.shape
        b_index, s_index = self._indices(slots)
        S = n // self.hw
        self.key.view(B, K, S, self.hw, -1)[b_index, :, s_index] = key        # [B, K, hw, C_k] per video's slot
        self.value.view(B, K, S, self.hw, -1)[b_index, :, s_index] = value
        self.bias.view(B, K, S, self.hw)[b_index, :, s_index] = 0.0
        return self.key, self.value, self.bias

    def _stage_slot(self, b: int) -> int:
        """The slot video b's previous frame goes to (growing the buffers if it has none free); a slot
        staged before but not stored is masked again."""
        video = self.videos[b]
        slot = video.free_slot(self.capacity)
        if slot is None:
            self._grow_slots()
            slot = video.free_slot(self.capacity)
        if video.staged is not None and video.staged != slot and video.staged not in video.slot_of:
            self.bias[b, :, self._where(video.staged)] = NEG_INF
        video.staged = slot
        return slot

    def _indices(self, slots: List[int]) -> Tuple[torch.Tensor, torch.Tensor]:
        """Device index tensors (video, slot) for a slot pattern, kept so that each pattern is copied once."""
        pattern = tuple(slots)
        if pattern not in self._index:
            if len(self._index) >= 256:
                self._index.clear()
            device = self.key.device          # through pinned memory on a GPU: no wait for queued work
            self._index[pattern] = (torch.arange(len(slots), device=device), to_device(torch.tensor(slots), device))
        return self._index[pattern]

    def commit(self, b: int, frame_id: int) -> None:
        """Store video b's previous frame (the memory last read as `extra`) as frame `frame_id`; drops the
        oldest frame after the first when over `max_frames`."""
        video = self.videos[b]
        if self.max_frames and len(video.frame_ids) >= self.max_frames:
            drop = 1 if self.max_frames > 1 else 0
            self.bias[b, :, self._where(video.slot_of[drop])] = NEG_INF
            del video.frame_ids[drop], video.slot_of[drop], video.start_of[drop]
        video.frame_ids.append(frame_id)
        video.slot_of.append(video.staged)
        video.start_of.append(video.objects)
        video.staged = None
