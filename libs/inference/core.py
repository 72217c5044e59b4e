"""The one inference core: the memory and objects of up to B videos, segmented together frame by frame
(one video is B = 1, at no extra cost)."""
from typing import Dict, Hashable, List, Optional

import torch

from .backend import Backend
from .frames import to_device
from .memory import MemoryBank
from .settings import InferenceSettings
from ..models.stm import QueryFeatures


def pad_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """x [R, C, H, W] with zero channels appended, or cut, to `channels`."""
    if x.shape[1] >= channels:
        return x[:, :channels]
    return torch.cat([x, x.new_zeros(x.shape[0], channels - x.shape[1], *x.shape[2:])], dim=1)


def merge_given(probs: torch.Tensor, given: torch.Tensor) -> torch.Tensor:
    """Paste the objects of a given one-hot mask [1, K'+1, H, W] over a prediction [1, K+1, H, W]: pixels
    labelled with an object take that label, the others keep the prediction -> [1, max(K, K')+1, H, W]."""
    channels = max(probs.shape[1], given.shape[1])
    probs, given = pad_channels(probs, channels), pad_channels(given, channels)
    labelled = given[:, 1:].sum(dim=1, keepdim=True) > 0           # [1, 1, H, W]
    return torch.where(labelled, given, probs)


