"""Helpers of benchmarks/engine_speed.py: device timing and peak memory, the process's TF32 settings kept
across a plain path, and the --read mode (the memory bank's read and the attention alone)."""
import argparse
import contextlib
import os
import time
from typing import Optional, Tuple

import torch

from libs.inference.memory import MemoryBank
from libs.models.stm import STM


def sync(device: torch.device) -> None:
    """Wait for the GPU's queued work (nothing on a CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_reset(device: torch.device) -> None:
    """Start a new GPU peak-memory measurement."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def peak_mib(device: torch.device) -> Optional[float]:
    """Peak GPU memory since the last reset in MiB (None on a CPU)."""
    return torch.cuda.max_memory_allocated(device) / 2 ** 20 if device.type == "cuda" else None


@contextlib.contextmanager
def precision_kept():
    """The process's TF32 settings restored after the block: a plain backend turns TF32 off for the process,
    which must not slow the fp32 fast path measured after it."""
    matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn
    new_api = hasattr(matmul, "fp32_precision") and hasattr(conv, "conv")
    flags = ((matmul, "fp32_precision"), (conv.conv, "fp32_precision")) if new_api else (
        (matmul, "allow_tf32"), (conv, "allow_tf32"))
    saved = [getattr(obj, name) for obj, name in flags]
    try:
        yield
    finally:
        for (obj, name), value in zip(flags, saved):
            setattr(obj, name, value)


def fmt(value: Optional[float], spec: str) -> str:
    """value formatted, or '-' when there is none."""
    return "-" if value is None else format(value, spec)


def memory_now(device: torch.device) -> str:
    """Allocated and peak GPU memory, or the process's resident memory on a CPU."""
    if device.type == "cuda":
        return (f"allocated {torch.cuda.memory_allocated(device) / 2 ** 20:.0f} MiB | "
                f"peak {torch.cuda.max_memory_allocated(device) / 2 ** 20:.0f} MiB")
    with open("/proc/self/statm") as f:
        resident = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return f"resident {resident / 2 ** 20:.0f} MiB"


# --read rows: (name, the bank's fixed flag, SDPA read): the plain and fast paths read only the used slots,
# the compiled path the whole fixed-shape buffers with their bias
READ_PATHS = (("plain", False, False), ("fast", False, True), ("compiled", True, True))


def time_memory_read(args: argparse.Namespace, size: Tuple[int, int], device: torch.device) -> None:
    """The memory read alone per path: the bank staging the previous frame and returning what is read,
    then the attention (random keys); N = the memory positions read."""
    h, w = -(-size[0] // 16), -(-size[1] // 16)
    K, hw = args.objects, h * w
    print("| memory frames | N | path | bank read ms | attention ms | peak MiB |\n| --- | --- | --- | --- | --- | --- |")
    for frames in [int(m) for m in args.read.split(",")]:
        memory = [(torch.randn(1, K, hw, args.keydim, device=device) * 0.1,
                   torch.randn(1, K, hw, args.valdim, device=device)) for _ in range(frames)]
        query = torch.randn(1, args.keydim, h, w, device=device)
        for path, fixed, sdpa in READ_PATHS:
            bank = MemoryBank(1, fixed=fixed)
            for i, stored in enumerate(memory[:-1]):
                bank.read(stored)
                bank.commit(0, i)
            for _ in range(3):          # the last of three repetitions counts
                peak_reset(device)
                start = time.perf_counter()
                mem_key, mem_value, bias = bank.read(memory[-1])
                sync(device)
                mid = time.perf_counter()
                STM.read_memory(mem_key, mem_value, query, bias, sdpa=sdpa)
                sync(device)
                end = time.perf_counter()
            print(f"| {frames} | {mem_key.shape[2]} | {path} | {1e3 * (mid - start):.2f} | {1e3 * (end - mid):.2f} "
                  f"| {fmt(peak_mib(device), '.0f')} |", flush=True)
