"""Training clips: sample frames, read only those, augment, and mix several data sets by frequency.

Every item's randomness (frame sampling and augmentation) comes from a generator seeded with
(seed, data set name, epoch, repeat, index), so a clip depends only on those and never on the
DataLoader's worker count or on earlier items: a resumed run at the same epoch sees the same clips.
Call `set_epoch` before each epoch's DataLoader iteration (and do not use persistent_workers,
whose worker copies would keep the old epoch).

A clip holding an unreadable frame or mask (missing, truncated, not an image, of another size than its
mask) raises `BadSample`; a `MixedDataset` then returns another item instead, drawn from a generator
seeded by (seed, epoch, index, attempt), so the replacement is the same in every run and after a resume,
and lists the files it met in the item's 'bad' entry, which `collate_clips` gathers for the trainer.
"""
import bisect
import contextlib
import zlib
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, TypeVar

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from .base import Video
from .sampler import ClipSampler
from .static import StaticClipSynth, mask_to_labels
from .geometry import cover_size
from ..errors import VOSError
from ..io import read_frame, read_mask

MAX_TRIES = 20   # clips drawn per item before a video whose first frames show no object is an error
MAX_REPLACEMENTS = 10   # other items tried, one after another, for an item holding an unreadable file
Item = TypeVar("Item")


class BadSample(VOSError):
    """A training frame or mask that cannot be used; `path` names it (the message says why)."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.path = path


def read_sample_file(path: str, reader: Callable[[str], Item]) -> Item:
    """`reader(path)`; its VOSError (missing, corrupt, unsupported file) becomes a BadSample naming `path`."""
    try:
        return reader(path)
    except BadSample:
        raise
    except VOSError as err:
        raise BadSample(str(err), path) from None


def replace_bad(get: Callable[[int], Item], idx: int, size: int, seed: int, epoch: int
                ) -> Tuple[Item, List[Tuple[str, str]]]:
    """`get(idx)`, or while an item raises BadSample, `get` of an index in [0, size) drawn from a generator
    seeded by (seed, epoch, idx, attempt); returns the item and (path, reason) of every bad file met."""
    bad, current = [], idx
    for attempt in range(MAX_REPLACEMENTS + 1):
        try:
            return get(current), bad
        except BadSample as err:
            bad.append((err.path, str(err)))
        current = int(np.random.default_rng([seed, epoch, idx, attempt, 0xBAD]).integers(size))
    raise VOSError(f"{len(bad)} training clips in a row hold unreadable files (the last: {bad[-1][1]}); "
                   "check the training data set (see DATASET.md)")


class _ClipDataset(Dataset):
    """Shared machinery: per-item seeding, resampling of empty clips, the output dict."""

    def __init__(self, videos: List[Video], transform, samples_per_video: int, max_objects: int,
                 seed: int, name: str) -> None:
        if not videos:
            raise VOSError(f"training data set {name} has no videos; check its folder (see DATASET.md)")
        if samples_per_video < 1:
            raise VOSError(f"samples_per_video must be at least 1, got {samples_per_video}")
        if getattr(transform, "max_objects", max_objects) != max_objects:
            raise VOSError(f"{name}: the transform keeps {transform.max_objects} objects but max_objects "
                           f"is {max_objects}; build both from max_training_obj")
        self.videos, self.transform = list(videos), transform
        self.samples_per_video, self.max_objects = samples_per_video, max_objects
        self.seed, self.name, self.epoch = int(seed), name, 0

    def __len__(self) -> int:
        return len(self.videos) * self.samples_per_video

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose clips `__getitem__` returns (the max_skip curriculum moves separately:
        libs.training.curriculum)."""
        self.epoch = int(epoch)

    def _draw(self, video: Video, rng: np.random.Generator) -> Tuple[List[np.ndarray], List[np.ndarray]]:
        """Frames [H, W, 3] uint8 and masks [H, W] ids of one raw clip of `video`."""
        raise NotImplementedError

    def seeds(self, idx: int, repeat: int = 0) -> Tuple[np.random.Generator, int]:
        """The numpy generator and torch seed of item `idx` (of copy `repeat` in a mixed data set)."""
        key = [self.seed, zlib.crc32(self.name.encode()), self.epoch, repeat, idx]
        sequence = np.random.SeedSequence(key)
        return np.random.default_rng(sequence), int(sequence.generate_state(1, np.uint64)[0] >> np.uint64(1))

    def __getitem__(self, idx: int) -> Dict[str, Any]:
        return self.get_item(idx)

    def attempts(self, idx: int, repeat: int = 0) -> Iterator[Tuple[Video, np.random.Generator]]:
        """(video, generator) for each of at most MAX_TRIES draws of item `idx`, inside the item's seeded
        torch RNG; the caller stops at the first clip that shows an object. Running out is a VOSError."""
        if not 0 <= idx < len(self):
            raise IndexError(f"index {idx} out of range for {self.name} of length {len(self)}")
        video = self.videos[idx % len(self.videos)]
        rng, torch_seed = self.seeds(idx, repeat)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(torch_seed)
            for _ in range(MAX_TRIES):
                yield video, rng
        raise VOSError(f"{self.name} video {video.name!r}: none of {MAX_TRIES} sampled clips shows an object "
                       "in its first frame; check its annotations (masks must label objects with ids 1..255)")

    def get_item(self, idx: int, repeat: int = 0) -> Dict[str, Any]:
        """Clip `idx` as {'frames' [T,3,H,W], 'masks' [T,K+1,H,W] one-hot, 'num_objects', 'name'}."""
        draws = self.attempts(idx, repeat)
        with contextlib.closing(draws):
            for video, rng in draws:
                frames, masks, num_objects = self.transform(*self._draw(video, rng))
                if num_objects > 0:
                    return {"frames": frames, "masks": masks, "num_objects": num_objects, "name": video.name}
        raise AssertionError("unreachable: attempts() raises when it runs out")


