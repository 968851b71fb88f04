"""Run under torchrun: pretrain the tiny config, then save this rank's weights (for test_distributed)."""

import sys
from pathlib import Path

from safetensors.torch import save_file

from teacher.train import pretrain
from tests.teacher.conftest import tiny_config

out, strategy = Path(sys.argv[1]), sys.argv[2]
cfg = tiny_config(run={"distributed": strategy, "checkpoint_every": 3}, optim={"steps": 6})
result = pretrain(cfg, out, progress=False)
state = result.model.state_dict()
full = {k: (v.full_tensor() if hasattr(v, "full_tensor") else v).detach().contiguous() for k, v in state.items()}
import torch.distributed as dist  # noqa: E402

rank = dist.get_rank()
save_file(full, str(out / f"rank{rank}.safetensors"))
