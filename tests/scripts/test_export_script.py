"""export.py and OnnxSteps: the real command line exports a tiny checkpoint's fast steps to ONNX; the
graphs compute the PyTorch fast steps (max |diff| <= 1e-4 on keys/values, <= 1e-5 on probabilities, fp32
on any CPU), segment a video to the same labels (>= 99.9 % of pixels), and refuse another run's keys."""
import json
import os
import sys

import pytest
import torch

from tests.helpers.scripts import REPO, TINY, run_inprocess, run_script
from libs.config import load_cfg
from libs.errors import VOSError
from libs.models import STM, save_weights
from libs.models.checkpoint import load_weights
from libs.models.fold import inference_copy
from libs.onnxrt import OnnxSteps
from libs.onnxrt.graphs import example_inputs
from libs.onnxrt.manifest import file_sha256
from libs.dataset.synthetic import video_tensors
from libs.inference.backend import Backend
from libs.inference.steps import memory_step, segment_step
from tests.engine.single import OneVideo

SIZE = (32, 64)                # TINY's input_size
MAX_FRAMES = 2                 # -> 3 slots
EXPORT = [os.path.join(REPO, "export.py"), "--cfg", "config.yaml"] + TINY + ["max_memory_frames", str(MAX_FRAMES)]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(onnx_dir, checkpoint, the export run) of a seeded tiny checkpoint exported by the real export.py."""
    base = tmp_path_factory.mktemp("onnx")
    torch.manual_seed(0)
    checkpoint = str(base / "r18.pth")
    save_weights(STM("resnet18", 16, 32), checkpoint)
    out = str(base / "exported")
    run = run_script([sys.executable] + EXPORT + ["initial", checkpoint, "onnx_dir", out])
    assert run.returncode == 0, run.describe()
    return out, checkpoint, run


@pytest.fixture(scope="module")
def model(exported):
    """The exported checkpoint's network."""
    model = STM("resnet18", 16, 32)
    load_weights(model, exported[1])
    return model.eval()


@pytest.fixture(scope="module")
def net(model):
    """The folded fp32 network of the exported checkpoint (the fast path's eager PyTorch network)."""
    return inference_copy(model, channels_last=True)


def test_export_writes_checked_graphs_and_a_manifest(exported):
    import onnx

    out, checkpoint, run = exported
    assert sorted(os.listdir(out)) == ["manifest.json", "memorize.onnx", "segment.onnx"]
    with open(os.path.join(out, "manifest.json")) as handle:
        manifest = json.load(handle)
    assert {k: manifest[k] for k in ("arch", "keydim", "valdim", "input_size", "slots", "hw", "opset")} == {
        "arch": "resnet18", "keydim": 16, "valdim": 32, "input_size": list(SIZE), "slots": 3, "hw": 8, "opset": 18}
    assert manifest["checkpoint_sha256"] == file_sha256(checkpoint)
    assert manifest["dynamic_axes"]["segment"]["mem_key"] == {"0": "batch", "1": "objects"}
    assert max(manifest["max_abs_diff"].values()) < 1e-4
    graph = onnx.load(os.path.join(out, "segment.onnx"))
    onnx.checker.check_model(graph, full_check=True)
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.graph.input}
    assert dims["mem_key"] == ["batch", "objects", 24, 16] and dims["frame"] == ["batch", 3, *SIZE]
    assert "onnx.checker passed" in run.stderr


@pytest.mark.parametrize("batch, objects", [(2, 3), (1, 1)])
def test_graphs_compute_the_pytorch_fast_steps(exported, net, batch, objects):
    steps = OnnxSteps(exported[0])
    inputs = example_inputs(net, SIZE, 3, batch, objects, seed=5)
    got = steps.memory(**inputs["memorize"])
    with torch.no_grad():
        want = memory_step(net, **inputs["memorize"])
    for a, b in zip(got, want):
        assert a.shape == b.shape and a.dtype == torch.float32
        assert (a - b).abs().max() <= 1e-4
    probs = steps.segment(**inputs["segment"], out_size=SIZE)
    with torch.no_grad():
        reference = segment_step(net, **inputs["segment"], out_size=SIZE)
    assert probs.shape == (batch, objects + 1, *SIZE)
    assert (probs - reference).abs().max() <= 1e-5
    if objects > 1:                     # the last video's last object is padding: exactly 0
        assert probs[-1, -1].abs().max() == 0


def test_a_bias_that_hides_every_memory_of_an_object_is_refused(exported, net):
    inputs = example_inputs(net, SIZE, 3, 1, 2)["segment"]
    inputs["bias"][0, 1] = float("-inf")                    # PyTorch reads zeros there, onnxruntime does not
    with pytest.raises(ValueError, match="masks every memory position of an object"):
        OnnxSteps(exported[0]).segment(**inputs, out_size=SIZE)


def _through_the_core(backend, frames, first):
    """Probabilities [T, K+1, H, W] of a video segmented by an inference core on `backend`."""
    video = OneVideo.on(backend, save_freq=2, max_memory_frames=MAX_FRAMES)
    return torch.cat([video.step(frames[t:t + 1], first if t == 0 else None) for t in range(frames.shape[0])])


