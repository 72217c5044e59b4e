"""A frozen inference copy of the STM: batch norm folded into the convolutions, channels-last layout."""
import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .backbone import ResNetTrunk
from .stm import STM


def inference_copy(model: STM, channels_last: bool = True, dtype: torch.dtype = torch.float32) -> STM:
    """A copy of `model` for inference: eval mode, no parameter needs gradients, every batch norm of
    the encoders folded into the convolution before it (one kernel instead of two), and, with
    `channels_last`, weights in the channels-last layout; `dtype` (e.g. torch.bfloat16) is the type of
    its weights, folded in fp32 first. Computes the same function up to rounding; the original model
    is untouched (later changes to it do not reach the copy)."""
    net = copy.deepcopy(model).eval()
    for trunk in (net.Encoder_M, net.Encoder_Q):
        fold_trunk(trunk)
    net.requires_grad_(False)
    net.to(dtype=dtype)
    if channels_last:
        net.to(memory_format=torch.channels_last)
    return net


def fold_trunk(trunk: ResNetTrunk) -> None:
    """Fold the trunk's batch norms, in place: the stem's and those inside every residual block."""
    fold_stem(trunk)
    for layer in (trunk.res2, trunk.res3, trunk.res4):
        for block in layer:
            fold_block(block)


def fold_stem(trunk: ResNetTrunk) -> None:
    """bn1 follows the SUM of conv1(frame) (+ conv1_m(mask) + conv1_bg(background) in the memory
    encoder): its scale goes into every summed convolution, its shift into conv1's bias only."""
    bn = trunk.bn1
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)             # [64]
    shift = bn.bias - bn.running_mean * scale                           # [64]
    convs = [trunk.conv1] + [getattr(trunk, n) for n in ("conv1_m", "conv1_bg") if hasattr(trunk, n)]
    with torch.no_grad():
        for conv in convs:
            conv.weight.mul_(scale.view(-1, 1, 1, 1))
        bias = shift if trunk.conv1.bias is None else trunk.conv1.bias * scale + shift
        trunk.conv1.bias = nn.Parameter(bias.detach().clone(), requires_grad=False)
    trunk.bn1 = nn.Identity()


def fold_block(block: nn.Module) -> None:
    """Fold convN/bnN pairs of a torchvision BasicBlock or Bottleneck and its downsample branch."""
    for i in (1, 2, 3):
        conv, bn = getattr(block, f"conv{i}", None), getattr(block, f"bn{i}", None)
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
            setattr(block, f"conv{i}", fuse_conv_bn_eval(conv, bn))
            setattr(block, f"bn{i}", nn.Identity())
    down = getattr(block, "downsample", None)
    if isinstance(down, nn.Sequential) and len(down) == 2 and isinstance(down[1], nn.BatchNorm2d):
        block.downsample = nn.Sequential(fuse_conv_bn_eval(down[0], down[1]), nn.Identity())
