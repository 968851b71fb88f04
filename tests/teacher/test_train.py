"""Pretraining: the loss falls, kill + resume reproduces an uninterrupted run, torchrun keeps ranks in sync."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from teacher.train import pretrain
from tests.teacher.conftest import TINY, tiny_config
from tests.torchrun import run_two_processes
from vjepa_edge import VJEPA, load_vjepa
from vjepa_edge.errors import TrainingError

ROOT = Path(__file__).resolve().parents[2]


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_short_run_lowers_the_loss_and_writes_a_loadable_teacher(tmp_path):
    cfg = tiny_config(optim={"steps": 40, "warmup_steps": 4}, run={"checkpoint_every": 20, "log_every": 1})
    result = pretrain(cfg, tmp_path / "run", progress=False)
    rows = _metrics(tmp_path / "run")
    assert [r["step"] for r in rows] == list(range(1, 41))
    first = sum(r["loss"] for r in rows[:5]) / 5
    last = sum(r["loss"] for r in rows[-5:]) / 5
    assert last < 0.9 * first, (first, last)
    model = load_vjepa(result.teacher)
    assert model.parts == ["encoder", "target_encoder", "predictor"]
    # the EMA target moved toward the context encoder but is not a copy of it
    enc, tgt = model.encoder.state_dict(), model.target_encoder.state_dict()
    assert any(not torch.equal(enc[k], tgt[k]) for k in enc)
    init = tiny_config().arch()
    assert model.arch.encoder == init.encoder
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["steps"] == 40 and report["final_loss"] == rows[-1]["loss"]
    # wall time per stage: the clips were rendered once, before the loop, and the loop was timed apart
    assert set(report["stages"]) == {"data_rendering", "training"}
    assert report["stages"]["data_rendering"] > 0 and report["stages"]["training"] > 0
    for key in ("lr", "wd", "momentum", "grad_norm", "target_std", "clips_per_s"):
        assert key in rows[0]


def test_resume_ends_with_the_weights_of_an_uninterrupted_run(tmp_path):
    cfg = tiny_config()
    full = pretrain(cfg, tmp_path / "full", progress=False)
    part = pretrain(cfg, tmp_path / "part", progress=False, stop_after=5)  # checkpoints at 4 and 5, then "dies"
    assert part.steps == 5 and not part.teacher.exists()
    # a checkpoint written half-way (a temp folder) is ignored on resume
    (tmp_path / "part" / "checkpoints" / ".tmp-step_0000008-1").mkdir()
    resumed = pretrain(cfg, tmp_path / "part", resume=True, progress=False)
    assert resumed.steps == 12
    a, b = load_file(str(full.teacher)), load_file(str(resumed.teacher))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert [r["step"] for r in _metrics(tmp_path / "part")] == list(range(1, 13))


def test_a_run_folder_is_never_overwritten_and_resume_needs_the_same_config(tmp_path):
    cfg = tiny_config(optim={"steps": 4})
    pretrain(cfg, tmp_path / "run", progress=False)
    with pytest.raises(TrainingError, match="already holds a run"):
        pretrain(cfg, tmp_path / "run", progress=False)
    with pytest.raises(TrainingError, match="another config"):
        pretrain(cfg.with_steps(8), tmp_path / "run", resume=True, progress=False)
    with pytest.raises(TrainingError, match="nothing to resume"):
        pretrain(cfg, tmp_path / "empty", resume=True, progress=False)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "vjepa_edge", "teacher", "pretrain", *args]


@pytest.mark.slow  # the library-level resume test above runs in the default suite
def test_killed_cli_run_resumes_to_the_same_weights(tmp_path):
    config = tmp_path / "tiny.toml"
    lines = ['name = "tiny"']
    for section, table in TINY.items():
        if not isinstance(table, dict):
            continue
        lines.append(f"[{section}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in table.items() if not isinstance(v, dict)]
        for sub, subtable in ((k, v) for k, v in table.items() if isinstance(v, dict)):
            lines.append(f"[{section}.{sub}]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in subtable.items()]
    config.write_text("\n".join(lines) + "\n")
    args = ["--config", str(config), "--steps", "120", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    ref = subprocess.run(_cli(*args, "--out", str(tmp_path / "ref")), env=env, cwd=ROOT, capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr

    run = tmp_path / "killed"
    proc = subprocess.Popen(_cli(*args, "--out", str(run)), env=env, cwd=ROOT, stderr=subprocess.PIPE)
    first = run / "checkpoints" / "step_0000004"
    deadline = time.monotonic() + 120
    while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run / "teacher.safetensors").exists()
    again = subprocess.run(
        _cli(*args, "--out", str(run), "--resume"), env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert again.returncode == 0, again.stderr
    a, b = load_file(str(tmp_path / "ref" / "teacher.safetensors")), load_file(str(run / "teacher.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("strategy", [pytest.param("ddp", marks=pytest.mark.slow), "fsdp2"])  # distill covers DDP
def test_two_process_gloo_run_keeps_ranks_identical(tmp_path, strategy):
    done = run_two_processes(ROOT / "tests" / "teacher" / "ddp_worker.py", str(tmp_path), strategy, port_base=29500)
    assert done.returncode == 0, done.stderr[-3000:]
    r0, r1 = load_file(str(tmp_path / "rank0.safetensors")), load_file(str(tmp_path / "rank1.safetensors"))
    assert r0.keys() == r1.keys()
    for k in r0:
        assert torch.equal(r0[k], r1[k]), k
    saved = load_file(str(tmp_path / "teacher.safetensors"))
    assert all(torch.equal(saved[k], r0[k]) for k in r0)
    torch.manual_seed(0)  # the run's seed: the weights both ranks started from
    init = VJEPA(tiny_config().arch()).state_dict()
    assert any(not torch.equal(init[k], r0[k]) for k in r0 if k.startswith("encoder."))
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["world_size"] == 2
