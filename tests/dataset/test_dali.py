"""DALI training backend (CPU operators here): batch format, parity with the PIL backend, alignment, curriculum,
mixed STATIC clips, train.py end to end, and the error without DALI."""
import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from libs.dataset.base import Video
from libs.dataset.sampler import ClipSampler
from libs.dataset.static import StaticClipSynth
from libs.dataset.training import (MixedDataset, StaticClipDataset, TrainClipDataset, build_mixed_dataset,
                                   collate_clips)
from libs.dataset.transforms import IMAGENET_MEAN, IMAGENET_STD, build_train_transforms
from libs.errors import VOSError
from libs.io import write_image, write_indexed_png
from libs.training.curriculum import Curriculum
from libs.training.schedule import EpochSampler

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
H, W = 64, 96             # generated frames
SIZE = (40, 64)           # network input: resized to 40x60, padded by 2 columns on each side
MAX_OBJECTS = 2
HAS_DALI = importlib.util.find_spec("nvidia") is not None and importlib.util.find_spec("nvidia.dali") is not None
needs_dali = pytest.mark.skipif(not HAS_DALI, reason="NVIDIA DALI is not installed "
                                "(make setup-dali; `make test` and CI install it so these tests run there)")
MEAN = torch.tensor(IMAGENET_MEAN).view(1, 1, 3, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(1, 1, 3, 1, 1)


def paint(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A frame [H, W, 3] uint8 painted from its labels: dark noisy background, bright objects."""
    image = rng.integers(0, 40, (*labels.shape, 3)).astype(np.uint8)
    image[labels > 0] = rng.integers(215, 256, (int((labels > 0).sum()), 3)).astype(np.uint8)
    return image


def write_video(root, name, num_frames=7, empty_until=0, ids=(1, 2, 3), portrait=False):
    """JPEG frames of moving bright boxes and their indexed masks; no object before `empty_until`;
    `portrait`: W x H frames (every frame transposed)."""
    rng = np.random.default_rng(len(name))
    frames, annotations = [], {}
    for t in range(num_frames):
        labels = np.zeros((H, W), np.uint8)
        if t >= empty_until:
            for k, obj in enumerate(ids):
                labels[6 + 18 * k:22 + 18 * k, 8 + 3 * t + 22 * k:34 + 3 * t + 22 * k] = obj
        labels[:3, :5] = 255                                     # a void corner
        labels = np.ascontiguousarray(labels.T) if portrait else labels
        frames.append(os.path.join(root, name, "JPEGImages", f"{t:05d}.jpg"))
        write_image(frames[-1], paint(np.where(labels == 255, 0, labels), rng), quality=95)
        annotations[t] = os.path.join(root, name, "Annotations", f"{t:05d}.png")
        write_indexed_png(annotations[t], labels, None)
    stems = [f"{t:05d}" for t in range(num_frames)]
    return Video(name=name, frames=frames, frame_names=stems, given={0: annotations[0]}, annotations=annotations)


def video_dataset(videos, augment=True, max_skip=2, increment=2, name="TOY", colour_jitter="original"):
    """Clips of 3 frames from `videos`, two per video and epoch."""
    sampler = ClipSampler(3, max_skip, increment, max_skip_cap=10, name=name)
    transform = build_train_transforms(SIZE, MAX_OBJECTS, augment=augment, colour_jitter=colour_jitter)
    return TrainClipDataset(videos, sampler, transform, 2, MAX_OBJECTS, seed=3, name=name)


def static_dataset(root):
    """STATIC-style clips synthesised from two single images (frames built in Python, then handed to DALI)."""
    images, rng = [], np.random.default_rng(7)
    for i in range(2):
        labels = np.zeros((56, 80), np.uint8)
        labels[8:36, 6:40], labels[24:50, 40:74] = 1, 2
        frame, mask = os.path.join(root, f"img{i}.jpg"), os.path.join(root, f"img{i}.png")
        write_image(frame, paint(labels, rng))
        write_indexed_png(mask, labels, None)
        images.append(Video(name=f"img{i}", frames=[frame], frame_names=["0"], given={0: mask}, annotations={0: mask}))
    transform = build_train_transforms(SIZE, MAX_OBJECTS)
    return StaticClipDataset(images, StaticClipSynth(3), transform, 1, MAX_OBJECTS, seed=3, name="STATIC",
                             work_size=SIZE)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("dali_videos"))
    return [write_video(root, "walk"), write_video(root, "jump", num_frames=9, ids=(4, 9)),
            write_video(root, "late", num_frames=8, empty_until=4)]


@pytest.fixture(scope="module")
def runner():
    """One CPU runner for the module: its pipelines are built once per kind of clip."""
    if not HAS_DALI:
        pytest.skip("NVIDIA DALI is not installed")
    from libs.dataset.dali.loader import DaliRunner

    return DaliRunner(torch.device("cpu"), threads=2, seed=0)


def move_to_epoch(dataset, epoch):
    """What the trainer does before an epoch: the max_skip curriculum (epochs_per_increment 1), the clips' epoch."""
    if isinstance(dataset, MixedDataset):
        samplers = dataset.clip_samplers()
    else:
        samplers = {dataset.name: dataset.sampler} if isinstance(dataset, TrainClipDataset) else {}
    Curriculum(samplers, epochs_per_increment=1).set_epoch(epoch)
    dataset.set_epoch(epoch)


def dali_batches(runner, dataset, batch_size, epoch=0):
    """Every batch of one epoch through a DaliLoader, as the trainer drives it."""
    from libs.dataset.dali.loader import DaliLoader

    sampler = EpochSampler(len(dataset), seed=0)
    move_to_epoch(dataset, epoch)
    sampler.set_epoch(epoch)
    loader = DaliLoader(runner, dataset, sampler, batch_size)
    batches = list(loader)
    assert len(batches) == len(loader) == len(dataset) // batch_size
    return batches, list(sampler)


def pil_batch(dataset, indices):
    """The PIL backend's batch of the same items."""
    return collate_clips([dataset[i] for i in indices])


def unnormalise(frames):
    """[B, T, 3, H, W] normalised frames back to [0, 1]."""
    return frames * STD + MEAN


def mask_agreement(a, b):
    """Share of pixels whose one-hot label is the same in two batches."""
    return float((a["masks"].argmax(2) == b["masks"].argmax(2)).float().mean())


@needs_dali
def test_batches_have_the_training_format(videos, runner):
    dataset = video_dataset(videos)
    batches, _ = dali_batches(runner, dataset, batch_size=2)
    for batch in batches:
        assert batch["frames"].shape == (2, 3, 3, *SIZE) and batch["frames"].dtype == torch.float32
        assert batch["masks"].shape == (2, 3, MAX_OBJECTS + 1, *SIZE) and batch["masks"].dtype == torch.float32
        assert batch["num_objects"].dtype == torch.long and batch["num_objects"].shape == (2,)
        assert all(1 <= int(n) <= MAX_OBJECTS for n in batch["num_objects"])
        assert all(name in ("walk", "jump", "late") for name in batch["names"])
        values = unnormalise(batch["frames"])
        bound = 0.03 + 5 / 255 + 1e-5                       # colour_jitter 'original': unclamped, as the original
        assert values.min() >= -bound and values.max() <= 1 + bound and values.std() > 0.1
        assert set(batch["masks"].unique().tolist()) <= {0.0, 1.0}
        assert torch.equal(batch["masks"].sum(2), torch.ones(2, 3, *SIZE))          # exactly one label a pixel
        assert batch["frames"][:, :, :, :, :2].eq(batch["frames"][0, 0, :, 0, 0].view(3, 1, 1)).all()  # padding
        for clip, count in zip(batch["masks"], batch["num_objects"]):
            assert clip[0, 1:count + 1].flatten(1).sum(1).min() > 0                   # kept objects in frame 0
            assert clip[:, count + 1:].sum() == 0


@needs_dali
def test_without_augmentation_dali_equals_pil(videos, runner):
    dataset = video_dataset(videos, augment=False)
    batches, order = dali_batches(runner, dataset, batch_size=3)
    for b, batch in enumerate(batches):
        reference = pil_batch(dataset, order[3 * b:3 * b + 3])
        assert batch["names"] == reference["names"]
        assert torch.equal(batch["num_objects"], reference["num_objects"])
        difference = (unnormalise(batch["frames"]) - unnormalise(reference["frames"])).abs() * 255
        assert difference.max() < 4.0, difference.max()                     # JPEG decoder rounding at most
        assert mask_agreement(batch, reference) > 0.995


@needs_dali
def test_augmented_clips_draw_the_pil_parameters(videos, runner):
    """Same seeds: same frames, objects, crop, affine, flip and jitter; only interpolation differs
    (DALI warps once where PIL resamples after each step)."""
    dataset = video_dataset(videos, augment=True)
    batches, order = dali_batches(runner, dataset, batch_size=3, epoch=1)
    for b, batch in enumerate(batches):
        reference = pil_batch(dataset, order[3 * b:3 * b + 3])
        assert torch.equal(batch["num_objects"], reference["num_objects"]) and batch["names"] == reference["names"]
        assert mask_agreement(batch, reference) > 0.95
        difference = (unnormalise(batch["frames"]) - unnormalise(reference["frames"])).abs()
        assert float(difference.mean()) < 6 / 255


@needs_dali
def test_portrait_clips_are_transposed_as_pil_transposes_them(tmp_path, runner):
    """A portrait video (96x64 frames): DALI turns it to landscape as the PIL pipeline does (which
    tests/dataset/test_transforms.py checks against the original's transposition): 64x96 fitted to 40x60,
    not 96x64 fitted to 40x26 between wide black bars."""
    portrait = write_video(str(tmp_path), "tall", num_frames=5, ids=(1, 2), portrait=True)
    for augment, epoch in ((False, 0), (True, 1)):
        dataset = video_dataset([portrait], augment=augment)
        batches, order = dali_batches(runner, dataset, batch_size=2, epoch=epoch)
        for b, batch in enumerate(batches):
            reference = pil_batch(dataset, order[2 * b:2 * b + 2])
            assert torch.equal(batch["num_objects"], reference["num_objects"])
            difference = (unnormalise(batch["frames"]) - unnormalise(reference["frames"])).abs() * 255
            if augment:
                assert mask_agreement(batch, reference) > 0.95 and float(difference.mean()) < 6.0
            else:
                assert mask_agreement(batch, reference) > 0.995 and difference.max() < 4.0
                # where portrait 40x26 frames would leave black bars (columns 0..18) there are frame and objects
                assert float(unnormalise(batch["frames"])[..., 2:19].mean()) > 0.03
                assert batch["masks"][:, :, 1:, :, :19].sum() > 0


@needs_dali
def test_the_mid_grey_jitter_is_clamped_in_dali_as_in_pil(videos, runner):
    """colour_jitter 'mid_grey' (the uint8 graph): same draws as PIL, values stay in [0, 1]."""
    dataset = video_dataset(videos[:2], colour_jitter="mid_grey")
    batches, order = dali_batches(runner, dataset, batch_size=2, epoch=1)
    for b, batch in enumerate(batches):
        reference = pil_batch(dataset, order[2 * b:2 * b + 2])
        values = unnormalise(batch["frames"])
        assert values.min() >= -1e-5 and values.max() <= 1 + 1e-5
        assert float((values - unnormalise(reference["frames"])).abs().mean()) < 6 / 255
        assert mask_agreement(batch, reference) > 0.95


@needs_dali
def test_masks_stay_on_the_pixels_they_were_painted_from(videos, runner):
    dataset = video_dataset([videos[1]], augment=True)           # two objects: none is dropped as background
    batches = [b for epoch in (2, 3) for b in dali_batches(runner, dataset, batch_size=2, epoch=epoch)[0]]
    for batch in batches:
        grey = unnormalise(batch["frames"]).mean(2)                               # [B, T, H, W]
        labels = batch["masks"].argmax(2)
        inner = labels.clone()
        for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):                         # away from object borders
            inner[torch.roll(labels, (dy, dx), (2, 3)) != labels] = -1
        assert float((grey[inner > 0] > 0.6).float().mean()) > 0.97
        assert float((grey[inner == 0] < 0.4).float().mean()) > 0.97


@needs_dali
def test_curriculum_changes_reach_the_dali_sampler(tmp_path, runner):
    from libs.dataset.dali.loader import DaliLoaders

    dataset = video_dataset([write_video(str(tmp_path), "long", num_frames=30)], max_skip=1, increment=6)
    dataset.samples_per_video = 12
    loaders = DaliLoaders(dataset, 4, torch.device("cpu"))
    curriculum = Curriculum({dataset.name: dataset.sampler}, epochs_per_increment=1)
    gaps = {}
    for epoch in (0, 2):
        curriculum.set_epoch(epoch)                    # what the trainer does before asking for the batches
        loader = loaders.epoch(epoch, EpochSampler(len(dataset), 0))
        chosen = [[int(os.path.basename(p)[:5]) for p in loader.plans[i].sources] for i in range(len(dataset))]
        gaps[epoch] = {b - a for clip in chosen for a, b in zip(clip, clip[1:])}
    assert dataset.sampler.max_skip == 10                        # 1 + 2 x 6, capped at 10
    assert gaps[0] == {1} and 1 < max(gaps[2]) <= 10


@needs_dali
def test_static_clips_mix_with_video_clips_in_one_batch(videos, runner, tmp_path):
    mixed = build_mixed_dataset([video_dataset(videos[:2]), static_dataset(str(tmp_path))], [1, 2])
    batches, order = dali_batches(runner, mixed, batch_size=4)
    kinds = set()
    for b, batch in enumerate(batches):
        reference = pil_batch(mixed, order[4 * b:4 * b + 4])
        kinds |= {name.startswith("img") for name in batch["names"]}
        assert batch["names"] == reference["names"]
        assert torch.equal(batch["num_objects"], reference["num_objects"])
        assert mask_agreement(batch, reference) > 0.95
    assert kinds == {True, False}


@needs_dali
def test_an_unsupported_transform_step_is_a_clear_error(videos):
    from libs.dataset.dali.loader import DaliLoaders

    dataset = video_dataset(videos)
    dataset.transform = build_train_transforms(SIZE, MAX_OBJECTS, fit="crop")
    with pytest.raises(VOSError, match="data_backend DALI cannot apply the training transform step RandomCropVisible"):
        DaliLoaders(dataset, 1, torch.device("cpu"))


@needs_dali
def test_unreadable_or_mismatched_frames_are_errors_naming_the_files(tmp_path):
    from libs.dataset.dali.plan import ClipPlanDataset

    broken, odd = write_video(str(tmp_path), "broken", num_frames=3), write_video(str(tmp_path), "odd", num_frames=3)
    for t in range(3):
        with open(broken.frames[t], "wb") as handle:
            handle.write(b"not a jpeg")
        write_indexed_png(odd.annotations[t], np.zeros((H, W - 8), np.uint8), None)
    with pytest.raises(VOSError, match=r"cannot read frame .*broken/JPEGImages/0000\d.jpg"):
        ClipPlanDataset(video_dataset([broken]))[0]
    with pytest.raises(VOSError, match=r"odd/JPEGImages/0000\d.jpg is 96x64 but its mask .*0000\d.png is 88x64"):
        ClipPlanDataset(video_dataset([odd]))[0]


@needs_dali
def test_planning_replaces_unreadable_clips_as_the_pil_backend_does(tmp_path):
    from libs.dataset.dali.plan import ClipPlanDataset

    broken, good = write_video(str(tmp_path), "broken", num_frames=3), write_video(str(tmp_path), "good", num_frames=3)
    for t in range(3):
        with open(broken.frames[t], "wb") as handle:
            handle.write(b"not a jpeg")
    mixed = build_mixed_dataset([video_dataset([broken, good])], [1])
    mixed.set_epoch(2)
    plans = ClipPlanDataset(mixed)
    for index in range(len(mixed)):
        plan, item = plans[index], mixed[index]
        assert plan.name == item["name"] == "good"
        assert [path for path, _ in plan.bad] == [path for path, _ in item["bad"]]       # the same files met
        assert bool(plan.bad) == (index % 2 == 0) and all("broken" in path for path, _ in plan.bad)


def test_without_dali_the_error_says_what_to_install(monkeypatch):
    from libs.dataset.dali.available import require_dali

    monkeypatch.setitem(sys.modules, "nvidia.dali", None)
    with pytest.raises(VOSError, match=r"data_backend DALI needs NVIDIA DALI.*pip install -r requirements-dali.txt"):
        require_dali()


def test_train_script_without_dali_prints_one_error_line():
    code = ("import runpy, sys; sys.modules['nvidia.dali'] = None; "
            "sys.argv = ['train.py', '--cfg', 'config.yaml', 'data_backend', 'DALI', 'gpu_id', '-1']; "
            "runpy.run_path('train.py', run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert [line for line in proc.stderr.splitlines() if line.strip()] == [proc.stderr.strip()]
    assert proc.stderr.startswith("error: data_backend DALI needs NVIDIA DALI") and "requirements-dali.txt" in proc.stderr


@needs_dali
@pytest.mark.slow
def test_train_script_runs_with_dali(tmp_path):
    from libs.dataset.synthetic import write_dataset

    write_dataset(str(tmp_path / "SYNTHETIC"), num_videos=2, num_frames=4, size=(40, 64), seed=5, split="train")
    ckpt = str(tmp_path / "ckpt")
    args = ["data_root", str(tmp_path), "checkpoint", ckpt, "output_dir", str(tmp_path / "out"), "arch", "resnet18",
            "keydim", "8", "valdim", "16", "input_size", "[32,48]", "gpu_id", "-1", "epochs", "1",
            "trainset", "['SYNTHETIC']", "datafreq", "[1]", "max_skip", "[2]", "max_training_obj", "2",
            "samples_per_video", "1", "train_batch", "1", "iter_size", "1", "epoch_per_test", "2", "workers", "0",
            "data_backend", "DALI"]
    env = dict(os.environ, OMP_NUM_THREADS="2")
    proc = subprocess.run([sys.executable, "train.py", "--cfg", "config.yaml"] + args, cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert {"epoch-0001.pth", "latest.pth"} <= set(os.listdir(ckpt))
    state = torch.load(os.path.join(ckpt, "latest.pth"), map_location="cpu", weights_only=True)
    assert state["epoch"] == 1 and state["step"] == 2


@needs_dali
@pytest.mark.gpu
def test_the_gpu_graph_gives_the_cpu_batch_on_the_gpu(videos, runner):
    from libs.dataset.dali.loader import DaliRunner
    from libs.dataset.dali.plan import ClipPlanDataset

    plans = ClipPlanDataset(video_dataset(videos))
    chosen = [plans[i] for i in range(4)]
    on_cpu, on_gpu = runner.batch(chosen), DaliRunner(torch.device("cuda:0"), threads=2).batch(chosen)
    assert on_gpu["frames"].is_cuda and on_gpu["masks"].is_cuda
    assert (on_gpu["frames"].cpu() - on_cpu["frames"]).abs().max() * 0.229 * 255 < 4.0
    assert float((on_gpu["masks"].cpu().argmax(2) == on_cpu["masks"].argmax(2)).float().mean()) > 0.995