class InferenceCore:
    """Segments up to `slots` videos at once, each under a key of the caller's. At step t of a video its
    frame t-1 is encoded with its mask (given, or the core's own, possibly corrected, output) and frame t
    is segmented from the stored memory plus that frame; frame t-1 is stored when (t-1) is a multiple of
    save_freq. Every save_freq frames `loop` correction iterations update the prediction the next frame
    memorises; the returned (written) prediction is the one before correction.

    `start(key, frame, given)` begins a video at its first given mask; `step({key: frame}, {key: mask})`
    segments the next frame of every video in the core; `stop(key)` ends one. Videos occupy rows 0..n-1 of
    every tensor (a video leaving is replaced by the last row), so only busy rows are computed; with
    compiled steps all `slots` rows are (fixed shapes). The batch's objects K are those of its widest
    video: narrower videos are padded, masked exactly, and K shrinks when the widest leaves. A video's
    results equal those it gets alone, up to the rounding of batched operations."""

    def __init__(self, backend: Backend, settings: InferenceSettings, slots: int = 1):
        self.backend, self.settings, self.slots = backend, settings, slots
        self.release_memory()

    def release_memory(self) -> None:
        """Forget every video and free the buffers (e.g. after running out of GPU memory)."""
        self.bank = MemoryBank(self.slots, self.settings.max_memory_frames, fixed=self.backend.fixed_memory)
        self.keys: List[Hashable] = []                   # the video of each busy row
        self.t: List[int] = []                           # per row: index of its last frame
        self.objects: List[int] = []                     # per row: its video's objects
        self.K = 0
        self.prev_frame: Optional[torch.Tensor] = None   # [R, 3, H, W] network layout and dtype
        self.prev_mask: Optional[torch.Tensor] = None    # [R, K+1, H, W] fp32
        self.ref_mask: Optional[torch.Tensor] = None     # [R, K+1, H, W]
        self.ref_query: Optional[QueryFeatures] = None   # [R, ...] each
        self._cache: Dict[tuple, torch.Tensor] = {}

    @property
    def free(self) -> int:
        """Videos the core can still take."""
        return self.slots - len(self.keys)

    def _padded(self) -> bool:
        """Whether all `slots` rows are computed (compiled steps: fixed shapes)."""
        return self.backend.compiled

    @torch.no_grad()
    def start(self, key: Hashable, frame: torch.Tensor, given: torch.Tensor) -> None:
        """Video `key` begins: frame [1, 3, H, W] with its first given one-hot masks [1, k+1, H, W]."""
        if not self.free:
            raise RuntimeError("the inference core has no free slot")
        frame = self.backend.prepare(frame)
        if self.prev_frame is not None and self.prev_frame.shape[2:] != frame.shape[2:]:
            if self.keys:
                raise RuntimeError("videos segmented together must share the network input size")
            self.release_memory()
        row = len(self.keys)
        self.keys.append(key)
        self.t.append(0)
        self.objects.append(given.shape[1] - 1)
        self.bank.reset(row, self.objects[row])
        self._set_width(max(self.objects))
        self.prev_frame = self._put_row(self.prev_frame, row, frame)
        self.prev_mask = self._put_row(self.prev_mask, row, pad_channels(given, self.K + 1), fresh=True)
        self.ref_mask = self._put_row(self.ref_mask, row, self.prev_mask[row:row + 1])
        self._set_query(row, frame)

    def _put_row(self, x: Optional[torch.Tensor], row: int, value: torch.Tensor, fresh: bool = False
                 ) -> torch.Tensor:
        """x with `value` [1, ...] as its row `row`: appended, or (all rows computed) written; `fresh`: into a
        copy (x is a result the caller may still read; with no x: value is the caller's). With no x and only
        busy rows computed, value itself (a copy if fresh): nothing writes such a tensor in place."""
        if x is None and not self._padded():
            return value.clone() if fresh else value
        if x is None:
            rows = self.slots
            x = value.new_zeros(rows, *value.shape[1:]).contiguous(memory_format=_layout(value))
        if row >= x.shape[0]:
            return torch.cat([x, value.to(x.dtype)])
        x = x.clone() if fresh else x
        x[row] = value[0]
        return x

    def _set_query(self, row: int, frame: torch.Tensor) -> None:
        """The row's correction reference: the query features of its given frame (only when correcting)."""
        if self.settings.loop == 0:
            return
        with self.backend.autocast():
            query = self.backend.query(frame)                         # [1, ...] each
        mine = self.ref_query or (None,) * len(query)
        self.ref_query = QueryFeatures(*(self._put_row(m, row, q) for m, q in zip(mine, query)))

    def stop(self, key: Hashable) -> None:
        """Video `key` leaves its row (the last row takes its place); K follows the remaining videos."""
        row, last = self.keys.index(key), len(self.keys) - 1
        if row != last:
            self.bank.move(last, row)
            for name in ("keys", "t", "objects"):
                getattr(self, name)[row] = getattr(self, name)[last]
        for name in ("keys", "t", "objects"):
            getattr(self, name).pop()
        if not self.keys and not self._padded():       # the next video starts afresh (K, buffers kept)
            self.bank.clear()
            self.prev_frame = self.prev_mask = self.ref_mask = self.ref_query = None
            return
        self.prev_frame, self.prev_mask, self.ref_mask = (self._drop_row(x, row, last) for x in
                                                          (self.prev_frame, self.prev_mask, self.ref_mask))
        if self.ref_query is not None:
            self.ref_query = QueryFeatures(*(self._drop_row(x, row, last) for x in self.ref_query))
        self._set_width(max(self.objects, default=0))

    def _drop_row(self, x: torch.Tensor, row: int, last: int) -> torch.Tensor:
        """x without row `row` (the last row moved there); all rows kept when all are computed."""
        if row != last:
            x = x.clone()
            x[row] = x[last]
        return x if self._padded() else x[:last]

    def _set_width(self, K: int) -> None:
        """The batch holds K objects: masks padded or cut, the bank's buffers too."""
        if K == self.K:
            return
        self.K = K
        if self.prev_mask is not None:
            self.prev_mask, self.ref_mask = pad_channels(self.prev_mask, K + 1), pad_channels(self.ref_mask, K + 1)
        self.bank.set_width(K)
        for row, objects in enumerate(self.objects):
            self.bank.set_objects(row, objects)

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
        return self.prev_frame.shape[0]

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
        if idle:
            rows.append(rows[0].new_zeros(idle, *rows[0].shape[1:]))
        return self.backend.prepare(rows[0] if len(rows) == 1 else torch.cat(rows))

    def _merge(self, row: int, x: torch.Tensor, out: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Masks given for a row's frame are pasted over its prediction and become its reference."""
        merged = merge_given(out[row:row + 1, :self.objects[row] + 1], mask)    # [1, k+1, H, W]
        self.objects[row] = merged.shape[1] - 1
        self._set_width(max(self.objects))
        out = pad_channels(out, self.K + 1)
        out[row] = pad_channels(merged, self.K + 1)[0]
        self.bank.set_objects(row, self.objects[row])
        self.ref_mask = self._put_row(self.ref_mask, row, out[row:row + 1], fresh=True)   # may alias prev_mask
        self._set_query(row, x[row:row + 1])
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

