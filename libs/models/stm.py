"""The Space-Time Memory network as primitives: encode memory, encode query, read memory, decode."""
import math
from typing import NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .backbone import ResNetTrunk, channel_expansion


class QueryFeatures(NamedTuple):
    """What the query encoder gives the memory read and the decoder."""

    key: torch.Tensor    # [B, C_k, h, w]   (h, w = H/16, W/16)
    value: torch.Tensor  # [B, C_v, h, w]
    r3: torch.Tensor     # [B, 128e, H/8, W/8]
    r2: torch.Tensor     # [B, 64e, H/4, W/4]


class ResBlock(nn.Module):
    """Pre-activation residual block with two 3x3 convolutions."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv1 = nn.Conv2d(dim, dim, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(dim, dim, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x + conv2(relu(conv1(relu(x))))."""
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class Refine(nn.Module):
    """Decoder stage: skip features plus the upsampled coarser map, refined by residual blocks."""

    def __init__(self, in_dim: int, dim: int):
        super().__init__()
        self.convFS = nn.Conv2d(in_dim, dim, kernel_size=3, padding=1)
        self.ResFS = ResBlock(dim)
        self.ResMM = ResBlock(dim)

    def forward(self, skip: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        """skip [N, in_dim, h, w], coarse [N, dim, h', w'] -> [N, dim, h, w]."""
        s = self.ResFS(self.convFS(skip))
        up = F.interpolate(coarse, size=s.shape[2:], mode="bilinear", align_corners=False)
        return self.ResMM(s + up)


class Decoder(nn.Module):
    """Memory readout (1/16) -> two refinement stages (1/8, 1/4) -> 2-channel logits at full size."""

    def __init__(self, in_dim: int, dim: int, expand: int):
        super().__init__()
        self.convFM = nn.Conv2d(in_dim, dim, kernel_size=3, padding=1)
        self.ResMM = ResBlock(dim)
        self.RF3 = Refine(128 * expand, dim)
        self.RF2 = Refine(64 * expand, dim)
        self.pred2 = nn.Conv2d(dim, 2, kernel_size=3, padding=1)

    def forward(self, readout: torch.Tensor, r3: torch.Tensor, r2: torch.Tensor,
                out_size: Tuple[int, int]) -> torch.Tensor:
        """readout [N, 2C_v, h, w] -> logits [N, 2, H, W]."""
        m4 = self.ResMM(self.convFM(readout))  # [N, 256, H/16, W/16]
        m3 = self.RF3(r3, m4)                  # [N, 256, H/8, W/8]
        m2 = self.RF2(r2, m3)                  # [N, 256, H/4, W/4]
        p2 = self.pred2(F.relu(m2))            # [N, 2, H/4, W/4]
        return F.interpolate(p2, size=out_size, mode="bilinear", align_corners=False)


class KeyValue(nn.Module):
    """3x3 projections of encoder features to keys and values."""

    def __init__(self, in_dim: int, keydim: int, valdim: int):
        super().__init__()
        self.Key = nn.Conv2d(in_dim, keydim, kernel_size=3, padding=1)
        self.Value = nn.Conv2d(in_dim, valdim, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """x [N, in_dim, h, w] -> (key [N, keydim, h, w], value [N, valdim, h, w])."""
        return self.Key(x), self.Value(x)


def soft_aggregate(probs: torch.Tensor) -> torch.Tensor:
    """Merge per-object foreground probabilities into logits over background + objects.

    probs [B, K, H, W] -> logits [B, K+1, H, W]; softmax over dim 1 gives the merged probabilities.
    """
    bg = torch.prod(1 - probs, dim=1, keepdim=True)                # [B, 1, H, W]
    q = torch.cat([bg, probs], dim=1).clamp(1e-7, 1 - 1e-7)       # [B, K+1, H, W]
    return torch.log(q / (1 - q))


class STM(nn.Module):
    """STM with the released STM-Cycle parameter names; holds no video state."""

    def __init__(self, arch: str = "resnet50", keydim: int = 128, valdim: int = 512, backbone_weights: str = ""):
        super().__init__()
        expand = channel_expansion(arch)
        self.arch, self.keydim, self.valdim = arch, keydim, valdim
        self.Encoder_M = ResNetTrunk(arch, backbone_weights, with_mask_inputs=True)
        self.Encoder_Q = ResNetTrunk(arch, backbone_weights)
        self.KV_M_r4 = KeyValue(256 * expand, keydim, valdim)
        self.KV_Q_r4 = KeyValue(256 * expand, keydim, valdim)
        self.Decoder = Decoder(2 * valdim, 256, expand)

    def encode_memory(self, frame: torch.Tensor, probs: torch.Tensor,
                      frame_stem: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """Encode a frame with each object's probability map as memory.

        frame [B, 3, H, W] (normalised), probs [B, K, H, W] -> key [B, K, h*w, C_k], value [B, K, h*w, C_v].
        frame_stem: `memory_stem(frame)` when already computed (it does not depend on the masks).
        """
        B, K, H, W = probs.shape
        enc = self.Encoder_M
        m = probs.reshape(B * K, 1, H, W)                               # [BK, 1, H, W]
        bg = torch.clamp(1.0 - m, min=0.0, max=1.0)                     # [BK, 1, H, W]
        f = self.memory_stem(frame) if frame_stem is None else frame_stem  # [B, 64, H/2, W/2]
        f = f.unsqueeze(1).expand(-1, K, -1, -1, -1).reshape(B * K, *f.shape[1:])
        r4, _, _ = enc(f + enc.conv1_m(m) + enc.conv1_bg(bg))           # [BK, 256e, h, w]
        key, value = self.KV_M_r4(r4)                                    # [BK, C, h, w]
        key = key.flatten(2).transpose(1, 2).reshape(B, K, -1, self.keydim)
        value = value.flatten(2).transpose(1, 2).reshape(B, K, -1, self.valdim)
        return key, value

    def memory_stem(self, frame: torch.Tensor) -> torch.Tensor:
        """The frame's part of the memory encoder's first convolution: [B, 3, H, W] -> [B, 64, H/2, W/2]."""
        return self.Encoder_M.conv1(frame)

    def encode_query(self, frame: torch.Tensor) -> QueryFeatures:
        """frame [B, 3, H, W] (normalised) -> query key/value and skip features."""
        enc = self.Encoder_Q
        r4, r3, r2 = enc(enc.conv1(frame))
        key, value = self.KV_Q_r4(r4)
        return QueryFeatures(key, value, r3, r2)

    @staticmethod
    def read_memory(mem_key: torch.Tensor, mem_value: torch.Tensor, query_key: torch.Tensor,
                    mem_bias: Optional[torch.Tensor] = None, sdpa: bool = False) -> torch.Tensor:
        """Attention of every query position over all memory positions.

        mem_key [B, K, N, C_k], mem_value [B, K, N, C_v], query_key [B, C_k, h, w],
        mem_bias [B, K, N] (0 or -inf, masks memory an object may not use) -> readout [B, K, C_v, h, w].
        sdpa: the same softmax(QK^T/sqrt(C_k))V by scaled_dot_product_attention (objects as heads,
        query positions as queries), which need not hold the [N, hw] affinity in memory.
        """
        B, C, h, w = query_key.shape
        if sdpa:
            K = mem_key.shape[1]
            q = query_key.flatten(2).transpose(1, 2).unsqueeze(1).expand(-1, K, -1, -1)  # [B, K, hw, C_k]
            q = q.to(mem_key.dtype)       # bf16 memory (autocast) read by an fp32 query, as in the correction
            allowed = None if mem_bias is None else (mem_bias == 0).unsqueeze(2)         # [B, K, 1, N]
            out = F.scaled_dot_product_attention(q, mem_key, mem_value, attn_mask=allowed)  # [B, K, hw, C_v]
            return out.transpose(2, 3).reshape(B, K, -1, h, w)
        q = query_key.reshape(B, 1, C, h * w)                               # [B, 1, C_k, hw]
        affinity = torch.matmul(mem_key, q) / math.sqrt(C)                  # [B, K, N, hw]
        if mem_bias is not None:
            affinity = affinity + mem_bias.unsqueeze(-1)
        weights = torch.softmax(affinity, dim=2)                            # over memory positions
        out = torch.matmul(mem_value.transpose(2, 3), weights)              # [B, K, C_v, hw]
        return out.reshape(B, mem_key.shape[1], -1, h, w)

    def decode(self, readout: torch.Tensor, query: QueryFeatures, out_size: Tuple[int, int]) -> torch.Tensor:
        """readout [B, K, C_v, h, w] -> each object's foreground probability [B, K, H, W]."""
        B, K = readout.shape[:2]

        def per_object(x: torch.Tensor) -> torch.Tensor:  # [B, ...] -> [B*K, ...]
            return x.unsqueeze(1).expand(-1, K, *x.shape[1:]).reshape(B * K, *x.shape[1:])

        feats = torch.cat([readout.flatten(0, 1), per_object(query.value)], dim=1)  # [BK, 2C_v, h, w]
        logits = self.Decoder(feats, per_object(query.r3), per_object(query.r2), out_size)  # [BK, 2, H, W]
        fg = torch.softmax(logits, dim=1, dtype=torch.float32)[:, 1]   # fp32 from bf16 too, cast in the softmax
        return fg.reshape(B, K, *out_size)

    def segment(self, query: QueryFeatures, mem_key: torch.Tensor, mem_value: torch.Tensor,
                out_size: Tuple[int, int], mem_bias: Optional[torch.Tensor] = None,
                present: Optional[torch.Tensor] = None, sdpa: bool = False) -> torch.Tensor:
        """Read the memory and decode: merged logits [B, K+1, H, W] (softmax -> probabilities).

        present [B, K] (bool) marks real objects in a padded batch; others get probability 0.
        sdpa: read the memory with scaled_dot_product_attention (see `read_memory`).
        """
        readout = self.read_memory(mem_key, mem_value, query.key, mem_bias, sdpa=sdpa)
        probs = self.decode(readout, query, out_size)                  # [B, K, H, W]
        if present is not None:
            probs = probs * present.to(probs.dtype)[:, :, None, None]
        return soft_aggregate(probs)
