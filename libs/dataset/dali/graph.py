"""The DALI graph of the training loader: decode, resize window, one affine warp per clip, jitter, pad, normalise.

Every DALI sample is one frame; the per-clip parameters of a `ClipPlan` are repeated for its frames.
The graph is the same with and without a GPU: with `device_id` set, images are decoded by the `mixed`
decoder and every later operator runs on the GPU (masks are copied once with `.gpu()`); with
`device_id=None` every operator runs on the CPU. Importing this module needs NVIDIA DALI.
"""
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from nvidia.dali import fn, pipeline_def, types
from nvidia.dali.plugin.pytorch import feed_ndarray

from .plan import ClipPlan
from ...errors import VOSError
from ...utils.constants import IMAGENET_MEAN, IMAGENET_STD
from .available import error_reason

PARAMS = ("roi_start", "roi_end", "work_size", "matrix", "fit_size", "pad_anchor", "out_shape", "contrast", "centre",
          "shift")


def _clip_graph(encoded: bool, fill_zero: bool, clamp: bool, gpu: bool):
    """DataNodes (frames [3, H, W] float32 normalised, masks [H, W, 1] uint8 ids) of one frame sample."""
    source = fn.external_source(name="frames", batch=True, layout=None if encoded else "HWC")
    if encoded:
        images = fn.decoders.image(source, device="mixed" if gpu else "cpu", output_type=types.RGB,
                                   adjust_orientation=False)
    else:
        images = source.gpu() if gpu else source
    masks = fn.external_source(name="masks", batch=True, layout="HWC")
    masks = masks.gpu() if gpu else masks
    p = {name: fn.external_source(name=name, batch=True) for name in PARAMS}
    window = dict(roi_start=p["roi_start"], roi_end=p["roi_end"], size=p["work_size"])
    work = fn.resize(images, **window, interp_type=types.INTERP_LINEAR, antialias=True)          # uint8
    work_masks = fn.resize(masks, **window, interp_type=types.INTERP_NN, antialias=False)
    fill = {"fill_value": 0.0} if fill_zero else {}                      # without it: edge pixels repeat
    warped = fn.warp_affine(work, matrix=p["matrix"], size=p["fit_size"], interp_type=types.INTERP_LINEAR, **fill)
    warped_masks = fn.warp_affine(work_masks, matrix=p["matrix"], size=p["fit_size"],
                                  interp_type=types.INTERP_NN, **fill)
    # clamp: uint8 out, clamped to 0..255 (the shift is a share of 255); else float out on the 0..255 scale,
    # unclamped (the shift is fed multiplied by 255)
    jittered = fn.brightness_contrast(warped, contrast=p["contrast"], contrast_center=p["centre"],
                                      brightness_shift=p["shift"], **({} if clamp else {"dtype": types.FLOAT}))
    padding = dict(axis_names="HW", out_of_bounds_policy="pad", fill_values=0)
    padded = fn.slice(jittered, p["pad_anchor"], p["out_shape"], **padding)
    frames = fn.crop_mirror_normalize(padded, mean=[255.0 * m for m in IMAGENET_MEAN],
                                      std=[255.0 * s for s in IMAGENET_STD], output_layout="CHW", dtype=types.FLOAT)
    return frames, fn.slice(warped_masks, p["pad_anchor"], p["out_shape"], **padding)


def build_pipeline(encoded: bool, fill_zero: bool, max_frames: int, device_id: Optional[int], threads: int,
                   seed: int, clamp: bool = False):
    """A built pipeline for up to `max_frames` frames a run (CPU operators only when device_id is None)."""
    graph = pipeline_def(_clip_graph, batch_size=max_frames, num_threads=max(1, threads), device_id=device_id,
                         seed=seed, prefetch_queue_depth=1)
    pipe = graph(encoded=encoded, fill_zero=fill_zero, clamp=clamp, gpu=device_id is not None)
    pipe.build()
    return pipe


def _inputs(plans: List[ClipPlan]) -> Dict[str, list]:
    """Per-frame input lists of the graph's external sources, clip after clip."""
    feed: Dict[str, list] = {name: [] for name in ("frames", "masks") + PARAMS}
    for plan in plans:
        y0, x0, y1, x1 = plan.roi
        params = {"roi_start": np.array([y0, x0], np.float32), "roi_end": np.array([y1, x1], np.float32),
                  "work_size": np.array(plan.work_size, np.float32), "matrix": plan.matrix,
                  "fit_size": np.array(plan.fit, np.float32), "pad_anchor": -np.array(plan.pad, np.int32),
                  "out_shape": np.array(plan.out_size, np.int32), "contrast": np.float32(plan.contrast),
                  "centre": np.float32(255.0 * plan.centre),
                  "shift": np.float32(plan.shift if plan.clamp else 255.0 * plan.shift)}
        for frame, mask in zip(plan.frames, plan.masks):
            feed["frames"].append(frame)
            feed["masks"].append(mask[:, :, None])
            for name in PARAMS:
                feed[name].append(np.asarray(params[name]))
    return feed


def run_pipeline(pipe, plans: List[ClipPlan], frames_out: torch.Tensor, labels_out: torch.Tensor) -> None:
    """Run `plans` through `pipe`; frames [N, 3, H, W] float32 and labels [N, H, W, 1] uint8 are written
    into the given tensors (N = total frames) on their device, without passing through the host on a GPU."""
    for name, values in _inputs(plans).items():
        pipe.feed_input(name, values)
    try:
        frames, labels = pipe.run()
    except RuntimeError as err:
        files = [s for plan in plans for s in plan.sources if s][:3]
        raise VOSError(f"DALI could not build the clips of {', '.join(p.name for p in plans)} ({error_reason(err)}); "
                       f"check their frames{' (e.g. ' + ', '.join(files) + ')' if files else ''} or use "
                       "data_backend PIL") from err
    stream = torch.cuda.current_stream(frames_out.device) if frames_out.is_cuda else None
    feed_ndarray(frames.as_tensor(), frames_out, cuda_stream=stream)
    feed_ndarray(labels.as_tensor(), labels_out, cuda_stream=stream)


def output_shapes(plans: List[ClipPlan]) -> Tuple[int, Tuple[int, int], int]:
    """(frames per clip, (H, W), max objects) shared by the clips, or a VOSError like collate_clips'."""
    shapes = {(len(p.frames), tuple(p.out_size), p.max_objects) for p in plans}
    if len(shapes) != 1:
        raise VOSError(f"clips of one batch differ in (frames, size, max objects) {sorted(shapes)}; every training "
                       "data set must use the same input_size, sampled_frames and max_training_obj")
    count, size, objects = shapes.pop()
    return count, size, objects
