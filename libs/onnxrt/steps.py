"""OnnxSteps: the fast path's memorize and segment steps run by onnxruntime from an exported folder, with
the shapes and types of the PyTorch steps (torch tensors in and out), so an inference core can call it in
place of them."""
import os
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from yacs.config import CfgNode

from ..errors import VOSError
from .manifest import check_manifest, read_manifest, slots_for

# onnx_provider -> onnxruntime execution providers, in order of preference (the CPU one runs what the others cannot)
PROVIDERS = {"cpu": ("CPUExecutionProvider",),
             "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
             "tensorrt": ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")}


def _import_ort():
    """onnxruntime, or one line saying how to install it."""
    try:
        import onnxruntime
    except ImportError:
        raise VOSError("runtime onnxruntime needs the onnxruntime package: pip install -r requirements.txt "
                       "(onnxruntime-gpu for the cuda / tensorrt providers)") from None
    return onnxruntime


def session_providers(provider: str, available: Sequence[str], device_id: int = 0) -> list:
    """The providers list of an InferenceSession for onnx_provider `provider`; one line when this
    onnxruntime build lacks the first of them."""
    if provider not in PROVIDERS:
        raise VOSError(f"onnx_provider must be one of {', '.join(PROVIDERS)}; got {provider!r}")
    wanted = PROVIDERS[provider]
    if wanted[0] not in available:
        raise VOSError(f"onnx_provider {provider} needs onnxruntime's {wanted[0]}, which this onnxruntime lacks "
                       f"(it has {', '.join(available)}): install onnxruntime-gpu in place of onnxruntime")
    options = {"device_id": max(device_id, 0)}
    return [(name, options) if name != "CPUExecutionProvider" else name for name in wanted if name in available]


class OnnxSteps:
    """The memorize and segment graphs of `onnx_dir` on onnxruntime. `expected` (arch, keydim, valdim,
    input_size, slots) and `checkpoint` (a path) are checked against the folder's manifest; `threads`
    (0: onnxruntime's default) bounds the CPU provider's threads."""

    def __init__(self, onnx_dir: str, expected: Optional[Dict[str, Any]] = None, checkpoint: Optional[str] = None,
                 provider: str = "cpu", threads: int = 0, device_id: int = 0):
        ort = _import_ort()
        self.onnx_dir = onnx_dir
        self.manifest = read_manifest(onnx_dir)
        check_manifest(self.manifest, onnx_dir, expected or {}, checkpoint)
        self.input_size = tuple(self.manifest["input_size"])                      # (H, W)
        self.positions = self.manifest["slots"] * self.manifest["hw"]             # N of the bank
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3                                            # errors only
        providers = session_providers(provider, ort.get_available_providers(), device_id)
        self._memorize = self._session(ort, "memorize", options, providers)
        self._segment = self._session(ort, "segment", options, providers)
        self.providers = self._segment.get_providers()

    def _session(self, ort, graph: str, options, providers: list):
        """An InferenceSession of one graph file of the folder."""
        path = os.path.join(self.onnx_dir, self.manifest["graphs"][graph])
        if not os.path.isfile(path):
            raise VOSError(f"onnx_dir {self.onnx_dir!r} lacks {os.path.basename(path)}; export the graphs again")
        try:
            return ort.InferenceSession(path, sess_options=options, providers=providers)
        except Exception as err:     # onnxruntime raises its own exception types for unreadable graphs
            raise VOSError(f"onnxruntime cannot load {path!r}: {str(err).splitlines()[0][:300]}") from None

    @classmethod
    def from_cfg(cls, cfg: CfgNode) -> "OnnxSteps":
        """The steps of cfg.onnx_dir for this run (model keys, input_size, max_memory_frames, initial
        checked against the manifest; onnx_provider on gpu_id; torch's thread count)."""
        expected = {"arch": cfg.arch, "keydim": cfg.keydim, "valdim": cfg.valdim,
                    "input_size": list(cfg.input_size), "slots": slots_for(cfg.max_memory_frames)}
        return cls(cfg.onnx_dir, expected, cfg.initial or None, cfg.onnx_provider, torch.get_num_threads(),
                   cfg.gpu_id)

    def memory(self, frame: torch.Tensor, probs: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """frame [B, 3, H, W] (normalised), objects' probabilities [B, K, H, W] -> key [B, K, hw, C_k],
        value [B, K, hw, C_v]: fp32 CPU tensors."""
        self._check_frame(frame)
        if probs.shape[0] != frame.shape[0] or tuple(probs.shape[2:]) != self.input_size:
            raise ValueError(f"probs {tuple(probs.shape)} do not fit frame {tuple(frame.shape)}")
        key, value = self._memorize.run(None, {"frame": _array(frame), "probs": _array(probs)})
        return torch.from_numpy(key), torch.from_numpy(value)

    def segment(self, frame: torch.Tensor, mem_key: torch.Tensor, mem_value: torch.Tensor, bias: torch.Tensor,
                present: torch.Tensor, out_size: Tuple[int, int]) -> torch.Tensor:
        """frame [B, 3, H, W], the bank mem_key [B, K, N, C_k], mem_value [B, K, N, C_v], bias [B, K, N]
        (0 / -inf), present [B, K] bool -> probabilities [B, K+1, H, W] fp32 (padding objects 0); N is
        slots x hw of the manifest and out_size the frame's (H, W). Every object, padding too, must have
        a readable position (the bank always has the previous frame): for a row of -inf PyTorch's read
        gives zeros, onnxruntime's softmax does not, so such a bias is refused."""
        self._check_frame(frame)
        if tuple(out_size) != self.input_size or mem_key.shape[2] != self.positions:
            raise ValueError(f"the graphs segment {self.input_size} frames with {self.positions} memory positions; "
                             f"got out_size {tuple(out_size)} and mem_key {tuple(mem_key.shape)}")
        if not bool((bias == 0).any(dim=2).all()):
            raise ValueError("bias [B, K, N] masks every memory position of an object; write the previous frame first")
        feeds = {"frame": _array(frame), "mem_key": _array(mem_key), "mem_value": _array(mem_value),
                 "bias": _array(bias), "present": present.detach().cpu().numpy().astype(bool)}
        (probs,) = self._segment.run(None, feeds)
        return torch.from_numpy(probs)

    def _check_frame(self, frame: torch.Tensor) -> None:
        """A frame of the exported size (the graphs' H and W are fixed)."""
        if frame.dim() != 4 or tuple(frame.shape[2:]) != self.input_size:
            raise ValueError(f"the graphs in {self.onnx_dir!r} take [B, 3, {self.input_size[0]}, "
                             f"{self.input_size[1]}] frames; got {tuple(frame.shape)}")


def _array(tensor: torch.Tensor) -> np.ndarray:
    """A contiguous fp32 numpy array of a tensor (no copy for a contiguous fp32 CPU tensor)."""
    return np.ascontiguousarray(tensor.detach().to("cpu", torch.float32).numpy())
