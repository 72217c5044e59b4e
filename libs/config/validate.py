"""Every key's allowed values (choices, ranges, list lengths) checked in one place, once per run.

Names that registries hold (`arch`, `valset`, `trainset`) are not checked here: the config imports no
data set or model; they are checked where the objects are built, and an unknown name lists the known ones.
"""
import logging
from typing import Any, Dict, List, Sequence, Tuple

from yacs.config import CfgNode

from .defaults import defaults
from ..errors import VOSError

log = logging.getLogger("config")

CHOICES: Dict[str, Sequence[str]] = {
    "data_backend": ("PIL", "DALI"),
    "solver": ("adam", "sgd"),
    "mode": ("mask", "recurrent", "threshold"),
    "loss": ("ce", "iou", "both"),
    "cycle_frames": ("highest_object", "all_objects"),
    "colour_jitter": ("original", "mid_grey"),
    "save_indexed_format": ("index", "segmentation", "heatmap", "mask"),
    "backend": ("nccl", "gloo", "mpi", "ucc"),
    "runtime": ("torch", "onnxruntime"),
    "onnx_provider": ("cpu", "cuda", "tensorrt"),
}
NON_NEGATIVE = ("max_memory_frames", "loop", "workers", "correction_rate", "weight_decay", "epochs", "seed",
                "max_minutes", "keep_checkpoints", "progress_every_s", "checkpoint_every_steps", "max_bad_samples",
                "max_nonfinite_steps", "max_skip_increment")
POSITIVE = ("batch_videos", "save_freq", "keydim", "valdim", "sampled_frames", "samples_per_video", "train_batch",
            "iter_size", "epochs_per_increment", "epoch_per_test", "max_training_obj", "learning_rate",
            "max_upload_mb", "max_skip_cap", "max_pixels", "max_sessions", "session_idle_minutes")
# (key, low, high): low <= value <= high
RANGES: Tuple[Tuple[str, float, float], ...] = (("iou_threshold", 0.0, 1.0), ("port", 0, 65535), ("gpu_id", -1, 1 << 16))
# keys kept only so the original's config files load: a non-default value is ignored, said in one line
IGNORED = ("split_k", "alpha", "lambdas", "correction_momentum", "multi_gpu_ids")


def validate(cfg: CfgNode) -> None:
    """Check every key's value; raises a VOSError naming the key and what it allows. Logs one line
    'ignored: ...' for keys kept only for the original's config files when set to another value."""
    for key, allowed in CHOICES.items():
        if cfg[key] not in allowed:
            raise VOSError(f"config key {key!r} must be one of {', '.join(allowed)}; got {cfg[key]!r}")
    _check_ranges(cfg)
    _check_lists(cfg)
    if cfg.compile and not cfg.fast_inference:
        raise VOSError("config key 'compile' True needs 'fast_inference' True (it compiles the fast path's "
                       "steps); add fast_inference True or set compile False")
    for key in ("valset", "valsplit"):
        if not cfg[key] or "/" in cfg[key] or "\\" in cfg[key]:
            raise VOSError(f"config key {key!r} must be a name (e.g. valset DAVIS17, valsplit val), not "
                           f"{cfg[key]!r}")
    _check_app(cfg)
    if cfg.runtime == "onnxruntime":
        _check_onnxruntime(cfg)
    _note_ignored(cfg)


def _check_app(cfg: CfgNode) -> None:
    """The browser app's limits and access keys."""
    if cfg.max_frames < 2:
        raise VOSError(f"config key 'max_frames' must be at least 2 (a video needs 2 frames); got {cfg.max_frames!r}")
    if cfg.token and (len(cfg.token) < 16 or not cfg.token.isprintable() or " " in cfg.token):
        raise VOSError("config key 'token' must be at least 16 printable characters without spaces (or '' for "
                       "a random one)")
    if not all(isinstance(h, str) and h.strip() for h in cfg.allowed_hosts):
        raise VOSError(f"config key 'allowed_hosts' must be a list of host names; got {list(cfg.allowed_hosts)}")


