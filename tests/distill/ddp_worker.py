"""Run under torchrun: distill the tiny recipe on 2 processes, then save this rank's student weights."""

import sys
from pathlib import Path

import torch.distributed as dist
from safetensors.torch import save_file

from tests.distill.conftest import tiny_recipe
from vjepa_edge.distill.train import distill

out, teacher = Path(sys.argv[1]), Path(sys.argv[2])
recipe = tiny_recipe(teacher, out / "cache", optim={"steps": 6}, run={"checkpoint_every": 3})
result = distill(recipe, out / "run", progress=False)
state = {k: v.detach().contiguous() for k, v in result.model.state_dict().items()}
save_file(state, str(out / f"rank{dist.get_rank()}.safetensors"))
