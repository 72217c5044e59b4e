"""Checkpoint files: strict, weights_only loading and atomic saving in the released layout."""
import os
import pickle
from typing import Any, Dict, Optional, Sequence

import torch
import yaml
from torch import nn

from ..errors import VOSError
from ..io.paths import atomic_path

MODEL_KEYS = ("arch", "keydim", "valdim")     # config keys that decide the shapes of the weights
# number of blocks in res4 (ResNet layer3) and channels entering the key projection, per arch
_ARCH_SIGNATURE = {("resnet18", 2, 256), ("resnet34", 6, 256), ("resnet50", 6, 1024), ("resnet101", 23, 1024)}


def _a_folder(path: str) -> VOSError:
    """The error for a checkpoint path that is a folder, naming the checkpoint files it holds."""
    files = sorted(f for f in os.listdir(path) if f.endswith((".pth", ".pt")))
    held = f"it holds {', '.join(files[:4])}{', ...' if len(files) > 4 else ''}" if files else "it holds no .pth file"
    return VOSError(f"checkpoint {path!r} is a folder, not a file ({held}); give one checkpoint file "
                    "to `initial` (or `resume`)")


def read_checkpoint(path: str) -> Dict[str, Any]:
    """Load a checkpoint file with weights_only=True; refuses pickles that would run code."""
    if path and os.path.isdir(path):
        raise _a_folder(path)
    if not path or not os.path.isfile(path):
        raise VOSError(f"checkpoint file {path!r} not found; check the path (`initial` / `resume`)")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "global" not in str(err).lower():
            raise _not_a_checkpoint(path) from None
        found = [line.strip() for line in str(err).splitlines() if "global" in line.lower()]
        first = found[0] if found else "unsupported content"
        raise VOSError(f"refused to load {path!r}: it is not a plain weights file and loading it would run "
                       f"code ({first[:200]}). Re-save it as {{'state_dict': model.state_dict()}}") from None
    except OSError as err:
        raise VOSError(f"cannot read checkpoint {path!r}: {err.strerror or 'read error'}") from None
    except Exception:   # torch.load fails with many exception types on a file that is not a checkpoint
        raise _not_a_checkpoint(path) from None
    if not isinstance(data, dict):
        raise VOSError(f"checkpoint {path!r} holds a {type(data).__name__}, expected a dict of tensors "
                       "or {'state_dict': ...}")
    return data


def _not_a_checkpoint(path: str) -> VOSError:
    """The error for a file torch cannot read as a checkpoint."""
    return VOSError(f"cannot read checkpoint {path!r}: it is not a PyTorch weights file (truncated, corrupt, "
                    "or another kind of file); pass a .pth saved by train.py or a released STM-Cycle checkpoint")


def stored_model_config(data: Dict[str, Any], keys: Sequence[str] = MODEL_KEYS) -> Dict[str, Any]:
    """`keys` (default arch / keydim / valdim) of the config a train.py checkpoint stores (its 'config'
    YAML), those it has; {} if none."""
    text = data.get("config")
    if not isinstance(text, str):
        return {}
    try:
        stored = yaml.safe_load(text)
    except yaml.YAMLError:
        return {}
    return {k: stored[k] for k in keys if k in stored} if isinstance(stored, dict) else {}


def shape_config(state: Dict[str, torch.Tensor]) -> Dict[str, Any]:
    """arch / keydim / valdim that a released-layout state dict was built with (those that can be told)."""
    found: Dict[str, Any] = {}
    arch = guess_arch(state)
    if arch:
        found["arch"] = arch
    for key, name in (("KV_M_r4.Key.weight", "keydim"), ("KV_M_r4.Value.weight", "valdim")):
        if key in state and state[key].dim() == 4:
            found[name] = int(state[key].shape[0])          # [dim, C, 3, 3]
    return found


