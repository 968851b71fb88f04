"""Shared test fixtures: the golden V-JEPA files (copied from the official implementations' outputs)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

FIXTURES = Path(__file__).parent / "fixtures"
V1 = FIXTURES / "vjepa1_tiny.pth.tar"
V2 = FIXTURES / "vjepa2_tiny.pth.tar"
HF = FIXTURES / "hf_vjepa2_tiny"


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def load_io(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)
