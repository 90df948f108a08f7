"""FSDP on one GPU with a frozen base, as the README runs it: `cli.py fit --config ... --config
configs/strategies/fsdp.yaml` with a method that trains adapters and layer norms (Compacter). Its best checkpoint
holds exactly the parameters that train, under their plain names, and `cli.py test` scores it with and without FSDP.

Lightning's FSDP needs CUDA (no CPU variant); each command runs in its own process, as a user runs it, so the
process group FSDP starts ends with it.
"""

import json
import re

import pytest
import torch

from compacter_pl.checkpoint_io import read_checkpoint
from compacter_pl.config import parse_run
from compacter_pl.hub import load_t5
from compacter_pl.methods import trainable_names
from tests.helpers import DEMO_MODEL, NO_CUDA, ROOT, tiny_method

FSDP = ["--config", str(ROOT / "configs/strategies/fsdp.yaml"), "--trainer.devices=1"]  # one GPU of any machine


def common(tmp_path) -> list[str]:
    return [
        "--config",
        str(ROOT / "configs/demo.yaml"),
        "--model.method",
        json.dumps(tiny_method("compacter").config()),
        f"--model.model_name_or_path={DEMO_MODEL}",
        f"--trainer.default_root_dir={tmp_path}",
        f"--data.cache_dir={tmp_path / 'cache'}",
        "--trainer.enable_progress_bar=false",
    ]


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)
def test_fsdp_trains_adapters_and_layer_norms_and_checkpoints_only_them(cli, tmp_path):
    fit = cli(
        "fit",
        *common(tmp_path),
        *FSDP,
        "--model.learning_rate=1e-2",
        "--model.warmup_steps=0",
        "--trainer.max_steps=3",
        "--trainer.val_check_interval=3",
        "--trainer.limit_val_batches=1",
        "--trainer.num_sanity_val_steps=0",
        "--data.batch_size=8",
        timeout=300,
    )
    assert fit.returncode == 0, fit.stderr[-3000:]
    best = re.search(r"best checkpoint: (\S+)", fit.stdout).group(1)

    fresh = load_t5(str(DEMO_MODEL))  # the base with the method applied, as the run's module builds it
    tiny_method("compacter").apply(fresh)
    trained = trainable_names(fresh)
    assert any("layer_norm" in name for name in trained) and any("adapter" in name for name in trained)
    saved = read_checkpoint(best)["state_dict"]
    names = {key.removeprefix("model.") for key in saved}
    assert names == trained, (
        f"{len(trained - names)} trained parameters missing, e.g. {sorted(trained - names)[:2]}; "
        f"{len(names - trained)} others, e.g. {sorted(names - trained)[:2]}"
    )
    initial = fresh.state_dict()
    assert all(torch.isfinite(saved[f"model.{name}"]).all() for name in trained)
    assert any(not torch.equal(saved[f"model.{name}"].cpu(), initial[name]) for name in trained), "it trained"

    for strategy in ([], FSDP):
        test = cli(
            "test",
            *common(tmp_path),
            "--trainer.accelerator=gpu",
            "--trainer.devices=1",
            *strategy,
            "--ckpt_path",
            best,
            "--trainer.limit_test_batches=2",
            timeout=300,
        )
        assert test.returncode == 0, test.stderr[-3000:]
        assert re.search(r"test/score\s*│\s*[0-9.]+", test.stdout), test.stdout[-2000:]


def test_the_fsdp_run_parses(tmp_path):
    """The arguments of the test above, parsed by the CLI's own parser (nothing built): also without a GPU."""
    config = parse_run(["fit", *common(tmp_path), *FSDP])
    strategy = config["trainer"]["strategy"]
    assert strategy["class_path"].endswith("FSDPStrategy"), strategy
    assert config["trainer"]["precision"] == "bf16-mixed" and str(config["trainer"]["devices"]) == "1"
    assert strategy["init_args"]["state_dict_type"] == "full"
