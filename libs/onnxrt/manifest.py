"""manifest.json of an exported folder: what the graphs were exported from and for, checked against a run."""
import hashlib
import json
import os
from typing import Any, Dict, Optional

from ..errors import VOSError
from ..io.paths import atomic_path

MANIFEST = "manifest.json"
FORMAT = 1
CHECKED = ("arch", "keydim", "valdim", "input_size", "slots")   # must equal the run's values
REQUIRED = CHECKED + ("format", "hw", "opset", "checkpoint_sha256", "graphs", "dynamic_axes")


def file_sha256(path: str) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as err:
        raise VOSError(f"cannot read {path!r}: {err.strerror or err}") from None
    return digest.hexdigest()


def slots_for(max_memory_frames: int) -> int:
    """Memory slots of the fixed bank: max_memory_frames stored frames + 1 for the previous frame."""
    if max_memory_frames <= 0:
        raise VOSError("the ONNX graphs need a bounded memory: set max_memory_frames to a number of frames "
                       "(e.g. max_memory_frames 20; the graphs then hold 21 slots, one for the previous frame)")
    return max_memory_frames + 1


def write_manifest(out_dir: str, manifest: Dict[str, Any]) -> str:
    """Write manifest.json into `out_dir` atomically; returns its path."""
    path = os.path.join(out_dir, MANIFEST)
    with atomic_path(path) as tmp, open(tmp, "w") as handle:
        json.dump(manifest, handle, indent=2, sort_keys=True)
        handle.write("\n")
    return path


def read_manifest(onnx_dir: str) -> Dict[str, Any]:
    """The manifest of an exported folder; a VOSError naming the folder when it is missing or unreadable."""
    path = os.path.join(onnx_dir, MANIFEST)
    if not os.path.isfile(path):
        raise VOSError(f"onnx_dir {onnx_dir!r} has no {MANIFEST}: export the graphs first "
                       f"(python3 export.py --cfg config.yaml initial model.pth onnx_dir {onnx_dir})")
    try:
        with open(path) as handle:
            manifest = json.load(handle)
    except (OSError, ValueError) as err:
        raise VOSError(f"cannot read {path!r}: {err}; export the graphs again with export.py") from None
    missing = [k for k in REQUIRED if not isinstance(manifest, dict) or k not in manifest]
    if missing:
        raise VOSError(f"{path!r} lacks {', '.join(missing)}: it was not written by this export.py; export again")
    if manifest["format"] != FORMAT:
        raise VOSError(f"{path!r} has format {manifest['format']}, this code reads {FORMAT}; export again")
    return manifest


def check_manifest(manifest: Dict[str, Any], onnx_dir: str, expected: Dict[str, Any],
                   checkpoint: Optional[str] = None) -> None:
    """Raise one line naming both values when the graphs were exported for another run: `expected` holds
    arch / keydim / valdim / input_size / slots (those given are checked); `checkpoint` (a path) must be
    the file the graphs were exported from, by SHA-256."""
    for key in CHECKED:
        if key not in expected:
            continue
        ours = list(expected[key]) if key == "input_size" else expected[key]
        if manifest[key] != ours:
            raise VOSError(f"the ONNX graphs in {onnx_dir!r} were exported for {key} {manifest[key]}, this run "
                           f"has {key} {ours}: export again with this run's keys (export.py ... onnx_dir DIR)")
    if checkpoint:
        digest = file_sha256(checkpoint)
        if digest != manifest["checkpoint_sha256"]:
            raise VOSError(f"the ONNX graphs in {onnx_dir!r} were exported from checkpoint sha256 "
                           f"{manifest['checkpoint_sha256'][:16]}... ({manifest.get('checkpoint', '?')}), this run's "
                           f"initial {checkpoint!r} has sha256 {digest[:16]}...: export again from {checkpoint!r}")