def _check_sizes(frame: np.ndarray, mask: np.ndarray, frame_path: str, mask_path: str) -> None:
    """A BadSample naming both files when a frame and its mask differ in size."""
    if frame.shape[:2] != mask.shape[:2]:
        raise BadSample(f"{frame_path} is {frame.shape[1]}x{frame.shape[0]} but its mask {mask_path} is "
                        f"{mask.shape[1]}x{mask.shape[0]}; frames and masks must have the same size", mask_path)


def read_pair(frame_path: str, mask_path: str) -> Tuple[np.ndarray, Tuple[np.ndarray, Optional[List[int]]]]:
    """A training frame [H, W, 3] and its mask ([H, W] ids, palette); a BadSample when either is unusable."""
    frame, mask = read_sample_file(frame_path, read_frame), read_sample_file(mask_path, read_mask)
    _check_sizes(frame, mask[0], frame_path, mask_path)
    return frame, mask


class TrainClipDataset(_ClipDataset):
    """Clips of `sampler.sampled_frames` annotated frames of videos, augmented by `transform`."""

    def __init__(self, videos: List[Video], sampler: ClipSampler, transform, samples_per_video: int,
                 max_objects: int, seed: int, name: str) -> None:
        super().__init__(videos, transform, samples_per_video, max_objects, seed, name)
        self.sampler = sampler
        for video in self.videos:
            if len(video.annotations) < sampler.sampled_frames:
                raise VOSError(f"{name} video {video.name!r} has {len(video.annotations)} annotated frames, fewer "
                               f"than sampled_frames={sampler.sampled_frames}; lower sampled_frames or remove it")

    def choose(self, video: Video, rng: np.random.Generator) -> List[int]:
        """Frame indices of one clip: `sampled_frames` annotated frames chosen by the sampler."""
        annotated = sorted(video.annotations)
        return [annotated[i] for i in self.sampler.sample(len(annotated), rng, video.name)]

    def _draw(self, video: Video, rng: np.random.Generator) -> Tuple[List[np.ndarray], List[np.ndarray]]:
        """Read only the sampled annotated frames and their masks."""
        frames, masks = [], []
        for index in self.choose(video, rng):
            frame, (mask, _) = read_pair(video.frames[index], video.annotations[index])
            frames.append(frame)
            masks.append(mask)
        return frames, masks


def _cover(image: np.ndarray, labels: np.ndarray, size: Sequence[int]) -> Tuple[np.ndarray, np.ndarray]:
    """Shrink image [H, W, 3] and labels [H, W] to the smallest size still covering `size` (never enlarge),
    the size ShrinkToCover gives (with OpenCV's area filter: these are single images, before the clip)."""
    shrunk = cover_size(*labels.shape, size)
    if shrunk is None:
        return image, labels
    new_h, new_w = shrunk
    return (cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA),
            cv2.resize(labels, (new_w, new_h), interpolation=cv2.INTER_NEAREST_EXACT))


