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
