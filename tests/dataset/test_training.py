"""Training clip data sets: output format, reproducible randomness, resampling, mixing and batching."""
import os

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import libs.dataset.training as training
from libs.dataset.base import Video
from libs.dataset.sampler import ClipSampler
from libs.dataset.static import StaticClipSynth, StaticImages
from libs.dataset.training import (MAX_TRIES, StaticClipDataset, TrainClipDataset, build_mixed_dataset,
                                   collate_clips)
from libs.dataset.transforms import build_train_transforms
from libs.errors import VOSError
from libs.io import write_image, write_indexed_png
from libs.training.curriculum import CHECKPOINT_KEY, Curriculum

H, W = 48, 64
SIZE = (40, 56)


def write_video(root, name, num_frames=8, annotated_every=1, empty_until=0, ids=(1, 2)):
    """A video of moving bright boxes as PNG frames and masks; frames before `empty_until` have no object."""
    rng = np.random.default_rng(len(name))
    frames, annotations = [], {}
    for t in range(num_frames):
        labels = np.zeros((H, W), np.uint8)
        if t >= empty_until:
            for k, obj in enumerate(ids):
                labels[6 + 16 * k:20 + 16 * k, 4 + 2 * t + 20 * k:22 + 2 * t + 20 * k] = obj
        image = rng.integers(0, 50, (H, W, 3)).astype(np.uint8)
        image[labels > 0] = 230
        frames.append(os.path.join(root, name, "frames", f"{t:05d}.png"))
        write_image(frames[-1], image)
        if t % annotated_every == 0:
            annotations[t] = os.path.join(root, name, "masks", f"{t:05d}.png")
            write_indexed_png(annotations[t], labels, None)
    stems = [f"{t:05d}" for t in range(num_frames)]
    return Video(name=name, frames=frames, frame_names=stems, given={0: annotations[0]}, annotations=annotations)


def make_dataset(videos, seed=0, samples_per_video=1, name="TOY", max_skip=3, augment=True, sampled_frames=3):
    """A TrainClipDataset over `videos` with small clips."""
    sampler = ClipSampler(sampled_frames, max_skip, increment=2, max_skip_cap=10, name=name)
    transform = build_train_transforms(SIZE, max_objects=2, augment=augment)
    return TrainClipDataset(videos, sampler, transform, samples_per_video, max_objects=2, seed=seed, name=name)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("videos"))
    return [write_video(root, "walk"), write_video(root, "jump", num_frames=10)]


def same_item(a, b):
    """Whether two items hold identical tensors, object counts and names."""
    return (torch.equal(a["frames"], b["frames"]) and torch.equal(a["masks"], b["masks"])
            and a["num_objects"] == b["num_objects"] and a["name"] == b["name"])


def test_items_have_the_training_format(videos):
    dataset = make_dataset(videos, samples_per_video=2)
    assert len(dataset) == 4
    item = dataset[1]
    assert item["frames"].shape == (3, 3, *SIZE) and item["frames"].dtype == torch.float32
    assert item["masks"].shape == (3, 3, *SIZE) and item["masks"].dtype == torch.float32
    assert torch.equal(item["masks"].sum(1), torch.ones(3, *SIZE))
    assert item["num_objects"] == 2 and item["name"] == "jump"
    with pytest.raises(IndexError):
        dataset[4]


def test_clips_depend_only_on_seed_epoch_and_index(videos):
    first, second = make_dataset(videos, samples_per_video=3), make_dataset(videos, samples_per_video=3)
    forward = [first[i] for i in range(len(first))]
    backward = [second[i] for i in reversed(range(len(second)))][::-1]
    assert all(same_item(a, b) for a, b in zip(forward, backward))
    assert not same_item(forward[0], forward[2])                 # same video, another sample
    first.set_epoch(1)
    assert not same_item(first[0], forward[0])                   # another epoch
    first.set_epoch(0)
    assert same_item(first[0], forward[0])                       # back to epoch 0: identical again
    assert not same_item(make_dataset(videos, seed=1, samples_per_video=3)[0], forward[0])


def test_worker_count_does_not_change_the_clips(videos):
    dataset = make_dataset(videos, samples_per_video=2)
    dataset.set_epoch(3)
    batches = {}
    for workers in (0, 2):
        loader = DataLoader(dataset, batch_size=2, num_workers=workers, collate_fn=collate_clips)
        batches[workers] = list(loader)
    for a, b in zip(batches[0], batches[2]):
        assert torch.equal(a["frames"], b["frames"]) and torch.equal(a["masks"], b["masks"])
        assert a["names"] == b["names"]


