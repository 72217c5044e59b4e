"""The per-frame steps of B videos at once as pure functions (memorise, segment, one correction iteration):
fixed shapes, no host synchronisation, no branch on tensor values, so torch.compile turns each into one
graph. `present` [B, K] marks each video's real objects when videos with fewer objects are padded (None:
no padding); `weights` [B] switches the correction per video (None: every video is corrected)."""
from typing import Callable, Optional, Tuple, Union

import torch

from ..training.losses import bootstrapped_cross_entropy, iou_loss
from ..models.stm import STM, QueryFeatures

RECOMPILE_LIMIT = 64       # graphs per step function: (batch, objects, capacity doublings), with room


def as_dtype(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """x in `dtype`; no operation at all when it already is."""
    return x if x.dtype == dtype else x.to(dtype)


def memory_step(model: STM, frame: torch.Tensor, probs: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """frame [B, 3, H, W] (network dtype), objects' probabilities [B, K, H, W] -> key, value [B, K, hw, C]."""
    return model.encode_memory(frame, as_dtype(probs, frame.dtype))


def probabilities(model: STM, query: QueryFeatures, mem_key: torch.Tensor, mem_value: torch.Tensor,
                  bias: Optional[torch.Tensor], present: Optional[torch.Tensor], out_size: Tuple[int, int],
                  sdpa: bool) -> torch.Tensor:
    """Read the memory and decode [B, K+1, H, W] fp32 probabilities (softmax and soft aggregation in fp32);
    padding objects (present False) get exactly 0, so a video's objects are aggregated as if alone."""
    logits = model.segment(query, mem_key, mem_value, out_size, bias, present=present, sdpa=sdpa).float()
    if present is not None:
        keep = torch.cat([present.new_ones(present.shape[0], 1), present], dim=1)[:, :, None, None]  # [B, K+1, 1, 1]
        logits = logits.masked_fill(~keep, float("-inf"))
    return torch.softmax(logits, dim=1)


def segment_step(model: STM, frame: torch.Tensor, mem_key: torch.Tensor, mem_value: torch.Tensor,
                 bias: Optional[torch.Tensor], present: Optional[torch.Tensor], out_size: Tuple[int, int],
                 sdpa: bool = True) -> torch.Tensor:
    """frame [B, 3, H, W], memory [B, K, N, C] and bias [B, K, N] (-inf: unusable) -> probs [B, K+1, H, W]."""
    return probabilities(model, model.encode_query(frame), mem_key, mem_value, bias, present, out_size, sdpa)


def cycle_loss(pred: torch.Tensor, model: STM, frame: torch.Tensor, stem: torch.Tensor, ref_query: QueryFeatures,
               ref_mask: torch.Tensor, objects: torch.Tensor, present: Optional[torch.Tensor],
               weights: Optional[torch.Tensor], out_size: Tuple[int, int], sdpa: bool) -> torch.Tensor:
    """The correction loss of every video (its prediction pred [B, K+1, H, W] as the only memory, segmenting
    its reference frame back to its reference mask), times its weight, summed: a scalar whose gradient is
    each video's own."""
    key, value = model.encode_memory(frame, as_dtype(pred[:, 1:], frame.dtype), stem)     # [B, K, hw, C]
    back = probabilities(model, ref_query, key, value, None, present, out_size, sdpa)     # [B, K+1, H, W]
    loss = (bootstrapped_cross_entropy(back, ref_mask, objects, per_clip=True, by_sort=sdpa)
            + iou_loss(back, ref_mask, objects, per_clip=True))                           # [B]
    return (loss if weights is None else loss * weights).sum()


def correction_step(model: STM, frame: torch.Tensor, stem: torch.Tensor, out: torch.Tensor,
                    ref_query: QueryFeatures, ref_mask: torch.Tensor, objects: torch.Tensor,
                    present: Optional[torch.Tensor], weights: Optional[torch.Tensor], rate: float,
                    out_size: Tuple[int, int], sdpa: bool = True) -> torch.Tensor:
    """One correction iteration of every video: out - rate x d cycle_loss / d out, [B, K+1, H, W] fp32
    (exactly unchanged where the weight is 0). Only the prediction is differentiated."""
    with torch.enable_grad():
        grad = torch.func.grad(cycle_loss)(out, model, frame, stem, ref_query, ref_mask, objects, present,
                                           weights, out_size, sdpa)
    return out - rate * grad


def compile_steps(steps: Tuple[Callable, ...], backend: Union[str, Callable], cuda: bool) -> Tuple[Callable, ...]:
    """Each step compiled with fixed shapes and no graph breaks (on CUDA with inductor: CUDA graphs)."""
    options = dict(fullgraph=True, dynamic=False, backend=backend)
    if backend == "inductor":
        options["mode"] = "reduce-overhead" if cuda else "default"
    return tuple(torch.compile(step, **options) for step in steps)
