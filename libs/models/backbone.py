"""ResNet trunks truncated after layer3, registered by name, with offline-first ImageNet weights.

A new backbone is one class plus one line: a torchvision-style ResNet (conv1, bn1, relu, maxpool,
layer1..layer3 giving 64e, 128e and 256e channels at strides 4, 8 and 16) and its register line, e.g.

    class ResNet10(models.ResNet):
        def __init__(self, weights=None):
            super().__init__(models.resnet.BasicBlock, [1, 1, 1, 1])

    register_backbone("resnet10", ResNet10)        # expand 1; no ImageNet weights

after which `arch resnet10` is accepted by the config, train.py, test.py and the demo.
"""
import os
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch import nn
from torchvision import models

from ..errors import VOSError
from ..utils.constants import IMAGENET_MEAN, IMAGENET_STD

# name -> (torchvision-style constructor, torchvision weights enum or None, channel expansion of the blocks)
_BACKBONES: Dict[str, Tuple[Callable[..., nn.Module], Optional[object], int]] = {}


def register_backbone(name: str, constructor: Callable[..., nn.Module], weights: Optional[object] = None,
                      expand: int = 1) -> None:
    """Make a torchvision-style ResNet available as `arch NAME`: `constructor(weights=None)` builds it,
    `weights` is its torchvision ImageNet weights enum (None: none exist), `expand` 1 for basic blocks,
    4 for bottlenecks."""
    _BACKBONES[name] = (constructor, weights, expand)


def known_backbones() -> List[str]:
    """Names of every registered backbone, in registration order."""
    return list(_BACKBONES)


register_backbone("resnet18", models.resnet18, models.ResNet18_Weights.IMAGENET1K_V1, 1)
register_backbone("resnet34", models.resnet34, models.ResNet34_Weights.IMAGENET1K_V1, 1)
register_backbone("resnet50", models.resnet50, models.ResNet50_Weights.IMAGENET1K_V1, 4)
register_backbone("resnet101", models.resnet101, models.ResNet101_Weights.IMAGENET1K_V1, 4)


def channel_expansion(arch: str) -> int:
    """1 for basic-block ResNets (18/34), 4 for bottleneck ones (50/101)."""
    return _lookup(arch)[2]


def _lookup(arch: str) -> Tuple[Callable[..., nn.Module], object, int]:
    if arch not in _BACKBONES:
        raise VOSError(f"config key 'arch' must be one of {', '.join(_BACKBONES)}; got {arch!r} (a new backbone "
                       "is one class plus a register_backbone line, see DATASET.md)")
    return _BACKBONES[arch]


def build_resnet(arch: str) -> nn.Module:
    """A randomly initialised torchvision ResNet (never downloads)."""
    return _lookup(arch)[0](weights=None)


def imagenet_state_dict(arch: str, allow_download: bool = True) -> Dict[str, torch.Tensor]:
    """torchvision's ImageNet weights from the local torch hub cache; downloads only if asked and online."""
    weights = _lookup(arch)[1]
    if weights is None:
        raise VOSError(f"arch {arch} has no ImageNet weights registered; pass backbone_weights '' (random init) "
                       "or a path to a state dict of it")
    filename = os.path.basename(weights.url)
    cached = os.path.join(torch.hub.get_dir(), "checkpoints", filename)
    if os.path.isfile(cached):
        return torch.load(cached, map_location="cpu", weights_only=True)
    if allow_download:
        try:
            return torch.hub.load_state_dict_from_url(weights.url, map_location="cpu", progress=False)
        except Exception as err:  # network errors come in many types
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise VOSError(
                f"ImageNet weights for {arch} are not in the torch hub cache ({cached}) and the download "
                f"failed ({reason}). Offline: copy {filename} there from a machine that has it, or pass "
                f"backbone_weights /path/to/{filename}, or backbone_weights '' for random init") from None
    raise VOSError(f"ImageNet weights for {arch} not found at {cached}; copy {filename} there, or pass "
                   f"backbone_weights /path/to/{filename}, or backbone_weights '' for random init")


def load_backbone_weights(resnet: nn.Module, arch: str, source: str) -> None:
    """Load '' (keep random init), 'imagenet' or a path to a torchvision ResNet state dict into `resnet`."""
    if not source:
        return
    if source == "imagenet":
        state = imagenet_state_dict(arch)
    else:
        if not os.path.isfile(source):
            raise VOSError(f"backbone_weights file {source!r} not found (use '' for random init or 'imagenet')")
        state = torch.load(source, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state) if isinstance(state, dict) else state
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    missing, unexpected = resnet.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("fc.")]
    if missing or unexpected:
        raise VOSError(f"backbone_weights {source!r} do not fit {arch}: missing {missing[:5]}, "
                       f"unexpected {unexpected[:5]} (is it a torchvision {arch} state dict?)")


class ResNetTrunk(nn.Module):
    """conv1/bn1/relu/maxpool and layers 1-3 of a ResNet, named as in the released checkpoints."""

    def __init__(self, arch: str, backbone_weights: str = "", with_mask_inputs: bool = False):
        super().__init__()
        resnet = build_resnet(arch)
        load_backbone_weights(resnet, arch, backbone_weights)
        # Unused by forward (frames arrive normalised): kept only because the released checkpoints
        # hold these keys (Encoder_M.mean, Encoder_Q.std, ...) and loading is strict.
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        if with_mask_inputs:  # memory encoder: object mask and background mask enter beside the frame
            self.conv1_m = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
            self.conv1_bg = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.conv1 = resnet.conv1
        self.bn1 = resnet.bn1
        self.relu = resnet.relu
        self.maxpool = resnet.maxpool
        self.res2 = resnet.layer1  # 1/4
        self.res3 = resnet.layer2  # 1/8
        self.res4 = resnet.layer3  # 1/16

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x: the stem's summed conv1 output [N, 64, H/2, W/2] -> (r4, r3, r2)."""
        x = self.maxpool(self.relu(self.bn1(x)))  # [N, 64, H/4, W/4]
        r2 = self.res2(x)                          # [N, 64e, H/4, W/4]
        r3 = self.res3(r2)                         # [N, 128e, H/8, W/8]
        r4 = self.res4(r3)                         # [N, 256e, H/16, W/16]
        return r4, r3, r2
