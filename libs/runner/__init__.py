"""Running the engine over videos: the per-video loop of test.py and validation (or several videos at
once: batch_videos), the demo's writing, and scoring through the evaluation-set contract
(libs.dataset.base.EvaluationSet)."""
from libs.runner.batched_run import run_videos_batched
from libs.runner.loop import RunReport, run_and_score, run_videos, validate
from libs.runner.scoring import score_results
from libs.runner.video import (ResultWriter, VideoStats, check_writable, clear_earlier_results, run_video,
                               segment_and_write)

__all__ = ["RunReport", "run_and_score", "run_videos", "run_videos_batched", "validate", "score_results",
           "ResultWriter", "VideoStats", "check_writable", "clear_earlier_results", "run_video", "segment_and_write"]
