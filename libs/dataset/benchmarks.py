"""MOSE (v1, v2), LVOS (v1, v2) and SA-V (val, test) readers, in the layouts their archives unpack to.

Objects that first appear after frame 0 (LVOS, SA-V) are given at their first frame through
`Video.given`: the mask given there holds only the objects that start there (other objects are being
tracked and must not be handed their ground truth). Those label maps are derived once per run into a
cache folder (`given_cache`); SA-V's per-object PNG folders become label maps the same way.
"""
import hashlib
import os
import tempfile
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .base import SCORE_DAVIS, SCORE_LVOS, SCORE_MOSE2, SCORE_SAV, SCORE_SERVER, Scoring
from .folder import FolderReader
from .registry import register_dataset
from ..errors import VOSError
from ..evaluation.png import read_label_png
from ..io import davis_palette, write_indexed_png
from ..utils.constants import VOID_LABEL

_VAL_FOLDERS = ("valid", "val")


def split_folder(root: str, split: str, names: Sequence[str] = ()) -> str:
    """ROOT/<folder of split>: 'val' reads 'valid' or 'val' (the first that exists), `names` first."""
    candidates = tuple(names) + (_VAL_FOLDERS if split in _VAL_FOLDERS else (split,))
    for name in candidates:
        if os.path.isdir(os.path.join(root, name)):
            return os.path.join(root, name)
    return os.path.join(root, candidates[0])


def given_cache(root: str, split: str, label: str) -> str:
    """Folder of the derived given masks of a set: under the temporary folder, one per set and split."""
    key = hashlib.sha1(f"{os.path.abspath(root)}\0{split}".encode("utf-8")).hexdigest()[:12]
    return os.path.join(tempfile.gettempdir(), f"stm-cycle-given-{label}-{key}")


def paint(masks: Sequence[Tuple[int, np.ndarray]]) -> np.ndarray:
    """Label map [H, W] of (label, bool mask [H, W]) pairs: larger objects first, so that a small object
    lying on a larger one (a hand on a person) stays visible where they overlap."""
    labels = np.zeros(masks[0][1].shape, dtype=np.uint8)
    for label, mask in sorted(masks, key=lambda m: (-int(np.count_nonzero(m[1])), m[0])):
        labels[mask] = label
    return labels


class SplitReader(FolderReader):
    """Base of the readers whose split is a folder ROOT/<split>/ with JPEGImages/ and Annotations/."""

    frames_folder = "JPEGImages"
    masks_folder = "Annotations"
    split_names: Tuple[str, ...] = ()

    def __init__(self, root: str, split: str = "val") -> None:
        self.split_dir = split_folder(os.path.abspath(root), split, self.split_names)
        super().__init__(root, split)

    def check_layout(self) -> None:
        """A layout_error unless ROOT/<split>/<frames folder> exists."""
        if not os.path.isdir(os.path.join(self.split_dir, self.frames_folder)):
            folder = os.path.join(os.path.basename(self.split_dir), self.frames_folder)
            raise self.layout_error(f"{self.root} has no {folder} folder")

    def video_names(self) -> List[str]:
        """Every sub-folder of ROOT/<split>/<frames folder>."""
        top = os.path.join(self.split_dir, self.frames_folder)
        self.split_source = top
        return [e.name for e in os.scandir(top) if e.is_dir()]

    def frame_dir(self, name: str) -> str:
        """ROOT/<split>/<frames folder>/<name>."""
        return os.path.join(self.split_dir, self.frames_folder, name)

    def mask_dir(self, name: str) -> str:
        """ROOT/<split>/<masks folder>/<name>."""
        return os.path.join(self.split_dir, self.masks_folder, name)

    def names(self) -> Dict[str, str]:
        """How score files are named: <set>-<split>."""
        return {"results_name": f"{self.label}-{self.split}"}


