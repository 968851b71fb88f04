"""Precision and machine records: bf16 only where the CPU runs it natively; the CPU named beside figures."""

from __future__ import annotations

import os
import stat

import pytest
import torch

from vjepa_edge import runinfo

AVX2_ONLY = "flags\t\t: fpu sse sse2 avx avx2 fma\n"
BF16 = "flags\t\t: fpu sse sse2 avx avx2 fma avx512f avx512_bf16\n"


@pytest.fixture
def cpuinfo(monkeypatch):
    def use(text: str) -> None:
        monkeypatch.setattr(runinfo.Path, "read_text", lambda self, *a, **k: text)

    return use


def test_auto_stays_fp32_on_an_avx2_only_cpu(cpuinfo, monkeypatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    cpuinfo(AVX2_ONLY)
    assert not runinfo.cpu_has_fast_bf16()
    assert runinfo.autocast_dtype("auto", torch.device("cpu")) is None


def test_auto_uses_bf16_where_native_unless_the_isa_is_capped(cpuinfo, monkeypatch):
    cpuinfo(BF16)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    assert runinfo.autocast_dtype("auto", torch.device("cpu")) == torch.bfloat16
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")  # an AVX-512 part run as an AVX2 one
    assert runinfo.autocast_dtype("auto", torch.device("cpu")) is None
    assert runinfo.autocast_dtype("fp32", torch.device("cpu")) is None


def test_cpu_info_names_the_flags_that_decide_speed(cpuinfo, monkeypatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    cpuinfo("model name\t: Test CPU 9000\n" + AVX2_ONLY)
    info = runinfo.cpu_info()
    assert info["model"] == "Test CPU 9000" and info["flags"] == ["avx2", "fma"]
    assert info["bf16"].startswith("emulated") and info["cores"] >= 1


X86 = "processor\t: 0\nmodel name\t: AMD EPYC 9654\nflags\t\t: fpu avx2 fma avx512f avx512_vnni avx512_bf16 amx_tile\n"
ARM = "processor\t: 0\nFeatures\t: fp asimd asimddp i8mm\nCPU implementer\t: 0x41\nCPU part\t: 0xd0b\n"


def test_cpuinfo_parsing() -> None:
    assert runinfo.parse_cpuinfo(X86) == (
        "AMD EPYC 9654",
        ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile"),
    )
    model, flags = runinfo.parse_cpuinfo(ARM)
    assert model == "Arm CPU part 0xd0b (implementer 0x41)" and flags == ("asimd", "asimddp", "i8mm")
    # a virtual machine's generic model name gets its CPUID numbers, which tell two such machines apart
    vm = "model name\t: Intel(R) Xeon(R) Processor\ncpu family\t: 6\nmodel\t\t: 167\nflags\t: avx2 avx512_fp16 amx_int8"
    flags = ("avx2", "avx512_fp16", "amx_int8")
    assert runinfo.parse_cpuinfo(vm) == ("Intel(R) Xeon(R) Processor (family 6 model 167)", flags)


def test_idle_threads_are_reported(monkeypatch, caplog):
    import logging

    monkeypatch.setattr(runinfo.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    runinfo.warn_if_threads_idle(logging.getLogger("vjepa_edge.test"))
    assert "1 thread(s) but this process may use 4 cores" in caplog.text


def test_atomic_writes_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        p = runinfo.write_json(tmp_path / "report.json", {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == 0o644


def test_keys_hash_sorted_json_and_shipped_keys_stay(tmp_path, monkeypatch):
    """Every cache key and run digest is one helper: key order does not matter, the length is as asked, and the
    keys of what users already have cached (the embedded teacher, its rendered clips, the vit_s run) stay."""
    import hashlib
    import json

    from teacher.config import load_config
    from vjepa_edge.config import digest
    from vjepa_edge.data.sources import open_source
    from vjepa_edge.distill.recipe import load_recipe

    a, b = {"x": 1, "y": [1, 2], "z": {"p": 0.5, "q": "s"}}, {"z": {"q": "s", "p": 0.5}, "y": [1, 2], "x": 1}
    assert digest(a, 24) == digest(b, 24) == hashlib.sha256(json.dumps(b, sort_keys=True).encode()).hexdigest()[:24]
    assert len(digest(a, 12)) == 12 and digest(a, 12) != digest({**a, "x": 2}, 12)
    monkeypatch.setenv("VJEPA_EDGE_CACHE", str(tmp_path))
    assert runinfo.cache_file("features", a) == tmp_path / "features" / f"{digest(a, 24)}.safetensors"

    teacher = load_config("physics")
    clips = open_source("physics", spec=teacher.data.clip, train=True, seed=0, length=teacher.data.physics_clips)
    assert teacher.digest() == "8118add3b0fc"
    assert clips.render_key().digest() == "f0dca57fc94b793c"
    assert load_recipe("vit_s").digest() == "1e2962b95c54"
