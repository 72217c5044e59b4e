"""The cyclic training objective of STM-Cycle: a forward pass through the clip, then back to frame 0."""
from dataclasses import dataclass
from typing import Dict, List

import torch
from torch import nn

from .losses import bootstrapped_cross_entropy, iou_loss
from ..errors import VOSError
from ..models.stm import STM, QueryFeatures

MODES = ("mask", "recurrent", "threshold")
CYCLE_FRAMES = ("highest_object", "all_objects")


@dataclass(frozen=True)
class CyclicConfig:
    """How the forward memory is built and which loss is used."""

    mode: str = "recurrent"        # 'mask': ground truth; 'recurrent': own prediction (what the original's
                                   # loop did whatever its mode); 'threshold'
    iou_threshold: float = 0.65    # 'threshold': own prediction when its IoU with the truth exceeds this
    loss: str = "both"             # 'ce', 'iou' or 'both'
    sdpa: bool = False             # memory read by scaled_dot_product_attention (same values)
    cycle_frames: str = "highest_object"   # later frames whose backward cycle counts: those whose truth holds
                                           # the clip's highest object id (the original) or 'all_objects'

    def __post_init__(self) -> None:
        if self.cycle_frames not in CYCLE_FRAMES:
            raise VOSError(f"cycle_frames must be one of {', '.join(CYCLE_FRAMES)}, got {self.cycle_frames!r}")


@dataclass
class ForwardPass:
    """What the forward pass through a clip leaves for the backward cycle."""

    first_query: QueryFeatures     # frame 0's query features
    keys: List[torch.Tensor]       # memory of frames 0..T-2, each [B, K, hw, C_k]
    values: List[torch.Tensor]     # each [B, K, hw, C_v]
    preds: List[torch.Tensor]      # predictions of frames 1..T-1, each [B, K+1, H, W]


def clip_loss(probs: torch.Tensor, target: torch.Tensor, num_objects: torch.Tensor,
              valid: torch.Tensor, loss: str) -> torch.Tensor:
    """Per-clip loss [B] of merged probabilities against one-hot targets [B, K+1, H, W]."""
    total = probs.new_zeros(probs.shape[0])
    if loss in ("ce", "both"):
        total = total + bootstrapped_cross_entropy(probs, target, num_objects, valid=valid, per_clip=True)
    if loss in ("iou", "both"):
        total = total + iou_loss(probs, target, num_objects, valid=valid, per_clip=True)
    return total


