"""Configuration: defaults in one module, merged from a YAML file then `KEY VAL` pairs, validated, frozen."""
import ast
import difflib
import os
from typing import Any, Callable, Dict, List, Optional, Set

import yaml
from yacs.config import CfgNode

from .defaults import defaults
from .validate import validate
from ..errors import VOSError

# keys that accept a single value where the default is a list (the original allowed both)
SCALAR_OR_LIST = ("trainset", "datafreq", "max_skip", "milestone")


def get_cfg() -> CfgNode:
    """A mutable copy of the defaults."""
    return defaults()


Adjust = Callable[[CfgNode, Set[str]], None]


def load_cfg(cfg_file: Optional[str] = None, opts: Optional[List[str]] = None,
             adjust: Optional[Adjust] = None) -> CfgNode:
    """Defaults, then `cfg_file`, then `opts` (`KEY VAL` pairs), then `adjust(cfg, given)` (e.g. model keys
    taken from a checkpoint; `given`: the keys the file or the options set); validated once; frozen."""
    cfg = get_cfg()
    given = merge_file(cfg, cfg_file) if cfg_file else set()
    if opts:
        given |= merge_opts(cfg, opts)
    if adjust is not None:
        adjust(cfg, given)
    validate(cfg)
    cfg.freeze()
    return cfg


def merge_file(cfg: CfgNode, path: str) -> Set[str]:
    """Merge the top-level keys of a YAML file into `cfg`; returns the keys it set."""
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
    return {str(key) for key in data}


def _yaml_problem(err: yaml.YAMLError) -> str:
    """'line 3, column 7: mapping values are not allowed here' from a YAML error."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark is not None else problem


def merge_opts(cfg: CfgNode, opts: List[str]) -> Set[str]:
    """Merge command-line `KEY VAL` pairs into `cfg` (values parsed as Python/YAML literals); returns the keys."""
    if len(opts) % 2:
        raise VOSError(f"options must be KEY VAL pairs, got an odd number of items: {' '.join(opts)}")
    for key, text in zip(opts[0::2], opts[1::2]):
        _set(cfg, key, _parse_literal(text), "on the command line")
    return set(opts[0::2])


def merge_values(cfg: CfgNode, values: Dict[str, Any], where: str) -> Set[str]:
    """Merge Python values (e.g. `loop=0, input_size=(48, 84)` from the Python API) into `cfg`, checked
    like the command line's `KEY VAL` pairs; returns the keys."""
    for key, value in values.items():
        _set(cfg, key, value, where)
    return set(values)


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
