"""The fast path's per-frame steps as pure functions, run eagerly or compiled by torch.compile.

Every step has fixed shapes for a video (frame size, object count, memory capacity), no host
synchronisation and no branch on tensor values, so `torch.compile(fullgraph=True, dynamic=False)`
turns each into one graph, compiled again only when the memory bank doubles its capacity or an object
appears; on CUDA with mode "reduce-overhead" the graphs are replayed as CUDA graphs.
"""
import contextlib
from typing import Callable, Iterator, Optional, Tuple, Union

import torch

from libs.engine.correction import as_dtype, correction_step
from libs.models.stm import STM

RECOMPILE_LIMIT = 64       # graphs per step function: (object counts) x (capacity doublings), with room


def memory_step(model: STM, frame: torch.Tensor, probs: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """frame [1, 3, H, W] (network dtype), objects' probabilities [1, K, H, W] (fp32) -> key, value [1, K, hw, C]."""
    return model.encode_memory(frame, as_dtype(probs, frame.dtype))


def segment_step(model: STM, frame: torch.Tensor, mem_key: torch.Tensor, mem_value: torch.Tensor,
                 bias: Optional[torch.Tensor], out_size: Tuple[int, int]) -> torch.Tensor:
    """Encode the query frame, read the memory (bias [1, K, N]: -inf on unusable slots, or None), decode:
    merged probabilities [1, K+1, H, W] in fp32 (the softmaxes and the soft aggregation in fp32)."""
    query = model.encode_query(frame)
    logits = model.segment(query, mem_key, mem_value, out_size, bias, sdpa=True)
    return torch.softmax(logits, dim=1)             # fp32: decode's softmax and soft aggregation are fp32


def compile_steps(steps: Tuple[Callable, ...], backend: Union[str, Callable], cuda: bool) -> Tuple[Callable, ...]:
    """Each step compiled with fixed shapes and no graph breaks (on CUDA with inductor: CUDA graphs); the
    recompile limit is raised to RECOMPILE_LIMIT graphs per step."""
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, RECOMPILE_LIMIT)
    options = dict(fullgraph=True, dynamic=False, backend=backend)
    if backend == "inductor":
        options["mode"] = "reduce-overhead" if cuda else "default"
    return tuple(torch.compile(step, **options) for step in steps)


class FastSteps:
    """The three steps of the fast path: eager, or compiled (`backend`: 'inductor' or a torch.compile
    backend, e.g. one that counts compilations in a test). On CUDA, inductor uses CUDA graphs: outputs
    that outlive the next replay are cloned, the memory bank's buffers are marked static (not copied
    into the graph per replay)."""

    def __init__(self, compile: bool = False, backend: Union[str, Callable] = "inductor", cuda: bool = False):
        self.compiled = compile
        self.graphs = compile and cuda and backend == "inductor"
        steps = (memory_step, segment_step, correction_step)
        self._memory, self._segment, self._correct = compile_steps(steps, backend, cuda) if compile else steps

    def memory(self, model: STM, frame: torch.Tensor, probs: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """`memory_step`; its outputs are copied into the bank before the next step runs."""
        return self._memory(model, frame, probs)

    def segment(self, model: STM, frame: torch.Tensor, mem_key: torch.Tensor, mem_value: torch.Tensor,
                bias: Optional[torch.Tensor], out_size: Tuple[int, int]) -> torch.Tensor:
        """`segment_step` on the bank's buffers."""
        if self.graphs:
            for buffer in (mem_key, mem_value, bias):
                torch._dynamo.mark_static_address(buffer, guard=False)
        return self._own(self._segment(model, frame, mem_key, mem_value, bias, out_size))

    def correct(self, *args) -> torch.Tensor:
        """`correction_step` (the arguments of `correction_step`)."""
        return self._own(self._correct(*args))

    def _own(self, out: torch.Tensor) -> torch.Tensor:
        """A tensor the caller may keep: a CUDA graph's output is overwritten by its next replay."""
        return out.clone() if self.graphs else out


@contextlib.contextmanager
def exact_float32() -> Iterator[None]:
    """fp32 matrix products and convolutions in full precision (no TF32 on GPUs) inside the block; the
    user's settings are restored after it. Uses the fp32_precision API where torch has it (reading the
    legacy allow_tf32 flags after a mix of both APIs is an error there)."""
    matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn
    if hasattr(matmul, "fp32_precision") and hasattr(conv, "conv"):
        targets = ((matmul, "fp32_precision", "ieee"), (conv.conv, "fp32_precision", "ieee"))
    else:
        targets = ((matmul, "allow_tf32", False), (conv, "allow_tf32", False))
    saved = [getattr(obj, name) for obj, name, _ in targets]
    for obj, name, value in targets:
        setattr(obj, name, value)
    try:
        yield
    finally:
        for (obj, name, _), value in zip(targets, saved):
            setattr(obj, name, value)
