"""The one inference core: the memory and objects of up to B videos, segmented together frame by frame
(one video is B = 1, at no extra cost)."""
from typing import Dict, Hashable, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from .backend import Backend
from .frames import to_device
from .memory import MemoryBank
from .settings import InferenceSettings
from ..models.stm import QueryFeatures


def pad_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """x [R, C, H, W] with zero channels appended, or cut, to `channels`."""
    if x.shape[1] >= channels:
        return x[:, :channels]
    return F.pad(x, (0, 0, 0, 0, 0, channels - x.shape[1]))


def merge_given(probs: torch.Tensor, given: torch.Tensor) -> torch.Tensor:
    """Paste the objects of a given one-hot mask [1, K'+1, H, W] over a prediction [1, K+1, H, W]: pixels
    labelled with an object take that label, the others keep the prediction -> [1, max(K, K')+1, H, W]."""
    channels = max(probs.shape[1], given.shape[1])
    probs, given = pad_channels(probs, channels), pad_channels(given, channels)
    labelled = given[:, 1:].sum(dim=1, keepdim=True) > 0           # [1, 1, H, W]
    return torch.where(labelled, given, probs)


def _cat(rows: Sequence[torch.Tensor]) -> torch.Tensor:
    """Tensors [1, ...] as one [n, ...] (the tensor itself when n = 1: no operation)."""
    return rows[0] if len(rows) == 1 else torch.cat(list(rows))


