"""Frames and masks to the network and back (as the original), and each video's table of object ids."""
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

import cv2
import numpy as np
import torch

from ..utils.constants import IMAGENET_MEAN, IMAGENET_STD, VOID_LABEL

_MEAN = np.array(IMAGENET_MEAN, dtype=np.float32).reshape(1, 1, 3)
_STD = np.array(IMAGENET_STD, dtype=np.float32).reshape(1, 1, 3)


class Letterbox:
    """Resize to fit `input_size` keeping the aspect ratio, padded evenly on both sides."""

    def __init__(self, input_size: Tuple[int, int], frame_size: Tuple[int, int]):
        self.th, self.tw = int(input_size[0]), int(input_size[1])
        self.h, self.w = int(frame_size[0]), int(frame_size[1])
        factor = min(self.th / self.h, self.tw / self.w)
        self.sh, self.sw = int(factor * self.h), int(factor * self.w)   # resized content
        self.top, self.left = (self.th - self.sh) // 2, (self.tw - self.sw) // 2

    def frame(self, rgb: np.ndarray) -> torch.Tensor:
        """[H, W, 3] uint8 RGB -> [1, 3, th, tw] float32, ImageNet-normalised; padding is black."""
        canvas = np.zeros((self.th, self.tw, 3), dtype=np.float32)
        resized = cv2.resize(rgb.astype(np.float32), (self.sw, self.sh), interpolation=cv2.INTER_LINEAR)
        canvas[self.top:self.top + self.sh, self.left:self.left + self.sw] = resized
        canvas = (canvas / 255.0 - _MEAN) / _STD
        return torch.from_numpy(canvas).permute(2, 0, 1).unsqueeze(0).contiguous()

    def mask(self, labels: np.ndarray, num_objects: int) -> torch.Tensor:
        """[H, W] labels -> one-hot [1, K+1, th, tw] float32.

        As the original: the one-hot map is resized bilinearly and truncated to integers, so a pixel
        keeps a label only where the interpolation gives exactly 1 (boundary pixels become all-zero).
        """
        onehot = (labels[..., None] == np.arange(num_objects + 1)).astype(np.float32)  # [H, W, K+1]
        resized = cv2.resize(onehot, (self.sw, self.sh), interpolation=cv2.INTER_LINEAR)
        resized = resized.reshape(self.sh, self.sw, num_objects + 1)
        canvas = np.zeros((self.th, self.tw, num_objects + 1), dtype=np.float32)
        canvas[self.top:self.top + self.sh, self.left:self.left + self.sw] = resized
        canvas = canvas.astype(np.uint8).astype(np.float32)
        return torch.from_numpy(canvas).permute(2, 0, 1).unsqueeze(0).contiguous()

    def crop(self, maps: np.ndarray) -> np.ndarray:
        """[C, th, tw] -> [C, sh, sw]: drop the padding."""
        return maps[:, self.top:self.top + self.sh, self.left:self.left + self.sw]

    def labels(self, probs: np.ndarray) -> np.ndarray:
        """[K+1, th, tw] probabilities -> [H, W] uint8 labels at the frame's size.

        Equal to the original's nearest resize of every channel followed by argmax: nearest
        resampling picks source pixels, so taking the argmax first gives the same labels.
        """
        lab = self.crop(probs).argmax(axis=0).astype(np.uint8)                           # [sh, sw]
        return cv2.resize(lab, (self.w, self.h), interpolation=cv2.INTER_NEAREST)

    def heat(self, probs: np.ndarray) -> np.ndarray:
        """[K+1, th, tw] -> [H, W] float32: the largest object probability, at the frame's size."""
        fg = np.maximum(self.crop(probs)[1:].max(axis=0), 0).astype(np.float32)          # [sh, sw]
        return cv2.resize(fg, (self.w, self.h), interpolation=cv2.INTER_NEAREST)


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host tensor on `device`; to a GPU through pinned memory without waiting for queued work."""
    if device.type != "cuda":
        return x.to(device)
    return x.pin_memory().to(device, non_blocking=True)


class ObjectTable:
    """One video's objects: the ids as given (any of 1..254, in the order they first appeared) mapped to
    the network's contiguous channels 1..K, and back in every output. With ids 1..K it is the identity."""

    def __init__(self) -> None:
        self.ids: List[int] = []                          # channel c (1..K) holds object ids[c - 1]
        self._to_channel = np.zeros(256, dtype=np.uint8)  # id -> channel; void and unknown ids -> 0

    def __len__(self) -> int:
        return len(self.ids)

    def channels(self, labels: np.ndarray) -> np.ndarray:
        """[H, W] labels (ids; void 255 is background) -> [H, W] channels; new ids get the next channels."""
        present = np.unique(labels)
        for obj in present[(present > 0) & (present < VOID_LABEL)]:
            if int(obj) not in self.ids:
                self.ids.append(int(obj))
                self._to_channel[obj] = len(self.ids)
        return self._to_channel[labels]

    def to_ids(self, channels: np.ndarray) -> np.ndarray:
        """[H, W] channel labels (0..K) -> [H, W] uint8 object ids."""
        return np.array([0] + self.ids, dtype=np.uint8)[channels]


def mask_tensor(letterbox: Letterbox, objects: ObjectTable, labels: np.ndarray, device: torch.device) -> torch.Tensor:
    """A given mask [H, W] (ids; void 255 as background) -> one-hot channels [1, K+1, th, tw] on `device`."""
    channels = objects.channels(labels)
    return to_device(letterbox.mask(channels, len(objects)), device)


def frame_tensor(letterbox: Letterbox, rgb: np.ndarray, device: torch.device) -> torch.Tensor:
    """A frame [H, W, 3] uint8 RGB -> [1, 3, th, tw] normalised, on `device`."""
    return to_device(letterbox.frame(rgb), device)


def network_inputs(letterbox: Letterbox, objects: ObjectTable, frames: Iterable[np.ndarray],
                   given: Dict[int, np.ndarray], device: torch.device
                   ) -> Iterator[Tuple[torch.Tensor, Optional[torch.Tensor]]]:
    """What a job feeds the core: per frame [H, W, 3] uint8 (the i-th of `frames`), (frame [1, 3, th, tw],
    one-hot mask [1, K+1, th, tw] of given[i], or None), on `device`."""
    for i, rgb in enumerate(frames):
        mask = mask_tensor(letterbox, objects, given[i], device) if i in given else None
        yield frame_tensor(letterbox, rgb, device), mask
