"""Device profiles: every devices/*.toml loads strictly with sourced figures, a bad file reports every problem at
once, the host profile is measured (and cached), and recipes name only devices that have a profile."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vjepa_edge.cli import app
from vjepa_edge.distill.recipe import DeployConfig
from vjepa_edge.errors import ConfigError, RegistryError
from vjepa_edge.export.targets import TARGETS, get_target
from vjepa_edge.profile import hostspec
from vjepa_edge.profile.devices import device_files, get_device, list_devices, load_device_file
from vjepa_edge.profile.hostspec import HostSpec, host_spec, resolve_device

runner = CliRunner()
EXPECTED = {"quest3", "rayban_meta", "vision_pro", "iphone15pro", "galaxy_s24", "pixel8", "rpi5", "host"}


def test_the_planned_devices_have_profiles() -> None:
    assert EXPECTED <= set(list_devices())


@pytest.mark.parametrize("path", device_files(), ids=lambda p: p.stem)
def test_device_file(path: Path) -> None:
    d = load_device_file(path)
    assert d.name == path.stem and d.budget_ms is not None and d.budget_ms > 0 and d.budget_use
    assert d.targets and all(t in TARGETS for t in d.targets)
    for t in d.targets:  # every target to try runs on one of the device's units
        assert d.unit_for(get_target(t).backend) is not None, f"{t}: no unit runs backend {get_target(t).backend}"
    raw = tomllib.loads(path.read_text())
    if d.measured:
        assert d.name == "host" and d.transport.kind == "host"
        assert d.memory_bandwidth_gbs is None and not any(u.peaks for u in d.units)
        return
    assert d.memory_bandwidth_gbs and d.memory_bandwidth_source.strip()
    for unit, raw_unit in zip(d.units, raw["units"], strict=True):
        assert unit.peaks, f"{unit.name}: no peak"
        for peak, raw_peak in zip(unit.peaks, raw_unit["peaks"], strict=True):
            assert peak.source.strip() and peak.gops > 0
            assert "basis" in raw_peak, f"{unit.name} {peak.precision}: say how the figure was obtained (basis)"
            assert peak.basis != "measured"


def test_transports_and_budgets() -> None:
    kinds = {name: get_device(name).transport.kind for name in EXPECTED}
    assert kinds == {
        "quest3": "adb",
        "galaxy_s24": "adb",
        "pixel8": "adb",
        "rpi5": "ssh",
        "host": "host",
        "vision_pro": "none",
        "iphone15pro": "none",
        "rayban_meta": "none",
    }
    assert get_device("quest3").budget_ms == pytest.approx(11.1)
    assert get_device("rayban_meta").budget_ms == pytest.approx(33.3)
    assert get_device("rpi5").budget_ms == pytest.approx(100.0)


BAD = """
description = "a bad device"
soc = "nothing"
memory_bandwidth_gbs = 10.0
memory_bandwidth_source = "made up for a test"
targets = ["xnnpack-fp32"]
budget_use = "30 Hz"

[[units]]
name = "CPU"
kind = "cpu"
backends = ["xnnpack", "tpu"]