class InferenceCore:
    """Segments up to `slots` videos at once, each under a key of the caller's. At step t of a video its
    frame t-1 is encoded with its mask (given, or the core's own, possibly corrected, output) and frame t
    is segmented from the stored memory plus that frame; frame t-1 is stored when (t-1) is a multiple of
    save_freq. Every save_freq frames `loop` correction iterations update the prediction the next frame
    memorises; the returned (written) prediction is the one before correction.

    `start(key, frame, given)` begins a video at its first given mask; `step({key: frame}, {key: mask})`
    segments the next frame of every video in the core; `stop(key)` ends one. Starts and stops take effect
    at the next step, all at once: the leaving rows are packed out by one gather per tensor (none when they
    were the last rows) and the new videos join in one batch. Busy videos occupy rows 0..n-1, so only they
    are computed; with compiled steps all `slots` rows are (fixed shapes). The batch's objects K are those
    of its widest video: narrower videos are padded, masked exactly, and K shrinks when the widest leaves.
    A video's results equal those it gets alone, up to the rounding of batched operations."""

    def __init__(self, backend: Backend, settings: InferenceSettings, slots: int = 1):
        self.backend, self.settings, self.slots = backend, settings, slots
        self.release_memory()

    def release_memory(self) -> None:
        """Forget every video and free the buffers (e.g. after running out of GPU memory)."""
        self.bank = MemoryBank(self.slots, self.settings.max_memory_frames, fixed=self.backend.fixed_memory)
        self.keys: List[Hashable] = []                   # the video of each row
        self.t: List[int] = []                           # per row: index of its last frame
        self.objects: List[int] = []                     # per row: its video's objects
        self.K = 0                                       # objects of the batch's widest video
        self.size: Optional[Tuple[int, int]] = None      # the videos' frame size
        self._held: List[Optional[int]] = []             # per row: its row in the tensors, None: joining
        self._changed = False                            # starts or stops since the last step
        self._joining: Dict[Hashable, Tuple[torch.Tensor, torch.Tensor]] = {}
        self.prev_frame: Optional[torch.Tensor] = None   # [R, 3, H, W] network layout and dtype
        self.prev_mask: Optional[torch.Tensor] = None    # [R, K+1, H, W] fp32
        self.ref_mask: Optional[torch.Tensor] = None     # [R, K+1, H, W] (only when correcting)
        self.ref_query: Optional[QueryFeatures] = None   # [R, ...] each (only when correcting)
        self._cache: Dict[tuple, torch.Tensor] = {}

    @property
    def free(self) -> int:
        """Videos the core can still take."""
        return self.slots - len(self.keys)

    def _padded(self) -> bool:
        """Whether all `slots` rows are computed (compiled steps: fixed shapes)."""
        return self.backend.compiled

    def start(self, key: Hashable, frame: torch.Tensor, given: torch.Tensor) -> None:
        """Video `key` begins: frame [1, 3, H, W] with its first given one-hot masks [1, k+1, H, W]."""
        if not self.free:
            raise RuntimeError("the inference core has no free slot")
        if self.size is not None and self.size != tuple(frame.shape[2:]):
            if self.keys:
                raise RuntimeError("videos segmented together must share the network input size")
            self.release_memory()
        self.size = tuple(frame.shape[2:])
        self.keys.append(key)
        self.t.append(0)
        self.objects.append(given.shape[1] - 1)
        self._held.append(None)
        self._joining[key] = (frame, given)
        self.K, self._changed = max(self.objects), True

    def stop(self, key: Hashable) -> None:
        """Video `key` leaves; K follows the remaining videos."""
        row = self.keys.index(key)
        for rows in (self.keys, self.t, self.objects, self._held):
            del rows[row]
        self._joining.pop(key, None)
        self.K, self._changed = max(self.objects, default=0), True

    def _sync(self) -> None:
        """The starts and stops since the last step take effect: rows packed, K set, new videos joined."""
        if not self._changed:
            return
        kept = [r for r in self._held if r is not None]
        self._pack(kept)
        self._set_width(self.K)
        self._join(len(kept))
        self._held, self._changed = list(range(len(self.keys))), False

    def _pack(self, kept: List[int]) -> None:
        """Rows `kept` of the tensors (ascending) become rows 0..n-1, the others are freed."""
        if not kept and not self._padded():
            self.bank.clear()
            self.prev_frame = self.prev_mask = self.ref_mask = self.ref_query = None
            return
        if self.prev_frame is None:
            return
        self.bank.keep(kept)
        rows = self._rows()
        order = tuple(kept + [r for r in range(rows) if r not in kept]) if self._padded() else tuple(kept)
        if order == tuple(range(rows)):
            return
        self.prev_frame, self.prev_mask = self._take(self.prev_frame, order), self._take(self.prev_mask, order)
        if self.ref_query is not None:
            self.ref_mask = self._take(self.ref_mask, order)
            self.ref_query = QueryFeatures(*(self._take(x, order) for x in self.ref_query))

    def _take(self, x: torch.Tensor, order: Tuple[int, ...]) -> torch.Tensor:
        """Rows `order` of x: a view when they are its first rows, else one gather (channels-last kept)."""
        if order == tuple(range(len(order))):
            return x[:len(order)]
        return x[self._constant("rows", order, torch.long)]

    def _join(self, first: int) -> None:
        """Rows first.. (videos started since the last step) join: frames, masks, memory rows, references,
        one batch for all of them."""
        if first == len(self.keys):
            return
        frames, given = zip(*(self._joining.pop(key) for key in self.keys[first:]))
        for row in range(first, len(self.keys)):
            self.bank.reset(row, self.objects[row])
        x = self.backend.prepare(_cat(frames))                                 # [n, 3, H, W]
        masks = _cat([pad_channels(g, self.K + 1) for g in given])            # [n, K+1, H, W]
        self.prev_frame = self._put_rows(self.prev_frame, first, x)
        self.prev_mask = self._put_rows(self.prev_mask, first, masks, fresh=True)
        if self.settings.loop:
            with self.backend.autocast():
                query = self.backend.query(x)                                   # [n, ...] each
            self.ref_mask = self._put_rows(self.ref_mask, first, masks)
            mine = self.ref_query or (None,) * len(query)
            self.ref_query = QueryFeatures(*(self._put_rows(m, first, q) for m, q in zip(mine, query)))

    def _put_rows(self, x: Optional[torch.Tensor], first: int, value: torch.Tensor, fresh: bool = False
                  ) -> torch.Tensor:
        """x [first, ...] with value [n, ...] as its rows first..: appended, or (all rows computed) written,
        into a copy if `fresh` (x is a result the caller may still read)."""
        if not self._padded():
            return value if x is None else torch.cat([x, value])
        if x is None:
            x = value.new_zeros(self.slots, *value.shape[1:]).contiguous(memory_format=_layout(value))
        elif fresh:
            x = x.clone()
        x[first:first + value.shape[0]] = value
        return x

    def _set_width(self, K: int) -> None:
        """The batch's tensors hold K objects: masks padded or cut, the bank's buffers too."""
        self.K = K
        if self.prev_mask is not None and self.prev_mask.shape[1] != K + 1:
            self.prev_mask = pad_channels(self.prev_mask, K + 1)
            self.ref_mask = None if self.ref_mask is None else pad_channels(self.ref_mask, K + 1)
        self.bank.set_width(K)

    def _constant(self, kind: str, values: tuple, dtype: torch.dtype) -> torch.Tensor:
        """A small device tensor for a pattern of per-row values, copied to the device once."""
        key = (kind, values)
        if key not in self._cache:
            if len(self._cache) > 256:
                self._cache.clear()
            self._cache[key] = to_device(torch.tensor(values, dtype=dtype), self.prev_frame.device)   # no sync
        return self._cache[key]

    def _rows(self) -> int:
        """Rows computed per step."""
        return 0 if self.prev_frame is None else self.prev_frame.shape[0]

    def _present(self) -> Optional[torch.Tensor]:
        """[R, K] bool: each row's real objects; None when no row is padded."""
        objects = self.objects + [0] * (self._rows() - len(self.objects))
        if all(n == self.K for n in objects):
            return None
        return self._constant("present", tuple(tuple(k < n for k in range(self.K)) for n in objects), torch.bool)

    @torch.no_grad()
    def step(self, frames: Dict[Hashable, torch.Tensor], given: Optional[Dict[Hashable, torch.Tensor]] = None
             ) -> Dict[Hashable, torch.Tensor]:
        """Segment the next frame [1, 3, H, W] of every video in the core (given: {key: one-hot masks
        [1, k+1, H, W] given for that frame}). Returns {key: probabilities [k+1, H, W]}, the written results
        (before correction), views of one batch tensor."""
        if set(frames) != set(self.keys):
            raise RuntimeError(f"step needs a frame of every video in the core: {self.keys}, got {list(frames)}")
        self._sync()
        given = given or {}
        x = self._batch(frames)                                           # [R, 3, H, W]
        backend = self.backend
        with backend.autocast():
            prev = backend.memory(self.prev_frame, self.prev_mask[:, 1:])   # [R, K, hw, C]
            mem_key, mem_value, bias = self.bank.read(prev)
            out = backend.segment(x, mem_key, mem_value, bias, self._present())
        for row in range(len(self.keys)):
            self.t[row] += 1
            if (self.t[row] - 1) % self.settings.save_freq == 0:
                self.bank.commit(row, self.t[row] - 1)
        for key, mask in given.items():
            out = self._merge(self.keys.index(key), x, out, mask)
        written = out
        out = self._correct(x, out, given)
        self.prev_frame, self.prev_mask = x, out
        return {key: written[row, :self.objects[row] + 1] for row, key in enumerate(self.keys)}

    def _batch(self, frames: Dict[Hashable, torch.Tensor]) -> torch.Tensor:
        """The videos' frames as one batch [R, 3, H, W] in the network's layout (idle rows: zeros)."""
        rows = [frames[key] for key in self.keys]
        idle = self._rows() - len(rows)
        if idle > 0:
            rows.append(rows[0].new_zeros(idle, *rows[0].shape[1:]))
        return self.backend.prepare(_cat(rows))

    def _merge(self, row: int, x: torch.Tensor, out: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Masks given for a row's frame are pasted over its prediction and become its reference."""
        merged = merge_given(out[row:row + 1, :self.objects[row] + 1], mask)    # [1, k+1, H, W]
        self.objects[row] = merged.shape[1] - 1
        self._set_width(max(self.objects))
        out = pad_channels(out, self.K + 1)
        out[row] = pad_channels(merged, self.K + 1)[0]
        self.bank.set_objects(row, self.objects[row])
        if self.settings.loop:
            self.ref_mask = self.ref_mask.clone()                  # it may be what the previous step memorised
            self.ref_mask[row] = out[row]
            with self.backend.autocast():
                query = self.backend.query(x[row:row + 1])                    # [1, ...] each
            for mine, q in zip(self.ref_query, query):
                mine[row] = q[0]
        return out

    def _correct(self, x: torch.Tensor, out: torch.Tensor, given: Dict[Hashable, torch.Tensor]) -> torch.Tensor:
        """`loop` correction iterations of the rows whose schedule says so (not given a mask now)."""
        loop, freq = self.settings.loop, self.settings.save_freq
        rows = self._rows()
        now = tuple(float(r < len(self.keys) and self.keys[r] not in given and self.t[r] % freq == 0)
                    for r in range(rows))
        if loop == 0 or not any(now):
            return out
        weights = None if all(now) else self._constant("weights", now, torch.float32)    # [R]
        objects = self._constant("objects", tuple(self.objects + [0] * (rows - len(self.objects))), torch.long)
        return self.backend.correct(x, out, self.ref_query, self.ref_mask, objects, self._present(), weights,
                                    self.settings.correction_rate, loop)


def _layout(x: torch.Tensor) -> torch.memory_format:
    """The memory format of a 4-d tensor (channels-last for the fast path's frames)."""
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format
