"""The one place that chooses the device (from `gpu_id`, or cpu/cuda/auto), and what the CPU can do.

torch is imported only inside the functions that need it, so the torch-free evaluation package
(`python3 -m libs.evaluation`) can resolve its `--device` without loading torch on a CPU machine.
"""
import functools
import logging
import os
from typing import TYPE_CHECKING, Iterable

from ..errors import VOSError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)
DEVICE_CHOICES = ("cpu", "cuda", "auto")


def resolve_device(gpu_id: int) -> "torch.device":
    """`gpu_id` -1 -> CPU; otherwise that CUDA device, or the CPU with one warning when CUDA is absent."""
    import torch

    if gpu_id < 0:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        log.warning("CUDA is not available: running on the CPU (set gpu_id -1 to silence this warning)")
        return torch.device("cpu")
    if gpu_id >= torch.cuda.device_count():
        log.warning("gpu_id %d does not exist (%d CUDA devices): using cuda:0", gpu_id, torch.cuda.device_count())
        gpu_id = 0
    return torch.device(f"cuda:{gpu_id}")


def resolve_device_kind(choice: str, option: str = "--device") -> str:
    """'cpu' or 'cuda' for `choice` 'cpu' / 'cuda' / 'auto' (auto: CUDA when torch sees a GPU); a VOSError
    naming `option` for anything else, or for 'cuda' without a usable GPU."""
    if choice not in DEVICE_CHOICES:
        raise VOSError(f"{option} must be {', '.join(DEVICE_CHOICES[:-1])} or {DEVICE_CHOICES[-1]}, got {choice!r}")
    if choice == "cpu":
        return "cpu"
    available = cuda_available()
    if choice == "cuda" and not available:
        raise VOSError(f"{option} cuda was asked but torch sees no CUDA device; use {option} cpu")
    return "cuda" if available else "cpu"


def cuda_available() -> bool:
    """True when an NVIDIA driver is loaded and torch can use it (torch is imported only then)."""
    if not os.path.exists("/proc/driver/nvidia/version"):
        return False
    import torch

    return torch.cuda.is_available()


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


def cpu_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the system has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@functools.lru_cache(maxsize=None)
def usable_workers(requested: int) -> int:
    """`workers` clamped to the CPU cores, saying so once per process (processes beyond the cores only
    compete for them)."""
    cores = cpu_cores()
    if requested <= cores:
        return requested
    log.warning("workers %d: this machine has %d CPU core(s); using %d worker processes", requested, cores, cores)
    return cores
