"""Choosing the device from `gpu_id`."""
import logging

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
