"""DAVIS 2016 / 2017 readers (official zip layout or the original code's data/db_info.yaml) and SYNTHETIC."""
import os
from typing import Dict, List, Optional

import yaml

from .folder import FolderReader
from .registry import register_dataset
from ..errors import VOSError

_SET_ALIASES = {"train": ("train", "training"), "val": ("val", "validation")}


@register_dataset("DAVIS17")
class DAVIS17(FolderReader):
    """DAVIS 2017: ROOT/JPEGImages/480p/<seq>, ROOT/Annotations/480p/<seq>, a split list; mask 0 given."""

    subdir = "DAVIS17"
    year = "2017"
    resolution = "480p"
    max_year: Optional[int] = None      # db_info.yaml entries of later years are skipped when set

    def score_names(self) -> Dict[str, str]:
        """The DAVIS toolkit's names: global_results-<split>.csv, 'DAVIS 2017' (2016 for merged objects)."""
        return {}

    def check_layout(self) -> None:
        """A layout_error unless JPEGImages/480p exists."""
        if not os.path.isdir(os.path.join(self.root, "JPEGImages", self.resolution)):
            raise self.layout_error(f"{self.root} has no JPEGImages/{self.resolution} folder")

    def frame_dir(self, name: str) -> str:
        """ROOT/JPEGImages/480p/<name>."""
        return os.path.join(self.root, "JPEGImages", self.resolution, name)

    def mask_dir(self, name: str) -> str:
        """ROOT/Annotations/480p/<name>."""
        return os.path.join(self.root, "Annotations", self.resolution, name)

    def split_files(self) -> List[str]:
        """Candidate split lists, in the order they are tried."""
        return [os.path.join(self.root, "ImageSets", self.year, f"{self.split}.txt"),
                os.path.join(self.root, "data", "db_info.yaml"),
                os.path.join(self.root, "ImageSets", self.resolution, f"{self.split}.txt")]

    def expected_tree(self) -> List[str]:
        """The official layout, with the alternative split lists."""
        image_sets, db_info, package = self.split_files()
        return [f"{self.root}/JPEGImages/{self.resolution}/<video>/00000.jpg",
                f"{self.root}/Annotations/{self.resolution}/<video>/00000.png",
                f"{image_sets}   (one video name a line)",
                f"or {db_info}   (sequences: [{{name: ..., set: {self.split}}}])",
                f"or {package}   (DAVIS 2016 package)"]

    def video_names(self) -> List[str]:
        """Names of the split's videos from the first split list that exists."""
        image_sets, db_info, package = self.split_files()
        if os.path.isfile(image_sets):
            self.split_source = image_sets
            return _read_lines(image_sets)
        if os.path.isfile(db_info):
            self.split_source = db_info
            return _db_info_names(db_info, self.split, self.max_year)
        if os.path.isfile(package):
            self.split_source = package
            return _package_names(package)
        folder = os.path.dirname(image_sets)
        present = sorted(f[:-4] for f in os.listdir(folder) if f.endswith(".txt")) if os.path.isdir(folder) else []
        found = f" (split lists found: {', '.join(present)})" if present else ""
        raise self.layout_error(f"no list of the videos of split {self.split!r}{found}")

    def given_masks(self, name: str, annotations: Dict[int, str]) -> Dict[int, str]:
        """The annotation of frame 0, which DAVIS gives as input."""
        if 0 not in annotations:
            raise VOSError(f"{self.label} data set: video {name!r} has no annotation of its first frame "
                           f"in {self.mask_dir(name)}")
        return {0: annotations[0]}


@register_dataset("DAVIS16")
class DAVIS16(DAVIS17):
    """DAVIS 2016: the DAVIS 2017 layout with 2016 split lists; objects are merged into one foreground."""

    subdir = "DAVIS16"
    year = "2016"
    max_year = 2016
    merge_objects = True


@register_dataset("SYNTHETIC")
class SyntheticDataset(DAVIS17):
    """Videos written by `python3 -m libs.dataset.synthetic` (DAVIS 2017 layout)."""

    subdir = "SYNTHETIC"


def _read_lines(path: str) -> List[str]:
    """Non-empty, stripped lines of a text file."""
    with open(path, "r", encoding="utf-8") as handle:
        return [line.strip() for line in handle if line.strip()]


def _db_info_names(path: str, split: str, max_year: Optional[int]) -> List[str]:
    """Sequence names of `split` listed in the original code's data/db_info.yaml."""
    try:
        with open(path, "r", encoding="utf-8") as handle:
            info = yaml.safe_load(handle)
    except yaml.YAMLError as err:
        raise VOSError(f"cannot parse {path}: {err}") from err
    sequences = info.get("sequences") if isinstance(info, dict) else None
    if not isinstance(sequences, list) or not all(isinstance(s, dict) and "name" in s for s in sequences):
        raise VOSError(f"{path} must hold 'sequences:', a list of entries with 'name' and 'set' keys")
    wanted = _SET_ALIASES.get(split, (split,))
    names = [str(s["name"]) for s in sequences if str(s.get("set")) in wanted
             and (max_year is None or not str(s.get("year", "")).isdigit() or int(s["year"]) <= max_year)]
    if not names:
        sets = sorted({str(s.get("set")) for s in sequences})
        raise VOSError(f"{path} lists no sequence with set {split!r} (sets present: {', '.join(sets)})")
    return names


def _package_names(path: str) -> List[str]:
    """Sequence names from a DAVIS 2016 package list ('/JPEGImages/480p/<seq>/00000.jpg /Annotations/...')."""
    names = []
    for line in _read_lines(path):
        parts = line.split()[0].strip("/").split("/")
        if len(parts) < 3 or parts[0] != "JPEGImages":
            raise VOSError(f"{path}: line {line!r} is not '/JPEGImages/480p/<seq>/<frame>.jpg "
                           "/Annotations/480p/<seq>/<frame>.png'")
        if parts[-2] not in names:
            names.append(parts[-2])
    return names
