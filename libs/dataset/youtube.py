"""YouTube-VOS 2018 / 2019 readers: ROOT/<split>/JPEGImages, Annotations and meta.json."""
import os
from typing import Dict, List

from .base import SCORE_YOUTUBE, Scoring
from .folder import FolderReader
from .registry import register_dataset
from ..errors import VOSError

_SPLIT_NAMES = {"val": "valid"}     # configuration split name -> YouTube-VOS folder name


@register_dataset("VOS")
class VOS(FolderReader):
    """YouTube-VOS 2018; in valid/test every annotation PNG is given (objects may appear late)."""

    subdir = "YouTube-VOS"
    year = "2018"

    def __init__(self, root: str, split: str = "val") -> None:
        self.split_name = _SPLIT_NAMES.get(split, split)
        self.split_dir = os.path.join(os.path.abspath(root), self.split_name)
        meta = os.path.join(self.split_dir, "meta.json")
        self.meta_path = meta if os.path.isfile(meta) else None   # None when the split has no meta.json
        super().__init__(root, split)

    @property
    def results_subdir(self) -> str:
        """'Annotations' when results are packed for the server (its zip layout), else ''."""
        return "Annotations" if self.scoring().scorer == SCORE_YOUTUBE else ""

    def scoring(self) -> Scoring:
        """valid/test with a meta.json: packed for the server; otherwise as a folder set."""
        if self.evaluation_split and self.meta_path:
            return Scoring(SCORE_YOUTUBE, meta_path=self.meta_path,
                           frames_root=os.path.join(self.split_dir, "JPEGImages"))
        return super().scoring()

    @property
    def evaluation_split(self) -> bool:
        """True for valid/test, whose annotations are inputs rather than full ground truth."""
        return self.split_name != "train"

    def check_layout(self) -> None:
        """A layout_error unless ROOT/<split>/JPEGImages exists."""
        if not os.path.isdir(os.path.join(self.split_dir, "JPEGImages")):
            raise self.layout_error(f"{self.root} has no {self.split_name}/JPEGImages folder")

    def video_names(self) -> List[str]:
        """Every sub-folder of ROOT/<split>/JPEGImages."""
        top = os.path.join(self.split_dir, "JPEGImages")
        self.split_source = top
        return [e.name for e in os.scandir(top) if e.is_dir()]

    def frame_dir(self, name: str) -> str:
        """ROOT/<split>/JPEGImages/<name>."""
        return os.path.join(self.split_dir, "JPEGImages", name)

    def mask_dir(self, name: str) -> str:
        """ROOT/<split>/Annotations/<name>."""
        return os.path.join(self.split_dir, "Annotations", name)

    def expected_tree(self) -> List[str]:
        """The YouTube-VOS layout of the requested split."""
        base = self.split_dir
        return [f"{base}/JPEGImages/<video>/00000.jpg",
                f"{base}/Annotations/<video>/00000.png",
                f"{base}/meta.json",
                "(split 'val' reads the folder 'valid')"]

    def given_masks(self, name: str, annotations: Dict[int, str]) -> Dict[int, str]:
        """valid/test: every annotation PNG (each marks where objects start); train: the earliest one."""
        if not annotations:
            raise VOSError(f"{self.label} data set: video {name!r} has no annotation PNG in "
                           f"{self.mask_dir(name)}")
        if self.evaluation_split:
            return dict(annotations)
        return super().given_masks(name, annotations)

    def full_ground_truth(self) -> bool:
        """False for valid/test (their PNGs are inputs); for train, whether every frame is annotated."""
        return not self.evaluation_split and super().full_ground_truth()


@register_dataset("VOS19")
class VOS19(VOS):
    """YouTube-VOS 2019: the same layout under YouTube-VOS-2019/."""

    subdir = "YouTube-VOS-2019"
    year = "2019"
