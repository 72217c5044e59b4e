"""STM-Cycle's test-time gradient correction of a prediction through the cycle back to the reference."""
import contextlib
from typing import Callable, Iterator, Optional, Tuple

import torch

from libs.training.losses import correction_loss
from libs.models.stm import STM, QueryFeatures


@contextlib.contextmanager
def frozen_parameters(model: torch.nn.Module) -> Iterator[None]:
    """Parameters stop requiring gradients inside the block; the flags are restored after it."""
    frozen = [p for p in model.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in frozen:
            p.requires_grad_(True)


def correct_prediction(model: STM, frame: torch.Tensor, probs: torch.Tensor, *, ref_query: QueryFeatures,
                       ref_mask: torch.Tensor, num_objects: int, loop: int, rate: float,
                       out_size: Tuple[int, int], fast: bool = False,
                       step: Optional[Callable[..., torch.Tensor]] = None) -> torch.Tensor:
    """Move the prediction `loop` times by -rate x the gradient of the cycle loss with respect to it.

    Each iteration encodes `frame` [1, 3, H, W] with the current prediction `probs` [1, K+1, H, W]
    as the only memory, segments the reference frame (its query features `ref_query`), and compares
    with `ref_mask` [1, K+1, H, W]. Only the prediction receives gradients. Returns [1, K+1, H, W].
    fast: each iteration is `correction_step` (or `step`, e.g. its compiled version): parameters
    frozen, the memory read by scaled_dot_product_attention, the network in the dtype of its weights
    (bf16 for the fast path's bf16 copy; `frame` and `ref_query` in that dtype), the loss, the
    gradient and the update in fp32.
    """
    if not fast:
        return _correct_plain(model, frame, probs, ref_query, ref_mask, num_objects, loop, rate, out_size)
    step = step or correction_step
    out = probs.detach()
    with frozen_parameters(model):
        stem = model.memory_stem(frame)                                   # the same in every iteration
        for _ in range(loop):
            out = step(model, frame, stem, out, ref_query, ref_mask, num_objects, rate, out_size)
    return out


def _correct_plain(model, frame, probs, ref_query, ref_mask, num_objects, loop, rate, out_size):
    """The correction loop as the original ran it: autograd through the model, matmul memory read."""
    out = probs.detach()
    stem = model.memory_stem(frame)
    for _ in range(loop):
        with torch.enable_grad():
            pred = out.clone().requires_grad_(True)
            key, value = model.encode_memory(frame, pred[:, 1:num_objects + 1], stem)
            back = torch.softmax(model.segment(ref_query, key, value, out_size), dim=1)   # [1, K+1, H, W]
            loss = correction_loss(back, ref_mask, num_objects)
            grad, = torch.autograd.grad(loss, pred)
        out = out - rate * grad
    return out


def cycle_loss(pred: torch.Tensor, model: STM, frame: torch.Tensor, stem: torch.Tensor, ref_query: QueryFeatures,
               ref_mask: torch.Tensor, num_objects: int, out_size: Tuple[int, int]) -> torch.Tensor:
    """The correction's loss as a function of the prediction pred [1, K+1, H, W] (fp32): a scalar."""
    objects = as_dtype(pred[:, 1:num_objects + 1], frame.dtype)          # [1, K, H, W] network dtype
    key, value = model.encode_memory(frame, objects, stem)
    back = torch.softmax(model.segment(ref_query, key, value, out_size, sdpa=True), dim=1)   # fp32 (decode)
    return correction_loss(back, ref_mask, num_objects, by_sort=True)


def as_dtype(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """x in `dtype`; no operation at all when it already is."""
    return x if x.dtype == dtype else x.to(dtype)


def correction_step(model: STM, frame: torch.Tensor, stem: torch.Tensor, out: torch.Tensor,
                    ref_query: QueryFeatures, ref_mask: torch.Tensor, num_objects: int, rate: float,
                    out_size: Tuple[int, int]) -> torch.Tensor:
    """One correction iteration as one function (no requires-grad clone, no host synchronisation, fixed
    shapes, so it compiles into one graph): out - rate x d cycle_loss / d out, [1, K+1, H, W] fp32."""
    grad = torch.func.grad(cycle_loss)(out, model, frame, stem, ref_query, ref_mask, num_objects, out_size)
    return out - rate * grad
