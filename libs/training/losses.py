"""Pure loss functions on merged probabilities and one-hot targets (shared by correction and training)."""
from typing import Optional

import torch


def _channel_weights(target: torch.Tensor, num_objects: torch.Tensor,
                     valid: Optional[torch.Tensor]) -> torch.Tensor:
    """[B, K+1] weights: background and objects 1..num_objects (and `valid` ones) count."""
    B, C = target.shape[:2]
    idx = torch.arange(C, device=target.device).unsqueeze(0)       # [1, K+1]
    weights = (idx <= num_objects.view(B, 1)).to(target.dtype)     # [B, K+1]
    if valid is not None:
        weights = weights * torch.cat([weights.new_ones(B, 1), valid.to(target.dtype)], dim=1)
    return weights


def _as_tensor(num_objects, batch: int, device: torch.device) -> torch.Tensor:
    """int or [B] tensor -> [B] long tensor."""
    if isinstance(num_objects, torch.Tensor):
        return num_objects.to(device=device, dtype=torch.long).reshape(-1).expand(batch)
    return torch.full((batch,), int(num_objects), dtype=torch.long, device=device)


def bootstrapped_cross_entropy(probs: torch.Tensor, target: torch.Tensor, num_objects,
                               bootstrap: float = 0.4, valid: Optional[torch.Tensor] = None,
                               per_clip: bool = False, by_sort: bool = False) -> torch.Tensor:
    """Mean cross entropy of the hardest `bootstrap` share of pixels.

    probs, target [B, K+1, H, W] (merged probabilities, one-hot target with background in channel 0);
    num_objects int or [B]; valid [B, K] optional (objects that count). Returns a scalar
    (or [B] with per_clip). by_sort: pick the hardest pixels by a full sort instead of top-k (the same
    value; the compiled correction's choice: a sort has a fixed-shape, capture-safe kernel on GPUs).
    """
    B, C, H, W = target.shape
    weights = _channel_weights(target, _as_tensor(num_objects, B, target.device), valid)  # [B, K+1]
    nll = -torch.log(probs.clamp_min(torch.finfo(probs.dtype).tiny))                      # [B, K+1, H, W]
    per_pixel = (nll * target * weights.view(B, C, 1, 1)).sum(dim=1).view(B, -1)         # [B, HW]
    num = int(H * W * bootstrap)
    if by_sort:
        hardest = torch.sort(per_pixel, dim=1, descending=True).values[:, :num]         # [B, num]
    else:
        hardest, _ = torch.topk(per_pixel, num, dim=1, sorted=False)                     # [B, num]
    return hardest.mean(1) if per_clip else hardest.mean()


def iou_loss(probs: torch.Tensor, target: torch.Tensor, num_objects,
             valid: Optional[torch.Tensor] = None, per_clip: bool = False) -> torch.Tensor:
    """1 - soft IoU (sum of minima over sum of maxima), averaged over objects, then over the batch.

    probs, target [B, K+1, H, W]; objects 1..num_objects count (and only `valid` ones [B, K] if given).
    """
    B, C = target.shape[:2]
    p, t = probs[:, 1:].flatten(2), target[:, 1:].flatten(2)          # [B, K, HW]
    weights = _channel_weights(target, _as_tensor(num_objects, B, target.device), valid)[:, 1:]  # [B, K]
    union = torch.maximum(p, t).sum(-1).masked_fill(weights == 0, 1.0)  # objects that do not count: no 0/0
    iou = torch.minimum(p, t).sum(-1) / union                          # [B, K]
    clips = ((1 - iou) * weights).nan_to_num(0.0).sum(1) / weights.sum(1).clamp_min(1)   # [B]
    return clips if per_clip else clips.mean()


def correction_loss(probs: torch.Tensor, target: torch.Tensor, num_objects, by_sort: bool = False) -> torch.Tensor:
    """The test-time correction's objective: bootstrapped cross entropy plus IoU loss."""
    return (bootstrapped_cross_entropy(probs, target, num_objects, by_sort=by_sort)
            + iou_loss(probs, target, num_objects))
