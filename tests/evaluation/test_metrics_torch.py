"""The torch (GPU) scoring gives the numbers of the numpy scoring; run on the CPU here."""
import cv2
import numpy as np
import pytest
import torch

from libs.evaluation import metrics
from libs.evaluation.davis import evaluate_davis
from libs.evaluation.metrics_torch import dilate_disk, disk_levels, label_scores_torch, object_scores_torch
from libs.evaluation.synthetic import write_davis_like


def test_disk_is_the_union_of_the_listed_rectangles():
    assert disk_levels(8) == [(8, 0), (7, 3), (6, 5), (5, 6), (3, 7), (0, 8)]
    for radius in range(1, 13):
        union = np.zeros((2 * radius + 1, 2 * radius + 1), dtype=np.uint8)
        for half_h, half_w in disk_levels(radius):
            union[radius - half_h:radius + half_h + 1, radius - half_w:radius + half_w + 1] = 1
        assert np.array_equal(union, metrics.disk(radius))


def test_dilation_equals_opencv_with_the_disk():
    rng = np.random.default_rng(0)
    maps = rng.random((3, 40, 57)) < 0.02
    for radius in [1, 2, 5, 8]:
        expected = np.stack([cv2.dilate(m.astype(np.uint8), metrics.disk(radius)) for m in maps]) > 0
        got = dilate_disk(torch.from_numpy(maps)[:, None].float(), radius)[:, 0].numpy() > 0
        assert np.array_equal(got, expected)


def test_label_scores_equal_numpy_frame_scores():
    rng = np.random.default_rng(1)
    frames, objects = 5, 3
    gt = np.zeros((frames, 48, 70), dtype=np.uint8)
    pred = np.zeros_like(gt)
    for t in range(frames):
        for k in range(1, objects + 1):
            y, x, h, w = rng.integers(0, 40), rng.integers(0, 60), rng.integers(1, 30), rng.integers(1, 30)
            gt[t, y:y + h, x:x + w] = k
            dy, dx = rng.integers(-3, 4, size=2)
            pred[t, max(y + dy, 0):y + dy + h, max(x + dx, 0):x + dx + w] = k
    pred[2] = 0  # a frame with nothing predicted
    j, f = label_scores_torch(gt, pred, objects, "cpu", metrics.BOUND_TH)
    kernel = metrics.disk(metrics.boundary_radius(48, 70))
    for t in range(frames):
        j_np, f_np = metrics.frame_scores(gt[t], pred[t], objects, kernel)
        assert np.allclose(j[:, t], j_np, atol=1e-12) and np.allclose(f[:, t], f_np, atol=1e-12)


@pytest.mark.gpu
def test_cuda_evaluation_equals_cpu(tmp_path):
    davis, res = str(tmp_path / "davis"), str(tmp_path / "res")
    write_davis_like(davis, res, n_sequences=2, n_frames=6, size=(120, 200), seed=3)
    cpu = evaluate_davis(davis, res, device="cpu")
    cuda = evaluate_davis(davis, res, device="cuda")
    for a, b in zip(cpu.per_object, cuda.per_object):
        assert a["Sequence"] == b["Sequence"]
        assert a["J-Mean"] == pytest.approx(b["J-Mean"], abs=1e-12)
        assert a["F-Mean"] == pytest.approx(b["F-Mean"], abs=1e-12)


def test_void_pixels_are_left_out_as_in_numpy():
    rng = np.random.default_rng(2)
    gt = rng.random((4, 30, 40)) < 0.3
    pred = np.roll(gt, 2, axis=2)
    void = rng.random((4, 30, 40)) < 0.1
    j, f = object_scores_torch(torch.from_numpy(gt), torch.from_numpy(pred), 1, torch.from_numpy(void))
    assert np.allclose(j, metrics.db_eval_iou(gt, pred, void), atol=1e-12)
    assert np.allclose(f, metrics.db_eval_boundary(gt, pred, void), atol=1e-12)
