"""The memory bank of the core's videos: one set of buffers [B, K, S*hw, C] (B rows, K objects, S slots of
hw positions), each row's bookkeeping, and the read bias [B, K, S*hw] (0: readable, -inf: masked) derived
from that bookkeeping, on the device only when it changes."""
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np
import torch

from .frames import to_device


@dataclass
class _Row:
    """One video's use of the buffers: its stored frames, their slots and objects."""

    objects: int = 0                                      # the video's objects (more channels are padding)
    frame_ids: List[int] = field(default_factory=list)    # stored frames, oldest first
    slot_of: List[int] = field(default_factory=list)      # the slot of each stored frame
    start_of: List[int] = field(default_factory=list)     # objects with memory in each stored frame
    staged: Optional[int] = None                          # the slot of the previous frame, read but not stored

    def holds(self) -> bool:
        """Whether the row has memory (stored or staged)."""
        return bool(self.slot_of) or self.staged is not None

    def free_slot(self, capacity: int) -> Optional[int]:
        """The lowest slot no stored frame uses, None when all are used."""
        used = set(self.slot_of)
        return next((s for s in range(capacity) if s not in used), None)

    def readable(self, out: np.ndarray) -> None:
        """Mark in out [K, S] (all False) what the row reads: a stored frame's objects that had memory
        there and the padding objects (which read all of it; their output is discarded), and every object's
        staged previous frame."""
        for slot, start in zip(self.slot_of, self.start_of):
            out[:start, slot] = out[self.objects:, slot] = True
        if self.staged is not None:
            out[:, self.staged] = True


