"""What every evaluation data set provides: its videos, where their ground truth is, how results are laid
out and which scorer applies (the contract test.py, validation and the runner rely on)."""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Protocol, runtime_checkable

SCORE_DAVIS = "davis"        # DAVIS-style J&F against a folder of ground-truth PNGs per video
SCORE_YOUTUBE = "youtube"    # results packed as the YouTube-VOS server's zip (scored by the server)
SCORE_NONE = "none"          # no ground truth: masks are written, nothing is scored
SCORE_MOSE2 = "mose2"        # MOSEv2's J&F_new (adaptive boundary) against full ground-truth folders
SCORE_LVOS = "lvos"          # LVOS toolkit J&F: every 5th frame of each object's range in the meta JSON
SCORE_SAV = "sav"            # SA-V evaluator J&F on per-object PNG folders (results exported to that layout)
SCORE_SERVER = "server"      # no local ground truth: every mask zipped as <video>/<frame>.png for a server
BENCHMARK_SCORERS = (SCORE_MOSE2, SCORE_LVOS, SCORE_SAV, SCORE_SERVER)   # libs.evaluation.benchmarks
SCORERS = (SCORE_DAVIS, SCORE_YOUTUBE, SCORE_NONE) + BENCHMARK_SCORERS


@dataclass(frozen=True)
class Video:
    """One video on disk: frame paths in temporal order and its annotation PNGs by frame index."""

    name: str                                   # folder name, used for output paths
    frames: List[str]                           # absolute paths of the frame images, in order
    frame_names: List[str]                      # file stems of the frames ('00000'), used for outputs
    given: Dict[int, str]                       # frame index -> PNG path of masks given as input at test time
    annotations: Dict[int, str] = field(default_factory=dict)  # frame index -> ground-truth PNG path
    palette: Optional[List[int]] = None         # palette of the first annotation (flat RGB list), if any
    problem: str = ""                           # why the video cannot be segmented ('' when it can)

    def __len__(self) -> int:
        return len(self.frames)


@dataclass(frozen=True)
class Scoring:
    """How the results of an evaluation set are scored once its masks are written."""

    scorer: str = SCORE_NONE                                  # one of SCORERS
    ground_truth: Dict[str, str] = field(default_factory=dict)  # davis, mose2, lvos, sav: video -> its GT folder
    merge_objects: bool = False     # davis: one merged foreground per video (the DAVIS 2016 rules)
    meta_path: str = ""             # youtube: the split's meta.json; lvos: the split's meta JSON
    frames_root: str = ""           # youtube: folder of the split's frame folders (checks the layout)
    results_name: str = ""          # davis: names the score files and table (global_results-<name>.csv);
                                    # '' -> the split, as the DAVIS toolkit names them
    benchmark: str = ""             # davis: what the table title says was scored ('' -> 'DAVIS <year>')

    def __post_init__(self) -> None:
        if self.scorer not in SCORERS:
            raise ValueError(f"scorer must be one of {', '.join(SCORERS)}; got {self.scorer!r}")


@runtime_checkable
class EvaluationSet(Protocol):
    """An evaluation data set: `test.py`, the demo's runner and validation use only these members.

    `results_subdir` is the folder under the output root that receives one folder of masks per video
    ('' for DAVIS-style sets, 'Annotations' for the YouTube-VOS zip layout).
    """

    root: str                   # data set folder (named in logs)
    split: str                  # split read ('val', 'train', ...): names the score files
    videos: List[Video]
    merge_objects: bool         # True: all objects become one foreground (given masks and scoring)
    results_subdir: str

    def scoring(self) -> Scoring:
        """Which scorer applies and what it needs."""
        ...
