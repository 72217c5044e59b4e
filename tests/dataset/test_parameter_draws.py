"""The PIL and DALI backends draw a clip's random parameters through the same functions, in the same order:
same seed -> identical parameters (the DALI planner is pure Python, so this runs without DALI)."""
import numpy as np
import pytest
import torch

from libs.dataset import transforms
from libs.dataset.dali_plan import plan_transform
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


@pytest.mark.parametrize("seed", [0, 1, 2, 7])
def test_same_seed_same_parameters_in_both_backends(recorded, seed):
    transform = build_train_transforms((40, 64), max_objects=2)
    frames, masks = _clip()
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
