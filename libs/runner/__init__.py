"""Running the core over videos with the one writer: evaluation sets (test.py, validation), the demo's
video and live input; scoring through the evaluation-set contract (libs.dataset.base.EvaluationSet)."""
from .report import RunReport
from .run import job_frames, run_and_score, run_outputs, run_set, validate
from .scoring import score_results
from .writer import Output, OverlaySink, OverlayVideo, ResultWriter, check_writable, clear_earlier_results

__all__ = ["RunReport", "job_frames", "run_and_score", "run_outputs", "run_set", "validate", "score_results",
           "Output", "OverlaySink", "OverlayVideo", "ResultWriter", "check_writable", "clear_earlier_results"]
