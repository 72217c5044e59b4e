"""evaluate_davis end to end on small generated folders: numbers, edge cases and every error."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

from libs.errors import VOSError
from libs.evaluation.davis import evaluate_davis
from libs.evaluation.synthetic import save_label_png, write_davis_like
from tests.evaluation import reference
from tests.evaluation.helpers import square_frame, write_davis

SHAPE = (64, 96)


def read_pngs(folder, count):
    """Label maps of frames 00000..count-1 read with PIL."""
    return [np.array(Image.open(os.path.join(folder, f"{i:05d}.png"))) for i in range(count)]


def rows_by_name(results):
    """{<seq>_<id>: per-object row}."""
    return {row["Sequence"]: row for row in results.per_object}


def test_generated_data_matches_the_slow_reference(tmp_path):
    davis, res = str(tmp_path / "davis"), str(tmp_path / "res")
    names = write_davis_like(davis, res, n_sequences=3, n_frames=6, size=SHAPE, seed=4)
    results = evaluate_davis(davis, res)
    rows = rows_by_name(results)
    for name in names:
        gts = read_pngs(os.path.join(davis, "Annotations", "480p", name), 6)
        preds = read_pngs(os.path.join(res, name), 6)
        j, f = reference.sequence_scores(gts, preds)
        for k in range(j.shape[0]):
            assert rows[f"{name}_{k + 1}"]["J-Mean"] == pytest.approx(j[k].mean(), abs=1e-12)
            assert rows[f"{name}_{k + 1}"]["F-Mean"] == pytest.approx(f[k].mean(), abs=1e-12)
    j_mean = np.mean([r["J-Mean"] for r in results.per_object])
    f_mean = np.mean([r["F-Mean"] for r in results.per_object])
    assert results.global_row["J-Mean"] == pytest.approx(j_mean)
    assert results.global_row["J&F-Mean"] == pytest.approx((j_mean + f_mean) / 2)


def test_first_and_last_frames_are_not_scored(tmp_path):
    gts = [square_frame(SHAPE, {1: (10, 10, 8)}) for _ in range(4)]
    preds = [None, gts[1], square_frame(SHAPE, {1: (40, 60, 8)}), None]  # frame 2 misses completely
    davis, res = write_davis(str(tmp_path), {"s": (gts, preds)})
    results = evaluate_davis(davis, res)
    assert results.sequences[0].frames == ["00001", "00002"]
    row = results.per_object[0]
    assert (row["J-Mean"], row["F-Mean"], row["J-Recall"]) == (0.5, 0.5, 0.5)
    assert row["J-Decay"] == 1.0  # 2 frames: the first bin is frame 1 alone, the last frame 2 alone


def test_void_label_counts_as_background(tmp_path):
    gt = square_frame(SHAPE, {1: (10, 10, 10)})
    gt[8:22, 8:22][gt[8:22, 8:22] == 0] = 255  # a 2-px void ring around the object (96 pixels)
    pred = square_frame(SHAPE, {1: (8, 8, 14)})  # the object and its void ring
    davis, res = write_davis(str(tmp_path), {"s": ([gt, gt, gt], [None, pred, None])})
    row = evaluate_davis(davis, res).per_object[0]
    assert row["J-Mean"] == pytest.approx(100 / 196)  # void pixels are not excluded


def test_object_count_comes_from_the_first_frame(tmp_path):
    first = square_frame(SHAPE, {1: (5, 5, 6), 3: (30, 30, 6)})  # ids 1 and 3: three objects
    later = square_frame(SHAPE, {1: (5, 5, 6), 3: (30, 30, 6), 4: (40, 70, 6)})  # 4 is ignored
    pred_2 = square_frame(SHAPE, {1: (5, 5, 6), 2: (50, 5, 4), 3: (30, 30, 6)})  # 2 not in GT
    davis, res = write_davis(str(tmp_path), {"s": ([first, later, later, first], [None, first, pred_2, None])})
    rows = rows_by_name(evaluate_davis(davis, res))
    assert sorted(rows) == ["s_1", "s_2", "s_3"]
    assert rows["s_2"]["J-Mean"] == 0.5  # frame 1: empty vs empty = 1; frame 2: extra object = 0
    assert rows["s_1"]["J-Mean"] == rows["s_3"]["J-Mean"] == 1.0


def test_object_missing_from_the_prediction_scores_zero(tmp_path):
    gt = square_frame(SHAPE, {1: (5, 5, 6), 2: (30, 30, 6)})
    pred = square_frame(SHAPE, {1: (5, 5, 6)})
    davis, res = write_davis(str(tmp_path), {"s": ([gt] * 4, [None, pred, pred, None])})
    rows = rows_by_name(evaluate_davis(davis, res))
    assert (rows["s_2"]["J-Mean"], rows["s_2"]["F-Mean"]) == (0.0, 0.0)
    assert (rows["s_1"]["J-Mean"], rows["s_1"]["F-Mean"]) == (1.0, 1.0)


def test_2016_merges_every_id_into_one_object(tmp_path):
    gt = square_frame(SHAPE, {1: (5, 5, 6), 2: (30, 30, 6)})
    swapped = square_frame(SHAPE, {2: (5, 5, 6), 1: (30, 30, 6)})
    sequences = {"s": ([gt] * 3, [None, swapped, None])}
    davis, res = write_davis(str(tmp_path), sequences, year=2016)
    results = evaluate_davis(davis, res, year=2016)
    assert [r["Sequence"] for r in results.per_object] == ["s_1"]
    assert results.global_row["J-Mean"] == 1.0
    write_davis(str(tmp_path), sequences, year=2017)
    assert evaluate_davis(davis, res, year=2017).global_row["J-Mean"] == 0.0


def test_2016_reads_binary_0_255_ground_truth(tmp_path):
    gt = square_frame(SHAPE, {255: (5, 5, 6)})  # the DAVIS 2016 release stores foreground as 255
    pred = square_frame(SHAPE, {1: (5, 5, 6)})
    davis, res = write_davis(str(tmp_path), {"s": ([gt] * 3, [pred] * 3)}, year=2016)
    assert evaluate_davis(davis, res, year=2016).global_row["J&F-Mean"] == 1.0


def test_sequences_argument_and_set_file_handling(tmp_path):
    frames = [square_frame(SHAPE, {1: (5, 5, 6)})] * 3
    sequences = {"a": (frames, frames), "b": (frames, frames)}
    davis, res = write_davis(str(tmp_path), sequences, listed=["b", "", "a", "b"])
    assert [s.name for s in evaluate_davis(davis, res).sequences] == ["b", "a"]  # blank and repeat dropped
    assert [s.name for s in evaluate_davis(davis, res, sequences=["a"]).sequences] == ["a"]


def test_two_workers_give_the_same_numbers(tmp_path):
    davis, res = str(tmp_path / "davis"), str(tmp_path / "res")
    write_davis_like(davis, res, n_sequences=3, n_frames=5, size=SHAPE, seed=9)
    one, two = evaluate_davis(davis, res, workers=1), evaluate_davis(davis, res, workers=2)
    assert one.per_object == two.per_object


def test_same_per_sequence_means_as_vos_benchmark(tmp_path):
    vos_benchmark = pytest.importorskip("vos_benchmark.benchmark")
    davis, res = str(tmp_path / "davis"), str(tmp_path / "res")
    write_davis_like(davis, res, n_sequences=3, n_frames=6, size=SHAPE, seed=11)
    ours = rows_by_name(evaluate_davis(davis, res))
    gt_root = os.path.join(davis, "Annotations", "480p")
    metrics = vos_benchmark.benchmark([gt_root], [res], num_processes=1, verbose=False)[3][0]
    for name, (iou, boundary) in metrics.items():
        for k in iou:
            assert ours[f"{name}_{k}"]["J-Mean"] == pytest.approx(iou[k] / 100, abs=1e-9)
            assert ours[f"{name}_{k}"]["F-Mean"] == pytest.approx(boundary[k] / 100, abs=1e-9)


@pytest.fixture
def good_folder(tmp_path):
    """One valid sequence 's' of 4 frames with 2 objects; (davis, results)."""
    gt = square_frame(SHAPE, {1: (5, 5, 6), 2: (30, 30, 6)})
    return write_davis(str(tmp_path), {"s": ([gt] * 4, [gt] * 4)})


def test_missing_scored_frame_names_sequence_and_frame(good_folder):
    davis, res = good_folder
    os.remove(os.path.join(res, "s", "00002.png"))
    with pytest.raises(VOSError, match=r"'s'.*00002\.png"):
        evaluate_davis(davis, res)
    os.remove(os.path.join(res, "s", "00003.png"))  # the last frame is not needed
    os.remove(os.path.join(res, "s", "00000.png"))
    with pytest.raises(VOSError, match="00002"):
        evaluate_davis(davis, res)


def test_object_id_above_the_count_is_named(good_folder):
    davis, res = good_folder
    save_label_png(os.path.join(res, "s", "00001.png"), square_frame(SHAPE, {5: (5, 5, 6)}))
    with pytest.raises(VOSError, match=r"'s' frame 00001.*object id 5.*2 object"):
        evaluate_davis(davis, res)


def test_size_mismatch_names_both_sizes(good_folder):
    davis, res = good_folder
    save_label_png(os.path.join(res, "s", "00002.png"), np.zeros((50, 80), dtype=np.uint8))
    with pytest.raises(VOSError, match=r"00002.*80x50.*96x64"):
        evaluate_davis(davis, res)


def test_results_path_without_any_sequence(good_folder, tmp_path):
    davis, _ = good_folder
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(VOSError, match="holds none of the 1 sequences"):
        evaluate_davis(davis, str(empty))
    with pytest.raises(VOSError, match="is not a folder"):
        evaluate_davis(davis, str(tmp_path / "nowhere"))


def test_bad_inputs_raise_clear_errors(good_folder, tmp_path):
    davis, res = good_folder
    with pytest.raises(VOSError, match="sets available for 2017: val"):
        evaluate_davis(davis, res, set_name="test-dev")
    with pytest.raises(VOSError, match="year"):
        evaluate_davis(davis, res, year=2019)
    with pytest.raises(VOSError, match="no ground truth for sequence 'zzz'"):
        evaluate_davis(davis, res, sequences=["zzz"])
    Image.fromarray(np.zeros((64, 96, 3), dtype=np.uint8)).save(os.path.join(res, "s", "00001.png"))
    with pytest.raises(VOSError, match="colour image"):
        evaluate_davis(davis, res)


def test_sequence_with_two_annotated_frames_is_refused(tmp_path):
    gt = square_frame(SHAPE, {1: (5, 5, 6)})
    davis, res = write_davis(str(tmp_path), {"s": ([gt, gt], [gt, gt])})
    with pytest.raises(VOSError, match="at least 3"):
        evaluate_davis(davis, res)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour without CUDA")
def test_device_choice_without_cuda(good_folder):
    davis, res = good_folder
    with pytest.raises(VOSError, match="--device cuda was asked"):
        evaluate_davis(davis, res, device="cuda")
    with pytest.raises(VOSError, match="--device must be cpu, cuda or auto"):
        evaluate_davis(davis, res, device="tpu")
    assert evaluate_davis(davis, res, device="auto").global_row["J&F-Mean"] == 1.0  # runs on the CPU


def test_ground_truth_folders_of_any_layout_give_the_official_numbers(tmp_path):
    """The same GT moved to <root>/<seq>/ and passed per sequence: identical scores; a missing folder
    is named."""
    davis, res = str(tmp_path / "davis"), str(tmp_path / "res")
    names = write_davis_like(davis, res, n_sequences=2, n_frames=5, size=SHAPE, seed=9)
    official = evaluate_davis(davis, res)
    moved = tmp_path / "elsewhere"
    os.rename(os.path.join(davis, "Annotations", "480p"), moved)
    folders = {name: str(moved / name) for name in names}
    ours = evaluate_davis("unused", res, ground_truth=folders)
    assert ours.per_object == official.per_object and ours.global_row == official.global_row
    with pytest.raises(VOSError, match="no ground truth for sequence 'x'.*nowhere is not a folder"):
        evaluate_davis("unused", res, ground_truth={"x": str(tmp_path / "nowhere")})


def test_frames_are_listed_in_the_readers_natural_order(tmp_path):
    """Unpadded names ('2' before '10') are scored in the order the readers segment them."""
    from libs.evaluation.davis import list_pngs

    for stem in ("10", "2", "0", "1", "11", ".hidden"):
        (tmp_path / f"{stem}.png").write_bytes(b"")
    (tmp_path / "3.jpg").write_bytes(b"")
    assert list_pngs(str(tmp_path)) == ["0", "1", "2", "10", "11"]
    assert list_pngs(str(tmp_path / "missing")) is None