def extract_state_dict(data: Dict[str, Any]) -> Dict[str, torch.Tensor]:
    """The weights of a `{'state_dict': ...}` checkpoint or of a bare state dict ('module.' stripped)."""
    state = data.get("state_dict", data)
    if not isinstance(state, dict):
        raise VOSError("checkpoint's 'state_dict' entry is not a dict of tensors")
    state = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def guess_arch(state: Dict[str, torch.Tensor]) -> Optional[str]:
    """Which ResNet a released-layout state dict was built with, or None if it is not that layout."""
    key = state.get("KV_M_r4.Key.weight")
    if key is None:
        return None
    blocks = {k.split(".")[2] for k in state if k.startswith("Encoder_Q.res4.")}
    for arch, n, channels in _ARCH_SIGNATURE:
        if n == len(blocks) and channels == key.shape[1]:
            return arch
    return None


def load_weights(model: nn.Module, path: str) -> Dict[str, Any]:
    """Strictly load `path` into `model`; returns the whole checkpoint."""
    data = read_checkpoint(path)
    apply_weights(model, data, path)
    return data


def apply_weights(model: nn.Module, data: Dict[str, Any], path: str) -> None:
    """Strictly copy the weights of checkpoint `data` (read from `path`) into `model`; one error lists
    every missing, unexpected or mis-shaped key."""
    state = extract_state_dict(data)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs model {tuple(v.shape)}"
              for k, v in own.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or shapes:
        raise VOSError(_mismatch_message(path, model, state, missing, unexpected, shapes))
    model.load_state_dict(state, strict=True)


def _mismatch_message(path: str, model: nn.Module, state: Dict[str, torch.Tensor],
                      missing: list, unexpected: list, shapes: list) -> str:
    """One readable error for a checkpoint that does not fit the model: first the config values that
    would fit (read from the weights' shapes), then the keys."""
    fits = shape_config(state)
    model_values = {"arch": getattr(model, "arch", None), "keydim": getattr(model, "keydim", None),
                    "valdim": getattr(model, "valdim", None)}
    differ = {k: v for k, v in fits.items() if model_values.get(k) is not None and model_values[k] != v}
    parts = [f"checkpoint {path!r} does not fit the {model_values['arch'] or '?'} model"]
    if differ:
        told = ", ".join(f"{k} {v}" for k, v in differ.items())
        passed = " ".join(f"{k} {v}" for k, v in differ.items())
        lead = "it was built with" if "arch" in differ else "this checkpoint has"
        parts.append(f"{lead} {told}: pass `{passed}`")
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", shapes)):
        if keys:
            more = f" ... and {len(keys) - 8} more" if len(keys) > 8 else ""
            parts.append(f"{len(keys)} {label} keys: {', '.join(keys[:8])}{more}")
    return "; ".join(parts)


class _WriteErrors:
    """A binary file for torch.save that keeps the OSError of a failed write (torch reports only its own
    'unexpected pos' RuntimeError, which says nothing of a full disk)."""

    def __init__(self, handle) -> None:
        self.handle, self.error = handle, None

    def write(self, data) -> int:
        """Write `data`, remembering the OSError if it fails."""
        try:
            return self.handle.write(data)
        except OSError as err:
            self.error = err
            raise

    def flush(self) -> None:
        """Flush the file."""
        self.handle.flush()


def atomic_save(obj: Any, path: str) -> None:
    """torch.save to a temp file in the same folder, synced to disk, then rename: a crash, a full disk or an
    I/O error never leaves half a file, and the file it would replace stays (VOSError naming `path`)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        sink = _WriteErrors(handle)
        try:
            torch.save(obj, sink)
        except RuntimeError:
            if sink.error is None:
                raise
            raise sink.error from None
        handle.flush()
        os.fsync(handle.fileno())


def save_weights(model: nn.Module, path: str, **extra: Any) -> None:
    """Save `{'state_dict': ..., **extra}` (the released layout) atomically."""
    atomic_save({"state_dict": model.state_dict(), **extra}, path)
