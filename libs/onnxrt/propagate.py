"""A minimal fixed-slot propagation loop over either step set (OnnxSteps, or TorchSteps: the PyTorch fast
steps with the same interface): what the export tests and benchmarks/onnx_speed.py run, and a sketch of
what the inference core does with a bounded bank."""
from typing import List, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from libs.dataset.synthetic import generate_video
from libs.engine.batched_steps import batched_segment_step
from libs.engine.steps import memory_step
from libs.models.stm import STM
from libs.utils.constants import IMAGENET_MEAN, IMAGENET_STD


class TorchSteps:
    """The PyTorch fast steps (`memory_step`, `batched_segment_step`) of `net`, eager, with OnnxSteps' interface."""

    def __init__(self, net: STM):
        self.net = net

    @torch.no_grad()
    def memory(self, frame: torch.Tensor, probs: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """frame [B, 3, H, W], probs [B, K, H, W] -> key [B, K, hw, C_k], value [B, K, hw, C_v]."""
        return memory_step(self.net, frame, probs)

    @torch.no_grad()
    def segment(self, frame: torch.Tensor, mem_key: torch.Tensor, mem_value: torch.Tensor, bias: torch.Tensor,
                present: torch.Tensor, out_size: Tuple[int, int]) -> torch.Tensor:
        """frame, bank [B, K, N, C], bias [B, K, N], present [B, K] -> probabilities [B, K+1, H, W]."""
        return batched_segment_step(self.net, frame, mem_key, mem_value, bias, present, out_size)


class SlotBank:
    """One video's memory in `slots` fixed slots of hw positions: key [1, K, slots*hw, C_k], value, and a
    bias [1, K, slots*hw] that is 0 on written slots and -inf on free ones."""

    def __init__(self, slots: int, key: torch.Tensor, value: torch.Tensor):
        _, K, self.hw, _ = key.shape                                               # key [1, K, hw, C_k]
        self.key = key.new_zeros(1, K, slots * self.hw, key.shape[3])              # [1, K, N, C_k]
        self.value = value.new_zeros(1, K, slots * self.hw, value.shape[3])        # [1, K, N, C_v]
        self.bias = torch.full((1, K, slots * self.hw), float("-inf"))             # [1, K, N]
        self.slots = slots
        self.stored: List[int] = []                        # slots of stored frames, oldest first

    def write(self, key: torch.Tensor, value: torch.Tensor) -> int:
        """Write one frame's memory [1, K, hw, C] into the lowest free slot; returns the slot."""
        slot = min(set(range(self.slots)) - set(self.stored))
        where = slice(slot * self.hw, (slot + 1) * self.hw)
        self.key[:, :, where], self.value[:, :, where] = key, value
        self.bias[:, :, where] = 0.0
        return slot

    def free(self, slot: int) -> None:
        """Mask `slot` (-inf) so reads skip it."""
        self.bias[:, :, slot * self.hw:(slot + 1) * self.hw] = float("-inf")

    def store(self, slot: int, max_frames: int) -> None:
        """Keep `slot` as stored memory; past max_frames, drop the oldest frame after the first."""
        self.stored.append(slot)
        if len(self.stored) > max_frames:
            self.free(self.stored.pop(1 if max_frames > 1 else 0))


def propagate(steps, frames: torch.Tensor, first: torch.Tensor, max_frames: int, save_freq: int = 5) -> torch.Tensor:
    """Segment frames [T, 3, H, W] from the first frame's one-hot mask first [1, K+1, H, W]: each step
    memorizes the previous frame with its result (kept every save_freq frames, else read once), then
    segments; returns probabilities [T, K+1, H, W] (frame 0: `first`)."""
    size = tuple(frames.shape[2:])
    present = torch.ones(1, first.shape[1] - 1, dtype=torch.bool)                  # [1, K]
    outs, bank = [first], None
    for t in range(1, frames.shape[0]):
        key, value = steps.memory(frames[t - 1:t], outs[-1][:, 1:])               # [1, K, hw, C]
        if bank is None:
            bank = SlotBank(max_frames + 1, key, value)
        slot = bank.write(key, value)
        outs.append(steps.segment(frames[t:t + 1], bank.key, bank.value, bank.bias, present, size))
        if (t - 1) % save_freq == 0:
            bank.store(slot, max_frames)
        else:
            bank.free(slot)
    return torch.cat(outs)


def video_tensors(seed: int, frames: int, size: Tuple[int, int], objects: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """A generated video (libs.dataset.synthetic) at the network size: normalised frames [T, 3, H, W] and
    the first frame's one-hot mask [1, K+1, H, W] (bilinear frames, nearest labels)."""
    rgb, labels = generate_video(seed, frames, size, objects)
    x = torch.from_numpy(np.stack(rgb)).permute(0, 3, 1, 2).float() / 255                  # [T, 3, H, W]
    x = (x - torch.tensor(IMAGENET_MEAN)[:, None, None]) / torch.tensor(IMAGENET_STD)[:, None, None]
    first = torch.from_numpy(labels[0]).long()                                              # [H, W]
    onehot = F.one_hot(first, int(first.max()) + 1).permute(2, 0, 1)[None].float()         # [1, K+1, H, W]
    return x, onehot