def test_onnxruntime_segments_a_video_as_the_pytorch_fast_path(exported, model):
    """runtime onnxruntime is a backend of the one core: the same masks as the PyTorch fast path."""
    frames, first = video_tensors(3, 10, SIZE, 2)
    ours = _through_the_core(Backend(model, onnx=OnnxSteps(exported[0])), frames, first)    # [T, K+1, H, W]
    reference = _through_the_core(Backend(model, fast=True), frames, first)
    labels, reference_labels = ours.argmax(1), reference.argmax(1)
    assert (labels == reference_labels).float().mean() >= 0.999
    assert len(reference_labels[1:].unique()) >= 2              # not one label everywhere (untrained weights)
    assert (ours - reference).abs().max() <= 1e-4


@pytest.mark.parametrize("key, value, message", [
    ("input_size", [48, 64], "exported for input_size [32, 64], this run has input_size [48, 64]"),
    ("slots", 5, "exported for slots 3, this run has slots 5"),
    ("arch", "resnet50", "exported for arch resnet18, this run has arch resnet50"),
])
def test_graphs_for_another_run_are_refused_in_one_line(exported, key, value, message):
    with pytest.raises(VOSError) as err:
        OnnxSteps(exported[0], {key: value})
    assert message in str(err.value) and "\n" not in str(err.value)


def test_graphs_of_another_checkpoint_are_refused_in_one_line(exported, tmp_path):
    other = str(tmp_path / "other.pth")
    save_weights(STM("resnet18", 16, 32), other)
    cfg = load_cfg(None, TINY + ["initial", other, "onnx_dir", exported[0], "max_memory_frames", "2", "loop", "0",
                                 "runtime", "onnxruntime"])
    with pytest.raises(VOSError) as err:
        OnnxSteps.from_cfg(cfg)
    text = str(err.value)
    assert f"exported from checkpoint sha256 {file_sha256(exported[1])[:16]}" in text and "\n" not in text
    assert f"{other!r} has sha256 {file_sha256(other)[:16]}" in text
    assert OnnxSteps.from_cfg(_with(cfg, initial=exported[1])).providers == ["CPUExecutionProvider"]


def _with(cfg, **keys):
    """A copy of the frozen `cfg` with `keys` changed."""
    copy = cfg.clone()
    copy.defrost()
    copy.update(keys)
    copy.freeze()
    return copy


@pytest.mark.parametrize("args, message", [
    (["export.py", "arch", "resnet18", "onnx_dir", "x", "initial", "", "max_memory_frames", "2"],
     "export.py needs the checkpoint to export"),
    (["export.py", "arch", "resnet18", "onnx_dir", "x", "max_memory_frames", "0"],
     "the ONNX graphs need a bounded memory: set max_memory_frames"),
    (["test.py", "runtime", "onnxruntime", "onnx_dir", "x", "max_memory_frames", "2", "loop", "10"],
     "runtime onnxruntime supports loop 0 only (the correction needs gradients; got loop 10)"),
    (["test.py", "runtime", "onnxruntime", "onnx_dir", "x", "loop", "0"], "runtime onnxruntime needs a bounded memory"),
    (["test.py", "runtime", "onnxruntime", "loop", "0", "max_memory_frames", "2"],
     "runtime onnxruntime needs onnx_dir"),
])
def test_bad_keys_give_one_error_line(args, message):
    run = run_inprocess([args[0], "--cfg", "config.yaml", "gpu_id", "-1"] + args[1:])
    assert run.returncode == 2, run.describe()
    assert len(run.error_lines()) == 1 and message in run.error_lines()[0], run.describe()


def test_providers_in_order_and_a_missing_one_in_one_line():
    from libs.onnxrt.steps import session_providers

    every = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert session_providers("cpu", every) == ["CPUExecutionProvider"]
    assert session_providers("tensorrt", every, 1) == [("TensorrtExecutionProvider", {"device_id": 1}),
                                                      ("CUDAExecutionProvider", {"device_id": 1}),
                                                      "CPUExecutionProvider"]
    with pytest.raises(VOSError) as err:
        session_providers("cuda", ["CPUExecutionProvider"])
    assert "onnx_provider cuda needs onnxruntime's CUDAExecutionProvider" in str(err.value)
    assert "install onnxruntime-gpu" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("batch", [1, 2])
def test_test_py_with_runtime_onnxruntime_writes_the_fast_paths_masks(exported, tmp_path, batch):
    """The real test.py on a SYNTHETIC set, `runtime onnxruntime` against `fast_inference True` (loop 0,
    the exported memory bound), one video at a time or 2 (3 videos: the last runs with a slot idle): the
    written masks agree on >= 99.9 % of pixels."""
    from libs.dataset.synthetic import write_dataset
    from libs.io import read_mask

    names = write_dataset(str(tmp_path / "SYNTHETIC"), 3, 5, (48, 80), seed=4)
    common = ["test.py", "--cfg", "config.yaml"] + TINY + ["initial", exported[1], "loop", "0", "valset",
                                                           "SYNTHETIC", "data_root", str(tmp_path),
                                                           "max_memory_frames", str(MAX_FRAMES),
                                                           "batch_videos", str(batch)]
    runs = {"torch": run_inprocess(common + ["fast_inference", "True", "output_dir", str(tmp_path / "torch")]),
            "onnx": run_inprocess(common + ["runtime", "onnxruntime", "onnx_dir", exported[0],
                                            "output_dir", str(tmp_path / "onnx")])}
    assert all(run.returncode == 0 for run in runs.values()), [run.describe() for run in runs.values()]
    same, total = 0, 0
    for name in names:
        for t in range(5):
            a, b = (read_mask(str(tmp_path / k / "SYNTHETIC" / name / f"{t:05d}.png"))[0] for k in ("torch", "onnx"))
            same, total = same + int((a == b).sum()), total + a.size
    assert same / total >= 0.999, same / total
