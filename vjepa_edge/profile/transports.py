"""Device transports: how an artifact reaches the device a profile names and comes back measured, one registry entry
per `Transport.kind` of the device profiles (`vjepa_edge.profile.devices`).

`host` measures on this machine (`vjepa_edge.profile.measure.measure_host`). `adb` (Android) and `ssh` (Linux
boards) copy the .pte and ExecuTorch's `executor_runner` built for the device (`transport.runner`) into
`transport.workdir`, run it there with the event tracer writing an ETDump, copy the ETDump back and read it like
the host's: every `Method::execute` is a latency sample (the first `warmup` ones dropped), the per-operator rows
come from the same trace. The runner command (flags of `examples/portable/executor_runner/executor_runner.cpp`,
the same in ExecuTorch 1.4 and 1.5):

    RUNNER --model_path=MODEL.pte --num_executions=WARMUP+ITERATIONS --etdump_path=MODEL.etdp [--cpu_threads=N]

The runner fills every input with ones (no `--inputs`), which index validly for integer inputs too. Without
`--cpu_threads` it sizes its pool to the device's performant cores. `--etdump_path` exists only in a runner built
with the event tracer (`-DEXECUTORCH_ENABLE_EVENT_TRACER=ON`): `RUNNER_BUILD` says how to build one. Every
command goes through `run_command`, which logs it and turns a failure into a `DeviceError` naming the command and
its stderr. A device whose transport is `none` raises `CannotRunError`: it is estimated instead.
"""

from __future__ import annotations

import logging
import shlex
import shutil
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from vjepa_edge.errors import CannotRunError, ConfigError, DeviceError
from vjepa_edge.registry import Registry

if TYPE_CHECKING:
    from vjepa_edge.profile.devices import DeviceProfile
    from vjepa_edge.profile.measure import Measurement

log = logging.getLogger(__name__)

RUNNER_CMAKE = (
    "-DCMAKE_BUILD_TYPE=Release -DEXECUTORCH_BUILD_EXECUTOR_RUNNER=ON -DEXECUTORCH_BUILD_XNNPACK=ON "
    "-DEXECUTORCH_BUILD_DEVTOOLS=ON -DEXECUTORCH_ENABLE_EVENT_TRACER=ON"
)
RUNNER_BUILD = {
    "adb": (
        "build ExecuTorch's executor_runner for Android arm64 with XNNPACK and the event tracer, in a checkout of "
        "executorch v1.5.1: `cmake --preset android-arm64-v8a -B cmake-out-android "
        "-DCMAKE_TOOLCHAIN_FILE=$ANDROID_NDK/build/cmake/android.toolchain.cmake -DANDROID_PLATFORM=android-28 "
        f"-DEXECUTORCH_PAL_DEFAULT=posix {RUNNER_CMAKE} && cmake --build cmake-out-android -j --target "
        'executor_runner`, then set runner = "PATH/cmake-out-android/executor_runner" under [transport] in the '
        "device profile"
    ),
    "ssh": (
        "build ExecuTorch's executor_runner for the board (on it, or with its cross toolchain) with XNNPACK and the "
        f"event tracer, in a checkout of executorch v1.5.1: `cmake -B cmake-out {RUNNER_CMAKE} && cmake --build "
        'cmake-out -j --target executor_runner`, then set runner = "PATH/cmake-out/executor_runner" under '
        "[transport] in the device profile"
    ),
}


