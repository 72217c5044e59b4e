"""The STM network: released state-dict layout, primitive shapes, soft aggregation."""
import os

import pytest
import torch

from libs.models.stm import STM, soft_aggregate

REF = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "reference")


def _reference(arch):
    with open(os.path.join(REF, f"stm_state_dict_{arch}.txt")) as f:
        return [tuple(line.rstrip("\n").split("\t")) for line in f if line.strip()]


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_state_dict_equals_released_layout(arch):
    model = STM(arch, 128, 512)
    mine = [(k, str(list(v.shape))) for k, v in model.state_dict().items()]
    assert mine == _reference(arch)


@pytest.mark.parametrize("arch,blocks,channels", [("resnet34", 6, 256), ("resnet101", 23, 1024)])
def test_deeper_archs_follow_the_same_naming(arch, blocks, channels):
    sd = STM(arch, 128, 512).state_dict()
    assert {k.split(".")[2] for k in sd if k.startswith("Encoder_Q.res4.")} == {str(i) for i in range(blocks)}
    assert sd["KV_M_r4.Key.weight"].shape == (128, channels, 3, 3)
    assert set(k for k in sd if not k.startswith("Encoder")) == set(
        k for k, _ in _reference("resnet50") if not k.startswith("Encoder"))


@pytest.mark.parametrize("arch", ["resnet18", "resnet34", "resnet50", "resnet101"])
def test_primitive_shapes(arch):
    torch.manual_seed(0)
    model = STM(arch, keydim=32, valdim=64).eval()
    frame = torch.randn(2, 3, 64, 96)
    probs = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        key, value = model.encode_memory(frame, probs)
        assert key.shape == (2, 3, 4 * 6, 32) and value.shape == (2, 3, 24, 64)
        query = model.encode_query(frame)
        assert query.key.shape == (2, 32, 4, 6) and query.value.shape == (2, 64, 4, 6)
        readout = model.read_memory(key, value, query.key)
        assert readout.shape == (2, 3, 64, 4, 6)
        fg = model.decode(readout, query, (64, 96))
        assert fg.shape == (2, 3, 64, 96) and fg.min() >= 0 and fg.max() <= 1
        logits = model.segment(query, key, value, (64, 96))
    merged = torch.softmax(logits, dim=1)
    assert merged.shape == (2, 4, 64, 96)
    assert torch.allclose(merged.sum(1), torch.ones(2, 64, 96), atol=1e-5)


def test_soft_aggregate_values():
    probs = torch.tensor([0.5, 0.25]).view(1, 2, 1, 1)
    merged = torch.softmax(soft_aggregate(probs), dim=1).flatten()
    bg = 0.5 * 0.75
    odds = torch.tensor([bg / (1 - bg), 1.0, 1 / 3])
    assert torch.allclose(merged, odds / odds.sum(), atol=1e-6)


def test_soft_aggregate_clamps_certain_pixels():
    logits = soft_aggregate(torch.tensor([1.0, 0.0]).view(1, 2, 1, 1))
    assert torch.isfinite(logits).all()
    q = torch.tensor(1 - 1e-7, dtype=torch.float32)  # the clamp's upper bound, in float32
    assert logits[0, 1].item() == pytest.approx(torch.log(q / (1 - q)).item(), rel=1e-6)
    assert logits[0, 2].item() == pytest.approx(-logits[0, 1].item(), rel=0.02)


def test_memory_read_is_softmax_over_all_memory_positions():
    mem_key = torch.zeros(1, 1, 3, 2)
    mem_key[0, 0, :, 0] = torch.tensor([1.0, 0.0, -1.0])
    mem_value = torch.eye(3).view(1, 1, 3, 3)
    query_key = torch.tensor([2.0, 0.0]).view(1, 2, 1, 1)
    out = STM.read_memory(mem_key, mem_value, query_key).flatten()
    expected = torch.softmax(torch.tensor([2.0, 0.0, -2.0]) / 2 ** 0.5, dim=0)
    assert torch.allclose(out, expected, atol=1e-6)
