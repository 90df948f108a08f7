"""bf16-mixed runs every method on CPU; the same config and seed gives the same metrics and weights twice."""

import lightning as L
import pytest
import torch

from compacter_pl.data import TextToTextDataModule
from compacter_pl.methods import trainable_names
from compacter_pl.training.module import TextToTextModule
from tests.helpers import DEMO_DATA, DEMO_MODEL, KEYS, quiet_trainer, tiny_method


def fit(tmp_path, key: str, precision: str, steps: int = 2, validate: bool = False):
    L.seed_everything(0)
    module = TextToTextModule(str(DEMO_MODEL), method=tiny_method(key), task="rte", learning_rate=1e-2)
    dm = TextToTextDataModule(
        "rte", str(DEMO_MODEL), data_dir=str(DEMO_DATA / "rte"), batch_size=8, cache_dir=str(tmp_path / "cache")
    )
    trainer = quiet_trainer(
        max_steps=steps,
        limit_val_batches=1 if validate else 0,
        val_check_interval=steps,
        precision=precision,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(module, dm)
    return module, trainer


@pytest.mark.parametrize("key", KEYS)
def test_bf16_mixed_trains_every_method_on_cpu(key, tmp_path):
    L.seed_everything(0)
    before = {
        k: v.clone()
        for k, v in TextToTextModule(str(DEMO_MODEL), method=tiny_method(key), task="rte").model.state_dict().items()
    }
    module, trainer = fit(tmp_path, key, "bf16-mixed")
    names = trainable_names(module.model)
    after = module.model.state_dict()
    assert all(torch.isfinite(after[n]).all() for n in names)
    assert any(not torch.equal(before[n], after[n]) for n in names), "bf16-mixed steps changed the weights"
    assert torch.isfinite(trainer.callback_metrics["train/loss"])


def test_same_config_and_seed_give_identical_metrics_and_weights(tmp_path):
    first, first_trainer = fit(tmp_path / "a", "compacter", "32-true", steps=6, validate=True)
    second, second_trainer = fit(tmp_path / "b", "compacter", "32-true", steps=6, validate=True)
    assert {k: float(v) for k, v in first_trainer.callback_metrics.items()} == {
        k: float(v) for k, v in second_trainer.callback_metrics.items()
    }
    for (name, a), (_, b) in zip(first.model.state_dict().items(), second.model.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
