"""The memory bank of the core's videos: one set of buffers [B, K, S*hw, C] (B rows, K objects, S slots of
hw positions) with a bias [B, K, S*hw] (0: readable, -inf: masked), and each row's bookkeeping."""
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import torch

from .frames import to_device

NEG_INF = float("-inf")


@dataclass
class _Row:
    """One video's use of the buffers: its stored frames, their slots and objects."""

    objects: int = 0                                      # the video's objects (more channels are padding)
    frame_ids: List[int] = field(default_factory=list)    # stored frames, oldest first
    slot_of: List[int] = field(default_factory=list)      # the slot of each stored frame
    start_of: List[int] = field(default_factory=list)     # objects with memory in each stored frame
    staged: Optional[int] = None                          # the slot of the previous frame, read but not stored
    opened: Optional[int] = None                          # a slot whose bias a staging opened for every object
    stale: bool = False                                   # bias not kept: rebuilt at the row's first masked read

    def holds(self) -> bool:
        """Whether the row has memory (stored or staged) whose bias matters."""
        return bool(self.slot_of) or self.staged is not None

    def free_slot(self, capacity: int) -> Optional[int]:
        """The lowest slot no stored frame uses, None when all are used."""
        used = set(self.slot_of)
        return next((s for s in range(capacity) if s not in used), None)