def test_only_sampled_annotated_frames_are_read(tmp_path, monkeypatch):
    video = write_video(str(tmp_path), "sparse", num_frames=26, annotated_every=5)
    read = []
    original = training.read_frame
    monkeypatch.setattr(training, "read_frame", lambda path: read.append(path) or original(path))
    dataset = make_dataset([video], samples_per_video=10)
    for i in range(len(dataset)):
        dataset[i]
    assert len(read) == 10 * 3
    annotated = {video.frames[t] for t in video.annotations}
    assert set(read) <= annotated and len(set(read)) > 3


def test_clips_with_an_empty_first_frame_are_resampled(tmp_path):
    video = write_video(str(tmp_path), "late", num_frames=12, empty_until=6)
    dataset = make_dataset([video], samples_per_video=8, augment=False)
    for i in range(len(dataset)):
        item = dataset[i]
        assert item["num_objects"] == 2
        assert item["masks"][0, 1:].sum() > 0


def test_a_video_without_objects_is_an_error_naming_it(tmp_path):
    video = write_video(str(tmp_path), "blank", num_frames=5, empty_until=5)
    with pytest.raises(VOSError, match=rf"TOY video 'blank'.*{MAX_TRIES} sampled clips"):
        make_dataset([video])[0]


def test_a_video_shorter_than_a_clip_is_an_error_at_construction(tmp_path):
    video = write_video(str(tmp_path), "short", num_frames=2)
    with pytest.raises(VOSError, match=r"'short' has 2 annotated frames.*sampled_frames=3"):
        make_dataset([video])


def test_a_mask_of_another_size_is_an_error_naming_both_files(tmp_path, videos):
    video = write_video(str(tmp_path), "odd", num_frames=3)
    write_indexed_png(video.annotations[1], np.zeros((H, W - 4), np.uint8), None)
    with pytest.raises(VOSError, match=r"00001.png is 64x48 but its mask .*00001.png is 60x48"):
        make_dataset([video])[0]


def test_the_curriculum_moves_the_samplers_and_its_state_round_trips(videos):
    """Curriculum (libs.training.curriculum) moves each video set's sampler; its checkpoint state loads under
    the key 'curriculum' and, from older checkpoints, 'max_skip'."""
    davis, other = make_dataset(videos[:1], name="A", max_skip=3), make_dataset(videos, name="B", max_skip=3)
    mixed = build_mixed_dataset([davis, other], [3, 1])
    curriculum = Curriculum(mixed.clip_samplers(), epochs_per_increment=4)
    curriculum.set_epoch(9)
    assert curriculum.max_skips() == {"A": 7, "B": 7} and davis.epoch == 0      # clips' epoch: set_epoch
    state = curriculum.state_dict()
    for key in (CHECKPOINT_KEY, "max_skip"):
        restored = Curriculum(build_mixed_dataset([make_dataset(videos[:1], name="A"),
                                                   make_dataset(videos, name="B")], [3, 1]).clip_samplers(), 4)
        restored.load_checkpoint({key: state})
        assert restored.state_dict() == state and restored.max_skips() == {"A": 7, "B": 7}
    with pytest.raises(VOSError, match="no sampler state for training data set B"):
        restored.load_state_dict({"A": state["A"]})


def test_mixing_repeats_data_sets_by_frequency_with_different_clips(videos):
    davis, other = make_dataset(videos[:1], name="A"), make_dataset(videos, name="B")
    mixed = build_mixed_dataset([davis, other], [3, 1])
    assert len(mixed) == 3 * 1 + 1 * 2
    items = [mixed[i] for i in range(len(mixed))]
    assert [item["name"] for item in items] == ["walk"] * 3 + ["walk", "jump"]
    assert not same_item(items[0], items[1]) and not same_item(items[1], items[2])
    assert same_item(items[0], davis[0])
    mixed.set_epoch(8)
    assert davis.epoch == other.epoch == 8 and davis.sampler.max_skip == other.sampler.max_skip == 3   # curriculum: apart


