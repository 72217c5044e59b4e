"""Loss functions on hand-made tensors whose values are known."""
import math

import torch

from libs.training.losses import bootstrapped_cross_entropy, correction_loss, iou_loss


def _onehot(labels, channels):
    return torch.nn.functional.one_hot(labels, channels).permute(0, 3, 1, 2).float()


def test_cross_entropy_averages_the_hardest_share():
    target = _onehot(torch.tensor([[[0, 1], [1, 0]]]), 2)          # [1, 2, 2, 2]
    probs = torch.zeros(1, 2, 2, 2)
    right = torch.tensor([0.9, 0.8, 0.6, 0.5])                      # prob of the true class per pixel
    probs[0, 0, 0, 0], probs[0, 1, 0, 1], probs[0, 1, 1, 0], probs[0, 0, 1, 1] = right
    probs = probs + (1 - probs.sum(1, keepdim=True)) * (1 - target)   # rest to the other class
    loss = bootstrapped_cross_entropy(probs, target, 1, bootstrap=0.5)  # the 2 hardest of 4 pixels
    assert math.isclose(loss.item(), (-math.log(0.6) - math.log(0.5)) / 2, rel_tol=1e-6)


def test_cross_entropy_ignores_objects_beyond_count_and_unlabelled_pixels():
    target = torch.zeros(1, 3, 1, 2)
    target[0, 2, 0, 0] = 1                  # object 2, beyond num_objects=1: ignored
    probs = torch.full((1, 3, 1, 2), 1 / 3)
    assert bootstrapped_cross_entropy(probs, target, 1, bootstrap=1.0).item() == 0.0


def test_iou_loss_of_shifted_square():
    t = torch.zeros(1, 2, 10, 10)
    t[0, 1, 2:6, 2:6] = 1                   # 16 pixels
    p = torch.zeros(1, 2, 10, 10)
    p[0, 1, 2:6, 4:8] = 1                   # shifted by 2: overlap 8, union 24
    t[0, 0], p[0, 0] = 1 - t[0, 1], 1 - p[0, 1]
    assert math.isclose(iou_loss(p, t, 1).item(), 1 - 8 / 24, rel_tol=1e-6)
    assert iou_loss(t, t, 1).item() == 0.0


def test_iou_loss_respects_valid_objects_and_batches():
    t = torch.zeros(2, 3, 4, 4)
    t[:, 1, :2] = 1
    p = t.clone()
    p[0, 2, 2:] = 1                         # object 2 wrong in clip 0 (target empty -> iou 0)
    valid = torch.tensor([[True, False], [True, True]])
    assert iou_loss(p, t, 2, valid=valid).item() == 0.0
    # clip 0: object 1 exact (0), object 2 predicted on an empty target (1) -> 0.5;
    # clip 1: both objects exact (object 2 empty in both counts as 0) -> 0
    assert math.isclose(iou_loss(p, t, 2).item(), 0.25, rel_tol=1e-6)
    assert math.isclose(iou_loss(p[:1], t[:1], 2).item(), 0.5, rel_tol=1e-6)


def test_correction_loss_is_sum():
    target = _onehot(torch.tensor([[[0, 1], [1, 1]]]), 2)
    probs = torch.softmax(torch.randn(1, 2, 2, 2), dim=1)
    total = bootstrapped_cross_entropy(probs, target, 1) + iou_loss(probs, target, 1)
    assert torch.allclose(correction_loss(probs, target, 1), total)


def test_iou_loss_over_no_valid_object_is_zero_not_nan():
    """The original averaged over an empty set of objects (NaN, which poisons the step); here such a
    clip adds 0, with a finite (zero) gradient, and the other clips keep their value."""
    t = torch.zeros(2, 3, 4, 4)
    t[:, 1, :2] = 1
    t[:, 0] = 1 - t[:, 1]
    p = torch.full((2, 3, 4, 4), 1 / 3, requires_grad=True)
    valid = torch.tensor([[False, False], [True, False]])        # clip 0: no valid object
    per_clip = iou_loss(p, t, 2, valid=valid, per_clip=True)
    assert per_clip[0].item() == 0.0
    assert math.isclose(per_clip[1].item(), 1 - (8 / 3) / (8 + 8 / 3), rel_tol=1e-6)   # sums of min and max
    assert iou_loss(p, t, 2, valid=torch.zeros(2, 2, dtype=torch.bool)).item() == 0.0
    per_clip.sum().backward()
    assert torch.isfinite(p.grad).all() and p.grad[0].abs().sum() == 0