class MemoryBank:
    """Stored memory frames of up to B videos. A video stores a frame every save_freq frames (bounded to
    `max_frames`, the first kept) and reads them with its previous frame, staged in a free slot of its own.
    `fixed` (compiled steps): every read returns the whole buffers, whose shapes change only when the
    capacity doubles or the object count changes; otherwise only the used rows and slots are read, and the
    bias is None where nothing is masked (a row's bias is written only from its first masked read on: one
    video alone, unbounded, costs no bias operation). A padding object (a row's channels past its objects) reads all its
    video's memory: its output is discarded, and a fully masked row would give NaN."""

    def __init__(self, rows: int, max_frames: int = 0, fixed: bool = False, initial_slots: int = 8):
        self.max_frames, self.fixed = max_frames, fixed
        self.initial_slots = max_frames + 1 if max_frames else max(1, initial_slots)
        self.rows = [self._new_row() for _ in range(rows)]
        self.key: Optional[torch.Tensor] = None     # [B, K, S*hw, C_k]
        self.value: Optional[torch.Tensor] = None   # [B, K, S*hw, C_v]
        self.bias: Optional[torch.Tensor] = None    # [B, K, S*hw]
        self.hw = 0
        self._index: dict = {}                      # device index tensors per (pattern, device)

    @property
    def capacity(self) -> int:
        """Slots per row."""
        return 0 if self.key is None else self.key.shape[2] // self.hw

    def _where(self, slot: int) -> slice:
        """The memory positions of `slot`."""
        return slice(slot * self.hw, (slot + 1) * self.hw)

    def _new_row(self, objects: int = 0) -> _Row:
        """A row with no memory; unless the reads are fixed its bias is left stale until a read is masked (a
        video read alone, unbounded, never is: no bias operation at all)."""
        return _Row(objects, stale=not self.fixed)

    def reset(self, b: int, objects: int) -> None:
        """Row b starts a new video with `objects` objects: its memory is forgotten."""
        self.rows[b] = self._new_row(objects)
        if self.bias is not None and not self.rows[b].stale:
            self.bias[b] = NEG_INF

    def clear(self) -> None:
        """Forget every row's video; the buffers are kept for the next videos."""
        self.rows = [self._new_row() for _ in self.rows]

    def set_objects(self, b: int, objects: int) -> None:
        """Row b's video has `objects` objects now (objects given at a later frame)."""
        if objects != self.rows[b].objects:
            self.rows[b].objects = objects
            self._rebuild_bias(b)

    def keep(self, rows: List[int]) -> None:
        """Rows `rows` (ascending) become rows 0..n-1, their memory moved by one gather per buffer (none when
        they already are); the other rows are freed."""
        n, B = len(rows), len(self.rows)
        order = rows + [b for b in range(B) if b not in rows]
        self.rows = [self.rows[b] for b in rows] + [self._new_row() for _ in range(B - n)]
        if self.key is None:
            return
        if order != list(range(B)):
            index = self._device_index(("keep", tuple(order)), order)
            self.key, self.value, self.bias = (x.index_select(0, index) for x in (self.key, self.value, self.bias))
        if self.fixed and n < B:
            self.bias[n:] = NEG_INF

    def set_width(self, objects: int) -> None:
        """The buffers hold `objects` objects (K of the batch changed): rows added as padding, or cut."""
        if self.key is None or objects == self.key.shape[1]:
            return
        if not any(row.holds() for row in self.rows):     # nothing to keep: allocated at the next read
            self.key = self.value = self.bias = None
            return
        B, K, n, _ = self.key.shape
        keep = min(K, objects)
        key = self.key.new_zeros(B, objects, n, self.key.shape[3])
        value = self.value.new_zeros(B, objects, n, self.value.shape[3])
        key[:, :keep], value[:, :keep] = self.key[:, :keep], self.value[:, :keep]
        self.key, self.value = key, value
        self.bias = self.bias.new_full((B, objects, n), NEG_INF)
        self._rebuild_rows()

    def _allocate(self, key: torch.Tensor, value: torch.Tensor) -> None:
        """Buffers for memory shaped like key [n, K, hw, C_k], value [n, K, hw, C_v]."""
        B, (_, K, self.hw, _) = len(self.rows), key.shape
        n = self.initial_slots * self.hw
        self.key = key.new_zeros(B, K, n, key.shape[3])
        self.value = value.new_zeros(B, K, n, value.shape[3])
        self.bias = torch.full((B, K, n), NEG_INF, device=key.device)
        self._rebuild_rows()

    def _rebuild_rows(self) -> None:
        """Every row's bias in new buffers (all -inf): rows with no memory are left so."""
        for b, row in enumerate(self.rows):
            row.opened = None
            if row.holds():
                self._rebuild_bias(b)

    def _fits(self, key: torch.Tensor, value: torch.Tensor) -> bool:
        """Whether the buffers hold memory shaped like `key` and `value`."""
        return (self.key is not None and self.hw == key.shape[2] and self.key.shape[1] == key.shape[1]
                and self.key.shape[3] == key.shape[3] and self.value.shape[3] == value.shape[3]
                and self.key.dtype == key.dtype and self.key.device == key.device)

    def _grow_slots(self) -> None:
        """Double every row's slots, keeping what is stored."""
        B, K, n, _ = self.key.shape
        self.key = torch.cat([self.key, self.key.new_zeros(B, K, n, self.key.shape[3])], dim=2)
        self.value = torch.cat([self.value, self.value.new_zeros(B, K, n, self.value.shape[3])], dim=2)
        self.bias = torch.cat([self.bias, torch.full_like(self.bias, NEG_INF)], dim=2)

    def _rebuild_bias(self, b: int) -> None:
        """Row b's bias from its bookkeeping: an object reads a stored frame if it had memory there or is
        padding; everything reads the staged previous frame."""
        row = self.rows[b]
        if self.bias is None or row.stale:
            return
        self.bias[b] = NEG_INF
        for slot, start in zip(row.slot_of, row.start_of):
            self.bias[b, :start, self._where(slot)] = 0.0
            self.bias[b, row.objects:, self._where(slot)] = 0.0
        if row.staged is not None:
            self.bias[b, :, self._where(row.staged)] = 0.0
        row.opened = row.staged

    def read(self, extra: Tuple[torch.Tensor, torch.Tensor]
             ) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
        """Stage the previous frames extra = (key [n, K, hw, C_k], value) of rows 0..n-1, each in a free slot
        of its own, and return what the rows read: mem_key [n, K, N, C_k], mem_value and bias [n, K, N]."""
        key, value = extra
        if not self._fits(key, value):
            self._allocate(key, value)
        n = key.shape[0]
        slots = [self._stage(b) for b in range(n)]
        self._write(slots, key, value)
        if self.fixed:
            return self.key, self.value, self.bias
        used = max(max(self.rows[b].slot_of + [slots[b]]) for b in range(n)) + 1
        where = slice(0, used * self.hw)
        bias = None
        if self._masked(n, used):
            for b, row in enumerate(self.rows[:n]):
                if row.stale:
                    row.stale = False
                    self._rebuild_bias(b)
            bias = self.bias[:n, :, where]
        return self.key[:n, :, where], self.value[:n, :, where], bias

    def _write(self, slots: List[int], key: torch.Tensor, value: torch.Tensor) -> None:
        """Copy each row's previous frame [K, hw, C] into its staged slot (one indexed copy per buffer)."""
        closed = any(not self.rows[b].stale and self.rows[b].opened != slot     # biases still to open
                     for b, slot in enumerate(slots))
        for b, slot in enumerate(slots):
            self.rows[b].opened = slot
        if len(slots) == 1:
            where = self._where(slots[0])
            self.key[0, :, where], self.value[0, :, where] = key[0], value[0]
            if closed:
                self.bias[0, :, where] = 0.0
            return
        B, K, n, _ = self.key.shape
        b_index = self._device_index(("rows", len(slots)), range(len(slots)))
        s_index = self._device_index(("slots", tuple(slots)), slots)
        S = n // self.hw
        self.key.view(B, K, S, self.hw, -1)[b_index, :, s_index] = key        # [n, K, hw, C_k]
        self.value.view(B, K, S, self.hw, -1)[b_index, :, s_index] = value
        if closed:
            self.bias.view(B, K, S, self.hw)[b_index, :, s_index] = 0.0

    def _masked(self, n: int, used: int) -> bool:
        """Whether rows 0..n-1 read anything masked within their first `used` slots (known on the host)."""
        for row in self.rows[:n]:
            taken = set(row.slot_of) | {row.staged}
            if len(taken) < used or any(start < row.objects for start in row.start_of):
                return True
            if row.objects < self.key.shape[1]:
                return True
        return False

    def _stage(self, b: int) -> int:
        """The slot row b's previous frame goes to (growing the buffers when it has none free); a slot staged
        before but not stored is masked again."""
        row = self.rows[b]
        slot = row.free_slot(self.capacity)
        if slot is None:
            self._grow_slots()
            slot = row.free_slot(self.capacity)
        if row.staged is not None and row.staged != slot and row.staged not in row.slot_of and not row.stale:
            self.bias[b, :, self._where(row.staged)] = NEG_INF
            row.opened = None if row.opened == row.staged else row.opened
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
            if not row.stale:
                self.bias[b, :, self._where(row.slot_of[drop])] = NEG_INF
                row.opened = None if row.opened == row.slot_of[drop] else row.opened
            del row.frame_ids[drop], row.slot_of[drop], row.start_of[drop]
        row.frame_ids.append(frame_id)
        row.slot_of.append(row.staged)
        row.start_of.append(row.objects)
        row.staged = None