[[units.peaks]]
precision = "fp32"
gops = -5.0
source = "nowhere"
"""


def test_a_bad_device_file_reports_every_problem_at_once(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(BAD)
    with pytest.raises(ConfigError) as e:
        load_device_file(path)
    message = e.value.message
    assert "budget_ms" in message and "required" in message
    assert "gops=-5.0" in message and "positive" in message
    assert "unknown backend 'tpu'" in message and "xnnpack" in message
    assert str(path) in message


def test_a_typed_unit_needs_a_peak_and_a_bandwidth(tmp_path: Path) -> None:
    text = BAD.replace('budget_use = "30 Hz"', 'budget_ms = 33.3\nbudget_use = "30 Hz"')
    text = text.replace('"xnnpack", "tpu"', '"xnnpack"').split("[[units.peaks]]")[0]
    text = text.replace("memory_bandwidth_gbs = 10.0\n", "")
    path = tmp_path / "nopeak.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_device_file(path)
    assert "units 'CPU': no peaks" in e.value.message
    assert "memory_bandwidth_gbs: required" in e.value.message


def test_a_measured_profile_types_no_figures(tmp_path: Path) -> None:
    host = next(f for f in device_files() if f.stem == "host")
    text = host.read_text().replace("\nmeasured = true\n", "\nmeasured = true\nmemory_bandwidth_gbs = 20.0\n")
    text += '\n[[units.peaks]]\nprecision = "fp32"\ngops = 100.0\nsource = "typed"\n'
    path = tmp_path / "host.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_device_file(path)
    assert "measured = true, so the bandwidth is measured" in e.value.message
    assert "measured = true, so its peaks are measured" in e.value.message
    assert e.value.message.count("  - ") == 2  # each typed figure once


def test_unknown_device_names_the_closest() -> None:
    with pytest.raises(RegistryError) as e:
        get_device("quest")
    assert "'quest3'" in e.value.message
    assert all(name in e.value.hint for name in EXPECTED)


def test_list_devices() -> None:
    result = runner.invoke(app, ["list", "devices", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output.strip().splitlines()[-1])["devices"]
    assert [row["name"] for row in rows] == list_devices()
    quest = {row["name"]: row for row in rows}["quest3"]
    assert quest["budget"] == "11.1 ms (90 Hz headset frame)" and quest["transport"] == "adb"
    assert quest["targets"].startswith("qnn-int8") and "XR2 Gen 2" in quest["soc"]


def test_recipe_devices_are_checked_against_the_profiles() -> None:
    assert DeployConfig(devices=("rpi5", "host")).devices == ("rpi5", "host")
    with pytest.raises(ConfigError) as e:
        DeployConfig(devices=("quest4",))
    assert "did you mean 'quest3'" in e.value.message
    assert all(name in e.value.message for name in EXPECTED)  # the known names


# The host spec: measured small here (the sizes only change how long it takes), then read from the cache.
@pytest.fixture
def small_host(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("VJEPA_EDGE_CACHE", str(tmp_path))
    monkeypatch.setattr(hostspec, "MATMUL_SIZES", (256,))
    monkeypatch.setattr(hostspec, "COPY_BYTES", 32 * 2**20)
    return tmp_path


def test_host_spec_is_measured_then_cached(small_host: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = host_spec()
    assert spec.fp32_gflops > 0 and spec.bandwidth_gbs > 0 and spec.cores >= 1 and spec.cpu_model
    assert spec.source.startswith(f"measured on {spec.cpu_model}, {spec.cores} cores, ")
    (cached,) = (small_host / "hostspec").glob("*.json")
    assert json.loads(cached.read_text())["fp32_gflops"] == spec.fp32_gflops

    def fail(**_: object) -> HostSpec:
        raise AssertionError("measured again instead of reading the cache")

    monkeypatch.setattr(hostspec, "measure_host", fail)
    assert host_spec() == spec


def test_a_corrupt_cache_is_measured_again(small_host: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = host_spec()
    (cached,) = (small_host / "hostspec").glob("*.json")
    cached.write_text('{"cpu_model": "x"')  # truncated
    again = HostSpec(**{**spec.to_dict(), "flags": spec.flags, "fp32_gflops": 1.0})
    monkeypatch.setattr(hostspec, "measure_host", lambda **_: again)
    assert host_spec() == again
    assert json.loads(cached.read_text())["fp32_gflops"] == 1.0


def test_resolve_device_fills_the_host_and_leaves_the_others(small_host: Path) -> None:
    host = resolve_device(get_device("host"))
    spec = host_spec()
    assert host.measured and host.soc == spec.cpu_model
    (cpu,) = host.units
    peak = cpu.peak("fp32")
    assert peak is not None and peak.gops == spec.fp32_gflops and peak.basis == "measured"
    assert peak.source.startswith(spec.source)
    assert host.memory_bandwidth_gbs == spec.bandwidth_gbs and host.memory_bandwidth_source.startswith("measured")
    quest = get_device("quest3")
    assert resolve_device(quest) is quest
