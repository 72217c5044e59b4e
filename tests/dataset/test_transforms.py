"""Paired clip augmentation: alignment of frames and masks, shared parameters, object selection, output format."""
import numpy as np
import pytest
import torch

from torchvision import tv_tensors

from libs.dataset.transforms import IMAGENET_MEAN, IMAGENET_STD, ColourJitter, ToClipTensors, build_train_transforms
from libs.errors import VOSError

H, W = 48, 64
BOXES = {1: (8, 30, 6, 26), 2: (20, 44, 34, 58), 3: (2, 12, 40, 62), 4: (34, 46, 4, 16)}  # id: y0, y1, x0, x1


COLOURS = {1: (255, 200, 120), 2: (120, 255, 200), 3: (200, 120, 255), 4: (255, 255, 255)}


def painted_clip(frames=3, ids=(1, 2), seed=0, shift=2, coloured=False):
    """Dark noisy frames with bright boxes exactly where the mask labels an object (boxes move by `shift`).

    With `coloured` every object gets its own colour from COLOURS instead of bright noise.
    """
    rng = np.random.default_rng(seed)
    images, masks = [], []
    for t in range(frames):
        labels = np.zeros((H, W), np.uint8)
        for obj in ids:
            y0, y1, x0, x1 = BOXES[obj]
            labels[y0:y1, x0 + t * shift:x1 + t * shift] = obj
        image = rng.integers(0, 50, (H, W, 3)).astype(np.uint8)
        image[labels > 0] = rng.integers(205, 256, (int((labels > 0).sum()), 3))
        for obj in ids if coloured else ():
            image[labels == obj] = COLOURS[obj]
        images.append(image)
        masks.append(labels)
    return images, masks


def brightness(frames):
    """Normalised frames [T, 3, H, W] back to mean 0..255 intensity [T, H, W]."""
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return ((frames * std + mean) * 255).mean(dim=1)


def check_format(frames, masks, num_objects, max_objects, size, length=3):
    """Shapes, dtypes, a valid one-hot partition and empty channels beyond num_objects."""
    assert frames.shape == (length, 3, *size) and frames.dtype == torch.float32
    assert masks.shape == (length, max_objects + 1, *size) and masks.dtype == torch.float32
    assert set(masks.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(masks.sum(dim=1), torch.ones(length, *size))
    assert masks[:, num_objects + 1:].sum() == 0
    assert all(masks[0, k].sum() > 0 for k in range(1, num_objects + 1))


@pytest.mark.parametrize("fit, zoom", [("pad", 1), ("crop", 1), ("pad", 2)])
def test_augmented_masks_stay_on_their_pixels(fit, zoom):
    transform = build_train_transforms((48, 64), max_objects=3, fit=fit)
    for seed in range(25):
        torch.manual_seed(seed)
        images, labels = painted_clip(seed=seed)   # zoom 2: larger than the input, shrunk first
        images, labels = ([a.repeat(zoom, 0).repeat(zoom, 1) for a in arrays] for arrays in (images, labels))
        frames, masks, num_objects = transform(images, labels)
        check_format(frames, masks, num_objects, 3, (48, 64))
        objects = masks[:, 1:].sum(dim=1) > 0   # [T, h, w]
        bright = brightness(frames) > 128
        assert num_objects >= 1
        assert (bright[objects]).float().mean() > 0.95
        assert (objects[bright]).float().mean() > 0.95


def test_one_parameter_draw_for_the_whole_clip():
    images, masks = painted_clip(frames=1, seed=3)
    transform = build_train_transforms((40, 56), max_objects=2)
    changed = 0
    for seed in range(8):
        torch.manual_seed(seed)
        frames, onehot, _ = transform(images * 4, masks * 4)
        for t in range(1, 4):
            assert torch.equal(frames[t], frames[0]) and torch.equal(onehot[t], onehot[0])
        plain, _, _ = build_train_transforms((40, 56), 2, augment=False)(images, masks)
        changed += int(not torch.allclose(frames[0], plain[0], atol=1e-3))
    assert changed >= 6   # and augmentation really changes the clip


def test_same_seed_same_clip_different_seed_different_clip():
    transform = build_train_transforms((40, 56), max_objects=2)
    clip = painted_clip()
    outputs = []
    for seed in (5, 5, 6):
        torch.manual_seed(seed)
        outputs.append(transform(*clip))
    assert torch.equal(outputs[0][0], outputs[1][0]) and torch.equal(outputs[0][1], outputs[1][1])
    assert not torch.equal(outputs[0][0], outputs[2][0])


def test_objects_absent_from_the_first_frame_are_cleared():
    images, masks = painted_clip(ids=(1, 2))
    masks[0][masks[0] == 2] = 0    # object 2 only appears from frame 1 on
    frames, onehot, num_objects = build_train_transforms((48, 64), 3, augment=False)(images, masks)
    assert num_objects == 1
    assert onehot[:, 2:].sum() == 0
    y0, y1, x0, x1 = BOXES[2]
    assert onehot[1, 0, y0:y1, x0 + 2:x1 + 2].min() == 1   # its pixels became background


def test_at_most_max_objects_a_random_subset_relabelled_in_order():
    images, masks = painted_clip(ids=(1, 2, 3, 4), coloured=True)
    areas = {obj: (y1 - y0) * (x1 - x0) for obj, (y0, y1, x0, x1) in BOXES.items()}
    transform = build_train_transforms((48, 64), max_objects=2, augment=False)
    _, onehot, num_objects = transform(images, masks)
    assert num_objects == 2 and onehot.shape[1] == 3
    assert [int(onehot[0, k].sum()) for k in (1, 2)] == [areas[1], areas[2]]   # lowest ids without augmentation
    augmented = build_train_transforms((48, 64), max_objects=2, augment=True)
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1), torch.tensor(IMAGENET_STD).view(3, 1)
    palette = torch.tensor([COLOURS[obj] for obj in sorted(COLOURS)], dtype=torch.float32)   # [4, 3]
    chosen = set()
    for seed in range(30):
        torch.manual_seed(seed)
        frames, onehot, num_objects = augmented(images, masks)
        assert num_objects == 2
        colours = [((frames[0][:, onehot[0, k] > 0] * std + mean) * 255).mean(1) for k in (1, 2)]  # [3] each
        ids = [int(torch.cdist(c[None], palette).argmin()) + 1 for c in colours]
        assert ids[0] < ids[1]   # kept objects keep their order
        chosen.add(tuple(ids))
    assert len(chosen) >= 4


