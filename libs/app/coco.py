"""Export a session's masks as COCO-style JSON (what CVAT and X-AnyLabeling import): one image per frame
with a mask, one annotation per object and frame with an RLE mask (pycocotools), and one track id per
object (its label)."""
import json
from typing import Dict, Sequence, Tuple

import numpy as np
from pycocotools import mask as rle

from ..io import atomic_path
from ..utils.constants import VOID_LABEL


def coco_document(masks: Dict[int, np.ndarray], names: Sequence[str], size: Tuple[int, int], title: str) -> dict:
    """The COCO dictionary of `masks` (frame index -> [H, W] uint8 labels) of a video of frames `names`."""
    height, width = size
    images, annotations = [], []
    objects = sorted({int(k) for m in masks.values() for k in np.unique(m) if 0 < k < VOID_LABEL})
    for t, labels in sorted(masks.items()):
        images.append({"id": t + 1, "file_name": f"{names[t]}.jpg", "frame_index": t, "width": width,
                       "height": height, "video": title})
        for obj in objects:
            binary = np.asfortranarray(labels == obj, dtype=np.uint8)           # [H, W] in column order
            if not binary.any():
                continue
            encoded = rle.encode(binary)
            encoded["counts"] = encoded["counts"].decode("ascii")
            annotations.append({"id": len(annotations) + 1, "image_id": t + 1, "category_id": 1,
                                "segmentation": encoded, "area": int(rle.area(encoded)),
                                "bbox": [float(v) for v in rle.toBbox(encoded)], "iscrowd": 0,
                                "track_id": obj, "attributes": {"track_id": obj}})
    return {"info": {"description": f"{title}: masks from STM-Cycle's browser app"}, "images": images,
            "annotations": annotations, "categories": [{"id": 1, "name": "object", "supercategory": "object"}],
            "tracks": [{"id": obj, "category_id": 1} for obj in objects]}


def write_coco(path: str, masks: Dict[int, np.ndarray], names: Sequence[str], size: Tuple[int, int],
               title: str) -> str:
    """Write the COCO JSON of `masks` to `path` atomically; returns `path`."""
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(coco_document(masks, names, size, title), f)
    return path


def decode_coco(document: dict, size: Tuple[int, int]) -> Dict[int, np.ndarray]:
    """Frame index -> [H, W] uint8 labels (track ids) read back from a COCO document of this module."""
    frames = {image["id"]: image["frame_index"] for image in document["images"]}
    out: Dict[int, np.ndarray] = {t: np.zeros(size, np.uint8) for t in frames.values()}
    for ann in document["annotations"]:
        seg = dict(ann["segmentation"], counts=ann["segmentation"]["counts"].encode("ascii"))
        out[frames[ann["image_id"]]][rle.decode(seg).astype(bool)] = ann["track_id"]
    return out

