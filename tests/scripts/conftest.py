"""Fixtures of the end-to-end script tests (their helpers: tests/helpers/scripts.py): the pool that runs
the real command lines, WORKERS at a time, and a checkpoint of the tiny network."""
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.helpers.scripts import WORKERS, save_stm


@pytest.fixture(scope="session")
def script_pool():
    """Runs command lines WORKERS at a time."""
    pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="script")
    yield pool
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="module")
def r18_checkpoint(tmp_path_factory) -> str:
    """A checkpoint that fits the TINY network (resnet18, keydim 16, valdim 32)."""
    return save_stm(str(tmp_path_factory.mktemp("ckpt") / "r18.pth"), "resnet18")
