"""Reading and writing frames, masks, palettes, overlays and videos: one way for the whole project."""
from .images import (davis_palette, full_palette, read_frame, read_mask, write_image,
                            write_indexed_png)
from .masks import load_first_mask
from .paths import atomic_path, list_images, natural_key, safe_join
from .video import FrameSource, write_video
from .visual import heatmap_overlay, overlay

__all__ = [
    "FrameSource", "atomic_path", "davis_palette", "full_palette", "heatmap_overlay", "list_images",
    "load_first_mask", "natural_key", "overlay", "read_frame", "read_mask", "safe_join", "write_image",
    "write_indexed_png", "write_video",
]
