"""Python side of the DALI training loader: every random choice of a clip, drawn as the PIL backend draws it.

A `ClipPlan` holds what DALI needs to build one clip without Python touching a pixel of its frames:
the encoded frame files (or, for data sets that synthesise their frames such as STATIC, the raw
frames), the decoded masks, and one set of augmentation parameters for the whole clip: the window of
the raw frame that is resized (ShrinkToCover + RandomCropKeepSize), one affine matrix (the
transposition of portrait clips, crop back to size, RandomAffine, flip, resize to fit), the padding,
the colour jitter and the object relabelling.
Parameters come from the data set's own per-item generators and from the `draw_params` of its
ClipTransform's steps, called in the PIL order: the functions the PIL steps draw with, so both backends
augment a clip with the same random parameters.
"""
import contextlib
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms import v2

from libs.dataset.training import BadSample, MixedDataset, TrainClipDataset, read_sample_file, replace_bad
from libs.dataset.transforms import (ClipTransform, ColourJitter, Normalize, Paired, RandomCropKeepSize,
                                     ResizePad, SelectObjects, ShrinkToCover, ToClipTensors, ToFloat,
                                     TransposePortrait, VoidToBackground, cover_size, fit_size)
from libs.errors import VOSError
from libs.io import read_mask
from libs.utils.constants import VOID_LABEL

Size = Tuple[int, int]


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


def _scale(sx: float, sy: float) -> np.ndarray:
    return np.array([[sx, 0.0, 0.0], [0.0, sy, 0.0], [0.0, 0.0, 1.0]])


def _shift(tx: float, ty: float) -> np.ndarray:
    return np.array([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]])


def affine_forward(angle: float, translate: Sequence[float], scale: float, shear: Sequence[float],
                   size: Size) -> np.ndarray:
    """[3, 3] source -> output map of torchvision's tensor affine, in pixel coordinates (centres at +0.5).

    torchvision rotates, scales and shears about the image centre (R(a) S(s) SHy SHx, then translates),
    and samples its output through the inverse of that map.
    """
    rot, sx, sy = np.radians(angle), np.radians(shear[0]), np.radians(shear[1])
    a = np.cos(rot - sy) / np.cos(sy)
    b = -np.cos(rot - sy) * np.tan(sx) / np.cos(sy) - np.sin(rot)
    c = np.sin(rot - sy) / np.cos(sy)
    d = -np.sin(rot - sy) * np.tan(sx) / np.cos(sy) + np.cos(rot)
    rss = np.array([[a * scale, b * scale, 0.0], [c * scale, d * scale, 0.0], [0.0, 0.0, 1.0]])
    centre = _shift(size[1] / 2.0, size[0] / 2.0)
    return centre @ _shift(*translate) @ rss @ np.linalg.inv(centre)


class _Draft:
    """The plan of one clip while the transform's steps are walked."""

    def __init__(self, height: int, width: int) -> None:
        self.raw = self.shrunk = self.size = (height, width)   # (h, w) as the steps see them (transposed or not)
        self.transposed = False               # raw frames are portrait and the steps see them transposed
        self.crop = (0, 0, height, width)     # (top, left, h, w) in the shrunk image
        self.forward = np.eye(3)              # working image -> current image
        self.geometry = False                 # a crop / affine / flip happened
        self.fitted = self.void_cleared = self.fill_zero = False
        self.fit = self.pad = self.out_size = (height, width)
        self.contrast, self.shift, self.centre, self.clamp = 1.0, 0.0, 0.0, False
        self.lookup: Optional[np.ndarray] = None
        self.num_objects = 0

    def roi(self) -> Tuple[float, float, float, float]:
        """The raw-frame window (y0, x0, y1, x1) of the crop, in the frame file's orientation: the shrink
        and the crop in one resize."""
        top, left, height, width = self.crop
        fy, fx = self.raw[0] / self.shrunk[0], self.raw[1] / self.shrunk[1]
        y0, x0, y1, x1 = top * fy, left * fx, (top + height) * fy, (left + width) * fx
        return (x0, y0, x1, y1) if self.transposed else (y0, x0, y1, x1)

    def work_size(self) -> Size:
        """(h, w) of the working image (the resized window), in the frame file's orientation."""
        height, width = self.crop[2:]
        return (width, height) if self.transposed else (height, width)

    def inverse(self) -> np.ndarray:
        """[2, 3] float32 output (fit) point -> working-image point (x, y); a transposition swaps x and y."""
        inverse = np.linalg.inv(self.forward)
        return (inverse[[1, 0]] if self.transposed else inverse[:2]).astype(np.float32)


def _unsupported(step, why: str = "") -> VOSError:
    name = type(step).__name__ + (f"({type(step.transform).__name__})" if isinstance(step, Paired) else "")
    return VOSError(f"data_backend DALI cannot apply the training transform step {name}{why}; "
                    "use data_backend PIL for this transform")


def _transpose(draft: _Draft, step: TransposePortrait, masks) -> None:
    if draft.geometry or draft.fitted or draft.shrunk != draft.raw:
        raise _unsupported(step, " after a shrink, crop, affine or resize")
    height, width = draft.size
    if height > width:
        draft.transposed = True
        draft.raw = draft.shrunk = draft.size = draft.fit = draft.pad = draft.out_size = (width, height)
        draft.crop = (0, 0, width, height)


def _shrink(draft: _Draft, step: ShrinkToCover, masks) -> None:
    if draft.geometry or draft.fitted:
        raise _unsupported(step, " after a crop, affine or resize")
    shrunk = cover_size(*draft.size, step.size)
    if shrunk is not None:
        draft.shrunk = draft.size = shrunk
        draft.crop = (0, 0, *draft.size)


