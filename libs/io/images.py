"""Reading frames and masks, writing indexed PNGs and images: the one way files enter and leave."""
import os
from typing import List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from ..errors import VOSError
from .paths import atomic_path
from ..utils.constants import davis_palette

GREY_MODES = ("L", "LA", "1", "I", "I;16", "I;16B", "I;16L", "I;16N")
_WRITE_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP"}


def full_palette(palette: Optional[Sequence[int]]) -> List[int]:
    """`palette` as exactly 768 ints (missing entries black); the DAVIS palette when None."""
    if palette is None:
        return davis_palette()
    values = [int(v) for v in list(palette)[:768]]
    return values + [0] * (768 - len(values))


def open_image(path: str, what: str) -> Image.Image:
    """The decoded PIL image at `path`; a VOSError naming the file when it is missing or unreadable."""
    if not os.path.exists(path):
        raise VOSError(f"{what} {path} does not exist")
    try:
        img = Image.open(path)
        img.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise VOSError(f"cannot read {what} {path}: {err} (corrupt or not an image file)") from err
    return img


def read_frame(path: str) -> np.ndarray:
    """The image at `path` as [H, W, 3] uint8 RGB (greyscale and alpha images are converted)."""
    img = open_image(path, "frame")
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.uint8)  # [H, W, 3]


def read_mask(path: str) -> Tuple[np.ndarray, Optional[List[int]]]:
    """An annotation PNG as ([H, W] uint8 labels, 768-int palette or None).

    Indexed ('P') PNGs keep their indices and palette; greyscale PNGs give their values with no
    palette; RGB masks are mapped through the DAVIS palette (any other colour is an error).
    """
    img = open_image(path, "mask")
    if img.mode in ("P", "PA"):
        labels = np.asarray(img.getchannel(0) if img.mode == "PA" else img, dtype=np.uint8)
        return labels, full_palette(img.getpalette())
    if img.mode in GREY_MODES:
        return grey_values(img, path), None
    if img.mode in ("RGB", "RGBA"):
        rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)  # [H, W, 3]
        labels = palette_indices(rgb, davis_palette())
        if labels is None:
            raise VOSError(f"mask {path} is an RGB image with colours outside the DAVIS palette; "
                           "save annotations as indexed ('P') PNGs")
        return labels, davis_palette()
    raise VOSError(f"mask {path} has unsupported image mode {img.mode!r}; save it as an indexed PNG")


def grey_values(img: Image.Image, path: str) -> np.ndarray:
    """The values of a greyscale image as [H, W] uint8; a VOSError when they do not fit in 0..255."""
    if img.mode == "LA":
        img = img.getchannel(0)
    values = np.asarray(img)
    if values.dtype == bool:
        return values.astype(np.uint8)
    if values.size and (values.min() < 0 or values.max() > 255):
        raise VOSError(f"mask {path} has values up to {int(values.max())}; labels must be 0..255")
    return values.astype(np.uint8)  # [H, W]


def palette_indices(rgb: np.ndarray, palette: Sequence[int]) -> Optional[np.ndarray]:
    """[H, W] uint8 palette index of every pixel of `rgb` [H, W, 3], or None if a colour is missing."""
    table = np.asarray(full_palette(palette), dtype=np.int64).reshape(256, 3)
    codes = (table[:, 0] << 16) | (table[:, 1] << 8) | table[:, 2]  # [256]
    lookup = {}
    for index in range(255, -1, -1):  # the lowest index wins for repeated colours
        lookup[int(codes[index])] = index
    pixels = pack_rgb(rgb)  # [H, W]
    colours, inverse = np.unique(pixels, return_inverse=True)
    if any(int(c) not in lookup for c in colours):
        return None
    mapped = np.array([lookup[int(c)] for c in colours], dtype=np.uint8)
    return mapped[inverse.reshape(pixels.shape)]


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """[H, W, 3] uint8 colours packed into [H, W] int64 codes (R << 16 | G << 8 | B)."""
    wide = rgb.astype(np.int64)
    return (wide[..., 0] << 16) | (wide[..., 1] << 8) | wide[..., 2]


def write_indexed_png(path: str, labels: np.ndarray, palette: Optional[Sequence[int]]) -> None:
    """Write [H, W] uint8 `labels` as an indexed ('P') PNG with `palette`, atomically."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be [H, W], got shape {labels.shape}")
    if labels.dtype != np.uint8:
        if labels.size and (labels.min() < 0 or labels.max() > 255):
            raise ValueError("labels must lie in 0..255 to be written as an indexed PNG")
        labels = labels.astype(np.uint8)
    img = Image.fromarray(np.ascontiguousarray(labels))  # mode 'L'
    img.putpalette(full_palette(palette))  # becomes mode 'P'
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")


def write_image(path: str, rgb: np.ndarray, quality: int = 95) -> None:
    """Write an [H, W, 3] uint8 RGB image atomically; JPEG (at `quality`), PNG or BMP by extension."""
    fmt = _WRITE_FORMATS.get(os.path.splitext(path)[1].lower())
    if fmt is None:
        raise VOSError(f"cannot write image {path}: use a .jpg, .jpeg, .png or .bmp file name")
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"image must be [H, W, 3] uint8, got {rgb.shape} {rgb.dtype}")
    img = Image.fromarray(np.ascontiguousarray(rgb))
    options = {"quality": int(quality)} if fmt == "JPEG" else {}
    with atomic_path(path) as tmp:
        img.save(tmp, format=fmt, **options)
