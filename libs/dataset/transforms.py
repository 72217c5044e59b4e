"""Paired training augmentation of a clip: one set of random parameters for all frames and masks.

Every step is one class, described once for both data backends: `__call__(frames, masks)` applies it to
the clip's tensors (data_backend PIL) and returns `(frames, masks)`; `plan(draft, masks)` adds it to the
plan of the clip that the DALI graph applies (data_backend DALI, libs/dataset/dali/draft.py); a random
step draws its parameters in one method (`draw_params`) that both call, in the same order, so both
backends augment a clip with the same parameters. A step without a `plan` runs only with PIL. Between steps
a clip is a `tv_tensors.Image` [T, 3, H, W] and a `tv_tensors.Mask` [T, H, W] of label ids, so one
torchvision.transforms.v2 call draws one set of parameters and applies it to every frame and mask
(masks are always resampled with nearest neighbour). Randomness comes from torch's global generator,
which the data sets seed per clip. The geometric steps are in libs/dataset/geometry.py, the `Step` base
in libs/dataset/step.py; this module composes them (`build_train_transforms`).
"""
from typing import List, Sequence, Tuple

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from .dali.draft import PlanDraft, unsupported
from .geometry import (Paired, RandomCropKeepSize, RandomCropVisible, ResizePad, ShrinkToCover,
                                   TransposePortrait)
from .step import ArrayClip, Clip, Step, uniform
from ..errors import VOSError
from ..utils.constants import IMAGENET_MEAN, IMAGENET_STD, VOID_LABEL

__all__ = ["ClipTransform", "ColourJitter", "Normalize", "Paired", "RandomCropKeepSize", "RandomCropVisible",
           "ResizePad", "SelectObjects", "ShrinkToCover", "ToClipTensors", "ToFloat", "TransposePortrait",
           "VoidToBackground", "build_train_transforms", "choose_objects", "geometric_steps", "one_hot"]


class ToClipTensors(Step):
    """Stack frames ([H, W, 3] uint8 each) and masks ([H, W] label ids each) into one clip."""

    def plan(self, draft: PlanDraft, masks: Sequence[np.ndarray]) -> None:
        """DALI decodes the frames itself."""

    def __call__(self, frames: ArrayClip, masks: ArrayClip) -> Clip:
        images = [np.asarray(frame) for frame in frames]
        labels = [np.asarray(mask) for mask in masks]
        if len(images) != len(labels) or not images:
            raise VOSError(f"a clip needs one mask per frame, got {len(images)} frames and {len(labels)} masks")
        for i, (image, label) in enumerate(zip(images, labels)):
            if image.ndim != 3 or image.shape[2] != 3 or label.shape != image.shape[:2]:
                raise VOSError(f"frame {i} of the clip is {image.shape} but its mask is {label.shape}; "
                               "frames must be [H, W, 3] and masks [H, W] of the same size")
        stacked = torch.from_numpy(np.stack(images).astype(np.uint8)).permute(0, 3, 1, 2)  # [T, 3, H, W]
        stacked_masks = torch.from_numpy(np.stack(labels).astype(np.uint8))               # [T, H, W]
        return tv_tensors.Image(stacked.contiguous()), tv_tensors.Mask(stacked_masks)


class VoidToBackground(Step):
    """Pixels labelled void (255) become background (0), as in the original training code."""

    def plan(self, draft: PlanDraft, masks: Sequence[np.ndarray]) -> None:
        """Void leaves the plan's masks (SelectObjects never keeps it)."""
        draft.void_cleared = True

    def __call__(self, frames: tv_tensors.Image, masks: tv_tensors.Mask) -> Clip:
        return frames, tv_tensors.Mask(torch.where(masks == VOID_LABEL, 0, masks).to(torch.uint8))


class ToFloat(Step):
    """uint8 frames in 0..255 become float32 in [0, 1]."""

    def plan(self, draft: PlanDraft, masks: Sequence[np.ndarray]) -> None:
        """The DALI graph works in floats."""

    def __call__(self, frames: tv_tensors.Image, masks: tv_tensors.Mask) -> Clip:
        return tv_tensors.Image(frames.to(torch.float32) / 255.0), masks


