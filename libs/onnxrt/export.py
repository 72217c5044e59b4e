"""Export a checkpoint's fast network to a folder of ONNX graphs with a manifest, checked by onnx.checker
and by onnxruntime against the PyTorch steps on random inputs."""
import contextlib
import io
import logging
import os
from typing import Any, Dict, Tuple

import torch

from ..inference.steps import segment_step as batched_segment_step
from ..inference.steps import memory_step
from ..errors import VOSError
from ..models.fold import inference_copy
from ..models.stm import STM
from .graphs import (DYNAMIC_AXES, GRAPH_FILES, MAX_BATCH, MAX_OBJECTS, OPSET, example_inputs,
                                export_graphs, memory_positions)
from .manifest import FORMAT, MANIFEST, file_sha256, write_manifest
from .steps import OnnxSteps

TOLERANCE = {"key": 1e-3, "value": 1e-3, "probs": 1e-4}   # export check: largest |onnxruntime - torch| allowed
                                                          # (key/value: relative to their largest magnitude)


def export_folder(model: STM, checkpoint: str, out_dir: str, input_size: Tuple[int, int], slots: int) -> Dict[str, Any]:
    """Fold `model` (fp32, batch norm in the convolutions), export its memorize and segment graphs into
    `out_dir`, check them, then write manifest.json (last: a folder without it is refused); returns the
    manifest."""
    net = inference_copy(model.float().cpu(), channels_last=False)
    with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(out_dir, MANIFEST))      # the old graphs are being replaced
    with contextlib.redirect_stdout(io.StringIO()), _quiet("onnxscript", "onnx_ir"):   # the exporter's progress
        paths = export_graphs(net, out_dir, input_size, slots)
    check_graphs(paths)
    hw = memory_positions(net, input_size)
    manifest = {"format": FORMAT, "arch": model.arch, "keydim": model.keydim, "valdim": model.valdim,
                "input_size": list(input_size), "slots": slots, "hw": hw, "opset": OPSET,
                "checkpoint": os.path.basename(checkpoint), "checkpoint_sha256": file_sha256(checkpoint),
                "graphs": dict(GRAPH_FILES), "dynamic_axes": DYNAMIC_AXES,
                "dynamic_ranges": {"batch": [1, MAX_BATCH], "objects": [1, MAX_OBJECTS]},
                "precision": "fp32", "exporter": f"torch.onnx.export(dynamo=True), torch {torch.__version__}"}
    write_manifest(out_dir, manifest)
    try:
        manifest["max_abs_diff"] = compare_with_torch(net, out_dir, input_size, slots)
    except BaseException:
        os.remove(os.path.join(out_dir, MANIFEST))      # graphs that failed the check are not usable
        raise
    write_manifest(out_dir, manifest)
    return manifest


@contextlib.contextmanager
def _quiet(*names: str):
    """The named loggers at WARNING inside the block (the exporter's optimizer logs every rewrite at INFO)."""
    loggers = [logging.getLogger(name) for name in names]
    saved = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, saved):
            logger.setLevel(level)


def check_graphs(paths: Dict[str, str]) -> None:
    """onnx.checker (with shape inference) on each graph file; a VOSError naming the file on failure."""
    import onnx

    for path in paths.values():
        try:
            onnx.checker.check_model(path, full_check=True)
        except onnx.checker.ValidationError as err:
            raise VOSError(f"onnx.checker rejects {path!r}: {str(err).splitlines()[0][:300]}") from None


@torch.no_grad()
def compare_with_torch(net: STM, out_dir: str, input_size: Tuple[int, int], slots: int) -> Dict[str, float]:
    """Largest |onnxruntime - PyTorch| of each output on random inputs (3 videos, 3 objects, one of them
    padding); a VOSError when one exceeds TOLERANCE."""
    inputs = example_inputs(net, input_size, slots, batch=3, objects=3, seed=1)
    steps = OnnxSteps(out_dir)
    mem, seg = inputs["memorize"], inputs["segment"]
    got = dict(zip(("key", "value"), steps.memory(**mem)))
    got["probs"] = steps.segment(**seg, out_size=input_size)
    want = dict(zip(("key", "value"), memory_step(net, **mem)))
    want["probs"] = batched_segment_step(net, **seg, out_size=input_size)
    diffs = {}
    for name, ref in want.items():
        diffs[name] = float((got[name] - ref).abs().max())
        scale = 1.0 if name == "probs" else max(float(ref.abs().max()), 1e-6)
        if not diffs[name] <= TOLERANCE[name] * scale:
            raise VOSError(f"the exported graphs in {out_dir!r} differ from PyTorch: {name} by {diffs[name]:.3g} "
                           f"(allowed {TOLERANCE[name] * scale:.3g}); report this with torch and onnxruntime versions")
    return diffs
