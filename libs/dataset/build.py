"""Thin builders that read the config and construct data set readers and training data."""
import os
from typing import List

from yacs.config import CfgNode

from .base import EvaluationSet, Video
from .registry import get_dataset_class
from .sampler import ClipSampler
from .static import StaticClipSynth, StaticImages
from .training import StaticClipDataset, TrainClipDataset, build_mixed_dataset
from .transforms import build_train_transforms
from ..errors import VOSError


def build_eval_dataset(cfg: CfgNode) -> EvaluationSet:
    """The reader of `valset` / `valsplit` under `data_root`; it must implement the evaluation-set contract."""
    cls = get_dataset_class(cfg.valset, "valset")
    dataset = cls(os.path.join(check_data_root(cfg.data_root), cls.subdir), cfg.valsplit)
    if not isinstance(dataset, EvaluationSet):
        missing = [m for m in ("root", "split", "videos", "merge_objects", "results_subdir", "scoring")
                   if not hasattr(dataset, m)]
        raise VOSError(f"data set {cfg.valset!r} ({cls.__name__}) cannot be evaluated: it lacks "
                       f"{', '.join(missing)} (see EvaluationSet in libs/dataset/base.py, or subclass "
                       "FolderReader)")
    return dataset


def check_data_root(data_root: str) -> str:
    """`data_root`, or a VOSError when it is a file (the data set folders go inside a folder)."""
    if os.path.isfile(data_root):
        raise VOSError(f"data_root {data_root} is a file, not a folder; set data_root to the folder that "
                       "holds the data set folders (DAVIS17/, FOLDER/, SYNTHETIC/, ...; see DATASET.md)")
    return data_root


def trainable_videos(videos: List[Video]) -> List[Video]:
    """`videos`, or a VOSError naming the first that cannot be read (training needs every video)."""
    broken = [v for v in videos if v.problem]
    if broken:
        raise VOSError(broken[0].problem)
    return videos


def check_dataset_names(cfg: CfgNode) -> None:
    """A VOSError listing the registered data sets when `valset` or a `trainset` entry is unknown (train.py
    calls it before any work: validation runs only after the first epoch)."""
    get_dataset_class(cfg.valset, "valset")
    for name in cfg.trainset:
        get_dataset_class(name, "trainset")


def build_train_dataset(cfg: CfgNode):
    """The training clips of every `trainset` entry, mixed by `datafreq` (split 'train')."""
    parts = []
    for name, skip in zip(cfg.trainset, cfg.max_skip):
        cls = get_dataset_class(name, "trainset")
        reader = cls(os.path.join(check_data_root(cfg.data_root), cls.subdir), "train")
        videos = trainable_videos(reader.videos)
        transform = build_train_transforms(cfg.input_size, cfg.max_training_obj,
                                           transpose_portrait=cfg.transpose_portrait, colour_jitter=cfg.colour_jitter)
        common = dict(transform=transform, samples_per_video=cfg.samples_per_video,
                      max_objects=cfg.max_training_obj, seed=cfg.seed, name=name)
        if issubclass(cls, StaticImages):
            parts.append(StaticClipDataset(videos, StaticClipSynth(cfg.sampled_frames),
                                           work_size=cfg.input_size, **common))
        else:
            sampler = ClipSampler(cfg.sampled_frames, skip, cfg.max_skip_increment, cfg.max_skip_cap, name)
            parts.append(TrainClipDataset(videos, sampler, **common))
    return build_mixed_dataset(parts, list(cfg.datafreq))
