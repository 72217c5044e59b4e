"""Statistics tables, the official CSV files and the plot, from hand-made per-frame scores."""
import os

import numpy as np
import pytest
from PIL import Image

from libs.evaluation.report import DavisResults, SequenceScores


def hand_results():
    """Two sequences: 'a' one object, 'b' two objects, two scored frames each."""
    a = SequenceScores("a", ["00001", "00002"], np.array([[1.0, 0.5]]), np.array([[0.25, 0.75]]))
    b = SequenceScores("b", ["00001", "00002"], np.array([[0.2, 0.4], [1.0, 1.0]]),
                       np.array([[0.0, 0.6], [1.0, 0.8]]))
    return DavisResults([a, b], set_name="val", year=2017, seconds=1.0)


def test_per_object_rows_and_global_row_by_hand():
    results = hand_results()
    assert [r["Sequence"] for r in results.per_object] == ["a_1", "b_1", "b_2"]
    a1 = results.per_object[0]
    # 2 frames: bin edges round(linspace(1, 2, 5)) - 1 = [0, 0, 1, 1, 1]: decay = first - second
    assert (a1["J-Mean"], a1["J-Recall"], a1["J-Decay"]) == (0.75, 0.5, 0.5)  # 0.5 is not > 0.5
    assert (a1["F-Mean"], a1["F-Recall"], a1["F-Decay"]) == (0.5, 0.5, -0.5)
    row = results.global_row
    assert list(row) == ["J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"]
    assert row["J-Mean"] == pytest.approx((0.75 + 0.3 + 1.0) / 3)
    assert row["F-Mean"] == pytest.approx((0.5 + 0.3 + 0.9) / 3)
    assert row["J-Recall"] == pytest.approx((0.5 + 0.0 + 1.0) / 3)
    assert row["J-Decay"] == pytest.approx((0.5 - 0.2 + 0.0) / 3)
    assert row["F-Recall"] == pytest.approx((0.5 + 0.5 + 1.0) / 3)
    assert row["F-Decay"] == pytest.approx((-0.5 - 0.6 + 0.2) / 3)
    assert row["J&F-Mean"] == pytest.approx((row["J-Mean"] + row["F-Mean"]) / 2)


def test_csv_files_have_the_official_names_columns_and_format(tmp_path):
    paths = hand_results().write_csvs(str(tmp_path))
    assert os.path.basename(paths["global"]) == "global_results-val.csv"
    assert os.path.basename(paths["per_sequence"]) == "per-sequence_results-val.csv"
    with open(paths["global"]) as f:
        assert f.read() == ("J&F-Mean,J-Mean,J-Recall,J-Decay,F-Mean,F-Recall,F-Decay\n"
                            "0.625,0.683,0.500,0.100,0.567,0.667,-0.300\n")
    with open(paths["per_sequence"]) as f:
        assert f.read() == ("Sequence,J-Mean,F-Mean\n"
                            "a_1,0.750,0.500\n"
                            "b_1,0.300,0.300\n"
                            "b_2,1.000,0.900\n")
    assert sorted(os.listdir(tmp_path)) == ["global_results-val.csv", "per-sequence_results-val.csv"]


def test_nan_is_written_as_an_empty_cell(tmp_path):
    frames = [f"{i:05d}" for i in range(1, 301)]
    long = SequenceScores("long", frames, np.ones((1, 300)), np.ones((1, 300)))  # decay NaN past 255 frames
    paths = DavisResults([long], "val", 2017, 0.0).write_csvs(str(tmp_path))
    with open(paths["global"]) as f:
        assert f.read().splitlines()[1] == "1.000,1.000,1.000,,1.000,1.000,"


def test_tables_text_lists_every_object():
    text = hand_results().tables_text()
    assert "Global results for val" in text and "Per sequence results for val" in text
    for name in ["a_1", "b_1", "b_2", "J&F-Mean", "0.750000"]:
        assert name in text


def test_plot_writes_a_png_beside_the_csvs(tmp_path):
    path = hand_results().plot(str(tmp_path))
    assert os.path.basename(path) == "per-sequence_results-val.png"
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] >= 800
    assert os.listdir(tmp_path) == ["per-sequence_results-val.png"]  # no temporary file left