@register_dataset("MOSE")
class MOSE(SplitReader):
    """MOSEv1: ROOT/{train,valid}/JPEGImages|Annotations/<video>/; valid gives frame 0 only (server zip),
    a split with every frame annotated is scored locally with the DAVIS toolkit's J&F."""

    subdir = "MOSE"
    version = 1

    def expected_tree(self) -> List[str]:
        """The MOSE layout."""
        base = self.split_dir
        return [f"{base}/JPEGImages/<video>/00000.jpg", f"{base}/Annotations/<video>/00000.png",
                "(split 'val' reads the folder 'valid')"]

    def scoring(self) -> Scoring:
        """Full ground truth: J&F (v1) or J&F_new (v2) locally; otherwise a zip for the server."""
        if not self.has_full_gt:
            return Scoring(SCORE_SERVER, **self.names())
        truth = {v.name: self.mask_dir(v.name) for v in self.videos}
        if self.version == 1:
            return Scoring(SCORE_DAVIS, truth, benchmark="MOSE J&F (DAVIS toolkit)", **self.names())
        return Scoring(SCORE_MOSE2, truth, **self.names())


@register_dataset("MOSEv2")
class MOSEv2(MOSE):
    """MOSEv2: the MOSE layout under MOSEv2/; scored with J&F_new (the adaptive boundary measure)."""

    subdir = "MOSEv2"
    version = 2


@register_dataset("LVOS")
class LVOS(SplitReader):
    """LVOS v1: ROOT/{train,val,test}/JPEGImages|Annotations/<video>/<8 digits>.jpg|png and the split's
    meta JSON; each object is given at its first annotated frame; val is scored every 5th frame."""

    subdir = "LVOS"

    def __init__(self, root: str, split: str = "val") -> None:
        self.meta_path: Optional[str] = None
        self.meta: Dict[str, dict] = {}
        super().__init__(root, split)

    def check_layout(self) -> None:
        """JPEGImages as in every split layout, and read the split's meta JSON if there is one."""
        super().check_layout()
        folder = os.path.basename(self.split_dir)
        for name in (f"{folder}_meta.json", f"{self.split}_meta.json", "valid_meta.json", "meta.json"):
            if os.path.isfile(os.path.join(self.split_dir, name)):
                from ..evaluation.lvos import load_lvos_meta
                self.meta_path = os.path.join(self.split_dir, name)
                self.meta = load_lvos_meta(self.meta_path)
                return

    def expected_tree(self) -> List[str]:
        """The LVOS layout."""
        base = self.split_dir
        return [f"{base}/JPEGImages/<video>/00000001.jpg", f"{base}/Annotations/<video>/00000001.png",
                f"{base}/{os.path.basename(base)}_meta.json   (or meta.json)", "(split 'val' reads 'valid' or 'val')"]

    def given_masks(self, name: str, annotations: Dict[int, str]) -> Dict[int, str]:
        """Per frame where objects start, a label map of just those objects (derived into the cache)."""
        if not annotations:
            raise VOSError(f"{self.label} data set: video {name!r} has no annotation PNG in {self.mask_dir(name)}")
        starts = self._object_starts(name, annotations)
        folder = os.path.join(given_cache(self.root, self.split, self.label), name)
        given = {}
        for t in sorted(starts):
            labels = read_label_png(annotations[t])
            path = os.path.join(folder, os.path.basename(annotations[t]))
            write_indexed_png(path, np.where(np.isin(labels, starts[t]), labels, 0).astype(np.uint8), davis_palette())
            given[t] = path
        return given

    def _object_starts(self, name: str, annotations: Dict[int, str]) -> Dict[int, List[int]]:
        """Frame index -> ids of the objects first annotated there (from the meta JSON when it has the
        video, else by reading the annotations in order)."""
        by_stem = {os.path.splitext(os.path.basename(p))[0]: t for t, p in annotations.items()}
        if name in self.meta:
            from ..evaluation.lvos import object_ranges
            starts: Dict[int, List[int]] = {}
            for obj, start, _, _ in object_ranges(self.meta, name):
                if f"{start:08d}" not in by_stem:
                    raise VOSError(f"{self.label}: object {obj} of video {name!r} starts at frame {start:08d} "
                                   f"(meta JSON) but {self.mask_dir(name)} has no {start:08d}.png")
                starts.setdefault(by_stem[f"{start:08d}"], []).append(obj)
            return starts
        seen: set = set()
        starts = {}
        for t in sorted(annotations):
            ids = {int(i) for i in np.unique(read_label_png(annotations[t])) if 0 < i < VOID_LABEL} - seen
            if ids:
                starts[t] = sorted(ids)
                seen |= ids
        return starts

    def full_ground_truth(self) -> bool:
        """LVOS ground truth is sparse: scored through the meta JSON, never frame by frame."""
        return False

    def scoring(self) -> Scoring:
        """With a meta JSON and ground truth beyond the given masks: LVOS J&F locally; else a server zip."""
        scored = self.meta_path and any(len(v.annotations) > len(v.given) for v in self.videos)
        if not scored:
            return Scoring(SCORE_SERVER, **self.names())
        return Scoring(SCORE_LVOS, {v.name: self.mask_dir(v.name) for v in self.videos}, meta_path=self.meta_path,
                       **self.names())


