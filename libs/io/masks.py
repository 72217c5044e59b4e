"""The first-frame mask a user gives the demo: binary, greyscale or colour masks become object labels."""
from typing import List, Optional, Tuple

import numpy as np

from ..errors import VOSError
from ..utils.constants import VOID_LABEL
from .images import (GREY_MODES, davis_palette, full_palette, grey_values, open_image,
                            pack_rgb, palette_indices)

MAX_GREY_LEVELS = 16     # more distinct grey levels than this: a soft mask, thresholded at 128
MAX_COLOURS = 32         # most objects a colour mask may hold (an indexed PNG may hold up to 254)

MaskResult = Tuple[np.ndarray, List[int], Optional[str]]


def load_first_mask(path: str) -> MaskResult:
    """([H, W] uint8 labels, 768-int palette, note) for a user's first-frame mask of any common kind.

    Indexed PNGs keep their indices; binary masks (0/1 or 0/255) become object 1; a few grey levels
    become objects 1..K by increasing value; a colour mask becomes one object per colour (DAVIS palette
    colours keep their index, other colours are numbered by first appearance). `note` is a sentence
    describing the conversion, or None when the values were used as they are.
    """
    img = open_image(path, "first-frame mask")
    if img.mode in ("P", "PA"):
        labels = np.asarray(img.getchannel(0) if img.mode == "PA" else img, dtype=np.uint8)
        palette = full_palette(img.getpalette())
        if _nonzero_levels(labels) == [255]:
            return _binary(labels, palette, path, "indexed mask with only index 255")
        return _checked(labels, path), palette, void_note(labels)
    if img.mode in GREY_MODES:
        return _from_grey(grey_values(img, path), path)
    if img.mode in ("RGB", "RGBA", "CMYK", "YCbCr", "LAB", "HSV"):
        rgb = _rgb_with_transparency(img)  # [H, W, 3]
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]):
            return _from_grey(rgb[..., 0], path)
        return _from_colours(rgb, path)
    raise VOSError(f"first-frame mask {path} has unsupported image mode {img.mode!r}; "
                   "give a PNG (indexed, greyscale or RGB)")


def void_note(labels: np.ndarray) -> Optional[str]:
    """A sentence saying that label 255 beside objects in [H, W] `labels` is void, or None when there is none."""
    void = int(np.count_nonzero(labels == VOID_LABEL))
    if not void or not np.any((labels > 0) & (labels < VOID_LABEL)):
        return None
    return (f"label {VOID_LABEL} on {void} pixel(s) is void, not an object: the network sees background there "
            f"and frame 0's PNG has 0; give those pixels an object id (1-254) if they are one")


def _rgb_with_transparency(img) -> np.ndarray:
    """[H, W, 3] uint8 RGB of `img`; fully transparent pixels become black (background)."""
    if img.mode == "RGBA":
        rgba = np.asarray(img, dtype=np.uint8)
        rgb = rgba[..., :3].copy()
        rgb[rgba[..., 3] == 0] = 0
        return rgb
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def _nonzero_levels(values: np.ndarray) -> List[int]:
    """Sorted distinct non-zero values of `values`."""
    levels = np.unique(values)
    return [int(v) for v in levels if v != 0]


def _checked(labels: np.ndarray, path: str) -> np.ndarray:
    """`labels` unchanged, or a VOSError when the mask marks no object at all."""
    if not labels.any():
        raise VOSError(f"first-frame mask {path} is empty (every pixel is background 0); "
                       "draw at least one object")
    return labels


def _binary(values: np.ndarray, palette: List[int], path: str, kind: str) -> MaskResult:
    """Every non-zero pixel becomes object 1."""
    labels = (values != 0).astype(np.uint8)  # [H, W]
    return _checked(labels, path), palette, f"{kind}: the foreground became object 1"


