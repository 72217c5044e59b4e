"""Which later frames' backward-cycle terms count (`cycle_frames`), on hand-made clips whose frame 2 lacks one
object: the loss equals the forward terms plus exactly the cycle terms named here, each computed one frame at
a time in this file."""
import pytest
import torch

from libs.training.cyclic import CyclicConfig, clip_loss, cyclic_loss
from libs.errors import VOSError
from libs.models.stm import STM

T, H, W = 4, 32, 48
BOXES = ((4, 14, 4, 20), (18, 30, 6, 22), (8, 26, 28, 44))   # objects 1, 2, 3: y0, y1, x0, x1


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return STM("resnet18", keydim=8, valdim=16).eval()


def _clips(objects, missing):
    """frames [B, T, 3, H, W] and one-hot masks [B, T, 4, H, W]: clip b has objects 1..objects[b] in every
    frame except object missing[b], absent from frame 2."""
    g = torch.Generator().manual_seed(1)
    frames = torch.randn(len(objects), T, 3, H, W, generator=g)
    masks = torch.zeros(len(objects), T, 4, H, W)
    for b, (count, gone) in enumerate(zip(objects, missing)):
        for k in range(1, count + 1):
            y0, y1, x0, x1 = BOXES[k - 1]
            masks[b, :, k, y0:y1, x0:x1] = 1
        masks[b, 2, gone] = 0
    masks[:, :, 0] = 1 - masks[:, :, 1:].sum(2)
    return frames, masks


def _terms(model, frames, masks, num):
    """Forward loss [B] and each later frame's backward-cycle term {t: [B]}, mode recurrent, frame by frame."""
    K = masks.shape[2] - 1
    present = torch.arange(1, K + 1)[None] <= num[:, None]                              # [B, K]

    def shows(t):
        """The objects in frame t's truth [B, K]."""
        return masks[:, t, 1:].flatten(2).sum(-1) > 0
    memory, memory_mask, preds, forward = [], masks[:, 0], [], torch.zeros(len(num))
    for t in range(1, T):
        memory.append(model.encode_memory(frames[:, t - 1], memory_mask[:, 1:]))
        keys, values = torch.cat([m[0] for m in memory], 2), torch.cat([m[1] for m in memory], 2)
        out = torch.softmax(model.segment(model.encode_query(frames[:, t]), keys, values, (H, W), present=present), 1)
        forward = forward + clip_loss(out, masks[:, t], num, shows(0) & present, "both")
        preds.append(out)
        memory_mask = out
    first, terms = model.encode_query(frames[:, 0]), {}
    for t in range(1, T):
        key, value = model.encode_memory(frames[:, t], preds[t - 1][:, 1:])
        back = torch.softmax(model.segment(first, key, value, (H, W), present=present), 1)
        terms[t] = clip_loss(back, masks[:, 0], num, shows(t) & present, "both")
    return forward, terms


# clip 0: three objects, frame 2 lacks object 1; clip 1: two objects (channel 3 empty), frame 2 lacks object 2,
# its highest id
COUNTED = {"highest_object": ([1, 2, 3], [1, 3]), "all_objects": ([1, 3], [1, 3])}


@pytest.mark.parametrize("rule", ["highest_object", "all_objects"])
def test_the_loss_adds_the_cycle_terms_of_the_frames_the_rule_names(model, one_thread, rule):
    frames, masks = _clips(objects=(3, 2), missing=(1, 2))
    num = torch.tensor([3, 2])
    with torch.no_grad():
        out = cyclic_loss(model, frames, masks, num, CyclicConfig(cycle_frames=rule))
        forward, terms = _terms(model, frames, masks, num)
    assert all(float(term.min()) > 0.05 for term in terms.values())       # each term changes the sum it joins
    cycle = [sum(terms[t][b] for t in COUNTED[rule][b]) for b in range(2)]
    expected = (forward.sum() + sum(cycle)) / (2 * (T - 1))
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert out["cycle"].item() == pytest.approx(float(sum(cycle)) / 2 / (T - 1), rel=1e-5)


@pytest.mark.parametrize("missing, counted", [(1, [1, 2, 3]), (3, [1, 3])])
def test_the_default_is_the_original_rule_the_highest_id_present(model, one_thread, missing, counted):
    """By default frame 2 counts when the clip's highest id (3) is in its truth, not when object 1 leaves."""
    frames, masks = _clips(objects=(3,), missing=(missing,))
    num = torch.tensor([3])
    with torch.no_grad():
        out = cyclic_loss(model, frames, masks, num, CyclicConfig())
        forward, terms = _terms(model, frames, masks, num)
    assert out["loss"].item() == pytest.approx(float(forward + sum(terms[t] for t in counted)) / (T - 1), rel=1e-5)


def test_an_unknown_rule_is_an_error():
    with pytest.raises(VOSError, match="cycle_frames must be one of highest_object, all_objects, got 'some'"):
        CyclicConfig(cycle_frames="some")
