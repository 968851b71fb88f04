"""Device transports with stand-in `adb`, `ssh` and `scp` programs first on PATH: they log every command line they
get, `adb devices` lists what the test says is attached, and pulling the ETDump copies a real one that the test
made beforehand by running the tiny .pte here with the event tracer, so the Measurement is parsed from a real
trace. Checked: the commands (push of the artifact and the runner, the runner's line, pull), the samples and rows
read back, and the refusals (no adb, no device with the serial, no runner, no transport)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tests.profile.tiny_artifacts import host_etdump, tiny_pte
from vjepa_edge.errors import CannotRunError, ConfigError, DeviceError, RegistryError
from vjepa_edge.profile.devices import ComputeUnit, DeviceProfile, Peak, Transport
from vjepa_edge.profile.transports import TRANSPORTS, attached, get_transport, measure_on, run_command

WARMUP, ITERATIONS = 2, 5
WORK = "/data/local/tmp/vjepa-edge"

FAKE = """#!{python}
import json, os, shutil, sys
tool, args = os.path.basename(sys.argv[0]), sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write(json.dumps([tool, *args]) + "\\n")
if tool == "adb":
    if args[:1] == ["-s"]:
        args = args[2:]
    if args == ["devices"]:
        print("* daemon not running; starting now at tcp:5037")
        print("List of devices attached")
        for serial in filter(None, os.environ.get("FAKE_DEVICES", "").split(",")):
            print(serial + "\\tdevice")
        print()
    elif args[0] == "push" and not os.path.isfile(args[1]):
        sys.exit("adb: error: cannot stat " + args[1])
    elif args[0] == "pull":
        shutil.copy(os.environ["FAKE_ETDUMP"], args[2])
    elif args[0] == "shell" and "--model_path" in args[1]:
        print("I executor_runner.cpp: Model executed successfully.")
elif tool == "scp" and ":" in args[-2]:  # pull from the board
    shutil.copy(os.environ["FAKE_ETDUMP"], args[-1])
"""


@pytest.fixture(scope="module")
def pte(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_pte(tmp_path_factory)


@pytest.fixture(scope="module")
def etdump(pte: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What executor_runner would write on the device for WARMUP + ITERATIONS executions."""
    return host_etdump(pte, tmp_path_factory.mktemp("device") / "run.etdp", WARMUP + ITERATIONS)