def _from_grey(values: np.ndarray, path: str) -> MaskResult:
    """Labels from greyscale values: binary, label map, a few grey levels or a soft mask."""
    levels = _nonzero_levels(_checked(values, path))
    palette = davis_palette()
    if levels == list(range(1, len(levels) + 1)):
        return values.astype(np.uint8), palette, None
    if levels == [255]:
        return _binary(values, palette, path, "binary mask (0/255)")
    if len(levels) > MAX_GREY_LEVELS:
        labels = (values >= 128).astype(np.uint8)
        note = (f"greyscale mask with {len(levels)} grey levels: thresholded at 128 into object 1")
        return _checked(labels, path), palette, note
    lut = np.zeros(256, dtype=np.uint8)
    for object_id, level in enumerate(levels, start=1):
        lut[level] = object_id
    mapping = ", ".join(f"{level}->{i}" for i, level in enumerate(levels, start=1))
    note = f"greyscale mask with {len(levels)} grey levels: numbered by increasing value ({mapping})"
    return lut[values.astype(np.uint8)], palette, note


def _too_many_colours(path: str, count: int, codes: np.ndarray) -> VOSError:
    """The error for a colour mask with more than MAX_COLOURS colours: too many objects when the colours
    are flat areas, else a mask that looks JPEG-compressed or anti-aliased."""
    limit = f"a colour mask holds at most {MAX_COLOURS} objects (one flat colour each on black)"
    if _mostly_flat(codes):
        return VOSError(f"first-frame mask {path} has {count} flat colours, i.e. {count} objects; {limit}: "
                        "merge objects, or give an indexed PNG (ids 1, 2, ... on 0, up to 254)")
    return VOSError(f"first-frame mask {path} has {count} distinct colours, most of them only at edges or "
                    f"scattered: it looks JPEG-compressed or anti-aliased; {limit}: save it as PNG without "
                    "smoothing")


def _mostly_flat(codes: np.ndarray) -> bool:
    """codes [H, W] packed RGB -> whether most non-black colours fill an area: each has at least one pixel
    whose 4 neighbours share its colour (JPEG noise and anti-aliasing colours rarely do)."""
    inner = codes[1:-1, 1:-1]                                              # [H-2, W-2]
    same = ((inner == codes[:-2, 1:-1]) & (inner == codes[2:, 1:-1])
            & (inner == codes[1:-1, :-2]) & (inner == codes[1:-1, 2:]))
    colours = np.setdiff1d(np.unique(codes), [0])
    filled = np.intersect1d(np.unique(inner[same]), colours)
    return len(filled) * 2 > len(colours)


def _from_colours(rgb: np.ndarray, path: str) -> MaskResult:
    """Labels from a colour mask: black is background, every other colour one object."""
    by_palette = palette_indices(rgb, davis_palette())
    if by_palette is not None:
        note = "RGB colour mask: colours matched to the DAVIS palette (colour index = object id)"
        return _checked(by_palette, path), davis_palette(), note
    codes = pack_rgb(rgb)  # [H, W]
    colours, first, inverse = np.unique(codes.ravel(), return_index=True, return_inverse=True)
    keep = [i for i in np.argsort(first) if colours[i] != 0]  # non-black, in order of appearance
    if len(keep) > MAX_COLOURS:
        raise _too_many_colours(path, len(keep), codes)
    lut = np.zeros(len(colours), dtype=np.uint8)
    palette = davis_palette()
    names = []
    for object_id, i in enumerate(keep, start=1):
        lut[i] = object_id
        code = int(colours[i])
        rgb_tuple = ((code >> 16) & 255, (code >> 8) & 255, code & 255)
        palette[3 * object_id:3 * object_id + 3] = rgb_tuple
        names.append(f"{rgb_tuple}->{object_id}")
    labels = lut[inverse.reshape(codes.shape)]  # [H, W]
    note = (f"RGB colour mask: {len(keep)} colours became objects 1..{len(keep)} in order of first "
            f"appearance ({', '.join(names)})")
    return labels, palette, note
