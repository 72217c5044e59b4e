"""Custom data sets as plain folders, and the reader base class that DAVIS and YouTube-VOS build on."""
import os
from typing import Dict, List, Optional

from PIL import Image

from .base import SCORE_DAVIS, Scoring, Video
from .registry import register_dataset
from ..errors import VOSError
from ..io.images import full_palette
from ..io.paths import list_images


class FolderReader:
    """Base reader: lists a split's videos and builds a `Video` from each frame and annotation folder.

    Implements the evaluation-set contract (libs.dataset.base.EvaluationSet): a set whose every frame
    has an annotation PNG is scored with DAVIS-style J&F against its annotation folders.
    Subclasses say where things are (`frame_dir`, `mask_dir`, `video_names`, `expected_tree`) and which
    annotations are given at test time (`given_masks`).
    """

    subdir = ""                 # folder of this data set under the configuration's data_root
    merge_objects = False       # True: all objects are merged into one foreground (DAVIS 2016)
    results_subdir = ""         # results go to <output root>/<video>/

    def __init__(self, root: str, split: str = "val") -> None:
        self.root = os.path.abspath(root)
        self.split = split
        self.split_source = self.root       # where the video list came from (named in errors)
        if not os.path.isdir(self.root):
            raise self.layout_error(f"folder {self.root} does not exist")
        self.check_layout()
        names = self.video_names()
        for name in names:
            self.check_video_name(name)
        self.videos: List[Video] = [self.video_or_problem(n) for n in sorted(set(names))]
        if not self.videos:
            raise self.layout_error(f"split {split!r} has no video (read from {self.split_source})")
        if all(v.problem for v in self.videos):
            raise VOSError(self.videos[0].problem)
        self.has_full_gt = self.full_ground_truth()

    @property
    def label(self) -> str:
        """The registered name of the data set (for messages)."""
        return getattr(type(self), "registered_name", type(self).__name__)

    def layout_error(self, problem: str) -> VOSError:
        """A VOSError stating `problem`, the expected folder tree and where the layouts are described."""
        tree = "\n".join(f"  {line}" for line in self.expected_tree())
        return VOSError(f"{self.label} data set: {problem}. Expected layout:\n{tree}\nsee DATASET.md")

    def check_video_name(self, name: str) -> None:
        """A VOSError naming `name` when it could leave the data or output folders."""
        if not name or "/" in name or "\\" in name or ".." in name or "\x00" in name:
            raise VOSError(f"{self.label} data set: video name {name!r} (from {self.split_source}) "
                           "contains '/', '\\' or '..' or is empty; video names must be plain folder names")

    def video_or_problem(self, name: str) -> Video:
        """`build_video(name)`, or a frameless `Video` whose `problem` says why it cannot be read (an empty
        frame folder, no annotation, ...): the runner reports and skips it like any failing video."""
        try:
            return self.build_video(name)
        except VOSError as err:
            return Video(name=name, frames=[], frame_names=[], given={}, problem=str(err).splitlines()[0])

    def build_video(self, name: str) -> Video:
        """The `Video` record of video `name`: its frames, annotations and given masks."""
        frame_dir = self.frame_dir(name)
        if not os.path.isdir(frame_dir):
            raise VOSError(f"{self.label} data set: video {name!r} listed in {self.split_source} has no "
                           f"frame folder {frame_dir}")
        files = list_images(frame_dir)
        if not files:
            raise VOSError(f"{self.label} data set: frame folder {frame_dir} of video {name!r} is empty")
        stems = [os.path.splitext(f)[0] for f in files]
        if len(set(stems)) != len(stems):
            dup = next(s for s in stems if stems.count(s) > 1)
            raise VOSError(f"{self.label} data set: frame folder {frame_dir} has two frames named {dup!r}")
        annotations = self.scan_annotations(name, stems)
        given = self.given_masks(name, annotations)
        palette = read_palette(given[min(given)]) if given else None
        return Video(name=name, frames=[os.path.join(frame_dir, f) for f in files], frame_names=stems,
                     given=given, annotations=annotations, palette=palette)

    def scan_annotations(self, name: str, stems: List[str]) -> Dict[int, str]:
        """Frame index -> path of every annotation PNG of video `name` (none when it has no folder)."""
        mask_dir = self.mask_dir(name)
        if not os.path.isdir(mask_dir):
            return {}
        index = {stem: i for i, stem in enumerate(stems)}
        annotations = {}
        for entry in os.scandir(mask_dir):
            stem, ext = os.path.splitext(entry.name)
            if ext.lower() != ".png" or not entry.is_file():
                continue
            if stem not in index:
                raise VOSError(f"{self.label} data set: annotation {entry.path} has no frame named "
                               f"{stem!r} in {self.frame_dir(name)}")
            annotations[index[stem]] = entry.path
        return dict(sorted(annotations.items()))

    def full_ground_truth(self) -> bool:
        """True when every frame of every video has an annotation."""
        return all(len(v.annotations) == len(v) for v in self.videos)

    def scoring(self) -> Scoring:
        """DAVIS-style J&F against each video's annotation folder when every frame is annotated, else none."""
        if not self.has_full_gt:
            return Scoring()
        return Scoring(SCORE_DAVIS, {v.name: self.mask_dir(v.name) for v in self.videos}, self.merge_objects,
                       **self.score_names())

    def score_names(self) -> Dict[str, str]:
        """How score files and tables are named: after the data set (DAVIS-layout sets name them after the
        split, as the DAVIS toolkit does)."""
        return {"results_name": self.label, "benchmark": "J&F as the DAVIS toolkit scores it"}

    def given_masks(self, name: str, annotations: Dict[int, str]) -> Dict[int, str]:
        """Masks given at test time: the earliest annotation of the video."""
        if not annotations:
            raise VOSError(f"{self.label} data set: video {name!r} has no annotation PNG in "
                           f"{self.mask_dir(name)}; put the mask of its first frame there")
        first = min(annotations)
        return {first: annotations[first]}

    def check_layout(self) -> None:
        """A layout_error when the expected top-level folders are missing."""
        top = os.path.join(self.root, "JPEGImages")
        if not os.path.isdir(top):
            raise self.layout_error(f"{self.root} has no JPEGImages folder")

    def video_names(self) -> List[str]:
        """Every sub-folder of JPEGImages (plain folder sets have no split files)."""
        top = os.path.join(self.root, "JPEGImages")
        self.split_source = top
        return [e.name for e in os.scandir(top) if e.is_dir()]

    def frame_dir(self, name: str) -> str:
        """Folder holding the frames of video `name`."""
        return os.path.join(self.root, "JPEGImages", name)

    def mask_dir(self, name: str) -> str:
        """Folder holding the annotation PNGs of video `name`."""
        return os.path.join(self.root, "Annotations", name)

    def expected_tree(self) -> List[str]:
        """A few lines showing the expected files under the root."""
        return [f"{self.root}/JPEGImages/<video>/00000.jpg",
                f"{self.root}/Annotations/<video>/00000.png   (at least the first frame's mask)"]


def read_palette(path: str) -> Optional[List[int]]:
    """The 768-int palette of an indexed PNG (header only), or None for other images."""
    try:
        with Image.open(path) as img:
            palette = img.getpalette() if img.mode in ("P", "PA") else None
    except (OSError, SyntaxError, ValueError) as err:
        raise VOSError(f"cannot read mask {path}: {err} (corrupt or not a PNG)") from err
    return full_palette(palette) if palette is not None else None


@register_dataset("FOLDER")
class FolderDataset(FolderReader):
    """A custom data set: ROOT/JPEGImages/<video>/*, ROOT/Annotations/<video>/*.png, every video used."""

    subdir = "FOLDER"
