"""Python side of the DALI training loader: every random choice of a clip, drawn as the PIL backend draws it.

A `ClipPlan` holds what DALI needs to build one clip without Python touching a pixel of its frames:
the encoded frame files (or, for data sets that synthesise their frames such as STATIC, the raw
frames), the decoded masks, and one set of augmentation parameters for the whole clip: the window of
the raw frame that is resized (ShrinkToCover + RandomCropKeepSize), one affine matrix (the
transposition of portrait clips, crop back to size, RandomAffine, flip, resize to fit), the padding,
the colour jitter and the object relabelling.
Parameters come from the data set's own per-item generators and from its ClipTransform's steps, each of
which plans itself (`Step.plan` in libs/dataset/transforms.py and geometry.py) with the `draw_params` its
PIL application draws with, in the PIL order, so both backends augment a clip with the same parameters.
"""
import contextlib
from dataclasses import dataclass, field
from typing import List, Tuple

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from .draft import PlanDraft, Size, unsupported
from ..step import has_plan
from ..training import BadSample, MixedDataset, TrainClipDataset, read_sample_file, replace_bad
from ..transforms import ClipTransform, ResizePad, SelectObjects
from ...errors import VOSError
from ...io import read_mask


@dataclass(kw_only=True)
class ClipPlan:
    """One clip for DALI: sources, masks and the per-clip augmentation parameters (see module doc)."""

    name: str
    frames: List[np.ndarray]          # T x encoded file bytes [N] uint8, or raw frames [h, w, 3] uint8
    masks: List[np.ndarray]           # T x [h, w] uint8: kept objects relabelled 1..k, everything else 0
    encoded: bool
    sources: List[str]                # frame files ('' for synthesised frames)
    roi: Tuple[float, float, float, float]   # (y0, x0, y1, x1) raw-frame window resized to work_size
    work_size: Size                   # (h, w) of the working image
    matrix: np.ndarray                # [2, 3] float32: fit-image point -> working-image point (x, y)
    fit: Size                         # (h, w) of the warped image before padding
    pad: Size                         # (top, left) zero padding up to out_size
    out_size: Size                    # (H, W) input size
    fill_zero: bool                   # areas the affine uncovers are black (else edge pixels repeat)
    contrast: float = 1.0             # factor around `centre`, frames in [0, 1]
    shift: float = 0.0                # added brightness, frames in [0, 1]
    centre: float = 0.0               # value the contrast scales around (0: multiplied, 0.5: mid grey)
    clamp: bool = False               # jittered values clamped to [0, 1]
    num_objects: int = 0
    max_objects: int = 1
    bad: List[Tuple[str, str]] = field(default_factory=list)   # (path, reason) of unreadable files replaced

    @property
    def key(self) -> Tuple[bool, bool, bool]:
        """Clips with the same key run through the same DALI graph."""
        return self.encoded, self.fill_zero, self.clamp


def check_transform(transform, name: str) -> None:
    """A VOSError naming data set `name` when its transform has a step the DALI graph cannot apply."""
    steps = getattr(transform, "steps", None)
    if not isinstance(transform, ClipTransform) or steps is None:
        raise VOSError(f"data_backend DALI needs the ClipTransform of libs.dataset.transforms, but training "
                       f"data set {name} uses {type(transform).__name__}; use data_backend PIL")
    for step in steps:
        if not has_plan(step):
            raise unsupported(step, f" (training data set {name})")
    kinds = [type(step) for step in steps]
    if ResizePad not in kinds or SelectObjects not in kinds:
        raise VOSError(f"data_backend DALI needs ResizePad and SelectObjects in the transform of training data "
                       f"set {name}; use data_backend PIL")


def plan_transform(transform: ClipTransform, masks: List[np.ndarray]) -> PlanDraft:
    """Each step of the transform plans itself over a clip with masks T x [h, w] (in the PIL order, drawing
    from torch's generator as the PIL steps do)."""
    draft = PlanDraft(*masks[0].shape[:2])
    for step in transform.steps:
        step.plan(draft, masks)
    return draft


def _frame_size(path: str) -> Size:
    """(h, w) from the image file's header, or a BadSample naming the file."""
    try:
        with Image.open(path) as img:
            return img.height, img.width
    except (OSError, SyntaxError, ValueError) as err:
        raise BadSample(f"cannot read frame {path}: {err} (missing, corrupt or not an image file)", path) from None


