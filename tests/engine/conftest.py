"""Fixtures shared by the engine tests."""
import pytest
import torch

from libs.models.stm import STM


@pytest.fixture
def one_thread():
    """One torch thread: on a 2-core machine shared with other jobs, 2 threads ran the small engine tests
    ~100x slower."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def small_stm():
    """A resnet18 STM (keydim 16, valdim 32) with random weights as initialised: probabilities stay away
    from 0 and 1, so differences show."""
    torch.manual_seed(0)
    return STM("resnet18", keydim=16, valdim=32).eval()