def run_command(
    args: Sequence[str], *, timeout: float = 600.0, hint: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run one command (logged); a missing program, a timeout or a non-zero exit is a `DeviceError` that names the
    command and ends with its stderr."""
    args = [str(a) for a in args]
    cmd = shlex.join(args)
    log.info("$ %s", cmd)
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise DeviceError(f"`{cmd}`: {args[0]} is not installed or not on PATH", hint=hint) from None
    except subprocess.TimeoutExpired:
        raise DeviceError(f"`{cmd}` did not finish in {timeout:.0f} s", hint=hint) from None
    if done.returncode != 0:
        out = (done.stderr.strip() or done.stdout.strip() or "(no output)")[-2000:]
        raise DeviceError(f"`{cmd}` failed with exit code {done.returncode}:\n{out}", hint=hint)
    return done


def runner_command(runner: str, model: str, etdump: str, *, executions: int, threads: int | None) -> str:
    """The shell line that runs `model` `executions` times on the device and writes its ETDump (paths there)."""
    args = [runner, f"--model_path={model}", f"--num_executions={executions}", f"--etdump_path={etdump}"]
    if threads is not None:
        args.append(f"--cpu_threads={threads}")
    return shlex.join(args)


class DeviceTransport(ABC):
    """One way to reach a device: say whether an artifact can be measured there now, and measure it."""

    kind: str

    @abstractmethod
    def preflight(self, device: DeviceProfile, artifact: Path) -> None:
        """Refuse (CannotRunError, DeviceError, ConfigError) unless `artifact` can be measured on `device` now."""

    def unavailable(self, device: DeviceProfile, artifact: str | Path) -> str | None:
        """Why `artifact` cannot be measured on `device` now (None: it can), so the caller estimates instead."""
        try:
            self.preflight(device, Path(artifact))
        except (CannotRunError, DeviceError, ConfigError) as e:
            return e.message
        return None

    @abstractmethod
    def measure(
        self,
        device: DeviceProfile,
        artifact: str | Path,
        *,
        warmup: int = 10,
        iterations: int = 50,
        threads: int | None = None,
        out: str | Path | None = None,
        progress: bool = False,
    ) -> Measurement:
        """Measure `artifact` on `device`; its trace (ETDump, onnxruntime profile) goes to the folder `out` (None:
        a new temporary folder that is kept)."""


class HostTransport(DeviceTransport):
    """This machine."""

    kind = "host"

    def preflight(self, device, artifact):
        from vjepa_edge.profile.measure import check_runs_here

        check_runs_here(Path(artifact))

    def measure(self, device, artifact, *, warmup=10, iterations=50, threads=None, out=None, progress=False):
        from vjepa_edge.profile.measure import measure_host

        return measure_host(
            artifact,
            warmup=warmup,
            iterations=iterations,
            threads=threads,
            out=out,
            where=device.name,
            progress=progress,
        )


class RemoteTransport(DeviceTransport):
    """A device reached by copying files to it and running commands on it: the runner flow every remote shares."""

    tools: tuple[str, ...]  # programs it needs on PATH
    install_hint: str

    @abstractmethod
    def check(self, device: DeviceProfile) -> None:
        """Refuse unless the device is reachable now (tools on PATH, device attached or answering)."""

    @abstractmethod
    def push(self, device: DeviceProfile, local: Path, remote: str) -> None: ...

    @abstractmethod
    def shell(self, device: DeviceProfile, command: str, *, timeout: float = 600.0, hint: str | None = None) -> str:
        """Run `command` (one shell line) on the device; its stdout."""

    @abstractmethod
    def pull(self, device: DeviceProfile, remote: str, local: Path) -> None: ...

    def check_tools(self) -> None:
        for tool in self.tools:
            if shutil.which(tool) is None:
                raise DeviceError(f"{tool} is not on PATH: the {self.kind} transport needs it", hint=self.install_hint)

    def preflight(self, device, artifact):
        if artifact.suffix != ".pte" or not artifact.is_file():
            raise ConfigError(
                f"{artifact}: the {self.kind} transport runs ExecuTorch .pte files with executor_runner",
                hint="export one with `vjepa-edge export RUN --target xnnpack-int8`",
            )
        self.runner(device)
        self.check(device)

    def runner(self, device: DeviceProfile) -> Path:
        """The device's executor_runner on this machine (`transport.runner`)."""
        path = device.transport.runner
        if not path:
            raise ConfigError(
                f"device {device.name!r}: transport.runner is empty; it needs ExecuTorch's executor_runner",
                hint=RUNNER_BUILD[self.kind],
            )
        runner = Path(path).expanduser()
        if not runner.is_file():
            raise ConfigError(f"device {device.name!r}: runner {runner} does not exist", hint=RUNNER_BUILD[self.kind])
        return runner

    def measure(self, device, artifact, *, warmup=10, iterations=50, threads=None, out=None, progress=False):
        from vjepa_edge.profile.breakdown import etdump_breakdown
        from vjepa_edge.profile.measure import Measurement, check_measure_options, delegate_name, trace_folder
        from vjepa_edge.profile.stats import LatencyStats

        artifact = Path(artifact)
        check_measure_options(warmup=warmup, iterations=iterations, threads=threads, profile_iterations=0)
        self.preflight(device, artifact)
        runner = self.runner(device)
        work = device.transport.workdir.rstrip("/")
        model, remote_runner = f"{work}/{artifact.name}", f"{work}/{runner.name}"
        etdump = f"{work}/{artifact.stem}.etdp"
        self.shell(device, f"mkdir -p {shlex.quote(work)}")
        self.push(device, artifact, model)
        self.push(device, runner, remote_runner)
        self.shell(device, f"chmod +x {shlex.quote(remote_runner)}")
        command = runner_command(remote_runner, model, etdump, executions=warmup + iterations, threads=threads)
        log.info("running %s %d times on %s", artifact.name, warmup + iterations, device.name)
        output = self.shell(device, command, timeout=3600.0, hint=RUNNER_BUILD[self.kind])
        traces = trace_folder(out)
        local = traces / f"{artifact.stem}-{device.name}.etdp"
        self.pull(device, etdump, local)
        (traces / f"{artifact.stem}-{device.name}.log").write_text(output)
        breakdown = etdump_breakdown(local, skip=warmup, backend=delegate_name(artifact))
        samples = breakdown.execute_samples_ms
        if len(samples) != iterations:
            raise DeviceError(
                f"the ETDump from {device.name} holds {len(samples) + warmup} executions, not {warmup + iterations}",
                hint=f"see the runner's output in {local.with_suffix('.log')}",
            )
        return Measurement(
            artifact=str(artifact),
            runtime="executorch",
            where=device.name,
            load_ms=breakdown.load_ms,
            warmup=warmup,
            iterations=iterations,
            samples_ms=samples,
            stats=LatencyStats.from_samples(samples),
            peak_memory_mb=None,
            threads=threads,
            breakdown=breakdown,
            timing="Method::execute in executor_runner (ETDump)",
        )


def attached(adb_devices: str) -> dict[str, str]:
    """Serial -> state ("device", "unauthorized", "offline") from `adb devices` output (the lines after its
    "List of devices attached" header; "* daemon started" notes are skipped)."""
    lines = adb_devices.splitlines()
    header = next((i for i, line in enumerate(lines) if line.startswith("List of devices")), -1)
    rows = [line.split() for line in lines[header + 1 :] if line.strip() and not line.startswith("*")]
    return {row[0]: row[1] for row in rows if len(row) >= 2}


class AdbTransport(RemoteTransport):
    """An Android device over adb (`transport.serial` picks one of several)."""

    kind = "adb"
    tools = ("adb",)
    install_hint = (
        "install Android platform-tools (https://developer.android.com/tools/releases/platform-tools) and put adb "
        "on PATH"
    )

    def _adb(self, device: DeviceProfile) -> list[str]:
        serial = device.transport.serial
        return ["adb", "-s", serial] if serial else ["adb"]

    def check(self, device: DeviceProfile) -> None:
        self.check_tools()
        out = run_command(["adb", "devices"], timeout=60.0, hint=self.install_hint).stdout
        states = attached(out)
        listed = ", ".join(f"{s} ({st})" for s, st in states.items()) or "none"
        fix = "connect it over USB, enable USB debugging and accept the prompt on the device"
        serial = device.transport.serial
        if serial:
            if serial not in states:
                raise DeviceError(
                    f"device {device.name!r}: no device with serial {serial!r} is attached (adb devices: {listed})",
                    hint=f"{fix}, or fix transport.serial in the device profile",
                )
            if states[serial] != "device":
                raise DeviceError(f"device {device.name!r}: {serial} is {states[serial]}", hint=fix)
            return
        ready = [s for s, st in states.items() if st == "device"]
        if not ready:
            raise DeviceError(
                f"device {device.name!r}: no Android device is attached (adb devices: {listed})", hint=fix
            )
        if len(ready) > 1:
            raise DeviceError(
                f"device {device.name!r}: several devices are attached ({listed})",
                hint="set transport.serial in the device profile to the one to use",
            )

    def push(self, device, local, remote):
        run_command([*self._adb(device), "push", str(local), remote], timeout=600.0)

    def shell(self, device, command, *, timeout=600.0, hint=None):
        return run_command([*self._adb(device), "shell", command], timeout=timeout, hint=hint).stdout

    def pull(self, device, remote, local):
        run_command([*self._adb(device), "pull", remote, str(local)], timeout=600.0)


class SshTransport(RemoteTransport):
    """A Linux board over ssh/scp (`transport.address`: user@host; keys, not passwords: BatchMode)."""

    kind = "ssh"
    tools = ("ssh", "scp")
    install_hint = "install an OpenSSH client and set up key login to the board (ssh-copy-id user@host)"
    OPTIONS = ("-o", "BatchMode=yes", "-o", "ConnectTimeout=15")

    def _address(self, device: DeviceProfile) -> str:
        if not device.transport.address:
            raise ConfigError(
                f"device {device.name!r}: transport.address is empty",
                hint='set address = "user@host" under [transport] in the device profile',
            )
        return device.transport.address

    def check(self, device: DeviceProfile) -> None:
        address = self._address(device)
        self.check_tools()
        run_command(["ssh", *self.OPTIONS, address, "true"], timeout=60.0, hint=f"check that `ssh {address}` logs in")

    def push(self, device, local, remote):
        run_command(["scp", "-q", *self.OPTIONS, str(local), f"{self._address(device)}:{remote}"], timeout=600.0)

    def shell(self, device, command, *, timeout=600.0, hint=None):
        return run_command(["ssh", *self.OPTIONS, self._address(device), command], timeout=timeout, hint=hint).stdout

    def pull(self, device, remote, local):
        run_command(["scp", "-q", *self.OPTIONS, f"{self._address(device)}:{remote}", str(local)], timeout=600.0)


TRANSPORTS: Registry[DeviceTransport] = Registry("device transport")
for _transport in (HostTransport(), AdbTransport(), SshTransport()):
    TRANSPORTS.register(_transport.kind, _transport)


def get_transport(kind: str) -> DeviceTransport:
    return TRANSPORTS.get(kind)


def measure_on(device: DeviceProfile, artifact: str | Path, **options) -> Measurement:
    """Measure `artifact` on `device` through its transport (options: those of `DeviceTransport.measure`); a device
    without one (`none`) raises `CannotRunError`, so the caller estimates it instead."""
    kind = device.transport.kind
    if kind == "none":
        raise CannotRunError(
            f"device {device.name!r} has no transport (kind 'none'): it cannot be measured; an estimate is given "
            "instead",
            hint="set [transport] kind = adb or ssh in its profile to measure on it",
        )
    return get_transport(kind).measure(device, artifact, **options)
