"""The inference copy: batch norm folded into the convolutions computes the same encoders."""
import pytest
import torch
from torch import nn

from libs.models.fold import inference_copy
from libs.models.stm import STM


def _model(arch: str) -> STM:
    """Random weights with batch-norm statistics far from the identity, so a wrong fold shows."""
    torch.manual_seed(0)
    model = STM(arch, keydim=16, valdim=32)
    g = torch.Generator().manual_seed(1)
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
        n = bn.num_features
        bn.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
        bn.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
        bn.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
        bn.bias.data.copy_(torch.rand(n, generator=g) * 0.4 - 0.2)
    return model.eval()


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_folded_encoders_compute_the_same(arch):
    model = _model(arch)
    net = inference_copy(model)
    frame = torch.randn(1, 3, 64, 96)
    probs = torch.rand(1, 2, 64, 96)
    with torch.no_grad():
        key, value = model.encode_memory(frame, probs)
        key2, value2 = net.encode_memory(frame.contiguous(memory_format=torch.channels_last), probs)
        query, query2 = model.encode_query(frame), net.encode_query(frame)
    assert torch.allclose(key, key2, rtol=1e-4, atol=1e-4 * key.abs().max().item())
    assert torch.allclose(value, value2, rtol=1e-4, atol=1e-4 * value.abs().max().item())
    for a, b in zip(query, query2):
        assert a.shape == b.shape
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4 * a.abs().max().item())


def test_the_copy_has_no_batch_norm_and_is_frozen_and_channels_last():
    model = _model("resnet18")
    net = inference_copy(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    assert not any(p.requires_grad for p in net.parameters())
    assert not net.training
    assert net.Encoder_Q.res2[0].conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert net.Encoder_M.conv1.bias is not None                    # the stem's shift lives here now


def test_the_original_model_is_untouched():
    model = _model("resnet18").train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    inference_copy(model)
    after = model.state_dict()
    assert list(after) == list(before)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.requires_grad for p in model.parameters())
    assert model.training
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) > 0
    assert model.Encoder_M.conv1.bias is None
