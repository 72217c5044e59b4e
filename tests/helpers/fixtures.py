"""Fixtures used across test folders, defined once; tests/conftest.py registers them for every test."""
import pytest
import torch

from tests.helpers.models import tiny_stm


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for the tests of the module that asks (restored after it): on a 2-core machine shared with other jobs, 2 threads ran the small
    engine tests ~100x slower."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def small_stm():
    """A resnet18 STM (keydim 16, valdim 32) with random weights as initialised: probabilities stay away
    from 0 and 1, so differences show."""
    return tiny_stm(seed=0).eval()
