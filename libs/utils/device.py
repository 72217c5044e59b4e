"""Choosing the device from `gpu_id`, and what the CPU can do."""
import logging
from typing import Iterable

import torch

log = logging.getLogger(__name__)


def resolve_device(gpu_id: int) -> torch.device:
    """`gpu_id` -1 -> CPU; otherwise that CUDA device, or the CPU with one warning when CUDA is absent."""
    if gpu_id < 0:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        log.warning("CUDA is not available: running on the CPU (set gpu_id -1 to silence this warning)")
        return torch.device("cpu")
    if gpu_id >= torch.cuda.device_count():
        log.warning("gpu_id %d does not exist (%d CUDA devices): using cuda:0", gpu_id, torch.cuda.device_count())
        gpu_id = 0
    return torch.device(f"cuda:{gpu_id}")


BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_has_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether the processor has bf16 instructions (AVX512-BF16 or AMX), per the Linux cpuinfo flags;
    False where that file cannot be read. Without them bf16 autocast on the CPU is emulated and slow."""
    try:
        with open(cpuinfo) as f:
            return has_any_flag(f, BF16_FLAGS)
    except OSError:
        return False


def has_any_flag(lines: Iterable[str], flags: Iterable[str]) -> bool:
    """Whether a `flags : ...` line of cpuinfo text names one of `flags`."""
    wanted = set(flags)
    return any(line.startswith("flags") and wanted & set(line.split(":", 1)[-1].split()) for line in lines)
