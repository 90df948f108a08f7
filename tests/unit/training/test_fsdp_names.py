"""Under FSDP the parameters' names hold its wrappers' segments while the full state dict's do not: what a
checkpoint keeps (the names of what trains) must be the state dict's names, or the adapters are dropped from it.
FSDP runs here on the CPU (gloo, one process), in a subprocess of its own so no process group outlives the test."""

import os
import random
import subprocess
import sys

from tests.helpers import ROOT

SCRIPT = """
import os, torch, torch.distributed as dist
from torch import nn
os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=os.environ.get("PORT", "29513"))
dist.init_process_group("gloo", rank=0, world_size=1)
from torch.distributed.fsdp import FullyShardedDataParallel as FSDP, StateDictType, FullStateDictConfig
from torch.distributed.fsdp.wrap import ModuleWrapPolicy
from transformers.models.t5.modeling_t5 import T5Block
from compacter_pl.hub import load_t5
from compacter_pl.methods import trainable_names
from tests.helpers import DEMO_MODEL, tiny_method

class Holder(nn.Module):
    def __init__(self):
        super().__init__()
        self.model = load_t5(str(DEMO_MODEL))
        tiny_method("compacter").apply(self.model)

holder = Holder()
expected = trainable_names(holder.model)
wrapped = FSDP(holder, auto_wrap_policy=ModuleWrapPolicy({T5Block}), use_orig_params=True,
               device_id=torch.device("cpu"))
under_fsdp = trainable_names(wrapped.module.model)
with FSDP.state_dict_type(wrapped, StateDictType.FULL_STATE_DICT, FullStateDictConfig(rank0_only=True)):
    state = wrapped.state_dict()
kept = {k for k in state if k in {f"model.{n}" for n in under_fsdp}}
assert under_fsdp == expected, sorted(under_fsdp ^ expected)[:3]
assert kept == {f"model.{n}" for n in expected}, (len(kept), len(expected))
print("ok", len(kept))
dist.destroy_process_group()
"""


def test_what_trains_is_named_as_the_full_state_dict_names_it_under_fsdp():
    env = {**os.environ, "PORT": str(random.Random().randint(20000, 40000)), "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("ok ")
