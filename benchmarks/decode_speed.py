"""Frame decoding speed of test.py / the demo: PIL and OpenCV next to NVIDIA DALI (`data_backend DALI`).

    .venv/bin/python benchmarks/decode_speed.py                     # CPU: 70 frames of 480x854
    python benchmarks/decode_speed.py --device cuda --repeat 5      # on a GPU machine (DALI mixed backend)

Generates a synthetic clip, writes it as a JPEG folder, an MJPEG .avi, a VP9 .webm and an MPEG-4 .mp4, then prints the
frames per second of each reader (best of --repeat passes, after one warm-up pass that builds DALI's
pipelines). DALI's CPU backend cannot decode MPEG-4: that row then measures its OpenCV fallback.
"""
import argparse
import logging
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from libs.dataset.synthetic import generate_video  # noqa: E402
from libs.io import FrameSource, write_image  # noqa: E402
from libs.io.dali_decode import DaliDecoder  # noqa: E402


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=70)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=854)
    parser.add_argument("--device", default="cpu", help="where DALI decodes: cpu or cuda[:N]")
    parser.add_argument("--threads", type=int, default=2, help="DALI CPU threads")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes per reader (the best is printed)")
    return parser.parse_args()


def write_inputs(folder: str, args: argparse.Namespace) -> dict:
    """A generated clip as a JPEG folder and MJPEG, VP9 and MPEG-4 videos under `folder`: name -> path."""
    frames, _ = generate_video(0, args.frames, (args.height, args.width), 2)
    os.makedirs(os.path.join(folder, "jpeg"))
    paths = {"JPEG folder": os.path.join(folder, "jpeg"), "MJPEG .avi": os.path.join(folder, "clip.avi"),
             "VP9 .webm": os.path.join(folder, "clip.webm"), "MPEG-4 .mp4": os.path.join(folder, "clip.mp4")}
    for t, rgb in enumerate(frames):
        write_image(os.path.join(paths["JPEG folder"], f"{t:05d}.jpg"), rgb)
    for name, fourcc in (("MJPEG .avi", "MJPG"), ("VP9 .webm", "VP90"), ("MPEG-4 .mp4", "mp4v")):
        writer = cv2.VideoWriter(paths[name], cv2.VideoWriter_fourcc(*fourcc), 25.0, (args.width, args.height))
        for rgb in frames:
            writer.write(np.ascontiguousarray(rgb[..., ::-1]))      # BGR
        writer.release()
    return paths


def frames_per_second(source: FrameSource, decoder, repeat: int) -> float:
    """Best frames per second of `repeat` full passes over `source` (after one warm-up pass)."""
    best = float("inf")
    for attempt in range(repeat + 1):
        start = time.perf_counter()
        count = sum(1 for _ in source.frames(decoder))
        if attempt:
            best = min(best, time.perf_counter() - start)
    return count / best


def main() -> None:
    """Write the inputs, time every reader, print a table."""
    args = parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    device_id = (device.index or 0) if device.type == "cuda" else None
    decoder = DaliDecoder(device_id, threads=args.threads)
    print(f"{args.frames} frames of {args.height}x{args.width}; DALI on {decoder.where()}, {args.threads} threads")
    with tempfile.TemporaryDirectory(prefix="decode-speed-") as folder:
        for name, path in write_inputs(folder, args).items():
            source = FrameSource(path)
            plain = frames_per_second(source, None, args.repeat)
            dali = frames_per_second(source, decoder, args.repeat)
            reader = "PIL" if os.path.isdir(path) else "OpenCV"
            print(f"{name:12s}  {reader:6s} {plain:7.1f} frames/s   DALI {dali:7.1f} frames/s   ({dali / plain:.2f}x)")


if __name__ == "__main__":
    main()