JITTERS = ("original", "mid_grey")


class ColourJitter(Step):
    """Same contrast factor and additive brightness for every frame of the clip.

    `centre` is the value the contrast factor scales around (0: the pixel values are multiplied, as the
    original did; 0.5: mid grey); `clamp` keeps the result in [0, 1] (the original did not clamp).
    """

    def __init__(self, contrast: Tuple[float, float] = (0.97, 1.03), brightness: float = 5.0,
                 centre: float = 0.0, clamp: bool = False) -> None:
        self.contrast = contrast
        self.brightness = brightness / 255.0   # given on the 0..255 scale, frames are in [0, 1]
        self.centre, self.clamp = float(centre), bool(clamp)

    @classmethod
    def named(cls, style: str) -> "ColourJitter":
        """The jitter of config key `colour_jitter`: 'original' (around 0, unclamped) or 'mid_grey' (clamped)."""
        if style not in JITTERS:
            raise VOSError(f"colour_jitter must be one of {', '.join(JITTERS)}, got {style!r}")
        return cls(centre=0.5, clamp=True) if style == "mid_grey" else cls()

    def draw_params(self) -> Tuple[float, float]:
        """(contrast factor, brightness shift) of one clip."""
        return uniform(*self.contrast), uniform(-self.brightness, self.brightness)

    def __call__(self, frames: tv_tensors.Image, masks: tv_tensors.Mask) -> Clip:
        factor, shift = self.draw_params()
        jittered = (frames - self.centre) * factor + self.centre + shift   # [T, 3, H, W]
        return tv_tensors.Image(jittered.clamp(0.0, 1.0) if self.clamp else jittered), masks

    def plan(self, draft: PlanDraft, masks: Sequence[np.ndarray]) -> None:
        """The plan's contrast, brightness, centre and clamp."""
        draft.contrast, draft.shift = self.draw_params()
        draft.centre, draft.clamp = self.centre, self.clamp


def choose_objects(present: List[int], max_objects: int, random: bool = True) -> List[int]:
    """The object ids kept from `present` (sorted): all, or `max_objects` of them drawn with torch's RNG."""
    if len(present) <= max_objects:
        return present
    if not random:
        return present[:max_objects]
    picked = torch.randperm(len(present))[:max_objects]
    return sorted(present[int(i)] for i in picked)


class SelectObjects(Step):
    """Keep at most `max_objects` of the objects visible in the first frame, relabelled 1..k.

    Objects absent from the first frame are cleared from every frame. With `random` a random subset
    is kept when there are more than `max_objects`, else the lowest ids; kept ids stay in sorted order.
    """

    def __init__(self, max_objects: int, random: bool = True) -> None:
        if max_objects < 1:
            raise VOSError(f"max_training_obj must be at least 1, got {max_objects}")
        self.max_objects = max_objects
        self.random = random

    def draw_params(self, first_ids: Sequence[int]) -> List[int]:
        """The kept object ids (sorted) of a clip whose first frame holds the object ids `first_ids` (not 0)."""
        return choose_objects(sorted(int(i) for i in first_ids), self.max_objects, self.random)

    def __call__(self, frames: tv_tensors.Image, masks: tv_tensors.Mask) -> Clip:
        present = self.draw_params([int(i) for i in torch.unique(masks[0]) if int(i) != 0])
        lookup = torch.zeros(256, dtype=torch.uint8)          # old id -> new id, everything else -> 0
        for new_id, old_id in enumerate(present, start=1):
            lookup[old_id] = new_id
        return frames, tv_tensors.Mask(lookup[masks.long()])  # [T, H, W]

    def plan(self, draft: PlanDraft, masks: Sequence[np.ndarray]) -> None:
        """The plan's relabelling, drawn from the objects of the first mask as the plan's geometry leaves it."""
        if not draft.fitted:
            raise unsupported(self, " before ResizePad")
        present = self.draw_params([int(i) for i in np.unique(draft.first_mask(masks)) if i != 0])
        draft.lookup = np.zeros(256, np.uint8)
        for new_id, old_id in enumerate(present, start=1):
            draft.lookup[old_id] = new_id
        draft.num_objects = len(present)


