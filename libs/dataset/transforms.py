"""Paired training augmentation of a clip: one set of random parameters for all frames and masks.

Every step is a small class whose `__call__(frames, masks)` returns `(frames, masks)`. A random step
draws its parameters in one method (`draw_params`), which the DALI backend's planner
(libs.dataset.dali_plan) calls too: both backends augment a clip with the same parameters. Between steps
a clip is a `tv_tensors.Image` [T, 3, H, W] and a `tv_tensors.Mask` [T, H, W] of label ids, so one
torchvision.transforms.v2 call draws one set of parameters and applies it to every frame and mask
(masks are always resampled with nearest neighbour). Randomness comes from torch's global generator,
which the data sets seed per clip.
"""
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from libs.errors import VOSError
from libs.utils.constants import IMAGENET_MEAN, IMAGENET_STD, VOID_LABEL

Clip = Tuple[tv_tensors.Image, tv_tensors.Mask]
ArrayClip = Union[np.ndarray, Sequence[np.ndarray]]


def _uniform(low: float, high: float) -> float:
    """A uniform float in [low, high) from torch's global generator."""
    return float(torch.empty(()).uniform_(low, high))


def _resize(frames: torch.Tensor, masks: torch.Tensor, size: Sequence[int]) -> Clip:
    """Frames resized bilinearly (no antialiasing, like cv2 at test time), masks nearest, to `size` (H, W).

    Masks use NEAREST_EXACT, which samples at pixel centres as bilinear does; plain NEAREST would
    shift them by up to a pixel against the frames.
    """
    out_frames = F.resize(tv_tensors.Image(frames), list(size), antialias=False)
    out_masks = F.resize(tv_tensors.Mask(masks), list(size), interpolation=v2.InterpolationMode.NEAREST_EXACT)
    return tv_tensors.Image(out_frames), tv_tensors.Mask(out_masks)


class ToClipTensors:
    """Stack frames ([H, W, 3] uint8 each) and masks ([H, W] label ids each) into one clip."""

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


class TransposePortrait:
    """Clips taller than wide are transposed (rows become columns) to landscape, as the original's training
    transform did before any other step; landscape and square clips pass unchanged."""

    def __call__(self, frames: tv_tensors.Image, masks: tv_tensors.Mask) -> Clip:
        if frames.shape[-2] <= frames.shape[-1]:
            return frames, masks
        return (tv_tensors.Image(frames.transpose(-1, -2).contiguous()),   # [T, 3, W, H]
                tv_tensors.Mask(masks.transpose(-1, -2).contiguous()))     # [T, W, H]


class VoidToBackground:
    """Pixels labelled void (255) become background (0), as in the original training code."""

    def __call__(self, frames: tv_tensors.Image, masks: tv_tensors.Mask) -> Clip:
        return frames, tv_tensors.Mask(torch.where(masks == VOID_LABEL, 0, masks).to(torch.uint8))


# torchvision transforms whose draw Paired makes itself (the same draws as their own forward), so that
# the DALI planner can take the parameters from `Paired.draw_params`
_DRAWN = (v2.RandomAffine, v2.RandomHorizontalFlip)


class Paired:
    """Run one torchvision v2 transform on the whole clip: one parameter draw for all frames and masks."""

    def __init__(self, transform: v2.Transform) -> None:
        self.transform = transform

    def draw_params(self, size: Sequence[int]) -> Optional[Dict[str, Any]]:
        """The transform's parameters for a clip of `size` (H, W), drawn from torch's global generator as
        its own forward draws them; None when a random flip is not applied. Only for the `_DRAWN` types."""
        if isinstance(self.transform, v2.RandomHorizontalFlip) and bool(torch.rand(1) >= self.transform.p):
            return None
        return self.transform.make_params([tv_tensors.Image(torch.empty((0, *size), dtype=torch.uint8))])

    def __call__(self, frames: tv_tensors.Image, masks: tv_tensors.Mask) -> Clip:
        if type(self.transform) not in _DRAWN:
            return self.transform(frames, masks)
        params = self.draw_params(tuple(frames.shape[-2:]))
        if params is None:
            return frames, masks
        return self.transform.transform(frames, params), self.transform.transform(masks, params)


class RandomCropKeepSize:
    """Cut 0..max_fraction of the size from each border, then resize back to the original size."""

    def __init__(self, max_fraction: float = 0.1) -> None:
        self.max_fraction = max_fraction

    def draw_params(self, height: int, width: int) -> Tuple[int, int, int, int]:
        """(top, left, height, width) of the kept window of a (height, width) clip."""
        top, bottom = (int(_uniform(0, self.max_fraction) * height) for _ in range(2))
        left, right = (int(_uniform(0, self.max_fraction) * width) for _ in range(2))
        return top, left, max(height - top - bottom, 1), max(width - left - right, 1)

    def __call__(self, frames: tv_tensors.Image, masks: tv_tensors.Mask) -> Clip:
        height, width = frames.shape[-2:]
        top, left, cut_h, cut_w = self.draw_params(height, width)
        frames = F.crop(frames, top, left, cut_h, cut_w)   # [T, 3, h, w]
        masks = F.crop(masks, top, left, cut_h, cut_w)     # [T, h, w]
        return _resize(frames, masks, (height, width))