@pytest.fixture
def fake_tools(tmp_path: Path, etdump: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Stand-in adb, ssh and scp first on PATH; returns their command log."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("adb", "ssh", "scp"):
        (bin_dir / tool).write_text(FAKE.format(python=sys.executable))
        (bin_dir / tool).chmod(0o755)
    log = tmp_path / "commands.jsonl"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_LOG", str(log))
    monkeypatch.setenv("FAKE_ETDUMP", str(etdump))
    monkeypatch.setenv("FAKE_DEVICES", "emulator-5554,R5CT1234")
    return log


def commands(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def device(tmp_path: Path, **transport: str) -> DeviceProfile:
    runner = tmp_path / "executor_runner"
    runner.write_bytes(b"\x7fELF stand-in")
    return DeviceProfile(
        name="test-phone",
        description="a phone of the tests",
        soc="test SoC",
        units=(
            ComputeUnit(
                name="CPU", kind="cpu", backends=("xnnpack",), peaks=(Peak(precision="fp32", gops=100.0, source="t"),)
            ),
        ),
        memory_bandwidth_gbs=50.0,
        memory_bandwidth_source="assumed for the test",
        targets=("xnnpack-fp32",),
        budget_ms=33.3,
        budget_use="30 Hz test",
        transport=Transport(**{"runner": str(runner), **transport}),
    )


@pytest.mark.filterwarnings("ignore:Output Buffer not found")
def test_adb_pushes_runs_and_pulls_the_etdump(fake_tools: Path, pte: Path, etdump: Path, tmp_path: Path) -> None:
    from executorch.devtools import Inspector

    phone = device(tmp_path, kind="adb", serial="emulator-5554")
    m = get_transport("adb").measure(phone, pte, warmup=WARMUP, iterations=ITERATIONS, out=tmp_path / "out")

    adb = ["adb", "-s", "emulator-5554"]
    assert commands(fake_tools) == [
        ["adb", "devices"],
        [*adb, "shell", f"mkdir -p {WORK}"],
        [*adb, "push", str(pte), f"{WORK}/tiny.pte"],
        [*adb, "push", str(tmp_path / "executor_runner"), f"{WORK}/executor_runner"],
        [*adb, "shell", f"chmod +x {WORK}/executor_runner"],
        [
            *adb,
            "shell",
            f"{WORK}/executor_runner --model_path={WORK}/tiny.pte --num_executions={WARMUP + ITERATIONS} "
            f"--etdump_path={WORK}/tiny.etdp",
        ],
        [*adb, "pull", f"{WORK}/tiny.etdp", str(tmp_path / "out" / "tiny-test-phone.etdp")],
    ]
    assert (m.where, m.runtime, m.warmup, m.iterations, m.threads) == ("test-phone", "executorch", 2, 5, None)
    assert m.etdump == str(tmp_path / "out" / "tiny-test-phone.etdp")
    assert "executed successfully" in (tmp_path / "out" / "tiny-test-phone.log").read_text()
    execute = next(
        e for b in Inspector(etdump_path=str(etdump)).event_blocks for e in b.events if e.name == "Method::execute"
    )
    assert list(m.samples_ms) == pytest.approx(execute.perf_data.raw[WARMUP:])  # warm-up executions dropped
    assert m.stats.n == ITERATIONS and m.stats.p50 > 0
    assert m.load_ms is not None and m.load_ms > 0  # Program::load_method, as the runner's trace has it
    inside = [r for r in m.operators if r["delegated"]]
    assert inside and {r["backend"] for r in inside} == {"XnnpackBackend"}
    assert any(r["name"] == "native_layer_norm.out" for r in m.operators if not r["delegated"])
    assert sum(r["total_ms"] for r in inside) <= m.breakdown.execute_ms


def test_adb_threads_and_the_only_device(fake_tools: Path, pte: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_DEVICES", "R5CT1234")
    m = get_transport("adb").measure(
        device(tmp_path, kind="adb"), pte, warmup=WARMUP, iterations=ITERATIONS, threads=4, out=tmp_path / "out"
    )
    run = commands(fake_tools)[-2]
    assert run[:2] == ["adb", "shell"] and run[2].endswith(" --cpu_threads=4")  # no -s: the one attached device
    assert m.threads == 4 and len(m.samples_ms) == ITERATIONS


def test_ssh_copies_with_scp_and_runs_over_ssh(fake_tools: Path, pte: Path, tmp_path: Path) -> None:
    board = device(tmp_path, kind="ssh", address="pi@rpi5.local", workdir="/tmp/vjepa-edge")
    m = measure_on(board, pte, warmup=WARMUP, iterations=ITERATIONS, out=tmp_path / "out")
    tools = [c[0] for c in commands(fake_tools)]
    assert tools == ["ssh", "ssh", "scp", "scp", "ssh", "ssh", "scp"]  # check, mkdir, push x2, chmod, run, pull
    run = commands(fake_tools)[5]
    assert run[-2:] == [
        "pi@rpi5.local",
        "/tmp/vjepa-edge/executor_runner --model_path=/tmp/vjepa-edge/tiny.pte "
        f"--num_executions={WARMUP + ITERATIONS} --etdump_path=/tmp/vjepa-edge/tiny.etdp",
    ]
    assert commands(fake_tools)[-1][-2:] == ["pi@rpi5.local:/tmp/vjepa-edge/tiny.etdp", m.etdump]
    assert m.where == "test-phone" and len(m.samples_ms) == ITERATIONS


def test_no_adb_on_path(pte: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    phone = device(tmp_path, kind="adb")
    with pytest.raises(DeviceError, match="adb is not on PATH") as e:
        get_transport("adb").measure(phone, pte)
    assert "platform-tools" in e.value.hint
    assert "adb is not on PATH" in get_transport("adb").unavailable(phone, pte)


def test_no_device_with_the_serial(fake_tools: Path, pte: Path, tmp_path: Path, monkeypatch) -> None:
    phone = device(tmp_path, kind="adb", serial="emulator-5554")
    monkeypatch.setenv("FAKE_DEVICES", "")
    with pytest.raises(DeviceError, match="no device with serial 'emulator-5554' is attached \\(adb devices: none\\)"):
        get_transport("adb").measure(phone, pte)
    monkeypatch.setenv("FAKE_DEVICES", "R5CT1234")
    assert "R5CT1234 (device)" in get_transport("adb").unavailable(phone, pte)
    monkeypatch.setenv("FAKE_DEVICES", "")
    with pytest.raises(DeviceError, match="no Android device is attached"):
        get_transport("adb").measure(device(tmp_path, kind="adb"), pte)
    assert [c[1:] for c in commands(fake_tools)] == [["devices"]] * 3  # nothing pushed


def test_missing_runner_says_how_to_build_it(fake_tools: Path, pte: Path, tmp_path: Path) -> None:
    phone = device(tmp_path, kind="adb", runner="")
    with pytest.raises(ConfigError, match="transport.runner is empty") as e:
        get_transport("adb").measure(phone, pte)
    assert "-DEXECUTORCH_ENABLE_EVENT_TRACER=ON" in e.value.hint and "executor_runner" in e.value.hint
    with pytest.raises(ConfigError, match="does not exist"):
        get_transport("adb").measure(device(tmp_path, kind="adb", runner=str(tmp_path / "nope")), pte)
    with pytest.raises(ConfigError, match="runs ExecuTorch .pte files"):
        get_transport("adb").measure(device(tmp_path, kind="adb"), tmp_path / "model.onnx")


def test_a_failing_command_names_itself_and_its_stderr() -> None:
    with pytest.raises(DeviceError, match="exit code 3:\nno space left on device") as e:
        run_command([sys.executable, "-c", "import sys; sys.stderr.write('no space left on device'); sys.exit(3)"])
    assert sys.executable in e.value.message
    with pytest.raises(DeviceError, match="not installed or not on PATH"):
        run_command(["vjepa-edge-no-such-tool", "devices"])


def test_registry_and_devices_without_transport(tmp_path: Path) -> None:
    assert TRANSPORTS.names() == ["adb", "host", "ssh"]
    with pytest.raises(RegistryError, match="Did you mean 'adb'"):
        get_transport("abd")
    with pytest.raises(CannotRunError, match="no transport .* an estimate is given instead"):
        measure_on(device(tmp_path, kind="none"), tmp_path / "x.pte")
    assert attached("List of devices attached\nA1\tunauthorized\nB2\tdevice\n\n") == {
        "A1": "unauthorized",
        "B2": "device",
    }


def test_host_transport_measures_here(pte: Path, tmp_path: Path) -> None:
    host = device(tmp_path, kind="host")
    assert get_transport("host").unavailable(host, pte) is None
    m = get_transport("host").measure(host, pte, warmup=0, iterations=2, out=tmp_path)
    assert m.where == "test-phone" and m.iterations == 2 and m.etdump is not None