@register_dataset("LVOSv2")
class LVOSv2(LVOS):
    """LVOS v2: the LVOS layout under LVOSv2/."""

    subdir = "LVOSv2"


@register_dataset("SAV")
class SAV(SplitReader):
    """SA-V val/test: ROOT/sav_<split>/JPEGImages_24fps/<video>/, Annotations_6fps/<video>/<object>/<frame>.png
    (one folder per object); every 24 fps frame is segmented, the 6 fps annotated frames are scored."""

    subdir = "SA-V"
    frames_folder = "JPEGImages_24fps"
    masks_folder = "Annotations_6fps"
    results_subdir = "label_maps"       # label maps of every frame; the scorer exports per-object PNGs

    def __init__(self, root: str, split: str = "val") -> None:
        self.split_names = (f"sav_{split}",)
        super().__init__(root, split)

    def expected_tree(self) -> List[str]:
        """The SA-V val/test layout."""
        base = self.split_dir
        return [f"{base}/JPEGImages_24fps/<video>/00000.jpg",
                f"{base}/Annotations_6fps/<video>/<object 000>/00000.png   (one binary mask per object and frame)",
                f"{base}/sav_{self.split}.txt   (optional: the videos of the split)"]

    def video_names(self) -> List[str]:
        """The videos listed in sav_<split>.txt, else every folder of JPEGImages_24fps."""
        listing = os.path.join(self.split_dir, f"sav_{self.split}.txt")
        if not os.path.isfile(listing):
            return super().video_names()
        self.split_source = listing
        with open(listing, "r", encoding="utf-8") as handle:
            return [line.strip() for line in handle if line.strip()]

    def scan_annotations(self, name: str, stems: List[str]) -> Dict[int, str]:
        """Frame index -> derived label map of the objects that first appear there (object i of the sorted
        object folders is label i + 1; overlaps are painted larger object first, see `paint`)."""
        from ..evaluation.sav import binary, object_folders, object_frames

        index = {stem: i for i, stem in enumerate(stems)}
        starts: Dict[int, List[Tuple[int, np.ndarray]]] = {}
        for label, obj in enumerate(object_folders(self.mask_dir(name)), start=1):
            folder = os.path.join(self.mask_dir(name), obj)
            for frame in object_frames(folder):
                mask = binary(os.path.join(folder, frame + ".png"))
                if mask.any():
                    if frame not in index:
                        raise VOSError(f"SAV data set: {folder}/{frame}.png has no frame {frame} in "
                                       f"{self.frame_dir(name)}")
                    starts.setdefault(index[frame], []).append((label, mask))
                    break
        out = os.path.join(given_cache(self.root, self.split, self.label), name)
        derived = {}
        for t, masks in sorted(starts.items()):
            derived[t] = os.path.join(out, stems[t] + ".png")
            write_indexed_png(derived[t], paint(masks), davis_palette())
        return derived

    def given_masks(self, name: str, annotations: Dict[int, str]) -> Dict[int, str]:
        """Every derived label map: each object is given at its first non-empty annotated frame."""
        if not annotations:
            raise VOSError(f"SAV data set: video {name!r} has no object with a non-empty mask in {self.mask_dir(name)}")
        return dict(annotations)

    def full_ground_truth(self) -> bool:
        """Scored through the per-object folders, never frame by frame."""
        return False

    def scoring(self) -> Scoring:
        """SA-V J&F against Annotations_6fps after exporting per-object PNGs."""
        truth = {v.name: self.mask_dir(v.name) for v in self.videos}
        return Scoring(SCORE_SAV, truth, results_name=f"SAV-{self.split}")
