"""The batched cyclic loss (queries of all frames, all backward cycles in one pass) equals the loss
computed frame by frame, as the original did it."""
import pytest
import torch

from libs.training.cyclic import CyclicConfig, _next_memory_mask, clip_loss, cyclic_loss
from libs.models.stm import STM


def frame_by_frame(model, frames, masks, num_objects, cfg):
    """The cyclic loss one frame and one backward cycle at a time (a plain re-statement): total [scalar]."""
    B, T, _, H, W = frames.shape
    K = masks.shape[2] - 1
    present = torch.arange(1, K + 1)[None] <= num_objects[:, None]
    first_has = masks[:, 0, 1:].flatten(2).sum(-1) > 0
    first_query = model.encode_query(frames[:, 0])
    memory, memory_mask, total, preds = [], masks[:, 0], torch.zeros(B), []
    for t in range(1, T):
        memory.append(model.encode_memory(frames[:, t - 1], memory_mask[:, 1:]))
        keys, values = torch.cat([m[0] for m in memory], 2), torch.cat([m[1] for m in memory], 2)
        out = torch.softmax(model.segment(model.encode_query(frames[:, t]), keys, values, (H, W), present=present),
                            dim=1)
        preds.append(out)
        total = total + clip_loss(out, masks[:, t], num_objects, first_has & present, cfg.loss)
        memory_mask = _next_memory_mask(out, masks[:, t], present, cfg)
    for t in range(T - 1, 0, -1):
        key, value = model.encode_memory(frames[:, t], preds[t - 1][:, 1:])   # frame t from its prediction
        back = torch.softmax(model.segment(first_query, key, value, (H, W), present=present), dim=1)
        has = masks[:, t, 1:].flatten(2).sum(-1) > 0
        counts = (masks[:, t].argmax(1).flatten(1).max(1).values == num_objects).float()   # the original's test
        total = total + counts * clip_loss(back, masks[:, 0], num_objects, has & present, cfg.loss)
    return total.sum() / (B * (T - 1))


def _clips(T=4):
    """frames [2, T, 3, 32, 48], one-hot masks [2, T, 3, 32, 48]; clip 0's second object leaves at frame 2."""
    g = torch.Generator().manual_seed(0)
    frames = torch.randn(2, T, 3, 32, 48, generator=g)
    masks = torch.zeros(2, T, 3, 32, 48)
    masks[:, :, 1, 4:16, 4:20] = 1
    masks[0, :, 2, 18:30, 24:44] = 1
    masks[0, 2, 2] = 0                          # frame 2 of clip 0 lacks its highest object: no cycle from it
    masks[:, :, 0] = 1 - masks[:, :, 1:].sum(2)
    return frames, masks


@pytest.mark.parametrize("learn_bn,mode", [(False, "recurrent"), (True, "recurrent"), (False, "mask"),
                                           (False, "threshold")])
def test_batched_cyclic_loss_equals_frame_by_frame(learn_bn, mode):
    torch.manual_seed(0)
    model = STM("resnet18", keydim=8, valdim=16).train(learn_bn)   # True: queries stay frame by frame
    frames, masks = _clips()
    num = torch.tensor([2, 1])
    cfg = CyclicConfig(mode=mode, iou_threshold=0.3)   # the cycle's memory comes from predictions in every mode
    batched = cyclic_loss(model, frames, masks, num, cfg)["loss"]
    grad = torch.autograd.grad(batched, model.Decoder.pred2.weight)[0]
    reference = frame_by_frame(model, frames, masks, num, cfg)
    expected = torch.autograd.grad(reference, model.Decoder.pred2.weight)[0]
    assert batched.item() == pytest.approx(reference.item(), rel=1e-5)
    assert torch.allclose(grad, expected, rtol=1e-4, atol=1e-6)
