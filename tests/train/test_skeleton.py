"""The shared training loop with a toy stage: hooks are called as documented, a resumed run ends where an
uninterrupted one does, a non-finite loss stops the run, and metrics.jsonl stays strict JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from vjepa_edge.errors import TrainingError
from vjepa_edge.models.arch import EncoderArch, VJEPAArch
from vjepa_edge.models.vjepa import VJEPA
from vjepa_edge.runinfo import write_json
from vjepa_edge.train.distributed import DistInfo
from vjepa_edge.train.loop import read_metrics
from vjepa_edge.train.skeleton import Checkpointed, LoopSpec, Trainer

ARCH = EncoderArch(
    embed_dim=24, depth=1, num_heads=2, mlp_hidden=48, patch_size=8, tubelet_size=2, num_frames=2, img_size=16
)


class Clips(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 16

    def __getitem__(self, i: int) -> dict[str, Any]:
        g = torch.Generator().manual_seed(i)
        return {"clip": torch.randn(3, 2, 16, 16, generator=g), "skipped": []}


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    return {"clip": torch.stack([s["clip"] for s in samples]), "skipped": []}


class Toy(Trainer):
    """Pulls the encoder's tokens toward zero; `bad` makes one step's value (or loss) non-finite."""

    def __init__(self, out: Path, *, steps: int = 6, bad: dict[int, dict[str, float]] | None = None) -> None:
        spec = LoopSpec(
            label="toy",
            note="toy run",
            weights="student",
            nan_hint="lower the toy's lr",
            steps=steps,
            log_every=1,
            checkpoint_every=4,
            keep_checkpoints=2,
            batch_size=4,
            num_workers=0,
            seed=0,
            max_bad_fraction=0.0,
        )
        super().__init__(spec, out, DistInfo(), progress=False, precision="fp32")
        torch.manual_seed(0)
        self.model = VJEPA(VJEPAArch(version="vjepa2", encoder=ARCH))
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-2)
        self.dataset = Clips()
        self.bad = bad or {}
        self.seen: list[int] = []
        self.restored: dict[str, Any] | None = None
        self.calls: list[str] = []

    def step(self, batch: dict[str, Any], step: int) -> dict[str, float]:
        loss = self.model.encoder(batch["clip"]).pow(2).mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.seen.append(step)
        return {"loss": loss.item(), "grad_norm": 1.0, **self.bad.get(step, {})}

    def checkpointed(self) -> Checkpointed:
        return Checkpointed(self.model, self.model, self.optimizer)

    def extra_state(self) -> dict[str, Any]:
        return {"seen": list(self.seen)}

    def restore(self, state: dict[str, Any]) -> None:
        self.restored = state

    def env(self) -> dict[str, Any]:
        return {"toy": True}

    def before_loop(self, start: int) -> None:
        self.calls.append(f"before_loop {start}")

    def collate(self):
        return collate

    def report(self, *, step: int, start: int, elapsed: float) -> dict[str, Any]:
        self.calls.append(f"report {start}->{step}")
        return {"steps": step}


def test_a_run_logs_checkpoints_and_reports(tmp_path):
    toy = Toy(tmp_path)
    steps, report = toy.run(resume=False, stop_after=None)
    assert (steps, report) == (6, {"steps": 6})
    assert toy.calls == ["before_loop 0", "report 0->6"]
    assert [r["step"] for r in read_metrics(toy.metrics)] == [1, 2, 3, 4, 5, 6]
    assert json.loads((tmp_path / "env.json").read_text())["toy"] is True
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_0000004", "step_0000006"]
    last = load_file(str(tmp_path / "checkpoints" / "step_0000006" / "model.safetensors"))
    final = load_file(str(toy.weights))
    assert all(torch.equal(last[k], final[k]) for k in last)
    assert set(toy.stages) == {"training"}


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path):
    whole = Toy(tmp_path / "whole")
    whole.run(resume=False, stop_after=None)
    part = Toy(tmp_path / "part")
    assert part.run(resume=False, stop_after=3) == (3, {})  # "killed" after the checkpoint at step 3
    assert not part.weights.exists()
    again = Toy(tmp_path / "part")
    assert again.run(resume=True, stop_after=None) == (6, {"steps": 6})
    assert again.restored is not None and again.restored["seen"] == [0, 1, 2] and again.seen == [3, 4, 5]
    assert again.calls == ["before_loop 3", "report 3->6"]
    a, b = load_file(str(whole.weights)), load_file(str(again.weights))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["step"] for r in read_metrics(again.metrics)] == [1, 2, 3, 4, 5, 6]


def test_a_non_finite_loss_stops_the_run_with_the_stages_hint(tmp_path):
    toy = Toy(tmp_path, bad={2: {"loss": math.nan}})
    with pytest.raises(TrainingError, match="the loss became nan at step 3") as err:
        toy.run(resume=False, stop_after=None)
    assert err.value.hint == "lower the toy's lr"


def _strict(text: str) -> Any:
    def refuse(token: str) -> None:
        raise ValueError(f"not JSON: {token}")

    return json.loads(text, parse_constant=refuse)


def test_non_finite_values_are_written_as_null(tmp_path):
    toy = Toy(tmp_path, steps=2, bad={0: {"grad_norm": math.inf}, 1: {"grad_norm": -math.inf}})
    toy.run(resume=False, stop_after=None)
    rows = [_strict(ln) for ln in toy.metrics.read_text().splitlines()]
    assert [r["grad_norm"] for r in rows] == [None, None]
    path = write_json(tmp_path / "report.json", {"a": math.nan, "b": [1.0, math.inf], "c": {"d": 2.5}})
    assert _strict(path.read_text()) == {"a": None, "b": [1.0, None], "c": {"d": 2.5}}
