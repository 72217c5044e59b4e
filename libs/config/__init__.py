"""Configuration: defaults in one module, merged from a YAML file then `KEY VAL` pairs, validated, frozen."""
import ast
import difflib
import os
from typing import Any, Callable, Dict, List, Optional, Sequence

import yaml
from yacs.config import CfgNode

from libs.config.defaults import defaults
from libs.errors import VOSError

# fixed choices; `arch`, `valset` and `trainset` are checked against the registries (see _check_registered)
CHOICES: Dict[str, Sequence[str]] = {
    "data_backend": ("PIL", "DALI"),
    "solver": ("adam", "sgd"),
    "mode": ("mask", "recurrent", "threshold"),
    "loss": ("ce", "iou", "both"),
    "cycle_frames": ("highest_object", "all_objects"),
    "colour_jitter": ("original", "mid_grey"),
    "save_indexed_format": ("index", "segmentation", "heatmap", "mask"),
}
# keys that accept a single value where the default is a list (the original allowed both)
SCALAR_OR_LIST = ("trainset", "datafreq", "max_skip", "milestone")
NON_NEGATIVE = ("max_memory_frames", "loop", "workers", "correction_rate", "weight_decay",
                "max_skip_cap", "epochs", "seed", "max_minutes", "keep_checkpoints",
                "progress_every_s", "checkpoint_every_steps", "max_bad_samples", "max_nonfinite_steps")
POSITIVE = ("batch_videos", "save_freq", "keydim", "valdim", "sampled_frames", "samples_per_video", "train_batch",
            "iter_size", "epochs_per_increment", "epoch_per_test", "max_training_obj", "learning_rate",
            "max_upload_mb")


def get_cfg() -> CfgNode:
    """A mutable copy of the defaults."""
    return defaults()


def load_cfg(cfg_file: Optional[str] = None, opts: Optional[List[str]] = None,
             adjust: Optional[Callable[[CfgNode], None]] = None) -> CfgNode:
    """Defaults, then `cfg_file`, then `opts` (`KEY VAL` pairs); validated, then `adjust`ed (e.g. model
    keys taken from a checkpoint) and validated again; frozen."""
    cfg = get_cfg()
    if cfg_file:
        merge_file(cfg, cfg_file)
    if opts:
        merge_opts(cfg, opts)
    validate(cfg)
    if adjust is not None:
        adjust(cfg)
        validate(cfg)
    cfg.freeze()
    return cfg


def merge_file(cfg: CfgNode, path: str) -> None:
    """Merge the top-level keys of a YAML file into `cfg`."""
    if not os.path.isfile(path):
        raise VOSError(f"config file {path!r} not found (pass --cfg config.yaml, or leave --cfg out for the defaults)")
    try:
        with open(path) as f:
            data = yaml.safe_load(f) or {}
    except yaml.YAMLError as err:
        raise VOSError(f"config file {path!r} is not valid YAML: {_yaml_problem(err)}") from None
    if not isinstance(data, dict):
        raise VOSError(f"config file {path!r} must hold `key: value` lines at the top level")
    for key, value in data.items():
        _set(cfg, str(key), value, f"in {path}")


def _yaml_problem(err: yaml.YAMLError) -> str:
    """'line 3, column 7: mapping values are not allowed here' from a YAML error."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark is not None else problem


def merge_opts(cfg: CfgNode, opts: List[str]) -> None:
    """Merge command-line `KEY VAL` pairs into `cfg` (values parsed as Python/YAML literals)."""
    if len(opts) % 2:
        raise VOSError(f"options must be KEY VAL pairs, got an odd number of items: {' '.join(opts)}")
    for key, text in zip(opts[0::2], opts[1::2]):
        _set(cfg, key, _parse_literal(text), "on the command line")


def merge_values(cfg: CfgNode, values: Dict[str, Any], where: str) -> None:
    """Merge Python values (e.g. `loop=0, input_size=(48, 84)` from the Python API) into `cfg`, checked
    like the command line's `KEY VAL` pairs."""
    for key, value in values.items():
        _set(cfg, key, value, where)