class ShrinkToCover:
    """Shrink (never enlarge) to the smallest size that still covers `size` (H, W), keeping the aspect.

    Run before the geometric augmentation when the clip is later resized to fit `size`: the output
    keeps its resolution while every later step touches far fewer pixels.
    """

    def __init__(self, size: Sequence[int]) -> None:
        self.size = (int(size[0]), int(size[1]))

    def __call__(self, frames: tv_tensors.Image, masks: tv_tensors.Mask) -> Clip:
        new_size = cover_size(frames.shape[-2], frames.shape[-1], self.size)
        if new_size is None:
            return frames, masks
        shrunk = F.resize(frames, list(new_size), antialias=True)   # [T, 3, h, w]
        labels = F.resize(masks, list(new_size), interpolation=v2.InterpolationMode.NEAREST_EXACT)
        return tv_tensors.Image(shrunk), tv_tensors.Mask(labels)


def cover_size(height: int, width: int, size: Sequence[int]) -> Optional[Tuple[int, int]]:
    """The smallest (h, w) with the aspect of (height, width) that still covers `size` (H, W); None when
    (height, width) must not shrink (it already is that small)."""
    scale = max(size[0] / height, size[1] / width)
    if scale >= 1.0:
        return None
    return max(round(height * scale), int(size[0])), max(round(width * scale), int(size[1]))


class ToFloat:
    """uint8 frames in 0..255 become float32 in [0, 1]."""

    def __call__(self, frames: tv_tensors.Image, masks: tv_tensors.Mask) -> Clip:
        return tv_tensors.Image(frames.to(torch.float32) / 255.0), masks


JITTERS = ("original", "mid_grey")


class ColourJitter:
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
        return _uniform(*self.contrast), _uniform(-self.brightness, self.brightness)

    def __call__(self, frames: tv_tensors.Image, masks: tv_tensors.Mask) -> Clip:
        factor, shift = self.draw_params()
        jittered = (frames - self.centre) * factor + self.centre + shift   # [T, 3, H, W]
        return tv_tensors.Image(jittered.clamp(0.0, 1.0) if self.clamp else jittered), masks


def fit_size(height: int, width: int, size: Sequence[int]) -> Tuple[int, int]:
    """The (h, w) with the aspect of (height, width) that fits `size` (H, W), truncated as at test time."""
    scale = min(size[0] / height, size[1] / width)
    return min(max(int(height * scale), 1), size[0]), min(max(int(width * scale), 1), size[1])


class ResizePad:
    """Resize to fit `size` (H, W) keeping the aspect ratio, then pad evenly with zeros to exactly `size`."""

    def __init__(self, size: Sequence[int]) -> None:
        self.size = (int(size[0]), int(size[1]))

    def __call__(self, frames: tv_tensors.Image, masks: tv_tensors.Mask) -> Clip:
        new_h, new_w = fit_size(frames.shape[-2], frames.shape[-1], self.size)
        frames, masks = _resize(frames, masks, (new_h, new_w))
        top, left = (self.size[0] - new_h) // 2, (self.size[1] - new_w) // 2
        padding = [left, top, self.size[1] - new_w - left, self.size[0] - new_h - top]
        return F.pad(frames, padding, fill=0), F.pad(masks, padding, fill=0)


class RandomCropVisible:
    """Random `size` (H, W) window (upscaling first if needed) in which the first frame shows an object."""

    def __init__(self, size: Sequence[int], tries: int = 20) -> None:
        self.size = (int(size[0]), int(size[1]))
        self.tries = tries

    def _window(self, first_mask: torch.Tensor) -> Tuple[int, int]:
        """Top-left corner of a window that contains an object pixel of `first_mask` [H, W] when possible."""
        height, width = first_mask.shape
        top = left = 0
        for _ in range(self.tries):
            top = int(torch.randint(0, height - self.size[0] + 1, ()))
            left = int(torch.randint(0, width - self.size[1] + 1, ()))
            if bool((first_mask[top:top + self.size[0], left:left + self.size[1]] > 0).any()):
                return top, left
        points = torch.nonzero(first_mask > 0)   # [N, 2]: fall back to centring on a random object pixel
        if len(points) == 0:
            return top, left
        y, x = (int(v) for v in points[int(torch.randint(0, len(points), ()))])
        top = min(max(y - self.size[0] // 2, 0), height - self.size[0])
        left = min(max(x - self.size[1] // 2, 0), width - self.size[1])
        return top, left

    def __call__(self, frames: tv_tensors.Image, masks: tv_tensors.Mask) -> Clip:
        height, width = frames.shape[-2:]
        scale = max(self.size[0] / height, self.size[1] / width, 1.0)
        if scale > 1.0:
            new_size = (max(round(height * scale), self.size[0]), max(round(width * scale), self.size[1]))
            frames, masks = _resize(frames, masks, new_size)
        top, left = self._window(masks[0])
        return (F.crop(frames, top, left, *self.size), F.crop(masks, top, left, *self.size))


def choose_objects(present: List[int], max_objects: int, random: bool = True) -> List[int]:
    """The object ids kept from `present` (sorted): all, or `max_objects` of them drawn with torch's RNG."""
    if len(present) <= max_objects:
        return present
    if not random:
        return present[:max_objects]
    picked = torch.randperm(len(present))[:max_objects]
    return sorted(present[int(i)] for i in picked)


class SelectObjects:
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


class Normalize:
    """Frames in [0, 1] normalised with the ImageNet mean and standard deviation."""

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
