"""The random generators' states (Python, NumPy, torch, CUDA) saved in checkpoints, for bit-exact resumes."""
import logging
import random
from typing import Any, Dict, List

import numpy as np
import torch

log = logging.getLogger("libs.training.trainer")


def rng_state() -> Dict[str, Any]:
    """Python, NumPy, torch (and CUDA) RNG states in a weights_only-loadable form."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(), "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos,
                                                     has_gauss, cached], "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    """Restore what `rng_state` saved."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        set_cuda_rng_states(list(state["cuda"]))


def set_cuda_rng_states(states: List[torch.Tensor]) -> None:
    """Restore one saved generator state per CUDA device, as far as both exist; says so when the
    checkpoint was written with another number of devices (resuming on fewer or more GPUs)."""
    count = torch.cuda.device_count()
    for index, state in enumerate(states[:count]):
        torch.cuda.set_rng_state(state, index)
    if len(states) != count:
        log.warning("the checkpoint holds CUDA RNG states of %d device(s), this machine has %d: restored %d; "
                    "the run continues, but not bit for bit as on the original devices",
                    len(states), count, min(len(states), count))