def _parse_literal(text: str) -> Any:
    """'0.5' -> 0.5, '[1,2]' -> [1, 2], 'resnet18' -> 'resnet18'."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _set(cfg: CfgNode, key: str, value: Any, where: str) -> None:
    """Set one key after checking that it exists and that the value has the default's type."""
    if key not in cfg:
        close = difflib.get_close_matches(key, list(cfg.keys()), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else "; see libs/config/defaults.py for every key"
        raise VOSError(f"unknown config key {key!r} {where}{hint}")
    cfg[key] = _coerce(key, cfg[key], value, where)


def _coerce(key: str, default: Any, value: Any, where: str) -> Any:
    """Return `value` converted to the type of `default`, or raise a VOSError naming the key."""
    if isinstance(default, (list, tuple)):
        if key in SCALAR_OR_LIST and not isinstance(value, (list, tuple)):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise _type_error(key, default, value, where)
        items = [_coerce_scalar(key, default[0], v, where) if default else v for v in value]
        return type(default)(items)
    return _coerce_scalar(key, default, value, where)


def _coerce_scalar(key: str, default: Any, value: Any, where: str) -> Any:
    """Scalar type check: int accepted for float keys, nothing else is converted silently."""
    if isinstance(value, str) and not isinstance(default, str):
        value = _parse_literal(value)  # YAML reads '5e-4' as a string
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(default, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    elif isinstance(default, int) and isinstance(value, int) and not isinstance(value, bool):
        return value
    elif isinstance(default, str) and isinstance(value, str):
        return value
    elif key == "video_path" and isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)             # a camera index: `video_path 0`
    elif isinstance(default, str) and key in ("initial", "resume", "video_path", "mask_path", "data_root",
                                              "checkpoint", "output_dir", "backbone_weights", "allowed_dir") and value is None:
        return ""
    raise _type_error(key, default, value, where)


def _type_error(key: str, default: Any, value: Any, where: str) -> VOSError:
    """The error for a value of the wrong type."""
    return VOSError(f"config key {key!r} {where} expects {type(default).__name__} like {default!r}, "
                    f"got {value!r} ({type(value).__name__})")


def validate(cfg: CfgNode) -> None:
    """Check choices and ranges; raises a VOSError naming the key and the allowed values."""
    for key, allowed in CHOICES.items():
        if cfg[key] not in allowed:
            raise VOSError(f"config key {key!r} must be one of {', '.join(allowed)}; got {cfg[key]!r}")
    for key in POSITIVE:
        if cfg[key] <= 0:
            raise VOSError(f"config key {key!r} must be positive; got {cfg[key]!r}")
    for key in NON_NEGATIVE:
        if cfg[key] < 0:
            raise VOSError(f"config key {key!r} must be >= 0; got {cfg[key]!r}")
    if len(cfg.input_size) != 2 or min(cfg.input_size) < 16:
        raise VOSError(f"config key 'input_size' must be [height, width], each >= 16; got {list(cfg.input_size)}")
    if not 0 <= cfg.port <= 65535:
        raise VOSError(f"config key 'port' must be a TCP port 0..65535 (0: any free port); got {cfg.port!r}")
    if len(cfg.momentum) != 2:
        raise VOSError(f"config key 'momentum' must hold two numbers (Adam betas); got {list(cfg.momentum)}")
    if len(cfg.datafreq) != len(cfg.trainset) or len(cfg.max_skip) != len(cfg.trainset):
        raise VOSError(f"trainset ({len(cfg.trainset)} entries), datafreq ({len(cfg.datafreq)}) and "
                       f"max_skip ({len(cfg.max_skip)}) must be lists of the same length")
    if cfg.compile and not cfg.fast_inference:
        raise VOSError("config key 'compile' True needs 'fast_inference' True (it compiles the fast path's "
                       "steps); add fast_inference True or set compile False")
    if not cfg.valset:
        raise VOSError("config key 'valset' must name a data set, e.g. DAVIS17")
    _check_registered(cfg)


def _check_registered(cfg: CfgNode) -> None:
    """`arch` must be a registered backbone, `valset` and each `trainset` entry registered data sets."""
    import libs.dataset  # noqa: F401  (registers the built-in data sets and those imported with them)
    import libs.models  # noqa: F401  (registers the built-in backbones and those imported with them)
    from libs.dataset.registry import known_datasets
    from libs.models.backbone import known_backbones

    archs = known_backbones()
    if cfg.arch not in archs:
        raise VOSError(f"config key 'arch' must be one of {', '.join(archs)}; got {cfg.arch!r} (a new backbone "
                       "is one class plus a register_backbone line, see DATASET.md)")
    names = known_datasets()
    for key, values in (("valset", [cfg.valset]), ("trainset", list(cfg.trainset))):
        for value in values:
            if value not in names:
                raise VOSError(f"config key {key!r}: unknown data set {value!r}; known data sets: {', '.join(names)} "
                               "(register a custom one with @register_dataset, see DATASET.md)")
