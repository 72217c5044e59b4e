"""STM-Cycle's test-time gradient correction of a prediction through the cycle back to the reference."""
import contextlib
import functools
from typing import Iterator, Tuple

import torch

from libs.engine.losses import correction_loss
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


def correct_prediction(model: STM, frame: torch.Tensor, probs: torch.Tensor, ref_query: QueryFeatures,
                       ref_mask: torch.Tensor, num_objects: int, loop: int, rate: float,
                       out_size: Tuple[int, int], fast: bool = False, amp: bool = False) -> torch.Tensor:
    """Move the prediction `loop` times by -rate x the gradient of the cycle loss with respect to it.

    Each iteration encodes `frame` [1, 3, H, W] with the current prediction `probs` [1, K+1, H, W]
    as the only memory, segments the reference frame (its query features `ref_query`), and compares
    with `ref_mask` [1, K+1, H, W]. Only the prediction receives gradients. Returns [1, K+1, H, W].
    fast: parameters frozen during the correction and the memory read by scaled_dot_product_attention;
    with amp as well, the network runs under bf16 autocast (the loss and the update stay fp32).
    """
    if not fast:
        return _correct(model, frame, probs, ref_query, ref_mask, num_objects, loop, rate, out_size, False,
                        contextlib.nullcontext)
    device = frame.device.type
    autocast = functools.partial(torch.autocast, device, dtype=torch.bfloat16, enabled=amp)
    with frozen_parameters(model):
        return _correct(model, frame, probs, ref_query, ref_mask, num_objects, loop, rate, out_size, True,
                        autocast)


def _correct(model, frame, probs, ref_query, ref_mask, num_objects, loop, rate, out_size, sdpa, autocast):
    """The correction loop; `sdpa` picks the memory read, `autocast` wraps the network passes."""
    out = probs.detach()
    with autocast():
        stem = model.memory_stem(frame)                                   # the same in every iteration
    for _ in range(loop):
        with torch.enable_grad():
            pred = out.clone().requires_grad_(True)
            with autocast():
                key, value = model.encode_memory(frame, pred[:, 1:num_objects + 1], stem)
                logits = model.segment(ref_query, key, value, out_size, sdpa=sdpa)
            back = torch.softmax(logits.float() if sdpa else logits, dim=1)    # [1, K+1, H, W]
            loss = correction_loss(back, ref_mask, num_objects)
            grad, = torch.autograd.grad(loss, pred)
        out = out - rate * grad
    return out
