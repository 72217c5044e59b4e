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
    (["loop"], "odd number of items"),
    (["save_freq", "0"], "config key 'save_freq' must be positive"),
    (["trainset", "['A', 'B', 'C']"], "must be lists of the same length"),
    (["cycle_frames", "some"], "config key 'cycle_frames' must be one of highest_object, all_objects; got 'some'"),
    (["colour_jitter", "vivid"], "config key 'colour_jitter' must be one of original, mid_grey; got 'vivid'"),
    (["transpose_portrait", "1"], "config key 'transpose_portrait' on the command line expects bool"),
    (["gamma", "0"], "config key 'gamma' (learning rate factor at each milestone) must be in (0, 1]; got 0.0"),
    (["gamma", "1.5"], "must be in (0, 1]; got 1.5"),
    (["iou_threshold", "1.2"], "config key 'iou_threshold' must be in 0.0..1.0; got 1.2"),
    (["gpu_id", "-2"], "config key 'gpu_id' must be in -1..65536; got -2"),
    (["valsplit", "''"], "config key 'valsplit' must be a name"),
    (["valsplit", "../val"], "config key 'valsplit' must be a name"),
    (["backend", "ncl"], "config key 'backend' must be one of nccl, gloo, mpi, ucc; got 'ncl'"),
    (["max_skip_increment", "-1"], "config key 'max_skip_increment' must be >= 0; got -1"),
    (["max_skip", "[0, 3]"], "config key 'max_skip': every entry must be an integer 1..100"),
    (["max_skip", "[5, 300]"], "config key 'max_skip': every entry must be an integer 1..100"),
    (["max_skip_cap", "0"], "config key 'max_skip_cap' must be positive"),
    (["datafreq", "[1, -1]"], "config key 'datafreq': every entry must be an integer >= 0"),
    (["momentum", "[0.9, 1.5]"], "config key 'momentum' must hold two numbers in [0, 1)"),
    (["trainset", "[]", "datafreq", "[]", "max_skip", "[]"], "config key 'trainset' must name at least one"),
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


def test_training_keys_default_to_the_original_and_reach_the_step_and_the_clips(tmp_path):
    """mode recurrent (what the original's loop did), the original's cycle rule, transposition and jitter,
    in the defaults and in config.yaml; train.py and the data set builder pass the keys on."""
    import train
    from libs.dataset.build import build_train_dataset
    from libs.dataset.synthetic import write_dataset
    from libs.dataset.transforms import ColourJitter, TransposePortrait

    for cfg in (get_cfg(), load_cfg("config.yaml")):
        assert (cfg.mode, cfg.cycle_frames, cfg.transpose_portrait, cfg.colour_jitter) == (
            "recurrent", "highest_object", True, "original")
    write_dataset(str(tmp_path / "SYNTHETIC"), num_videos=1, num_frames=3, size=(40, 64), split="train")
    data = ["data_root", str(tmp_path), "trainset", "['SYNTHETIC']", "datafreq", "[1]", "max_skip", "[2]"]
    for opts, rule, transposes, centre, clamp in (([], "highest_object", True, 0.0, False),
                                                  (["cycle_frames", "all_objects", "transpose_portrait", "False",
                                                    "colour_jitter", "mid_grey"], "all_objects", False, 0.5, True)):
        cfg = load_cfg(None, data + opts)
        assert train.cyclic_config(cfg).cycle_frames == rule and train.cyclic_config(cfg).mode == "recurrent"
        steps = build_train_dataset(cfg).datasets[0].transform.steps
        assert any(isinstance(step, TransposePortrait) for step in steps) == transposes
        jitter = next(step for step in steps if isinstance(step, ColourJitter))
        assert (jitter.centre, jitter.clamp) == (centre, clamp)


@pytest.mark.parametrize("opts,line", [
    (["split_k", "4", "alpha", "2.0"], "ignored: split_k 4, alpha 2.0 (kept only so the original's config files load"),
    (["lambdas", "[1.0, 0.5]"], "ignored: lambdas [1.0, 0.5]"),
    (["correction_momentum", "0.5", "multi_gpu_ids", "[0]"], "ignored: correction_momentum 0.5, multi_gpu_ids [0]"),
])
def test_original_only_keys_set_to_another_value_log_one_line(opts, line, caplog):
    with caplog.at_level("INFO", logger="config"):
        load_cfg(None, opts)
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("ignored")] == [
        next(r.getMessage() for r in caplog.records if line in r.getMessage())]
    caplog.clear()
    with caplog.at_level("INFO", logger="config"):
        load_cfg(None, ["split_k", "3", "multi_gpu_ids", "[0, 1, 2, 3]"])     # the defaults: nothing to say
    assert not [r for r in caplog.records if "ignored" in r.getMessage()]


def test_video_path_camera_index_is_kept_as_text():
    """`video_path 0` (a camera) is read as the text '0'; other non-text values stay errors."""
    assert load_cfg(None, ["video_path", "0"]).video_path == "0"
    with pytest.raises(VOSError, match="'video_path'"):
        load_cfg(None, ["video_path", "True"])