def _crop(draft: _Draft, step: RandomCropKeepSize, masks) -> None:
    if draft.geometry or draft.fitted:
        raise _unsupported(step, " after an affine, flip or resize")
    height, width = draft.size
    draft.crop = top, left, cut_h, cut_w = step.draw_params(height, width)
    draft.forward = _scale(width / cut_w, height / cut_h)
    draft.geometry = True


def _paired(draft: _Draft, step: Paired, masks) -> None:
    inner = step.transform
    if draft.fitted:
        raise _unsupported(step, " after ResizePad")
    if type(inner) is v2.RandomAffine and inner.center is None and inner.fill in (0, None):
        params = step.draw_params(draft.size)
        draft.forward = affine_forward(params["angle"], params["translate"], params["scale"], params["shear"],
                                       draft.size) @ draft.forward
        draft.fill_zero = True
    elif type(inner) is v2.RandomHorizontalFlip:
        if step.draw_params(draft.size) is not None:
            draft.forward = np.array([[-1.0, 0.0, draft.size[1]], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) @ draft.forward
    else:
        raise _unsupported(step)
    draft.geometry = True


def _jitter(draft: _Draft, step: ColourJitter, masks) -> None:
    draft.contrast, draft.shift = step.draw_params()
    draft.centre, draft.clamp = step.centre, step.clamp


def _resize_pad(draft: _Draft, step: ResizePad, masks) -> None:
    if draft.fitted:
        raise _unsupported(step, " twice")
    height, width = draft.size
    draft.fit = fit_size(height, width, step.size)
    draft.forward = _scale(draft.fit[1] / width, draft.fit[0] / height) @ draft.forward
    draft.pad = ((step.size[0] - draft.fit[0]) // 2, (step.size[1] - draft.fit[1]) // 2)
    draft.size = draft.out_size = step.size
    draft.fitted = True


def _select(draft: _Draft, step: SelectObjects, masks) -> None:
    if not draft.fitted:
        raise _unsupported(step, " before ResizePad")
    first = warp_mask(masks[0], draft.roi(), draft.work_size(), draft.inverse(), draft.fit, draft.fill_zero)
    if draft.void_cleared:
        first = np.where(first == VOID_LABEL, 0, first)
    present = step.draw_params([int(i) for i in np.unique(first) if i != 0])
    draft.lookup = np.zeros(256, np.uint8)
    for new_id, old_id in enumerate(present, start=1):
        draft.lookup[old_id] = new_id
    draft.num_objects = len(present)


def _void(draft: _Draft, step, masks) -> None:
    draft.void_cleared = True


def _nothing(draft: _Draft, step, masks) -> None:
    return None


_STEPS = {ToClipTensors: _nothing, ToFloat: _nothing, Normalize: _nothing, VoidToBackground: _void,
          TransposePortrait: _transpose,
          ShrinkToCover: _shrink, RandomCropKeepSize: _crop, Paired: _paired, ColourJitter: _jitter,
          ResizePad: _resize_pad, SelectObjects: _select}


def check_transform(transform, name: str) -> None:
    """A VOSError naming data set `name` when its transform has a step the DALI graph cannot apply."""
    steps = getattr(transform, "steps", None)
    if not isinstance(transform, ClipTransform) or steps is None:
        raise VOSError(f"data_backend DALI needs the ClipTransform of libs.dataset.transforms, but training "
                       f"data set {name} uses {type(transform).__name__}; use data_backend PIL")
    for step in steps:
        if type(step) not in _STEPS:
            raise _unsupported(step, f" (training data set {name})")
    kinds = [type(step) for step in steps]
    if ResizePad not in kinds or SelectObjects not in kinds:
        raise VOSError(f"data_backend DALI needs ResizePad and SelectObjects in the transform of training data "
                       f"set {name}; use data_backend PIL")


def plan_transform(transform: ClipTransform, masks: List[np.ndarray]) -> _Draft:
    """Walk the transform's steps over a clip with masks T x [h, w]; draws from torch's generator."""
    draft = _Draft(*masks[0].shape[:2])
    for step in transform.steps:
        handler = _STEPS.get(type(step))
        if handler is None:
            raise _unsupported(step)
        handler(draft, step, masks)
    return draft


def warp_mask(mask: np.ndarray, roi, work: Size, inverse: np.ndarray, fit: Size, fill_zero: bool) -> np.ndarray:
    """What the DALI graph makes of mask [h, w]: nearest resize of the `roi` window, then nearest warp."""
    y0, x0, y1, x1 = roi
    rows = np.clip(np.floor(y0 + (np.arange(work[0]) + 0.5) * (y1 - y0) / work[0]), 0, mask.shape[0] - 1)
    cols = np.clip(np.floor(x0 + (np.arange(work[1]) + 0.5) * (x1 - x0) / work[1]), 0, mask.shape[1] - 1)
    window = np.ascontiguousarray(mask[rows.astype(np.intp)][:, cols.astype(np.intp)])  # [h', w']
    to_index = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
    full = np.vstack([inverse.astype(np.float64), [0.0, 0.0, 1.0]])
    index_map = (np.linalg.inv(to_index) @ full @ to_index)[:2]     # dst index -> src index
    border = cv2.BORDER_CONSTANT if fill_zero else cv2.BORDER_REPLICATE
    return cv2.warpAffine(window, index_map, (fit[1], fit[0]), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                          borderMode=border, borderValue=0)           # [fit_h, fit_w]


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