def _encoded_sources(dataset: TrainClipDataset, video, rng) -> Tuple[List[np.ndarray], List[np.ndarray], List[str]]:
    """The sampled annotated frames' files (bytes) and masks, chosen as `TrainClipDataset._draw` chooses."""
    chosen = dataset.choose(video, rng)
    frames, masks, paths = [], [], []
    for index in chosen:
        path, mask_path = video.frames[index], video.annotations[index]
        mask, _ = read_sample_file(mask_path, read_mask)
        if _frame_size(path) != mask.shape:
            height, width = _frame_size(path)
            raise BadSample(f"{path} is {width}x{height} but its mask {mask_path} is {mask.shape[1]}x"
                            f"{mask.shape[0]}; frames and masks must have the same size", mask_path)
        frames.append(np.fromfile(path, dtype=np.uint8))
        masks.append(mask)
        paths.append(path)
    return frames, masks, paths


def _draw_sources(dataset, video, rng):
    """(frames, masks, files, encoded): file bytes for video clips, else the data set's own drawn frames."""
    if isinstance(dataset, TrainClipDataset) and type(dataset)._draw is TrainClipDataset._draw:
        return (*_encoded_sources(dataset, video, rng), True)
    frames, masks = dataset._draw(video, rng)
    return [np.ascontiguousarray(f, dtype=np.uint8) for f in frames], list(masks), [""] * len(frames), False


def plan_clip(dataset, idx: int, repeat: int = 0) -> ClipPlan:
    """The plan of item `idx` (of copy `repeat`) of a training clip data set; same clip as its `get_item`."""
    draws = dataset.attempts(idx, repeat)
    with contextlib.closing(draws):
        for video, rng in draws:
            frames, masks, paths, encoded = _draw_sources(dataset, video, rng)
            if len({m.shape for m in masks}) != 1:
                raise VOSError(f"{dataset.name} video {video.name!r}: the frames of one clip differ in size "
                               f"({sorted({m.shape for m in masks})}); every frame of a video must have one size")
            draft = plan_transform(dataset.transform, masks)
            if draft.num_objects > 0:
                relabelled = [draft.lookup[mask] for mask in masks]           # T x [h, w]: SelectObjects' ids
                return ClipPlan(name=video.name, frames=frames, masks=relabelled, encoded=encoded, sources=paths,
                                roi=draft.roi(), work_size=draft.work_size(), matrix=draft.inverse(), fit=draft.fit,
                                pad=draft.pad, out_size=draft.out_size, fill_zero=draft.fill_zero,
                                contrast=draft.contrast, shift=draft.shift, centre=draft.centre, clamp=draft.clamp,
                                num_objects=draft.num_objects, max_objects=dataset.transform.max_objects)
    raise AssertionError("unreachable: attempts() raises when it runs out")


def clip_datasets(dataset) -> List:
    """The clip data sets inside `dataset` (a MixedDataset or one clip data set)."""
    return list(dataset.datasets) if isinstance(dataset, MixedDataset) else [dataset]


class ClipPlanDataset(Dataset):
    """Index -> `ClipPlan` of the same item a MixedDataset (or one clip data set) would return."""

    def __init__(self, dataset) -> None:
        for part in clip_datasets(dataset):
            if not all(hasattr(part, a) for a in ("videos", "seeds", "transform", "_draw")):
                raise VOSError(f"data_backend DALI cannot read training data set "
                               f"{getattr(part, 'name', type(part).__name__)}: it is not a clip data set of "
                               "libs.dataset.training; use data_backend PIL")
            check_transform(part.transform, part.name)
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def plan(self, idx: int) -> ClipPlan:
        """The plan of item `idx` (a BadSample when it holds an unreadable file)."""
        if not isinstance(self.dataset, MixedDataset):
            return plan_clip(self.dataset, idx)
        dataset, repeat, local = self.dataset.locate(idx)
        return plan_clip(dataset, local, repeat)

    def __getitem__(self, idx: int) -> ClipPlan:
        if not isinstance(self.dataset, MixedDataset):
            return self.plan(idx)
        plan, bad = replace_bad(self.plan, idx, len(self), self.dataset.seed, self.dataset.epoch)
        plan.bad = bad      # the same replacement as the PIL backend's MixedDataset
        return plan
