"""Test helpers that observe the inference core while a real run drives it."""
from typing import List


def record_bank_sizes(core, sizes: List[int]):
    """Wrap the core's `start` and `step` so that the memory frames of its first video are appended to
    `sizes` after every frame it segments (0 at the given first frame); returns the core."""
    start, step = core.start, core.step

    def started(*args, **kwargs):
        start(*args, **kwargs)
        sizes.append(len(core.bank.rows[0].frame_ids))

    def stepped(*args, **kwargs):
        out = step(*args, **kwargs)
        sizes.append(len(core.bank.rows[0].frame_ids))
        return out

    core.start, core.step = started, stepped
    return core