def _check_onnxruntime(cfg: CfgNode) -> None:
    """runtime onnxruntime runs exported graphs: a folder of them, no gradients, a bounded memory."""
    if not cfg.onnx_dir:
        raise VOSError("runtime onnxruntime needs onnx_dir: the folder export.py wrote "
                       "(python3 export.py --cfg config.yaml initial model.pth onnx_dir exported/)")
    if cfg.loop > 0:
        raise VOSError(f"runtime onnxruntime supports loop 0 only (the correction needs gradients; got loop "
                       f"{cfg.loop}): add loop 0, or use runtime torch")
    if cfg.compile:
        raise VOSError("config key 'compile' True needs runtime torch (it compiles PyTorch steps); set compile False")
    if cfg.max_memory_frames == 0:
        raise VOSError("runtime onnxruntime needs a bounded memory: set max_memory_frames to the value the graphs "
                       "of onnx_dir were exported with (export.py's manifest.json: slots - 1)")


def _check_ranges(cfg: CfgNode) -> None:
    """Positive, non-negative and bounded scalar keys."""
    for key in POSITIVE:
        if cfg[key] <= 0:
            raise VOSError(f"config key {key!r} must be positive; got {cfg[key]!r}")
    for key in NON_NEGATIVE:
        if cfg[key] < 0:
            raise VOSError(f"config key {key!r} must be >= 0; got {cfg[key]!r}")
    for key, low, high in RANGES:
        if not low <= cfg[key] <= high:
            raise VOSError(f"config key {key!r} must be in {low}..{high}; got {cfg[key]!r}")
    if not 0 < cfg.gamma <= 1:
        raise VOSError(f"config key 'gamma' (learning rate factor at each milestone) must be in (0, 1]; "
                       f"got {cfg.gamma!r}")


def _check_lists(cfg: CfgNode) -> None:
    """Lengths and entries of the list keys."""
    if len(cfg.input_size) != 2 or min(cfg.input_size) < 16:
        raise VOSError(f"config key 'input_size' must be [height, width], each >= 16; got {list(cfg.input_size)}")
    if len(cfg.momentum) != 2 or not all(0 <= m < 1 for m in cfg.momentum):
        raise VOSError(f"config key 'momentum' must hold two numbers in [0, 1) (Adam betas); got {list(cfg.momentum)}")
    if not cfg.trainset:
        raise VOSError("config key 'trainset' must name at least one data set, e.g. ['DAVIS17']")
    if len(cfg.datafreq) != len(cfg.trainset) or len(cfg.max_skip) != len(cfg.trainset):
        raise VOSError(f"trainset ({len(cfg.trainset)} entries), datafreq ({len(cfg.datafreq)}) and "
                       f"max_skip ({len(cfg.max_skip)}) must be lists of the same length")
    _check_entries("datafreq", cfg.datafreq, 0, None, "a repeat count per training set")
    _check_entries("max_skip", cfg.max_skip, 1, cfg.max_skip_cap, "at most max_skip_cap, or raise max_skip_cap")
    _check_entries("milestone", cfg.milestone, 0, None, "epochs")


def _check_entries(key: str, values: List[Any], low: int, high: Any, what: str) -> None:
    """Every entry of list `key` an int in low..high (high None: unbounded)."""
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
            bound = f"{low}..{high}" if high is not None else f">= {low}"
            raise VOSError(f"config key {key!r}: every entry must be an integer {bound} ({what}); got "
                           f"{list(values)}")


def _note_ignored(cfg: CfgNode) -> None:
    """One log line naming the original's unused keys that are set to a non-default value."""
    original = defaults()
    changed = [f"{key} {cfg[key]!r}" for key in IGNORED if _plain(cfg[key]) != _plain(original[key])]
    if changed:
        log.warning("ignored: %s (kept only so the original's config files load; they change nothing)",
                    ", ".join(changed))


def _plain(value: Any) -> Any:
    """Lists and tuples compared alike."""
    return list(value) if isinstance(value, (list, tuple)) else value
