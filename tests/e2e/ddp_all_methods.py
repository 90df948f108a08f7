"""Run by tests/e2e/test_distributed.py: every method fits the demo under Lightning's DDP on 2 CPU processes (no
find_unused_parameters), then tests; rank 0 writes the test metrics and the trained state of each method."""

import json
import sys
from pathlib import Path

import lightning as L
import torch

from compacter_pl.data import TextToTextDataModule
from compacter_pl.methods import trainable_names
from compacter_pl.training.module import TextToTextModule
from tests.helpers import DEMO_DATA, DEMO_MODEL, KEYS, quiet_trainer, tiny_method


def main(out: Path, precision: str) -> None:
    results = {}
    for key in KEYS:
        L.seed_everything(0)
        module = TextToTextModule(str(DEMO_MODEL), method=tiny_method(key), task="rte", learning_rate=1e-2)
        dm = TextToTextDataModule(
            "rte",
            str(DEMO_MODEL),
            data_dir=str(DEMO_DATA / "rte"),
            batch_size=8,
            eval_batch_size=7,
            cache_dir=str(out / "cache"),
        )
        trainer = quiet_trainer(
            devices=2,
            strategy="ddp",
            precision=precision,
            max_steps=2,
            limit_val_batches=0,
            enable_checkpointing=False,
            default_root_dir=out,
        )
        trainer.fit(module, dm)
        metrics = trainer.test(module, dm, verbose=False)[0]
        if trainer.is_global_zero:
            names = trainable_names(module.model)
            state = {k: v for k, v in module.model.state_dict().items() if k in names}
            torch.save(state, out / f"{key}.pt")
            results[key] = metrics
    if results:
        (out / "results.json").write_text(json.dumps(results))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "32-true")
