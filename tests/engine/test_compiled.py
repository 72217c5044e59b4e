"""The compiled path: fixed-shape steps that compile without graph breaks, a handful of times per video,
and write the masks the plain path writes; the bf16 copy; no precision setting changed per frame."""
import collections

import pytest
import torch
from torch._dynamo.utils import counters

from libs.errors import VOSError
from libs.inference.backend import Backend, use_exact_float32
from tests.engine.single import OneVideo as InferenceEngine

H, W = 32, 64


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model(small_stm):
    """The shared small random-weight STM (tests/engine/conftest.py)."""
    return small_stm


def _video(num_frames):
    """num_frames x [1, 3, H, W] frames that change smoothly, and a 2-object first mask [1, 3, H, W]."""
    g = torch.Generator().manual_seed(0)
    base, drift = torch.randn(1, 3, H, W, generator=g), torch.randn(1, 3, H, W, generator=g)
    frames = [base + 0.05 * t * drift for t in range(num_frames)]
    mask = torch.zeros(1, 3, H, W)
    mask[0, 1, 4:16, 4:20] = 1
    mask[0, 2, 18:30, 30:60] = 1
    mask[0, 0] = 1 - mask[0, 1:].sum(0)
    return frames, mask


def _run(engine, frames, mask):
    """Written probabilities of every frame, [T, K+1, H, W]."""
    engine.reset()
    return torch.cat([engine.step(f, mask if t == 0 else None) for t, f in enumerate(frames)])


class CountingBackend:
    """A torch.compile backend that runs graphs eagerly and counts them per step function."""

    STEPS = {"l_probs_": "memory", "l_mem_key_": "segment", "l_stem_": "correction"}

    def __init__(self):
        self.graphs = collections.Counter()

    def __call__(self, gm: torch.fx.GraphModule, example_inputs):
        names = {n.name for n in gm.graph.nodes if n.op == "placeholder"}
        self.graphs[next(step for key, step in self.STEPS.items() if key in names)] += 1
        return gm.forward


def test_a_growing_video_compiles_each_step_a_few_times_without_graph_breaks(model):
    """40 frames, every frame stored (save_freq 1), correction on every frame: the bank grows to 40 slots,
    so the segment step compiles once per capacity (8, 16, 32, 64), the others once: 6 graphs in all."""
    torch._dynamo.reset()
    counters.clear()
    backend = CountingBackend()
    frames, mask = _video(40)
    kwargs = dict(save_freq=1, loop=1, correction_rate=50.0, fast=True)
    compiled = InferenceEngine(model, compile=True, compile_backend=backend, **kwargs)
    out = _run(compiled, frames, mask)
    assert dict(backend.graphs) == {"memory": 1, "segment": 4, "correction": 1}
    assert compiled.bank.capacity == 64 and len(compiled.frame_ids) == 39
    assert not counters["graph_break"]
    again = _run(compiled, frames[:10], mask)                       # a second video reuses the graphs
    assert sum(backend.graphs.values()) == 6 and torch.allclose(again, out[:10], atol=1e-5)
    eager = _run(InferenceEngine(model, **kwargs), frames, mask)
    assert torch.allclose(out, eager, atol=1e-4)


def test_compile_needs_the_fast_path(model):
    with pytest.raises(VOSError, match="compile True needs fast_inference True"):
        Backend(model, compile=True)


def _precision():
    """(matmul, cuDNN convolution) fp32 precision settings."""
    return torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision


def test_segmenting_changes_no_precision_setting_and_the_exact_switch_is_explicit(model):
    """No process-wide setting changes per frame (two sessions in two threads would race on it): on the CPU
    a plain or fast run leaves TF32 as the user set it; on a GPU the plain backend calls
    `use_exact_float32` once when it is built (tests/engine/test_fast_path.py's CUDA test)."""
    frames, mask = _video(3)
    old = _precision()
    torch.backends.cuda.matmul.fp32_precision = torch.backends.cudnn.conv.fp32_precision = "tf32"
    try:
        _run(InferenceEngine(model, save_freq=1, loop=1), frames, mask)
        _run(InferenceEngine(model, save_freq=1, fast=True), frames, mask)
        assert _precision() == ("tf32", "tf32")
        use_exact_float32()
        assert _precision() == ("ieee", "ieee")
    finally:
        torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision = old


@pytest.fixture(scope="module")
def inductor_runs(model):
    """Plain, fast and inductor-compiled engines on one 8-frame video (loop 1, save_freq 2, rate 50). The
    shapes (resnet18 16/32, 32x64, 2 objects, 8 slots, fp32, one thread) are those of the test.py run in
    tests/scripts/test_compiled_script.py, so one of the two compiles and the other reads inductor's cache."""
    torch.set_num_threads(1)
    frames, mask = _video(8)
    kwargs = dict(save_freq=2, loop=1, correction_rate=50.0)
    compiled = InferenceEngine(model, fast=True, compile=True, **kwargs)
    return dict(plain=_run(InferenceEngine(model, **kwargs), frames, mask),
                uncorrected=_run(InferenceEngine(model, save_freq=2), frames, mask),
                fast=_run(InferenceEngine(model, fast=True, **kwargs), frames, mask),
                compiled=_run(compiled, frames, mask), engine=compiled)


def test_inductor_compiled_engine_writes_the_plain_paths_masks(inductor_runs):
    """Probabilities, not labels, are compared: random weights leave near-ties that any rounding may flip. On
    these unsaturated weights the chain of rate-50 corrections does not amplify rounding (fast and plain
    differ by 5e-7, measured), so the bound is 2000x that, and far below the corrections' own effect (0.02)."""
    plain, fast, compiled = inductor_runs["plain"], inductor_runs["fast"], inductor_runs["compiled"]
    assert compiled.shape == plain.shape == (8, 3, H, W)
    later = plain[1:]
    assert ((later > 0.01) & (later < 0.99)).float().mean() > 0.3       # not saturated: differences would show
    assert (plain - inductor_runs["uncorrected"]).abs().max() > 5e-3    # the corrections changed later frames
    assert (compiled - plain).abs().max() < 1e-3
    assert (compiled - fast).abs().max() < 1e-3                         # the same function, fused differently
    assert inductor_runs["engine"].bank.capacity == 8 and inductor_runs["engine"].frame_ids == [0, 2, 4, 6]


def test_bf16_copy_holds_bf16_weights_and_keeps_the_softmaxes_in_fp32(model):
    engine = InferenceEngine(model, save_freq=2, loop=1, correction_rate=50.0, fast=True, amp=True)
    assert {p.dtype for p in engine.net.parameters()} == {torch.bfloat16}
    assert engine.net.Encoder_Q.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    frames, mask = _video(5)
    out = _run(engine, frames, mask)
    assert out.dtype == torch.float32 and engine.bank.key.dtype == torch.bfloat16
    assert torch.allclose(out.sum(1), torch.ones_like(out[:, 0]), atol=1e-5)   # fp32 softmax: sums to 1
    assert engine.prev_mask.dtype == torch.float32                          # the corrected prediction too
