"""The fast path's fixed-shape steps as ONNX graphs: memorize (frame + masks -> memory) and segment
(frame + slot bank -> probabilities), exported from the folded fp32 network by torch.onnx's dynamo
exporter with the batch (B) and object (K) axes dynamic, frame size and memory slots fixed."""
import os
import warnings
from typing import Dict, Tuple

import torch
from torch import nn

from ..inference.steps import segment_step as batched_segment_step
from ..inference.steps import memory_step
from ..errors import VOSError
from ..io.paths import atomic_path
from ..models.stm import STM

OPSET = 18                 # ONNX Runtime >= 1.14 and TensorRT >= 8.6 run opset 18
MAX_BATCH = 256            # export-time bounds of the dynamic axes (the graphs take any size in range)
MAX_OBJECTS = 255
MEMORIZE_INPUTS, MEMORIZE_OUTPUTS = ("frame", "probs"), ("key", "value")
SEGMENT_INPUTS, SEGMENT_OUTPUTS = ("frame", "mem_key", "mem_value", "bias", "present"), ("probs",)
DYNAMIC_AXES = {          # input/output -> {axis: name}; every other axis is fixed at export
    "memorize": {"frame": {0: "batch"}, "probs": {0: "batch", 1: "objects"},
                 "key": {0: "batch", 1: "objects"}, "value": {0: "batch", 1: "objects"}},
    "segment": {"frame": {0: "batch"}, "mem_key": {0: "batch", 1: "objects"},
                "mem_value": {0: "batch", 1: "objects"}, "bias": {0: "batch", 1: "objects"},
                "present": {0: "batch", 1: "objects"}, "probs": {0: "batch", 1: "objects_plus_background"}},
}
GRAPH_FILES = {"memorize": "memorize.onnx", "segment": "segment.onnx"}


class MemorizeGraph(nn.Module):
    """`memory_step`: frame [B, 3, H, W], probs [B, K, H, W] -> key [B, K, hw, C_k], value [B, K, hw, C_v]."""

    def __init__(self, net: STM):
        super().__init__()
        self.net = net

    def forward(self, frame: torch.Tensor, probs: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """The memory of `frame` for each object's probability map."""
        return memory_step(self.net, frame, probs)


class SegmentGraph(nn.Module):
    """`batched_segment_step` at the frame's own size: frame [B, 3, H, W], mem_key [B, K, N, C_k],
    mem_value [B, K, N, C_v], bias [B, K, N] (0 / -inf), present [B, K] bool -> probs [B, K+1, H, W]."""

    def __init__(self, net: STM):
        super().__init__()
        self.net = net

    def forward(self, frame: torch.Tensor, mem_key: torch.Tensor, mem_value: torch.Tensor,
                bias: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """Merged probabilities of background and objects (padding objects exactly 0)."""
        return batched_segment_step(self.net, frame, mem_key, mem_value, bias, present, tuple(frame.shape[2:]))


def example_inputs(net: STM, input_size: Tuple[int, int], slots: int, batch: int = 2, objects: int = 2,
                   seed: int = 0) -> Dict[str, Dict[str, torch.Tensor]]:
    """Random inputs of both graphs ({graph: {name: tensor}}) with the bank's shapes; every object has a
    readable slot (the bank always has the previous frame), the last slot is free (bias -inf)."""
    gen = torch.Generator().manual_seed(seed)
    H, W = input_size
    frame = torch.randn(batch, 3, H, W, generator=gen)                          # [B, 3, H, W]
    probs = torch.rand(batch, objects, H, W, generator=gen)                     # [B, K, H, W]
    hw = memory_positions(net, input_size)
    mem_key = torch.randn(batch, objects, slots * hw, net.keydim, generator=gen)   # [B, K, N, C_k]
    mem_value = torch.randn(batch, objects, slots * hw, net.valdim, generator=gen)
    bias = torch.zeros(batch, objects, slots * hw)                              # [B, K, N]
    if slots > 1:
        bias[:, :, (slots - 1) * hw:] = float("-inf")
    present = torch.ones(batch, objects, dtype=torch.bool)                      # [B, K]
    present[-1, -1] = objects == 1                                              # one padding object
    return {"memorize": {"frame": frame, "probs": probs},
            "segment": {"frame": frame, "mem_key": mem_key, "mem_value": mem_value, "bias": bias,
                        "present": present}}


@torch.no_grad()
def memory_positions(net: STM, input_size: Tuple[int, int]) -> int:
    """hw: memory positions of one frame at `input_size` (the key map's H/16 x W/16, rounded up)."""
    key, _ = memory_step(net, torch.zeros(1, 3, *input_size), torch.zeros(1, 1, *input_size))   # [1, 1, hw, C_k]
    return key.shape[2]


def _dynamic_shapes(graph: str, inputs: Tuple[str, ...]) -> Dict[str, Dict[int, object]]:
    """torch.export dims of a graph's inputs, after DYNAMIC_AXES."""
    dims = {"batch": torch.export.Dim("batch", min=1, max=MAX_BATCH),
            "objects": torch.export.Dim("objects", min=1, max=MAX_OBJECTS)}
    axes = DYNAMIC_AXES[graph]
    return {name: {axis: dims[label] for axis, label in axes[name].items()} for name in inputs}


def export_graph(module: nn.Module, graph: str, inputs: Dict[str, torch.Tensor], outputs: Tuple[str, ...],
                 path: str) -> None:
    """torch.onnx.export (dynamo exporter) of `module` to `path`, atomically, weights inside the file."""
    names = tuple(inputs)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")          # the exporter's deprecation and renaming notices
        try:
            torch.onnx.export(module, tuple(inputs.values()), tmp, dynamo=True, opset_version=OPSET,
                              input_names=list(names), output_names=list(outputs),
                              dynamic_shapes=_dynamic_shapes(graph, names), external_data=False,
                              verbose=False, report=False)
        except Exception as err:            # the exporter fails with many exception types
            raise VOSError(f"ONNX export of the {graph} step failed: {type(err).__name__}: "
                           f"{str(err).splitlines()[0][:300]}") from err


def export_graphs(net: STM, out_dir: str, input_size: Tuple[int, int], slots: int) -> Dict[str, str]:
    """Write memorize.onnx and segment.onnx of `net` (the folded fp32 copy) into `out_dir`; returns
    {graph: path}."""
    net = net.to(memory_format=torch.contiguous_format).eval()
    inputs = example_inputs(net, input_size, slots)
    paths = {graph: os.path.join(out_dir, name) for graph, name in GRAPH_FILES.items()}
    export_graph(MemorizeGraph(net), "memorize", inputs["memorize"], MEMORIZE_OUTPUTS, paths["memorize"])
    export_graph(SegmentGraph(net), "segment", inputs["segment"], SEGMENT_OUTPUTS, paths["segment"])
    return paths
