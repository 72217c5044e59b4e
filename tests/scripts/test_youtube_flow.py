"""test.py on a YouTube-VOS layout: objects that start late, Annotations/ output and the submission zip."""
import json
import os
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image

from libs.dataset.synthetic import write_dataset
from libs.io import davis_palette, write_indexed_png

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def youtube_root(tmp_path_factory):
    """valid/ with one video: object 1 given at frame 0, object 2 given at frame 2."""
    tmp = tmp_path_factory.mktemp("ytvos")
    names = write_dataset(str(tmp / "davis"), num_videos=1, num_frames=5, size=(48, 80), seed=11,
                          split="val", num_objects=2)
    vid = names[0]
    valid = tmp / "data" / "YouTube-VOS" / "valid"
    shutil.copytree(tmp / "davis" / "JPEGImages" / "480p" / vid, valid / "JPEGImages" / vid)
    (valid / "Annotations" / vid).mkdir(parents=True)
    gt = [np.array(Image.open(tmp / "davis" / "Annotations" / "480p" / vid / f"{t:05d}.png")) for t in range(5)]
    write_indexed_png(str(valid / "Annotations" / vid / "00000.png"), np.where(gt[0] == 1, 1, 0).astype(np.uint8),
                      davis_palette())
    write_indexed_png(str(valid / "Annotations" / vid / "00002.png"), np.where(gt[2] == 2, 2, 0).astype(np.uint8),
                      davis_palette())
    frames = [f"{t:05d}" for t in range(5)]
    meta = {"videos": {vid: {"objects": {"1": {"frames": frames}, "2": {"frames": frames[2:]}}}}}
    (valid / "meta.json").write_text(json.dumps(meta))
    return str(tmp / "data"), vid, gt


def test_late_object_and_submission_zip(youtube_root, tmp_path):
    data_root, vid, gt = youtube_root
    out = tmp_path / "out"
    cmd = [sys.executable, "test.py", "--cfg", "config.yaml", "data_root", data_root, "valset", "VOS",
           "arch", "resnet18", "keydim", "16", "valdim", "32", "input_size", "[48,80]", "gpu_id", "-1",
           "loop", "1", "save_freq", "2", "output_dir", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    folder = out / "VOS" / "Annotations" / vid
    assert sorted(os.listdir(folder)) == [f"{t:05d}.png" for t in range(5)]
    labels = [np.array(Image.open(folder / f"{t:05d}.png")) for t in range(5)]
    assert not (labels[0] == 2).any() and not (labels[1] == 2).any()      # object 2 not there yet
    assert np.array_equal(labels[0], np.where(gt[0] == 1, 1, 0))           # the first given mask, as given
    assert ((labels[2] == 2) == (gt[2] == 2)).all()                        # given at frame 2: written as given
    with zipfile.ZipFile(out / "VOS.zip") as archive:
        assert sorted(archive.namelist()) == [f"Annotations/{vid}/{t:05d}.png" for t in range(5)]
    assert "submission ready to upload" in proc.stderr