def soft_iou(probs: torch.Tensor, target: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Mean soft IoU over the real objects of each clip: [B]."""
    p, t = probs[:, 1:].flatten(2), target[:, 1:].flatten(2)                  # [B, K, HW]
    iou = torch.minimum(p, t).sum(-1) / torch.maximum(p, t).sum(-1).clamp_min(1e-6)
    w = present.to(iou.dtype)
    return (iou * w).sum(1) / w.sum(1).clamp_min(1)


def cyclic_loss(model: STM, frames: torch.Tensor, masks: torch.Tensor, num_objects: torch.Tensor,
                cfg: CyclicConfig) -> Dict[str, torch.Tensor]:
    """frames [B, T, 3, H, W], masks [B, T, K+1, H, W] one-hot, num_objects [B] -> losses (scalars)
    and 'pred', the last frame's prediction [B, K+1, H, W] (detached).

    Forward: frame t is segmented from the memory of frames 0..t-1 (frame 0 with its truth, later
    frames with the mask chosen by `mode`). Backward cycle: for every later frame selected by
    `cycle_frames` (see `cycle_counts`), frame 0 is segmented from that frame's memory alone (built
    from the prediction) and compared with frame 0's truth. Only objects present in the reference
    frame count.
    """
    B, T, _, H, W = frames.shape
    K = masks.shape[2] - 1
    present = torch.arange(1, K + 1, device=masks.device)[None] <= num_objects[:, None]   # [B, K]
    first_has = masks[:, 0, 1:].flatten(2).sum(-1) > 0                                    # [B, K]
    keys, values, queries = [], [], encode_queries(model, frames)
    memory_mask, forward, preds = masks[:, 0], [], []
    for t in range(1, T):
        k, v = model.encode_memory(frames[:, t - 1], memory_mask[:, 1:])        # [B, K, hw, C]
        keys.append(k)
        values.append(v)
        logits = model.segment(queries[t], torch.cat(keys, 2), torch.cat(values, 2), (H, W), present=present,
                               sdpa=cfg.sdpa)
        out = torch.softmax(logits, dim=1)                                      # [B, K+1, H, W]
        preds.append(out)
        forward.append(clip_loss(out, masks[:, t], num_objects, first_has & present, cfg.loss))
        memory_mask = _next_memory_mask(out, masks[:, t], present, cfg)
    forward_pass = ForwardPass(first_query=queries[0], keys=keys, values=values, preds=preds)
    cycle = _cycle(model, frames=frames, masks=masks, num_objects=num_objects, present=present, fwd=forward_pass,
                   cfg=cfg)
    fwd = torch.stack(forward, 1).sum(1)                                         # [B]
    total = (fwd + cycle).sum() / (B * (T - 1))
    return {"loss": total, "forward": fwd.mean() / (T - 1), "cycle": cycle.mean() / (T - 1),
            "pred": preds[-1].detach()}


def _next_memory_mask(out: torch.Tensor, truth: torch.Tensor, present: torch.Tensor,
                      cfg: CyclicConfig) -> torch.Tensor:
    """What the next step memorises for this frame: truth, prediction, or either by IoU."""
    if cfg.mode == "mask":
        return truth
    if cfg.mode == "recurrent":
        return out
    use_pred = (soft_iou(out, truth, present) > cfg.iou_threshold)[:, None, None, None]
    return torch.where(use_pred, out, truth)


def encode_queries(model: STM, frames: torch.Tensor) -> List[QueryFeatures]:
    """Query features of every frame of the clips [B, T, 3, H, W]: one batched pass while batch norm
    is frozen (the same numbers as frame by frame), frame by frame while it learns statistics, whose
    batch statistics must stay per frame as in the original."""
    B, T = frames.shape[:2]
    if any(m.training for m in model.Encoder_Q.modules() if isinstance(m, nn.BatchNorm2d)):
        return [model.encode_query(frames[:, t]) for t in range(T)]
    every = model.encode_query(frames.flatten(0, 1))                           # batch index b * T + t
    return [QueryFeatures(*(x.unflatten(0, (B, T))[:, t] for x in every)) for t in range(T)]


def _cycle(model: STM, *, frames: torch.Tensor, masks: torch.Tensor, num_objects: torch.Tensor,
           present: torch.Tensor, fwd: ForwardPass, cfg: CyclicConfig) -> torch.Tensor:
    """Sum over later frames of the loss of frame 0 segmented from that frame's memory alone, built
    from the network's prediction (whatever `mode` memorised going forward): [B].

    All T-1 backward segmentations run as one batch (index (t-1) * B + b), the decoder having no
    batch statistics."""
    B, T, _, H, W = frames.shape
    n = T - 1
    if cfg.mode == "recurrent":      # the forward memory of frames 1..T-2 was built from the predictions
        memory = list(zip(fwd.keys[1:], fwd.values[1:]))
    else:                            # it may hold ground truth: encode the predictions
        memory = [model.encode_memory(frames[:, t], fwd.preds[t - 1][:, 1:]) for t in range(1, n)]
    memory.append(model.encode_memory(frames[:, T - 1], fwd.preds[-1][:, 1:]))
    own_keys = torch.cat([k for k, _ in memory], 0)     # [nB, K, hw, C_k], index (t-1) * B + b
    own_values = torch.cat([v for _, v in memory], 0)   # [nB, K, hw, C_v]
    query = QueryFeatures(*(x.repeat(n, *[1] * (x.dim() - 1)) for x in fwd.first_query))
    everyone = present.repeat(n, 1)                                              # [nB, K]
    logits = model.segment(query, own_keys, own_values, (H, W), present=everyone, sdpa=cfg.sdpa)
    back = torch.softmax(logits, dim=1)                                          # [nB, K+1, H, W]
    has = (masks[:, 1:, 1:].flatten(3).sum(-1) > 0).transpose(0, 1).flatten(0, 1)   # [nB, K]
    counts = cycle_counts(has, num_objects.repeat(n), cfg.cycle_frames).to(frames.dtype)   # [nB]
    loss = clip_loss(back, masks[:, 0].repeat(n, 1, 1, 1), num_objects.repeat(n), has & everyone, cfg.loss)
    return (counts * loss).view(n, B).sum(0)


def cycle_counts(has: torch.Tensor, num_objects: torch.Tensor, rule: str) -> torch.Tensor:
    """Whether a frame's backward-cycle term counts [N] bool, from which objects its truth holds
    (has [N, K]) and the clip's object count [N]: 'highest_object' when object `num_objects` is
    present (the original's rule), 'all_objects' when objects 1..num_objects all are."""
    if rule == "highest_object":
        highest = (num_objects.to(torch.long) - 1).clamp(0, has.shape[1] - 1)[:, None]   # [N, 1]
        return has.gather(1, highest)[:, 0] & (num_objects > 0)
    if rule == "all_objects":
        wanted = torch.arange(1, has.shape[1] + 1, device=has.device)[None] <= num_objects[:, None]   # [N, K]
        return (has | ~wanted).all(1)
    raise VOSError(f"cycle_frames must be one of {', '.join(CYCLE_FRAMES)}, got {rule!r}")


class CyclicObjective(torch.nn.Module):
    """The model plus its training objective, so DistributedDataParallel sees one forward()."""

    def __init__(self, model: STM, cfg: CyclicConfig):
        super().__init__()
        self.model, self.cfg = model, cfg

    def forward(self, frames: torch.Tensor, masks: torch.Tensor, num_objects: torch.Tensor) -> Dict[str, torch.Tensor]:
        """See `cyclic_loss`."""
        return cyclic_loss(self.model, frames, masks, num_objects, self.cfg)