class StaticClipDataset(_ClipDataset):
    """Clips synthesised from single images (STATIC data): same output as `TrainClipDataset`.

    With `work_size` (H, W), usually the input size, large images are first shrunk to just cover it,
    which makes the per-frame warps several times cheaper without changing the final resolution.
    """

    def __init__(self, images: List[Video], synth: StaticClipSynth, transform, samples_per_video: int,
                 max_objects: int, seed: int, name: str, work_size: Optional[Sequence[int]] = None) -> None:
        super().__init__(images, transform, samples_per_video, max_objects, seed, name)
        self.synth, self.work_size = synth, work_size

    def _draw(self, video: Video, rng: np.random.Generator) -> Tuple[List[np.ndarray], List[np.ndarray]]:
        """Read the image and its mask, then synthesise a clip from them."""
        index = min(video.annotations)
        image, (mask, palette) = read_pair(video.frames[index], video.annotations[index])
        labels = mask_to_labels(mask, palette)
        if self.work_size is not None:
            image, labels = _cover(image, labels, self.work_size)
        return self.synth(image, labels)


class MixedDataset(Dataset):
    """Data sets concatenated, each repeated by its frequency; repeats draw different clips; an item with an
    unreadable file is replaced by another (see the module doc)."""

    def __init__(self, datasets: List[Dataset], datafreq: List[int]) -> None:
        self.datasets = list(datasets)
        self.seed, self.epoch = int(getattr(self.datasets[0], "seed", 0)) if self.datasets else 0, 0
        self.parts = [(d, r) for d, freq in zip(self.datasets, datafreq) for r in range(freq)]
        self.starts = np.cumsum([0] + [len(d) for d, _ in self.parts]).tolist()

    def __len__(self) -> int:
        return self.starts[-1]

    def locate(self, idx: int) -> Tuple[Dataset, int, int]:
        """(data set, repeat, index within it) of mixed index `idx`."""
        if not 0 <= idx < len(self):
            raise IndexError(f"index {idx} out of range for a mixed data set of length {len(self)}")
        part = bisect.bisect_right(self.starts, idx) - 1
        dataset, repeat = self.parts[part]
        return dataset, repeat, idx - self.starts[part]

    def item(self, idx: int) -> Dict[str, Any]:
        """Item `idx` as its data set returns it (a BadSample when it holds an unreadable file)."""
        dataset, repeat, local = self.locate(idx)
        return dataset.get_item(local, repeat) if hasattr(dataset, "get_item") else dataset[local]

    def __getitem__(self, idx: int) -> Dict[str, Any]:
        item, bad = replace_bad(self.item, idx, len(self), self.seed, self.epoch)
        return {**item, "bad": bad}

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch of every part's clips (and of the replacements of unreadable ones)."""
        self.epoch = int(epoch)
        for dataset in self.datasets:
            dataset.set_epoch(epoch)

    def clip_samplers(self) -> Dict[str, ClipSampler]:
        """The frame sampler of each video training set by name (their max_skip is the curriculum)."""
        return {d.name: d.sampler for d in self.datasets if isinstance(d, TrainClipDataset)}


def build_mixed_dataset(datasets: List[Dataset], datafreq: List[int]) -> MixedDataset:
    """Mix data sets by ratio: data set i appears datafreq[i] times per epoch (the original's ConcatDataset)."""
    names = [getattr(d, "name", type(d).__name__) for d in datasets]
    if len(datafreq) != len(datasets):
        raise VOSError(f"datafreq has {len(datafreq)} entries ({list(datafreq)}) but there are {len(datasets)} "
                       f"training data sets ({', '.join(names)}); give one repeat count per data set")
    for name, freq in zip(names, datafreq):
        if isinstance(freq, bool) or not isinstance(freq, (int, np.integer)) or freq < 0:
            raise VOSError(f"datafreq for {name} must be an integer >= 0, got {freq!r}")
    if not any(freq > 0 and len(d) > 0 for d, freq in zip(datasets, datafreq)):
        raise VOSError(f"datafreq {list(datafreq)} leaves no training clips from {', '.join(names)}; "
                       "give at least one non-empty data set a count above 0")
    return MixedDataset(datasets, [int(f) for f in datafreq])


def collate_clips(batch: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Stack items: frames [B,T,3,H,W], masks [B,T,K+1,H,W], num_objects LongTensor [B], names list, and
    'bad': the (path, reason) of every unreadable file the items replaced."""
    shapes = {(tuple(b["frames"].shape), tuple(b["masks"].shape)) for b in batch}
    if len(shapes) != 1:
        raise VOSError(f"clips of one batch differ in shape {sorted(shapes)}; every training data set must use "
                       "the same input_size, sampled_frames and max_training_obj")
    return {"frames": torch.stack([b["frames"] for b in batch]),
            "masks": torch.stack([b["masks"] for b in batch]),
            "num_objects": torch.tensor([b["num_objects"] for b in batch], dtype=torch.long),
            "names": [b["name"] for b in batch], "bad": [record for b in batch for record in b.get("bad", ())]}