class MemoryBank:
    """Stored memory frames of up to B videos. A video stores a frame every save_freq frames (bounded to
    `max_frames`, the first kept) and reads them with its previous frame, staged in a free slot of its own.
    `fixed` (compiled steps): every read returns the whole buffers and a bias, whose shapes change only when
    the capacity doubles or the object count changes; otherwise only the used rows and slots are read, and
    the bias is None where nothing is masked (one video alone, unbounded, costs no bias operation)."""

    def __init__(self, rows: int, max_frames: int = 0, fixed: bool = False, initial_slots: int = 8):
        self.max_frames, self.fixed = max_frames, fixed
        self.initial_slots = max_frames + 1 if max_frames else max(1, initial_slots)
        self.rows = [_Row() for _ in range(rows)]
        self.key: Optional[torch.Tensor] = None     # [B, K, S*hw, C_k]
        self.value: Optional[torch.Tensor] = None   # [B, K, S*hw, C_v]
        self.bias: Optional[torch.Tensor] = None    # [n, K, S*hw]: the last bias read (fixed: the buffer)
        self._table: Optional[np.ndarray] = None    # [n, K, S] bool: what `bias` says is readable
        self.hw = 0
        self._index: dict = {}                      # device index tensors per (pattern, device)

    @property
    def capacity(self) -> int:
        """Slots per row."""
        return 0 if self.key is None else self.key.shape[2] // self.hw

    def _where(self, slot: int) -> slice:
        """The memory positions of `slot`."""
        return slice(slot * self.hw, (slot + 1) * self.hw)

    def reset(self, b: int, objects: int) -> None:
        """Row b starts a new video with `objects` objects: its memory is forgotten."""
        self.rows[b] = _Row(objects)

    def clear(self) -> None:
        """Forget every row's video; the buffers are kept for the next videos."""
        self.rows = [_Row() for _ in self.rows]

    def set_objects(self, b: int, objects: int) -> None:
        """Row b's video has `objects` objects now (objects given at a later frame)."""
        self.rows[b].objects = objects

    def keep(self, rows: List[int]) -> None:
        """Rows `rows` (ascending) become rows 0..n-1, their memory moved by one gather per buffer (none when
        they already are); the other rows are freed."""
        n, B = len(rows), len(self.rows)
        order = rows + [b for b in range(B) if b not in rows]
        self.rows = [self.rows[b] for b in rows] + [_Row() for _ in range(B - n)]
        if self.key is not None and order != list(range(B)):
            index = self._device_index(("keep", tuple(order)), order)
            self.key, self.value = self.key.index_select(0, index), self.value.index_select(0, index)

    def set_width(self, objects: int) -> None:
        """The buffers hold `objects` objects (K of the batch changed): rows added as padding, or cut."""
        if self.key is None or objects == self.key.shape[1]:
            return
        if not any(row.holds() for row in self.rows):     # nothing to keep: allocated at the next read
            self.key = self.value = None
            return
        B, K, n, _ = self.key.shape
        keep = min(K, objects)
        key = self.key.new_zeros(B, objects, n, self.key.shape[3])
        value = self.value.new_zeros(B, objects, n, self.value.shape[3])
        key[:, :keep], value[:, :keep] = self.key[:, :keep], self.value[:, :keep]
        self._set_buffers(key, value)

    def _set_buffers(self, key: torch.Tensor, value: torch.Tensor) -> None:
        """New buffers; the bias follows them (fixed: a buffer of its own, rewritten at the next read)."""
        self.key, self.value, self._table = key, value, None
        B, K, n, _ = key.shape
        self.bias = torch.zeros(B, K, n, device=key.device) if self.fixed else None

    def _fits(self, key: torch.Tensor, value: torch.Tensor) -> bool:
        """Whether the buffers hold memory shaped like `key` and `value`."""
        return (self.key is not None and self.hw == key.shape[2] and self.key.shape[1] == key.shape[1]
                and self.key.shape[3] == key.shape[3] and self.value.shape[3] == value.shape[3]
                and self.key.dtype == key.dtype and self.key.device == key.device)

    def read(self, extra: Tuple[torch.Tensor, torch.Tensor]
             ) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
        """Stage the previous frames extra = (key [n, K, hw, C_k], value) of rows 0..n-1, each in a free slot
        of its own, and return what the rows read: mem_key [n, K, N, C_k], mem_value and bias [n, K, N]."""
        key, value = extra
        if not self._fits(key, value):
            B, (_, K, self.hw, _) = len(self.rows), key.shape
            n = self.initial_slots * self.hw
            self._set_buffers(key.new_zeros(B, K, n, key.shape[3]), value.new_zeros(B, K, n, value.shape[3]))
        n = key.shape[0]
        slots = [self._stage(b) for b in range(n)]
        self._write(slots, key, value)
        if self.fixed:                                  # every slot; the busy rows (compiled: all rows)
            return _first(self.key, n), _first(self.value, n), self._bias(n, self.capacity)
        used = max(max(self.rows[b].slot_of + [slots[b]]) for b in range(n)) + 1
        where = slice(0, used * self.hw)
        return self.key[:n, :, where], self.value[:n, :, where], self._bias(n, used)

    def _bias(self, n: int, slots: int) -> Optional[torch.Tensor]:
        """The bias [n, K, slots*hw] of rows 0..n-1 over their first `slots` slots; None when nothing is
        masked and the reads are not fixed. Copied to the device only when it changed."""
        table = np.zeros((n, self.key.shape[1], slots), dtype=bool)            # [n, K, S]: readable
        for b in range(n):
            self.rows[b].readable(table[b])
        if not self.fixed and table.all():
            return None
        if self._table is None or not np.array_equal(table, self._table):
            self._table = table
            values = to_device(torch.from_numpy(np.where(table, 0.0, -np.inf).astype(np.float32)), self.key.device)
            if not self.fixed:
                self.bias = torch.empty(n, table.shape[1], slots * self.hw, device=self.key.device)
            bias = _first(self.bias, n)                                           # [n, K, S*hw]
            bias.view(n, table.shape[1], slots, self.hw).copy_(values[..., None].expand(-1, -1, -1, self.hw))
        return _first(self.bias, n)

    def _write(self, slots: List[int], key: torch.Tensor, value: torch.Tensor) -> None:
        """Copy each row's previous frame [K, hw, C] into its staged slot (one indexed copy per buffer)."""
        if len(slots) == 1:
            where = self._where(slots[0])
            self.key[0, :, where], self.value[0, :, where] = key[0], value[0]
            return
        B, K, n, _ = self.key.shape
        b_index = self._device_index(("rows", len(slots)), range(len(slots)))
        s_index = self._device_index(("slots", tuple(slots)), slots)
        S = n // self.hw
        self.key.view(B, K, S, self.hw, -1)[b_index, :, s_index] = key        # [n, K, hw, C_k]
        self.value.view(B, K, S, self.hw, -1)[b_index, :, s_index] = value

    def _stage(self, b: int) -> int:
        """The slot row b's previous frame goes to (doubling every row's slots when it has none free)."""
        row = self.rows[b]
        slot = row.free_slot(self.capacity)
        if slot is None:
            B, K, n, _ = self.key.shape
            self._set_buffers(torch.cat([self.key, self.key.new_zeros(B, K, n, self.key.shape[3])], dim=2),
                              torch.cat([self.value, self.value.new_zeros(B, K, n, self.value.shape[3])], dim=2))
            slot = row.free_slot(self.capacity)
        row.staged = slot
        return slot

    def _device_index(self, key: tuple, values) -> torch.Tensor:
        """A device index tensor of `values`, kept under `key` so that each is copied to the device once
        (through pinned memory on a GPU: no wait for queued work)."""
        key = key + (self.key.device,)             # kept across reallocations (new videos, widths)
        if key not in self._index:
            if len(self._index) >= 256:
                self._index.clear()
            self._index[key] = to_device(torch.tensor(list(values)), self.key.device)
        return self._index[key]

    def commit(self, b: int, frame_id: int) -> None:
        """Store row b's staged previous frame as frame `frame_id`; drops the oldest frame after the first
        when over `max_frames`."""
        row = self.rows[b]
        if self.max_frames and len(row.frame_ids) >= self.max_frames:
            drop = 1 if self.max_frames > 1 else 0
            del row.frame_ids[drop], row.slot_of[drop], row.start_of[drop]
        row.frame_ids.append(frame_id)
        row.slot_of.append(row.staged)
        row.start_of.append(row.objects)
        row.staged = None


def _first(x: torch.Tensor, n: int) -> torch.Tensor:
    """The first n rows of a buffer: the buffer itself when it has n (compiled steps get its fixed address)."""
    return x if x.shape[0] == n else x[:n]
