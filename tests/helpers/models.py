"""The tiny networks and checkpoints the tests build: resnet18, keydim 16, valdim 32 (fast on a CPU)."""
import torch
import yaml

from libs.models import STM, save_weights

TINY_MODEL = {"arch": "resnet18", "keydim": 16, "valdim": 32}


def tiny_stm(seed: int = 0, arch: str = "resnet18", keydim: int = 16, valdim: int = 32) -> STM:
    """A randomly initialised STM, the same for the same `seed`."""
    torch.manual_seed(seed)
    return STM(arch, keydim, valdim)


def save_stm(path: str, arch: str) -> str:
    """Save a freshly built STM(arch, keydim 16, valdim 32) in the released layout; returns `path`."""
    save_weights(STM(arch, 16, 32), path)
    return path


def save_tiny_checkpoint(path: str, **config) -> str:
    """A random tiny STM saved with its config (TINY_MODEL and `config`), as train.py saves them."""
    model = tiny_stm(0)
    torch.save({"state_dict": model.state_dict(), "config": yaml.safe_dump({**TINY_MODEL, **config})}, path)
    return path