def test_datafreq_of_the_wrong_length_names_both_lengths(videos):
    datasets = [make_dataset(videos, name="DAVIS17"), make_dataset(videos, name="VOS")]
    with pytest.raises(VOSError, match=r"datafreq has 1 entries .*2 training data sets \(DAVIS17, VOS\)"):
        build_mixed_dataset(datasets, [5])
    with pytest.raises(VOSError, match="datafreq for VOS must be an integer >= 0"):
        build_mixed_dataset(datasets, [5, -1])
    with pytest.raises(VOSError, match="leaves no training clips"):
        build_mixed_dataset(datasets, [0, 0])


def test_collate_stacks_a_batch(videos):
    dataset = make_dataset(videos)
    batch = collate_clips([dataset[0], dataset[1]])
    assert batch["frames"].shape == (2, 3, 3, *SIZE) and batch["masks"].shape == (2, 3, 3, *SIZE)
    assert batch["num_objects"].dtype == torch.long and batch["num_objects"].tolist() == [2, 2]
    assert batch["names"] == ["walk", "jump"]
    small = make_dataset(videos, sampled_frames=2)[0]
    with pytest.raises(VOSError, match="differ in shape"):
        collate_clips([dataset[0], small])


def test_static_clips_have_the_same_format_and_move(tmp_path):
    root = tmp_path / "STATIC"
    rng = np.random.default_rng(0)
    for i in range(2):
        labels = np.zeros((96, 128), np.uint8)
        labels[20:70, 30:90] = 1
        image = rng.integers(0, 50, (96, 128, 3)).astype(np.uint8)
        image[labels > 0] = 230
        write_image(str(root / "JPEGImages" / f"img{i}.jpg"), image)
        write_indexed_png(str(root / "Annotations" / f"img{i}.png"), labels, None)
    images = StaticImages(str(root)).videos
    transform = build_train_transforms(SIZE, max_objects=2)
    dataset = StaticClipDataset(images, StaticClipSynth(3), transform, 2, 2, seed=0, name="STATIC", work_size=SIZE)
    item = dataset[3]
    assert len(dataset) == 4 and item["name"] == "img1" and item["num_objects"] == 1
    assert item["frames"].shape == (3, 3, *SIZE) and item["masks"].shape == (3, 3, *SIZE)
    assert not torch.equal(item["masks"][0], item["masks"][1])
    assert same_item(dataset[3], item)
    assert len(build_mixed_dataset([dataset], [2])) == 8


def test_synthetic_videos_from_the_reader_feed_training(tmp_path):
    synthetic = pytest.importorskip("libs.dataset.synthetic")
    from libs.dataset.registry import get_dataset_class
    import libs.dataset  # noqa: F401  (registers the readers)
    synthetic.write_dataset(str(tmp_path), num_videos=2, num_frames=6, size=(48, 64), seed=0, split="train")
    reader = get_dataset_class("SYNTHETIC")(str(tmp_path), "train")
    item = make_dataset(reader.videos, name="SYNTHETIC")[1]
    assert item["frames"].shape == (3, 3, *SIZE) and 1 <= item["num_objects"] <= 2


def test_unreadable_files_are_replaced_the_same_way_every_time_and_named(tmp_path):
    walk, jump, run = (write_video(str(tmp_path), name, num_frames=4) for name in ("walk", "jump", "run"))
    with open(walk.frames[1], "wb") as handle:                   # truncated image
        handle.write(open(jump.frames[1], "rb").read()[:60])
    with open(walk.annotations[2], "wb") as handle:              # not an image at all
        handle.write(b"garbage")
    os.remove(walk.frames[3])                                    # gone since the data set was listed
    os.remove(walk.frames[0])
    mixed = build_mixed_dataset([make_dataset([walk, jump, run], sampled_frames=2, max_skip=1)], [1])
    mixed.set_epoch(1)
    item = mixed[0]                                              # item 0 is a clip of 'walk': replaced
    assert item["name"] != "walk" and item["bad"]
    assert {path for path, _ in item["bad"]} <= {walk.frames[1], walk.annotations[2], walk.frames[3], walk.frames[0]}
    assert all(path in reason and ("cannot read" in reason or "does not exist" in reason)
               for path, reason in item["bad"])
    again = mixed[0]
    assert same_item(item, again) and item["bad"] == again["bad"]
    assert mixed[1]["bad"] == []
    batch = next(iter(DataLoader(mixed, batch_size=3, num_workers=1, collate_fn=collate_clips)))
    assert batch["bad"] == item["bad"] and torch.equal(batch["frames"][0], item["frames"])   # through a worker
    with pytest.raises(training.BadSample, match="walk"):         # a single data set still raises
        mixed.datasets[0].get_item(0)
