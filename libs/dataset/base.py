"""What every data set reader returns: a list of videos, each a list of frame files and mask files."""
from dataclasses import dataclass, field
from typing import Dict, List, Optional


@dataclass(frozen=True)
class Video:
    """One video on disk: frame paths in temporal order and its annotation PNGs by frame index."""

    name: str                                   # folder name, used for output paths
    frames: List[str]                           # absolute paths of the frame images, in order
    frame_names: List[str]                      # file stems of the frames ('00000'), used for outputs
    given: Dict[int, str]                       # frame index -> PNG path of masks given as input at test time
    annotations: Dict[int, str] = field(default_factory=dict)  # frame index -> ground-truth PNG path
    palette: Optional[List[int]] = None         # palette of the first annotation (flat RGB list), if any

    def __len__(self) -> int:
        return len(self.frames)
