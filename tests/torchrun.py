"""Launch a test worker script on 2 CPU processes through torch.distributed.run (gloo)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_two_processes(
    script: Path | str, *args: str, port_base: int = 29500, module: bool = False
) -> subprocess.CompletedProcess[str]:
    """torchrun with 2 CPU processes of `script` (a file, or a module run with -m when `module`)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-port",
        str(port_base + os.getpid() % 1000),
        *(["-m"] if module else []),
        str(script),
        *args,
    ]
    return subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
