"""The memory bank of one video: keys and values of stored frames, per object."""
from typing import List, Optional, Tuple

import torch


class MemoryBank:
    """Stored memory frames, oldest first; bounded to `max_frames` (0 = unbounded) keeping the first."""

    def __init__(self, max_frames: int = 0):
        self.max_frames = max_frames
        self.keys: List[torch.Tensor] = []     # each [1, K, hw, C_k]
        self.values: List[torch.Tensor] = []   # each [1, K, hw, C_v]
        self.starts: List[int] = []            # first object index that has memory in each frame
        self.frame_ids: List[int] = []

    def __len__(self) -> int:
        return len(self.keys)

    def add(self, key: torch.Tensor, value: torch.Tensor, frame_id: int) -> None:
        """Store one frame's memory; drops the oldest frame after the first when over the bound."""
        self.keys.append(key)
        self.values.append(value)
        self.frame_ids.append(frame_id)
        self.starts.append(key.shape[1])
        if self.max_frames and len(self.keys) > self.max_frames:
            drop = 1 if self.max_frames > 1 else 0
            for seq in (self.keys, self.values, self.frame_ids, self.starts):
                del seq[drop]

    def grow_objects(self, num_objects: int) -> None:
        """Pad stored frames with empty memory for objects that appeared later (masked out when read)."""
        for i, (k, v) in enumerate(zip(self.keys, self.values)):
            extra = num_objects - k.shape[1]
            if extra > 0:
                self.starts[i] = min(self.starts[i], k.shape[1])
                self.keys[i] = torch.cat([k, k.new_zeros(1, extra, *k.shape[2:])], dim=1)
                self.values[i] = torch.cat([v, v.new_zeros(1, extra, *v.shape[2:])], dim=1)

    def read_inputs(self, extra: Optional[Tuple[torch.Tensor, torch.Tensor]] = None
                    ) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
        """All stored frames (+ `extra`, the previous frame) as mem_key [1, K, N, C_k], mem_value, bias.

        bias [1, K, N] is -inf where an object has no memory (it appeared after that frame), else None.
        """
        keys = self.keys + ([extra[0]] if extra else [])
        values = self.values + ([extra[1]] if extra else [])
        num_objects = keys[-1].shape[1]
        starts = self.starts + ([num_objects] if extra else [])
        mem_key, mem_value = torch.cat(keys, dim=2), torch.cat(values, dim=2)
        if all(s >= num_objects for s in starts):
            return mem_key, mem_value, None
        bias = []
        for k, s in zip(keys, starts):
            b = k.new_zeros(1, num_objects, k.shape[2])
            b[:, s:] = float("-inf")
            bias.append(b)
        return mem_key, mem_value, torch.cat(bias, dim=2)


