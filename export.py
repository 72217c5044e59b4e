"""Export the fast path's steps of a checkpoint to ONNX graphs (memorize, segment) with a manifest.

    .venv/bin/python export.py --cfg config.yaml initial model.pth onnx_dir exported/ [KEY VAL ...]
"""
import logging

from libs.errors import VOSError
from libs.models import build_model
from libs.onnxrt import slots_for
from libs.onnxrt.export import export_folder
from libs.runner.cli import parse_cfg, run_main
from libs.utils.logging import setup_logging

log = logging.getLogger("export")
EXAMPLES = """\
  .venv/bin/python export.py --cfg config.yaml initial model.pth onnx_dir exported/ max_memory_frames 20
  .venv/bin/python export.py --cfg config.yaml initial stm_cycle_r18.pth arch resnet18 onnx_dir exported_r18/ \\
      max_memory_frames 10 input_size '[240, 427]'
  then: .venv/bin/python test.py --cfg config.yaml initial model.pth runtime onnxruntime onnx_dir exported/ \\
      max_memory_frames 20 loop 0"""
KEYS = (("initial", "the checkpoint to export (train.py checkpoints also set arch/keydim/valdim)"),
        ("onnx_dir", "folder for memorize.onnx, segment.onnx and manifest.json"),
        ("max_memory_frames", "stored memory frames the graphs hold (their bank has this + 1 slots); required"),
        ("input_size", "network input (H, W) the graphs are fixed to"),
        ("arch keydim valdim", "model shape (resnet50 128 512 for released R50 checkpoints)"))


def main() -> None:
    """Parse the config, build the checkpoint's model, export and check its graphs, write the manifest."""
    cfg = parse_cfg("Export the segment and memorize steps of a trained STM-Cycle model to ONNX "
                    "(fp32, batch and object axes dynamic, frame size and memory slots fixed).",
                    examples=EXAMPLES, keys=KEYS)
    setup_logging()
    slots = slots_for(cfg.max_memory_frames)
    if not cfg.initial:
        raise VOSError("export.py needs the checkpoint to export: add `initial model.pth`")
    if not cfg.onnx_dir:
        raise VOSError("export.py needs the output folder: add `onnx_dir exported/`")
    model = build_model(cfg).eval()
    log.info("exporting %s (%s, keydim %d, valdim %d) at %s with %d memory slots to %s", cfg.initial, cfg.arch,
             cfg.keydim, cfg.valdim, list(cfg.input_size), slots, cfg.onnx_dir)
    manifest = export_folder(model, cfg.initial, cfg.onnx_dir, tuple(cfg.input_size), slots)
    diffs = ", ".join(f"{k} {v:.2g}" for k, v in manifest["max_abs_diff"].items())
    log.info("wrote %s: opset %d, dynamic axes batch and objects, %d x %d memory positions; onnx.checker passed; "
             "onnxruntime vs PyTorch max |diff|: %s", cfg.onnx_dir, manifest["opset"], manifest["slots"],
             manifest["hw"], diffs)


if __name__ == "__main__":
    run_main(main)
