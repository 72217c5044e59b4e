"""The per-frame steps of B videos at once, with per-video object counts (padding objects masked) and a
per-video on/off weight for the correction: fixed shapes, no host synchronisation, compilable."""
from typing import Callable, Tuple, Union

import torch

from libs.engine.correction import as_dtype
from libs.training.losses import bootstrapped_cross_entropy, iou_loss
from libs.engine.steps import compile_steps, memory_step
from libs.models.stm import STM, QueryFeatures


def masked_probabilities(model: STM, query: QueryFeatures, mem_key: torch.Tensor, mem_value: torch.Tensor,
                         bias: torch.Tensor, present: torch.Tensor, out_size: Tuple[int, int],
                         sdpa: bool) -> torch.Tensor:
    """Read the memory and decode [B, K+1, H, W] fp32 probabilities; padding objects (present [B, K] False)
    get exactly 0 (logit -inf), so the real objects' soft aggregation is that of their video alone."""
    logits = model.segment(query, mem_key, mem_value, out_size, bias, present=present, sdpa=sdpa)
    keep = torch.cat([present.new_ones(present.shape[0], 1), present], dim=1)[:, :, None, None]   # [B, K+1, 1, 1]
    return torch.softmax(logits.float().masked_fill(~keep, float("-inf")), dim=1)


def batched_segment_step(model: STM, frame: torch.Tensor, mem_key: torch.Tensor, mem_value: torch.Tensor,
                         bias: torch.Tensor, present: torch.Tensor, out_size: Tuple[int, int],
                         sdpa: bool = True) -> torch.Tensor:
    """frame [B, 3, H, W], the bank's buffers [B, K, N, C] and bias [B, K, N] -> probabilities [B, K+1, H, W]."""
    return masked_probabilities(model, model.encode_query(frame), mem_key, mem_value, bias, present, out_size, sdpa)


def batched_cycle_loss(pred: torch.Tensor, model: STM, frame: torch.Tensor, stem: torch.Tensor,
                       ref_query: QueryFeatures, ref_mask: torch.Tensor, objects: torch.Tensor,
                       present: torch.Tensor, weights: torch.Tensor, out_size: Tuple[int, int],
                       sdpa: bool = True) -> torch.Tensor:
    """The correction loss of every video (its prediction pred [B, K+1, H, W] as the only memory, back to
    its reference), weighted by weights [B] (0: no correction now) and summed: each video's gradient is
    its own loss's gradient, times its weight."""
    key, value = model.encode_memory(frame, as_dtype(pred[:, 1:], frame.dtype), stem)     # [B, K, hw, C]
    back = masked_probabilities(model, ref_query, key, value, None, present, out_size, sdpa)  # [B, K+1, H, W]
    loss = (bootstrapped_cross_entropy(back, ref_mask, objects, per_clip=True, by_sort=sdpa)
            + iou_loss(back, ref_mask, objects, per_clip=True))                           # [B]
    return (loss * weights).sum()


def batched_correction_step(model: STM, frame: torch.Tensor, stem: torch.Tensor, out: torch.Tensor,
                            ref_query: QueryFeatures, ref_mask: torch.Tensor, objects: torch.Tensor,
                            present: torch.Tensor, weights: torch.Tensor, rate: float,
                            out_size: Tuple[int, int], sdpa: bool = True) -> torch.Tensor:
    """One correction iteration of every video: out - rate x gradient, [B, K+1, H, W] fp32 (unchanged
    exactly where the weight is 0)."""
    grad = torch.func.grad(batched_cycle_loss)(out, model, frame, stem, ref_query, ref_mask, objects, present,
                                               weights, out_size, sdpa)
    return out - rate * grad


class BatchedSteps:
    """The three batched steps, eager or compiled (`backend` as in `FastSteps`); on CUDA with inductor,
    CUDA graphs: outputs that outlive the next replay are cloned, the bank's buffers marked static."""

    def __init__(self, compile: bool = False, backend: Union[str, Callable] = "inductor", cuda: bool = False,
                 sdpa: bool = True):
        self.sdpa = sdpa
        self.graphs = compile and cuda and backend == "inductor"
        steps = (memory_step, batched_segment_step, batched_correction_step)
        self._memory, self._segment, self._correct = compile_steps(steps, backend, cuda) if compile else steps

    def memory(self, model: STM, frame: torch.Tensor, probs: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """frame [B, 3, H, W], objects' probabilities [B, K, H, W] -> key, value [B, K, hw, C]."""
        if not self.sdpa:          # the plain path: the network as it is (autocast decides the precision)
            return model.encode_memory(frame, probs)
        return self._memory(model, frame, probs)

    def segment(self, model: STM, frame: torch.Tensor, mem_key: torch.Tensor, mem_value: torch.Tensor,
                bias: torch.Tensor, present: torch.Tensor, out_size: Tuple[int, int]) -> torch.Tensor:
        """`batched_segment_step` on the bank's buffers."""
        if self.graphs:
            for buffer in (mem_key, mem_value, bias):
                torch._dynamo.mark_static_address(buffer, guard=False)
        return self._own(self._segment(model, frame, mem_key, mem_value, bias, present, out_size, self.sdpa))

    def correct(self, *args) -> torch.Tensor:
        """`batched_correction_step` (its arguments up to out_size)."""
        return self._own(self._correct(*args, self.sdpa))

    def _own(self, out: torch.Tensor) -> torch.Tensor:
        """A tensor the caller may keep: a CUDA graph's output is overwritten by its next replay."""
        return out.clone() if self.graphs else out
