"""Object ids as given, through the real scripts: a first mask with ids {1, 5} (demo) or {3, 7, 200}
(test.py) gives results with only those ids, never a phantom object for the ids in between."""
import glob
import os

import numpy as np
import pytest
import torch

from libs.dataset.synthetic import generate_video, write_dataset
from libs.io import davis_palette, read_mask, write_image, write_indexed_png
from libs.models import STM, save_weights
from tests.inprocess import run_main

TINY = ["arch", "resnet18", "keydim", "16", "valdim", "32", "input_size", "[32,64]", "gpu_id", "-1", "loop", "0"]
SIZE = (48, 80)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    """Random weights of the tiny network: their predictions spread over every channel the network has."""
    torch.manual_seed(0)
    path = str(tmp_path_factory.mktemp("ids") / "r18.pth")
    save_weights(STM("resnet18", 16, 32), path)
    return path


def _ids(folder: str) -> set:
    """Every label in the PNGs of `folder`."""
    found = set()
    for path in glob.glob(os.path.join(folder, "*.png")):
        found |= set(np.unique(read_mask(path)[0]).tolist())
    return found


def test_demo_with_ids_1_and_5_writes_only_those(tmp_path, checkpoint, capsys):
    frames, labels = generate_video(4, 6, SIZE, 2)
    clip = tmp_path / "clip"
    for t, rgb in enumerate(frames):
        write_image(str(clip / f"{t:05d}.jpg"), rgb)
    mask = str(tmp_path / "first.png")
    write_indexed_png(mask, np.where(labels[0] == 2, 5, labels[0]).astype(np.uint8), davis_palette())
    done = run_main("demo/demo.py", ["--cfg", "demo/demo.yaml", *TINY, "video_path", str(clip), "mask_path", mask,
                                     "initial", checkpoint, "output_dir", str(tmp_path / "out")], capsys)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out" / "clip"
    assert len(glob.glob(str(out / "*.png"))) == 6
    assert _ids(str(out)) == {0, 1, 5}


def test_test_script_with_ids_3_7_200_writes_only_those_and_scores(tmp_path, checkpoint, capsys):
    root = tmp_path / "SYNTHETIC"
    names = write_dataset(str(root), 2, 4, SIZE, seed=2, num_objects=3)
    lut = np.arange(256, dtype=np.uint8)
    lut[[1, 2, 3]] = [3, 7, 200]
    for path in glob.glob(str(root / "Annotations" / "480p" / "*" / "*.png")):
        write_indexed_png(path, lut[read_mask(path)[0]], davis_palette())
    done = run_main("test.py", ["--cfg", "config.yaml", *TINY, "valset", "SYNTHETIC", "data_root", str(tmp_path),
                                "initial", checkpoint, "output_dir", str(tmp_path / "out")], capsys)
    assert done.returncode == 0, done.stderr
    for name in names:
        assert _ids(str(tmp_path / "out" / "SYNTHETIC" / name)) <= {0, 3, 7, 200}
        assert {3, 7, 200} <= _ids(str(tmp_path / "out" / "SYNTHETIC" / name))     # the given first frame
    assert os.path.isfile(tmp_path / "out" / "SYNTHETIC" / "global_results-val.csv")
