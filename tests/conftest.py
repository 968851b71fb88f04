"""Shared test fixtures: the golden V-JEPA files (copied from the official implementations' outputs)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vjepa_edge.models.arch import PredictorArch

FIXTURES = Path(__file__).parent / "fixtures"
V1 = FIXTURES / "vjepa1_tiny.pth.tar"
V2 = FIXTURES / "vjepa2_tiny.pth.tar"
HF = FIXTURES / "hf_vjepa2_tiny"


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _library_logs_reach_caplog() -> None:
    """A command run in-process (CliRunner) stops the library's records at its own handler (`setup_logging`);
    give them back to the root logger, where `caplog` listens, for the next test."""
    import logging

    yield
    for name in ("vjepa_edge", "teacher"):
        logging.getLogger(name).propagate = True


@pytest.fixture(autouse=True, scope="session")
def _hermetic_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Rendered clips, features and teachers go to a cache of the test session, never the user's."""
    import os

    os.environ["VJEPA_EDGE_CACHE"] = str(tmp_path_factory.mktemp("vjepa-edge-cache"))


@pytest.fixture(autouse=True, scope="session")
def _subprocesses_keep_their_bytecode(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Where PYTHONDONTWRITEBYTECODE is set (some CI images set it), every CLI test's subprocess would compile each
    module it imports again, about 2 s a process here (torch alone is ~700 modules): the suite took 533-560 s
    against 456 s. The subprocesses write their bytecode under a folder of the test session instead, so nothing
    lands in the tree or the environment, as the variable asks."""
    import os

    if os.environ.pop("PYTHONDONTWRITEBYTECODE", None):
        os.environ["PYTHONPYCACHEPREFIX"] = str(tmp_path_factory.mktemp("pycache"))


def pico_predictor_arch(pos: str, *, num_mask_tokens: int = 2) -> PredictorArch:
    """The predictor of the fixtures' test size (48 wide, 2 blocks, 3 heads), for a given position encoding."""
    return PredictorArch(
        embed_dim=48,
        pred_dim=48,
        depth=2,
        num_heads=3,
        mlp_hidden=192,
        num_mask_tokens=num_mask_tokens,
        pos=pos,
        sort_tokens=pos == "rope",
    )


def load_io(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)
