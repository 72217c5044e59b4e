"""STATIC pretraining data: folders of images with masks, each image turned into a short synthetic clip.

Layout: ROOT/JPEGImages/<stem>.jpg|.jpeg|.png and ROOT/Annotations/<stem>.png (indexed masks with
object ids, or binary 0/255 masks). Each image becomes a one-frame `Video`; `StaticClipSynth` makes
a clip from it by an independent random affine and smooth warp per frame (STM's static-image stage).
"""
import os
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from .base import Video
from .registry import register_dataset
from ..errors import VOSError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
LAYOUT = ("ROOT/JPEGImages/<name>.jpg (or .jpeg/.png) and ROOT/Annotations/<name>.png "
          "(indexed object ids, or binary 0/255)")


def _stems(folder: str, extensions: Sequence[str]) -> dict:
    """{file stem: path} of the files in `folder` whose extension (any case) is in `extensions`."""
    found = {}
    for entry in sorted(os.listdir(folder)):
        stem, ext = os.path.splitext(entry)
        if ext.lower() in extensions and os.path.isfile(os.path.join(folder, entry)):
            if stem in found:
                raise VOSError(f"{folder} holds two images named {stem!r} ({os.path.basename(found[stem])} and "
                               f"{entry}); keep one file per name")
            found[stem] = os.path.join(folder, entry)
    return found


@register_dataset("STATIC")
class StaticImages:
    """Reader of a STATIC folder: one single-frame `Video` (frame 0 annotated) per image."""

    subdir = "STATIC"

    def __init__(self, root: str, split: str = "train") -> None:
        self.root = os.path.abspath(root)
        self.split = split   # STATIC has no splits: every image is training data
        self.videos = self._scan()

    def _scan(self) -> List[Video]:
        """Pair images with masks by file stem; anything unpaired or missing is a VOSError."""
        image_dir, mask_dir = os.path.join(self.root, "JPEGImages"), os.path.join(self.root, "Annotations")
        for folder in (image_dir, mask_dir):
            if not os.path.isdir(folder):
                raise VOSError(f"STATIC data set: folder {folder} is missing; expected {LAYOUT} "
                               "(see DATASET.md)")
        images, masks = _stems(image_dir, IMAGE_EXTENSIONS), _stems(mask_dir, (".png",))
        if not images:
            raise VOSError(f"STATIC data set: no .jpg/.jpeg/.png images in {image_dir}; expected {LAYOUT} "
                           "(see DATASET.md)")
        for missing, have, where in ((sorted(set(images) - set(masks)), "image", mask_dir),
                                     (sorted(set(masks) - set(images)), "mask", image_dir)):
            if missing:
                raise VOSError(f"STATIC data set: {len(missing)} {have}(s) without a partner in {where}, "
                               f"e.g. {missing[0]!r}; expected {LAYOUT} (see DATASET.md)")
        return [Video(name=stem, frames=[images[stem]], frame_names=[stem], given={0: masks[stem]},
                      annotations={0: masks[stem]}) for stem in sorted(images)]


def mask_to_labels(mask: np.ndarray, palette: Optional[Sequence[int]]) -> np.ndarray:
    """Object ids [H, W] uint8 from a read mask: binary 0/255 masks without a palette become 0/1."""
    if palette is None and mask.size and int(mask.max()) == 255 and len(np.unique(mask)) == 2:
        return (mask == 255).astype(np.uint8)
    return mask.astype(np.uint8)


class StaticClipSynth:
    """Turns one image and its masks into a clip: an independent random affine and warp per frame."""

    def __init__(self, sampled_frames: int, degrees: float = 20.0, translate: float = 0.1,
                 scale: Tuple[float, float] = (0.9, 1.1), shear: float = 10.0,
                 warp: float = 0.03, warp_grid: int = 4) -> None:
        if sampled_frames < 1:
            raise VOSError(f"sampled_frames must be at least 1, got {sampled_frames}")
        self.sampled_frames = sampled_frames
        self.affine = v2.RandomAffine(degrees=degrees, translate=(translate, translate), scale=scale,
                                      shear=shear, interpolation=v2.InterpolationMode.BILINEAR)
        self.warp = warp            # largest control-point displacement, as a fraction of the half size
        self.warp_grid = warp_grid  # control points per side of the smooth (thin-plate-like) warp

    def _displacement(self, height: int, width: int) -> torch.Tensor:
        """A smooth random field [1, H, W, 2] in normalised coordinates: coarse noise upsampled bicubically."""
        coarse = (torch.rand(1, 2, self.warp_grid, self.warp_grid) * 2 - 1) * self.warp  # [1, 2, g, g]
        field = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=True)
        return field.permute(0, 2, 3, 1).contiguous()                                       # [1, H, W, 2]

    def frame(self, image: tv_tensors.Image, mask: tv_tensors.Mask) -> Tuple[np.ndarray, np.ndarray]:
        """One synthetic frame: image [3, H, W] uint8 and mask [H, W] ids warped together."""
        image, mask = self.affine(image, mask)
        field = self._displacement(*image.shape[-2:])
        image = F.elastic(image, field, interpolation=v2.InterpolationMode.BILINEAR)   # [3, H, W]
        mask = F.elastic(mask, field)                                                  # [H, W], nearest
        return image.permute(1, 2, 0).numpy().copy(), mask.numpy().copy()

    def __call__(self, image: np.ndarray, labels: np.ndarray) -> Tuple[List[np.ndarray], List[np.ndarray]]:
        """image [H, W, 3] uint8, labels [H, W] ids -> `sampled_frames` frames [H, W, 3] and masks [H, W]."""
        if image.shape[:2] != labels.shape:
            raise VOSError(f"static image is {image.shape[:2]} but its mask is {labels.shape}; they must match")
        image_t = tv_tensors.Image(torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1))
        mask_t = tv_tensors.Mask(torch.from_numpy(np.array(labels, dtype=np.uint8)))
        pairs = [self.frame(image_t, mask_t) for _ in range(self.sampled_frames)]
        return [p[0] for p in pairs], [p[1] for p in pairs]
