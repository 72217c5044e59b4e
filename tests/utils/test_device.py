"""What the CPU can do (bf16 flags) and the quickstart's choice of speed-ups from it."""
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
