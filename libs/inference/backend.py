"""How the network runs: the model itself (the exact plain path) or its folded fast copy, fp32 or bf16,
eager or compiled steps. Built once and shared by every core and session of the process; holds no video."""
import contextlib
import logging
from typing import Optional, Tuple

import torch

from ..errors import VOSError
from .settings import InferenceSettings
from .steps import RECOMPILE_LIMIT, compile_steps, correction_step, memory_step, segment_step
from ..models.fold import inference_copy
from ..models.stm import STM, QueryFeatures

log = logging.getLogger(__name__)


def use_exact_float32() -> None:
    """fp32 matrix products and convolutions in full precision (no TF32) from now on, for the process: the
    plain path's exactness on GPUs, set once where its backend is built (never per frame)."""
    matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn
    if hasattr(matmul, "fp32_precision") and hasattr(conv, "conv"):
        matmul.fp32_precision, conv.conv.fp32_precision = "ieee", "ieee"
    else:
        matmul.allow_tf32, conv.allow_tf32 = False, False


class Backend:
    """The network of every video and its precision rules. Plain (fast False): the model itself in exact
    fp32 (TF32 turned off for the process on a GPU, once), bf16 autocast with amp. fast: a frozen copy
    (batch norm folded, channels-last; bf16 weights with amp, softmaxes and correction in fp32), memory read
    by scaled_dot_product_attention. compile: the fast path's steps compiled (CUDA graphs on a GPU).
    onnx (runtime onnxruntime): the exported fast steps run by onnxruntime (libs/onnxrt), fp32, no
    correction; their memory has a fixed number of slots."""

    def __init__(self, model: STM, fast: bool = False, amp: bool = False, compile: bool = False,
                 compile_backend="inductor", onnx=None):
        if compile and not fast:
            raise VOSError("compile True needs fast_inference True (the compiled steps are the fast path's)")
        self.fast, self.amp, self.compiled, self.onnx = fast and onnx is None, amp, compile, onnx
        self.dtype = torch.bfloat16 if self.fast and amp else torch.float32  # the network's weights
        self.net = inference_copy(model, dtype=self.dtype) if self.fast else model
        self.device = next(model.parameters()).device if onnx is None else torch.device("cpu")
        cuda = self.device.type == "cuda"
        self.graphs = compile and cuda and compile_backend == "inductor"    # outputs are replayed buffers
        if cuda and not fast and onnx is None:
            use_exact_float32()
        steps = (memory_step, segment_step, correction_step)
        if compile:
            torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, RECOMPILE_LIMIT)
            steps = compile_steps(steps, compile_backend, cuda)
        self._memory, self._segment, self._correct = steps

    @classmethod
    def from_settings(cls, model: STM, settings: InferenceSettings) -> "Backend":
        """The backend the settings ask for."""
        return cls(model, settings.fast, settings.amp, settings.compile, settings.compile_backend)

    @property
    def fixed_memory(self) -> bool:
        """Whether the steps read the memory's whole buffers (compiled or exported: fixed shapes)."""
        return self.compiled or self.onnx is not None

    def prepare(self, frame: torch.Tensor) -> torch.Tensor:
        """A frame [B, 3, H, W] in the network's layout and precision."""
        return frame.to(self.dtype, memory_format=torch.channels_last) if self.fast else frame

    def autocast(self):
        """bf16 autocast for the plain path with amp (thread-local); the fast path holds its precision."""
        if self.fast or not self.amp or self.onnx is not None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def memory(self, frame: torch.Tensor, probs: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """frame [B, 3, H, W], objects' probabilities [B, K, H, W] -> key, value [B, K, hw, C]."""
        if self.onnx is not None:
            return self.onnx.memory(frame, probs)
        if not self.fast:           # the network as it is (autocast decides the precision)
            return self.net.encode_memory(frame, probs)
        return self._memory(self.net, frame, probs)

    def query(self, frame: torch.Tensor) -> QueryFeatures:
        """The query features of frames [B, 3, H, W] (a correction's reference)."""
        return self.net.encode_query(frame)

    def segment(self, frame: torch.Tensor, mem_key: torch.Tensor, mem_value: torch.Tensor,
                bias: Optional[torch.Tensor], present: Optional[torch.Tensor]) -> torch.Tensor:
        """Probabilities [B, K+1, H, W] fp32 of frames [B, 3, H, W] from the memory [B, K, N, C]."""
        size = tuple(frame.shape[2:])
        if self.onnx is not None:                      # its graphs take the mask of every row's objects
            present = present if present is not None else mem_key.new_ones(mem_key.shape[:2], dtype=torch.bool)
            return self.onnx.segment(frame, mem_key, mem_value, bias, present, size)
        if self.graphs:
            for buffer in (mem_key, mem_value, bias):
                torch._dynamo.mark_static_address(buffer, guard=False)
        return self._own(self._segment(self.net, frame, mem_key, mem_value, bias, present, size, self.fast))

    def correct(self, frame: torch.Tensor, out: torch.Tensor, ref_query: QueryFeatures, ref_mask: torch.Tensor,
                objects: torch.Tensor, present: Optional[torch.Tensor], weights: Optional[torch.Tensor],
                rate: float, loop: int) -> torch.Tensor:
        """`loop` correction iterations of out [B, K+1, H, W] (videos at weight 0 unchanged)."""
        stem = self.net.memory_stem(frame)                       # [B, 64, H/2, W/2]: the same each iteration
        size = tuple(frame.shape[2:])
        for _ in range(loop):
            out = self._own(self._correct(self.net, frame, stem, out, ref_query, ref_mask, objects, present,
                                          weights, rate, size, self.fast))
        return out

    def _own(self, out: torch.Tensor) -> torch.Tensor:
        """A tensor the caller may keep: a CUDA graph's output is overwritten by its next replay."""
        return out.clone() if self.graphs else out
