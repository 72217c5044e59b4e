"""A trainer-shaped objective and data set small enough for multi-process and device tests."""
import torch
from torch import nn


class TinyModel(nn.Module):
    """One weight, named like the STM it stands for."""

    arch = "tiny"

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(3))


class TinyObjective(nn.Module):
    """A loss over the clip's frames; 'pred' is the last frame's masks."""

    def __init__(self) -> None:
        super().__init__()
        self.model = TinyModel()

    def forward(self, frames, masks, num_objects):
        loss = (frames.mean((1, 3, 4)) * self.model.weight).sum() ** 2
        return {"loss": loss, "pred": masks[:, -1]}


class TinyClips(torch.utils.data.Dataset):
    """Four fixed clips [T=2, 3, 4, 4] with one object."""

    def __len__(self) -> int:
        return 4

    def set_epoch(self, epoch, epochs_per_increment=None) -> None:
        """Every epoch shows the same clips."""

    def __getitem__(self, idx):
        frames = torch.full((2, 3, 4, 4), float(idx + 1))
        masks = torch.zeros(2, 2, 4, 4)
        masks[:, 1, :2] = 1
        masks[:, 0] = 1 - masks[:, 1]
        return {"frames": frames, "masks": masks, "num_objects": 1, "name": f"clip{idx}"}
