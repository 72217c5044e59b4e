"""What the CPU can do (bf16 flags) and the quickstart's choice of speed-ups from it."""
import pytest

from libs import quickstart
from libs.utils.device import cpu_has_bf16, has_any_flag

CPUINFO = ("processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx2 {extra} avx512f\n"
           "bugs\t\t: avx512_bf16_is_not_a_flag_here\n\n")


def test_bf16_flags_are_read_from_the_flags_line_only(tmp_path):
    with_bf16, without = tmp_path / "a", tmp_path / "b"
    with_bf16.write_text(CPUINFO.format(extra="avx512_bf16"))
    without.write_text(CPUINFO.format(extra="avx512vl"))
    assert cpu_has_bf16(str(with_bf16)) and not cpu_has_bf16(str(without))
    assert has_any_flag(["flags : amx_tile amx_bf16"], ["avx512_bf16", "amx_bf16"])
    assert not has_any_flag(["flags : avx512_bf16x"], ["avx512_bf16"])


def test_unreadable_cpuinfo_means_no_bf16(tmp_path):
    assert cpu_has_bf16(str(tmp_path / "missing")) is False


def test_quickstart_adds_bf16_and_fast_paths_only_on_a_bf16_cpu(monkeypatch):
    monkeypatch.setattr(quickstart.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(quickstart, "cpu_has_bf16", lambda: True)
    assert quickstart.cpu_speedups(["epochs", "2"]) == ["epochs", "2", "amp", "True", "fast_inference", "True",
                                                        "fast_training", "True"]
    assert quickstart.cpu_speedups(["amp", "False"]) == ["amp", "False"]
    monkeypatch.setattr(quickstart, "cpu_has_bf16", lambda: False)
    assert quickstart.cpu_speedups(["epochs", "2"]) == ["epochs", "2"]


def test_device_kind_of_the_evaluation_comes_from_the_one_resolver(monkeypatch):
    from libs.errors import VOSError
    from libs.utils import device

    monkeypatch.setattr(device, "cuda_available", lambda: False)
    assert device.resolve_device_kind("cpu") == device.resolve_device_kind("auto") == "cpu"
    with pytest.raises(VOSError, match="--device cuda was asked but torch sees no CUDA device; use --device cpu"):
        device.resolve_device_kind("cuda")
    with pytest.raises(VOSError, match="--device must be cpu, cuda or auto, got 'gpu'"):
        device.resolve_device_kind("gpu")
    monkeypatch.setattr(device, "cuda_available", lambda: True)
    assert device.resolve_device_kind("auto") == device.resolve_device_kind("cuda") == "cuda"


def test_the_constants_are_the_ones_every_path_uses():
    from libs.dataset import transforms
    from libs.inference import frames as preprocess
    from libs.evaluation import davis
    from libs.io import davis_palette
    from libs.models.backbone import ResNetTrunk
    from libs.utils import constants

    assert transforms.IMAGENET_MEAN is constants.IMAGENET_MEAN and transforms.VOID_LABEL is constants.VOID_LABEL
    assert preprocess._MEAN.ravel().tolist() == pytest.approx(constants.IMAGENET_MEAN)
    assert davis.VOID_LABEL == 255 and davis_palette is constants.davis_palette
    assert ResNetTrunk("resnet18").std.flatten().tolist() == pytest.approx(constants.IMAGENET_STD)
