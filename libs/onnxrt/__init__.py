"""Deploy without PyTorch: the fast path's steps exported to ONNX (export.py) and run by onnxruntime."""
from .manifest import read_manifest, slots_for
from .steps import OnnxSteps

__all__ = ["OnnxSteps", "read_manifest", "slots_for"]