class PreallocatedMemoryBank:
    """The same memory as `MemoryBank`, kept in buffers written in place instead of concatenated per read.

    The buffers hold slots of h*w positions. Stored frames occupy slots; the previous frame (`extra`)
    is written to a free slot and read together with them. Slots are read in slot order, not in age
    order: attention over memory positions does not depend on their order (sums differ by rounding).
    With `max_frames` the buffers have max_frames + 1 slots and a dropped frame's slot is reused;
    without, they start with `initial_slots` and double when full.

    fixed_shape: every read returns the whole buffers and a bias [1, K, slots*hw] kept up to date as
    slots are written and freed (-inf on free slots), so the read's shapes change only when the
    capacity doubles or an object appears (what a compiled step is specialised on), never per frame.
    """

    def __init__(self, max_frames: int = 0, initial_slots: int = 8, fixed_shape: bool = False):
        self.max_frames = max_frames
        self.initial_slots = max(1, initial_slots)
        self.fixed_shape = fixed_shape
        self.key: Optional[torch.Tensor] = None     # [1, K, slots*hw, C_k]
        self.value: Optional[torch.Tensor] = None   # [1, K, slots*hw, C_v]
        self.bias: Optional[torch.Tensor] = None    # fixed_shape: [1, K, slots*hw], 0 or -inf
        self.hw = 0
        self.frame_ids: List[int] = []               # stored frames, oldest first
        self.slot_of: List[int] = []                 # the slot of each stored frame
        self.slot_start: List[int] = []              # per slot: first object without memory there (0: unused)
        self._staged: Optional[Tuple[int, torch.Tensor]] = None   # (slot, key tensor) of the last `extra`
        self._stale: Optional[int] = None            # fixed_shape: a slot read as `extra` but not stored

    def __len__(self) -> int:
        return len(self.frame_ids)

    @property
    def capacity(self) -> int:
        """Slots the buffers hold now."""
        return len(self.slot_start)

    def clear(self) -> None:
        """Forget every stored frame but keep the buffers (and their capacity) for the next video, which
        uses them if its memory has the same shape: compiled steps and CUDA graphs stay valid."""
        self.frame_ids, self.slot_of = [], []
        self.slot_start = [0] * self.capacity
        self._staged = self._stale = None
        if self.bias is not None:
            self.bias.fill_(float("-inf"))

    def _ensure(self, key: torch.Tensor, value: torch.Tensor) -> None:
        """Allocate the buffers unless the kept ones fit this memory (objects, positions, channels, dtype)."""
        fits = (self.key is not None and self.key.shape[1] == key.shape[1] and self.hw == key.shape[2]
                and self.key.shape[3] == key.shape[3] and self.value.shape[3] == value.shape[3]
                and self.key.dtype == key.dtype and self.key.device == key.device)
        if not fits:
            self._allocate(key, value)

    def _allocate(self, key: torch.Tensor, value: torch.Tensor) -> None:
        """Buffers shaped after the first memory written: [1, K, slots*hw, C]."""
        slots = self.max_frames + 1 if self.max_frames else self.initial_slots
        _, K, self.hw, _ = key.shape
        self.key = key.new_zeros(1, K, slots * self.hw, key.shape[3])
        self.value = value.new_zeros(1, K, slots * self.hw, value.shape[3])
        if self.fixed_shape:
            self.bias = torch.full((1, K, slots * self.hw), float("-inf"), device=key.device)
        self.slot_start = [0] * slots

    def _grow(self) -> None:
        """Double the number of slots, keeping the stored ones."""
        old = self.capacity * self.hw
        key = self.key.new_zeros(*self.key.shape[:2], 2 * old, self.key.shape[3])
        value = self.value.new_zeros(*self.value.shape[:2], 2 * old, self.value.shape[3])
        key[:, :, :old] = self.key
        value[:, :, :old] = self.value
        self.key, self.value = key, value
        if self.bias is not None:
            self.bias = torch.cat([self.bias, torch.full_like(self.bias, float("-inf"))], dim=2)
        self.slot_start += [0] * len(self.slot_start)

    def _free_slot(self) -> int:
        """The lowest slot no stored frame uses, growing the buffers if there is none."""
        used = set(self.slot_of)
        for slot in range(self.capacity):
            if slot not in used:
                return slot
        self._grow()
        return self._free_slot()

    def _where(self, slot: int) -> slice:
        """The memory positions of `slot`."""
        return slice(slot * self.hw, (slot + 1) * self.hw)

    def _write(self, slot: int, key: torch.Tensor, value: torch.Tensor) -> None:
        """Copy one frame's memory [1, K, hw, C] into `slot`."""
        where = self._where(slot)
        self.key[:, :key.shape[1], where] = key
        self.value[:, :value.shape[1], where] = value
        self.slot_start[slot] = key.shape[1]
        if self.bias is not None:
            self.bias[:, :key.shape[1], where] = 0.0
            if key.shape[1] < self.bias.shape[1]:
                self.bias[:, key.shape[1]:, where] = float("-inf")

    def _free(self, slot: int) -> None:
        """Mark `slot` unused (fixed_shape: masked in the bias)."""
        self.slot_start[slot] = 0
        if self.bias is not None:
            self.bias[:, :, self._where(slot)] = float("-inf")

    def add(self, key: torch.Tensor, value: torch.Tensor, frame_id: int) -> None:
        """Store one frame's memory; drops the oldest frame after the first when over the bound.

        When `key` is the tensor last read as `extra`, its slot is kept without copying.
        """
        if not self.frame_ids:
            self._ensure(key, value)
        if self.max_frames and len(self.frame_ids) >= self.max_frames:
            drop = 1 if self.max_frames > 1 else 0
            self._free(self.slot_of[drop])
            del self.frame_ids[drop], self.slot_of[drop]
        if self._staged is not None and self._staged[1] is key:
            slot = self._staged[0]
        else:
            slot = self._free_slot()
            self._write(slot, key, value)
        if self._stale == slot:
            self._stale = None
        self._staged = None
        self.frame_ids.append(frame_id)
        self.slot_of.append(slot)

    def grow_objects(self, num_objects: int) -> None:
        """Widen the buffers for objects that appeared later (masked out where they have no memory)."""
        if self.key is None or num_objects <= self.key.shape[1]:
            return
        extra = num_objects - self.key.shape[1]
        self.key = torch.cat([self.key, self.key.new_zeros(1, extra, *self.key.shape[2:])], dim=1)
        self.value = torch.cat([self.value, self.value.new_zeros(1, extra, *self.value.shape[2:])], dim=1)
        if self.bias is not None:
            self.bias = torch.cat([self.bias, self.bias.new_full((1, extra, self.bias.shape[2]), float("-inf"))], 1)

    def read_inputs(self, extra: Optional[Tuple[torch.Tensor, torch.Tensor]] = None
                    ) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
        """Stored frames (+ `extra`, the previous frame) as mem_key [1, K, N, C_k], mem_value, bias.

        mem_key and mem_value are views of the buffers. bias [1, K, N] is -inf where an object has
        no memory (it appeared after that frame; or the slot is unused), else None (fixed_shape:
        always the bias, and N covers every slot).
        """
        if extra is not None:
            if not self.frame_ids:
                self._ensure(*extra)
            slot = self._free_slot()
            self._write(slot, *extra)
            self._staged = (slot, extra[0])
        if self.fixed_shape:
            return self._fixed_inputs(None if extra is None else self._staged[0])
        used = set(self.slot_of) | ({self._staged[0]} if extra is not None else set())
        slots = max(used) + 1
        num_objects = self.key.shape[1]
        n = slots * self.hw
        mem_key, mem_value = self.key[:, :, :n], self.value[:, :, :n]
        starts = [self.slot_start[s] if s in used else 0 for s in range(slots)]
        if all(s >= num_objects for s in starts):
            return mem_key, mem_value, None
        bias = mem_key.new_zeros(1, num_objects, n)
        for slot, start in enumerate(starts):
            bias[:, start:, slot * self.hw:(slot + 1) * self.hw] = float("-inf")
        return mem_key, mem_value, bias

    def _fixed_inputs(self, staged: Optional[int]) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The whole buffers and the bias; a slot read as `extra` earlier but never stored is masked first."""
        if self._stale is not None and self._stale != staged and self._stale not in self.slot_of:
            self._free(self._stale)
        self._stale = staged
        return self.key, self.value, self.bias
