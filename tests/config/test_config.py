"""Configuration: defaults, file + KEY VAL merging, validation messages, freezing."""
import pytest

from libs.config import get_cfg, load_cfg
from libs.errors import VOSError

ORIGINAL_KEYS = ("trainset valset datafreq input_size sampled_frames max_skip samples_per_video data_backend "
                 "keydim valdim arch save_freq epochs_per_increment epochs train_batch learning_rate gamma "
                 "momentum solver weight_decay iter_size milestone loss mode iou_threshold epoch_per_test "
                 "correction_rate loop checkpoint initial resume video_path mask_path gpu_id workers "
                 "save_indexed_format output_dir").split()


def test_every_original_key_and_the_new_ones_exist():
    cfg = get_cfg()
    for key in ORIGINAL_KEYS + ["data_root", "backbone_weights", "max_memory_frames", "amp"]:
        assert key in cfg, key
    assert cfg.correction_rate == 150.0 and cfg.loop == 10 and cfg.save_freq == 5


def test_get_cfg_returns_a_copy():
    a = get_cfg()
    a.loop = 3
    assert get_cfg().loop == 10


def test_file_then_options(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("arch: resnet18\nloop: 4\nweight_decay: 5e-4\ninput_size: [120, 200]\n")
    cfg = load_cfg(str(path), ["loop", "2", "correction_rate", "90", "trainset", "DAVIS17",
                               "datafreq", "1", "max_skip", "[4]"])
    assert (cfg.arch, cfg.loop, cfg.correction_rate, cfg.weight_decay) == ("resnet18", 2, 90.0, 5e-4)
    assert tuple(cfg.input_size) == (120, 200) and cfg.trainset == ["DAVIS17"] and cfg.max_skip == [4]
    assert cfg.is_frozen()
    with pytest.raises(AttributeError):
        cfg.loop = 1


@pytest.mark.parametrize("opts,message", [
    (["lop", "3"], "unknown config key 'lop' on the command line; did you mean 'loop'?"),
    (["loop", "many"], "config key 'loop' on the command line expects int"),
    (["arch", "resnet9"], "config key 'arch' must be one of resnet18, resnet34, resnet50, resnet101"),
    (["loop"], "odd number of items"),
    (["save_freq", "0"], "config key 'save_freq' must be positive"),
    (["trainset", "['A', 'B', 'C']"], "must be lists of the same length"),
])
def test_bad_options_give_one_clear_line(opts, message):
    with pytest.raises(VOSError) as err:
        load_cfg(None, opts)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_bad_file(tmp_path):
    with pytest.raises(VOSError, match="not found"):
        load_cfg(str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("loop: [\n")
    with pytest.raises(VOSError, match="not valid YAML"):
        load_cfg(str(bad))
    bad.write_text("arch: resnet18\n  loop: 1\n")
    with pytest.raises(VOSError, match="not valid YAML: line 2, column 7: mapping values are not allowed here"):
        load_cfg(str(bad))
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("save_frq: 3\n")
    with pytest.raises(VOSError, match=r"unknown config key 'save_frq' in .*unknown.yaml; did you mean 'save_freq'"):
        load_cfg(str(unknown))


def test_repository_config_loads():
    cfg = load_cfg("config.yaml")
    assert cfg.arch == "resnet50" and cfg.correction_rate == 180.0 and cfg.max_skip == [50, 10]


def test_video_path_camera_index_is_kept_as_text():
    """`video_path 0` (a camera) is read as the text '0'; other non-text values stay errors."""
    assert load_cfg(None, ["video_path", "0"]).video_path == "0"
    with pytest.raises(VOSError, match="'video_path'"):
        load_cfg(None, ["video_path", "True"])