def test_void_becomes_background():
    images, masks = painted_clip(ids=(1,))
    for mask in masks:
        mask[40:46, 30:50] = 255
    _, onehot, num_objects = build_train_transforms((48, 64), 2, augment=False)(images, masks)
    assert num_objects == 1
    assert onehot[:, 0, 40:46, 30:50].min() == 1


def test_without_augmentation_resizes_to_fit_and_pads_evenly():
    images, masks = painted_clip(frames=2)
    frames, onehot, num_objects = build_train_transforms((40, 80), 2, augment=False)(images, masks)
    check_format(frames, onehot, num_objects, 2, (40, 80), length=2)
    # 48x64 fits 40x80 as 40x53 (aspect kept, truncated), padded 13 left and 14 right
    black = ((torch.zeros(3) - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)).view(1, 3, 1, 1)
    assert torch.allclose(frames[:, :, :, :13], black.expand(2, 3, 40, 13))
    assert torch.allclose(frames[:, :, :, 66:], black.expand(2, 3, 40, 14))
    assert not torch.allclose(frames[:, :, :, 13:14], black.expand(2, 3, 40, 1))
    assert onehot[:, 0, :, :13].min() == 1 and onehot[:, 0, :, 66:].min() == 1
    expected = torch.nn.functional.interpolate(torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255,
                                               size=(40, 53), mode="bilinear", align_corners=False)
    expected = (expected - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    assert torch.allclose(frames[:, :, :, 13:66], expected, atol=1e-4)
    nearest = torch.nn.functional.interpolate(torch.from_numpy(np.stack(masks))[:, None].float(), size=(40, 53),
                                              mode="nearest-exact")
    assert torch.equal(onehot[:, 1:].argmax(1)[onehot[:, 1:].sum(1) > 0] + 1,
                       nearest[:, 0, :, :][nearest[:, 0] > 0].long())


def test_without_augmentation_matches_test_time_letterbox():
    from libs.inference import frames as preprocess

    images, masks = painted_clip(frames=1)
    frames, _, _ = build_train_transforms((40, 80), 2, augment=False)(images, masks)
    expected = preprocess.Letterbox((40, 80), (H, W)).frame(images[0])   # [1, 3, 40, 80]
    assert torch.allclose(frames[:1], expected, atol=1e-4)


def test_crop_keeps_a_small_object_of_the_first_frame_in_view():
    transform = build_train_transforms((24, 24), max_objects=1, fit="crop")
    image = np.zeros((96, 128, 3), np.uint8)
    labels = np.zeros((96, 128), np.uint8)
    labels[60:66, 90:96] = 1
    image[labels == 1] = 255
    for seed in range(10):
        torch.manual_seed(seed)
        frames, onehot, num_objects = transform([image] * 2, [labels] * 2)
        assert frames.shape == (2, 3, 24, 24) and num_objects == 1
        assert onehot[0, 1].sum() > 0


def test_mismatched_frame_and_mask_is_an_error():
    with pytest.raises(VOSError, match=r"frame 1 .*\(48, 64, 3\).*\(40, 64\)"):
        ToClipTensors()([np.zeros((48, 64, 3), np.uint8)] * 2,
                        [np.zeros((48, 64), np.uint8), np.zeros((40, 64), np.uint8)])


def test_bad_options_are_errors():
    with pytest.raises(VOSError, match="fit must be"):
        build_train_transforms((40, 56), 2, fit="stretch")
    with pytest.raises(VOSError, match="max_training_obj"):
        build_train_transforms((40, 56), 0)


def _portrait_clip():
    """The painted clip turned portrait ([64, 48]): each frame and mask transposed."""
    images, masks = painted_clip(ids=(1, 2, 3))
    return [np.ascontiguousarray(i.transpose(1, 0, 2)) for i in images], [np.ascontiguousarray(m.T) for m in masks]


@pytest.mark.parametrize("augment", [False, True])
def test_portrait_clips_are_transposed_to_landscape_as_the_original(augment):
    """The original's training transform first turns a clip with H > W into np.transpose(frame, [1, 0, 2]):
    the result equals the pipeline run, with the same draws, on clips transposed that way by hand."""
    images, masks = _portrait_clip()
    by_hand = [i.transpose(1, 0, 2) for i in images], [m.T for m in masks]   # landscape [48, 64]
    outputs = []
    for transpose, clip in ((True, (images, masks)), (False, by_hand)):
        torch.manual_seed(3)
        outputs.append(build_train_transforms((48, 64), 3, augment=augment, transpose_portrait=transpose)(*clip))
    (frames, onehot, count), (expected, expected_onehot, expected_count) = outputs
    assert count == expected_count == 3
    assert torch.equal(frames, expected) and torch.equal(onehot, expected_onehot)
    if not augment:   # 48x64 fills the input; kept portrait it would be fitted to 48x36 and padded with black
        upright, _, _ = build_train_transforms((48, 64), 3, augment=False, transpose_portrait=False)(images, masks)
        black = (-torch.tensor(IMAGENET_MEAN) / torch.tensor(IMAGENET_STD)).view(3, 1, 1).expand(3, 3, 48, 14)
        assert torch.allclose(upright[:, :, :, :14], black) and not torch.allclose(frames[:, :, :, :14], black)


def test_landscape_clips_are_not_transposed():
    clip = painted_clip()
    outputs = []
    for transpose in (True, False):
        torch.manual_seed(4)
        outputs.append(build_train_transforms((40, 56), 2, transpose_portrait=transpose)(*clip))
    assert torch.equal(outputs[0][0], outputs[1][0]) and torch.equal(outputs[0][1], outputs[1][1])


@pytest.mark.parametrize("style", ["original", "mid_grey"])
def test_colour_jitter_by_value(style):
    """'original': values multiplied by the factor plus the shift, unclamped (as the original's float
    frames); 'mid_grey': the factor scales around 0.5 and the result is clamped to [0, 1]."""
    jitter = ColourJitter.named(style)
    values = torch.tensor([0.0, 0.25, 0.5, 1.0]).view(1, 1, 1, 4).expand(2, 3, 1, 4)   # [T, 3, 1, 4]
    frames, outside = tv_tensors.Image(values.clone()), False
    for seed in range(20):
        torch.manual_seed(seed)
        factor, shift = jitter.draw_params()
        torch.manual_seed(seed)
        out, _ = jitter(frames, tv_tensors.Mask(torch.zeros(2, 1, 4, dtype=torch.uint8)))
        if style == "original":
            expected = values * factor + shift
        else:
            expected = ((values - 0.5) * factor + 0.5 + shift).clamp(0, 1)
        assert torch.allclose(out, expected, atol=1e-7)
        outside = outside or bool(out.max() > 1) or bool(out.min() < 0)
        assert 0.97 <= factor <= 1.03 and abs(shift) <= 5 / 255
    assert outside == (style == "original")   # only the original's jitter leaves [0, 1]


def test_an_unknown_colour_jitter_is_an_error():
    with pytest.raises(VOSError, match="colour_jitter must be one of original, mid_grey, got 'vivid'"):
        build_train_transforms((40, 56), 2, colour_jitter="vivid")
