"""STM-Cycle's test-time gradient correction of a prediction through the cycle back to the reference."""
from typing import Tuple

import torch

from libs.engine.losses import correction_loss
from libs.models.stm import STM, QueryFeatures


def correct_prediction(model: STM, frame: torch.Tensor, probs: torch.Tensor, ref_query: QueryFeatures,
                       ref_mask: torch.Tensor, num_objects: int, loop: int, rate: float,
                       out_size: Tuple[int, int]) -> torch.Tensor:
    """Move the prediction `loop` times by -rate x the gradient of the cycle loss with respect to it.

    Each iteration encodes `frame` [1, 3, H, W] with the current prediction `probs` [1, K+1, H, W]
    as the only memory, segments the reference frame (its query features `ref_query`), and compares
    with `ref_mask` [1, K+1, H, W]. Only the prediction receives gradients. Returns [1, K+1, H, W].
    """
    out = probs.detach()
    for _ in range(loop):
        with torch.enable_grad():
            pred = out.clone().requires_grad_(True)
            key, value = model.encode_memory(frame, pred[:, 1:num_objects + 1])
            back = torch.softmax(model.segment(ref_query, key, value, out_size), dim=1)  # [1, K+1, H, W]
            loss = correction_loss(back, ref_mask, num_objects)
            grad, = torch.autograd.grad(loss, pred)
        out = out - rate * grad
    return out
