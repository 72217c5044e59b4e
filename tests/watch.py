"""Test helpers that observe the engine while a real run drives it."""
from typing import List


def record_bank_sizes(engine, sizes: List[int]):
    """Wrap `engine.step` so that the memory bank's frame count is appended to `sizes` after every frame;
    returns the engine."""
    step = engine.step

    def watched(*args, **kwargs):
        out = step(*args, **kwargs)
        sizes.append(len(engine.bank))
        return out

    engine.step = watched
    return engine
