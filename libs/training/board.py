"""TensorBoard pictures of training: the last frame of each clip with its predicted objects tinted."""
import torch

from ..utils.constants import IMAGENET_MEAN, IMAGENET_STD

_TINTS = ((0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (1, 0, 1))   # background, objects 1..5


def prediction_grid(frames: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    """Last frame of each clip (frames [B, T, 3, H, W], normalised) with its predicted objects (pred
    [B, K+1, H, W]) tinted: [B, 3, H, W] in [0, 1], on the frames' device (the GPU with DALI)."""
    device = frames.device
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    img = (frames[:, -1].float() * std + mean).clamp(0, 1)                     # [B, 3, H, W]
    labels = pred.detach().float().to(device).argmax(1, keepdim=True)          # [B, 1, H, W]
    colours = torch.tensor(_TINTS, dtype=torch.float32, device=device)
    tint = colours[labels.clamp(max=len(_TINTS) - 1).squeeze(1)].permute(0, 3, 1, 2)   # [B, 3, H, W]
    return torch.where(labels > 0, 0.5 * img + 0.5 * tint, img)
