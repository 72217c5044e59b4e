"""The PIL and DALI backends draw a clip's random parameters through the same functions, in the same order:
same seed -> identical parameters (the DALI planner is pure Python, so this runs without DALI)."""
import numpy as np
import pytest
import torch

from libs.dataset import transforms
from libs.dataset.dali.draft import warp_mask
from libs.dataset.dali.plan import plan_transform
from libs.dataset.transforms import build_train_transforms

DRAWING = (transforms.RandomCropKeepSize, transforms.Paired, transforms.ColourJitter, transforms.SelectObjects)


def _clip():
    """Three frames [48, 80, 3] and masks with three large objects (more than the two kept) and a void corner."""
    masks = []
    for t in range(3):
        labels = np.zeros((48, 80), np.uint8)
        labels[4:30, 2 + t:30 + t], labels[10:44, 30:52], labels[6:40, 54:78] = 1, 2, 3
        labels[:3, :4] = 255
        masks.append(labels)
    frames = [np.full((48, 80, 3), 60 * (t + 1), np.uint8) for t in range(3)]
    return frames, masks


@pytest.fixture
def recorded(monkeypatch):
    """Every `draw_params` result, as (step class, parameters), in call order."""
    calls = []
    for cls in DRAWING:
        original = cls.draw_params

        def spy(self, *args, _original=original, _name=cls.__name__, **kwargs):
            params = _original(self, *args, **kwargs)
            calls.append((_name, type(getattr(self, "transform", self)).__name__, params))
            return params
        monkeypatch.setattr(cls, "draw_params", spy)
    return calls


@pytest.mark.parametrize("seed, portrait", [(0, False), (1, False), (2, False), (7, False), (0, True), (7, True)])
def test_same_seed_same_parameters_in_both_backends(recorded, seed, portrait):
    """Portrait clips ([80, 48]): both backends draw in the transposed (landscape) clip's coordinates."""
    transform = build_train_transforms((40, 64), max_objects=2)
    frames, masks = _clip()
    if portrait:
        frames, masks = [f.transpose(1, 0, 2).copy() for f in frames], [m.T.copy() for m in masks]
    torch.manual_seed(seed)
    _, _, num_objects = transform(frames, masks)
    pil = list(recorded)
    recorded.clear()
    torch.manual_seed(seed)
    draft = plan_transform(transform, masks)
    dali = list(recorded)
    assert [c[:2] for c in pil] == [("RandomCropKeepSize", "RandomCropKeepSize"), ("Paired", "RandomAffine"),
                                    ("Paired", "RandomHorizontalFlip"), ("ColourJitter", "ColourJitter"),
                                    ("SelectObjects", "SelectObjects")]
    assert repr(pil) == repr(dali)                       # values too (floats, dicts, None for an unapplied flip)
    assert draft.crop == pil[0][2] and (draft.contrast, draft.shift) == pil[3][2]
    assert draft.transposed == portrait and draft.size == (40, 64)
    _, _, height, width = draft.crop                                   # the kept window, landscape
    assert draft.work_size() == ((width, height) if portrait else (height, width))   # DALI's, in the file's orientation
    assert draft.num_objects == num_objects == len(pil[4][2]) == 2
    assert torch.rand(1).item() == pytest.approx(_after(seed, transform, frames, masks))


def _after(seed, transform, frames, masks):
    """The next draw after the PIL pipeline: both backends consumed the generator equally."""
    torch.manual_seed(seed)
    transform(frames, masks)
    return torch.rand(1).item()


def test_different_seeds_draw_different_parameters(recorded):
    transform = build_train_transforms((40, 64), max_objects=2)
    frames, masks = _clip()
    draws = []
    for seed in (0, 1):
        recorded.clear()
        torch.manual_seed(seed)
        plan_transform(transform, masks)
        draws.append(repr(recorded))
    assert draws[0] != draws[1]


@pytest.mark.parametrize("portrait", [False, True])
def test_the_plans_geometry_puts_the_masks_where_pil_does(portrait):
    """The window, size and matrix DALI is given (warp_mask applies them as the DALI graph does) put a
    portrait clip's first mask where PIL's transposed pipeline does, up to nearest-neighbour rounding."""
    transform = build_train_transforms((40, 64), max_objects=3)
    frames, masks = _clip()
    if portrait:
        frames, masks = [f.transpose(1, 0, 2).copy() for f in frames], [m.T.copy() for m in masks]
    for seed in range(4):
        torch.manual_seed(seed)
        _, onehot, _ = transform(frames, masks)
        torch.manual_seed(seed)
        draft = plan_transform(transform, masks)
        warped = warp_mask(masks[0], draft.roi(), draft.work_size(), draft.inverse(), draft.fit, draft.fill_zero)
        labels = np.zeros(draft.out_size, np.uint8)                   # [40, 64]
        (top, left), (height, width) = draft.pad, draft.fit
        labels[top:top + height, left:left + width] = draft.lookup[np.where(warped == 255, 0, warped)]
        assert float((torch.from_numpy(labels).long() == onehot[0].argmax(0)).float().mean()) > 0.97
