"""Shared test fixtures."""
import os
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# two threads unless the run sets its own count (`OMP_NUM_THREADS=1 pytest` runs everything on one thread);
# one per worker under pytest-xdist (`pytest -n 2`), whose workers share the cores
if "OMP_NUM_THREADS" not in os.environ:
    torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else 2)


def pytest_collection_modifyitems(config, items):
    """Skip tests marked `gpu` when CUDA is absent."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


# the fixtures shared by every folder, defined once in tests/helpers/fixtures.py
from tests.helpers.fixtures import one_thread, small_stm  # noqa: E402,F401