class Normalize(Step):
    """Frames in [0, 1] normalised with the ImageNet mean and standard deviation."""

    def plan(self, draft: PlanDraft, masks: Sequence[np.ndarray]) -> None:
        """The DALI graph normalises every clip."""

    def __call__(self, frames: tv_tensors.Image, masks: tv_tensors.Mask) -> Clip:
        return tv_tensors.Image(F.normalize(frames, list(IMAGENET_MEAN), list(IMAGENET_STD))), masks


def one_hot(labels: torch.Tensor, max_objects: int) -> torch.Tensor:
    """Label ids [T, H, W] (0..max_objects) -> float32 one-hot [T, max_objects + 1, H, W]."""
    return torch.nn.functional.one_hot(labels.long(), max_objects + 1).permute(0, 3, 1, 2).float()


class ClipTransform:
    """The composed pipeline: raw clip in; normalised frames, one-hot masks and object count out."""

    def __init__(self, steps: List, max_objects: int) -> None:
        self.steps = steps
        self.max_objects = max_objects

    def __call__(self, frames: ArrayClip, masks: ArrayClip) -> Tuple[torch.Tensor, torch.Tensor, int]:
        """frames T x [H, W, 3] uint8, masks T x [H, W] ids -> ([T, 3, h, w], [T, K + 1, h, w], objects)."""
        for step in self.steps:
            frames, masks = step(frames, masks)
        labels = masks.as_subclass(torch.Tensor)                 # [T, h, w], ids 0..k
        num_objects = int(labels.max()) if labels.numel() else 0
        return frames.as_subclass(torch.Tensor).float(), one_hot(labels, self.max_objects), num_objects


def geometric_steps() -> List:
    """Per-clip crop, affine (scale, shear, rotation) and horizontal flip of the original training code."""
    affine = v2.RandomAffine(degrees=15, scale=(0.95, 1.05), shear=10, interpolation=v2.InterpolationMode.BILINEAR)
    return [RandomCropKeepSize(0.1), Paired(affine), Paired(v2.RandomHorizontalFlip(0.5))]


def build_train_transforms(input_size: Sequence[int], max_objects: int, augment: bool = True,
                           fit: str = "pad", transpose_portrait: bool = True,
                           colour_jitter: str = "original") -> ClipTransform:
    """Training pipeline to `input_size` (H, W); `augment=False` only resizes, pads and normalises
    (after turning portrait clips to landscape when `transpose_portrait`, as the original).

    `fit` is 'pad' (resize to fit and pad evenly, as at test time) or 'crop' (random window of
    `input_size` in which an object of the first frame is visible). `colour_jitter`: see `ColourJitter.named`.
    """
    if fit not in ("pad", "crop"):
        raise VOSError(f"fit must be 'pad' or 'crop', got {fit!r}")
    if len(input_size) != 2 or min(int(s) for s in input_size) < 1:
        raise VOSError(f"input_size must be (H, W) with positive entries, got {tuple(input_size)}")
    jitter = ColourJitter.named(colour_jitter)
    steps: List = [ToClipTensors()] + ([TransposePortrait()] if transpose_portrait else []) + [VoidToBackground()]
    if augment:
        steps += ([ShrinkToCover(input_size)] if fit == "pad" else []) + geometric_steps()
    steps.append(ToFloat())
    if augment:
        steps.append(jitter)
    steps.append(RandomCropVisible(input_size) if fit == "crop" and augment else ResizePad(input_size))
    steps += [SelectObjects(max_objects, random=augment), Normalize()]
    return ClipTransform(steps, max_objects)
