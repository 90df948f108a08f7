"""A callback the sweep adds to each run: it writes what the run measured as JSON next to the run's logs.

`fit.json`: the validation metrics at the best validation score (the checkpoint `cli.py` keeps as best: the
first strictly better `val/score`, as ModelCheckpoint decides), its step and epoch, the best checkpoint's path,
the trainable and total parameter counts, the task, training size and subsample seed the data module used, and
the model, learning rate and every argument of the method (defaults included) the module was built with.
`test.json`: the test metrics. The runner reads both to write the run's line in results.jsonl. Each file is
written to a temporary name and renamed, so it is whole or absent.
"""

import json
from pathlib import Path

import lightning as L
import torch

from compacter_pl.files import write_atomically

FIT_SUMMARY = "fit.json"
TEST_SUMMARY = "test.json"


def _metrics(trainer: L.Trainer, stage: str) -> dict[str, float]:
    prefix = f"{stage}/"
    return {
        name[len(prefix) :]: float(value)
        for name, value in trainer.callback_metrics.items()
        if name.startswith(prefix) and isinstance(value, (torch.Tensor, float, int))
    }


def _write_json(path: Path, content: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, json.dumps(content, indent=1, default=str))  # a method argument JSON lacks: its text


class RunRecorder(L.Callback):
    """Writes `fit.json` and `test.json` (what a sweep records of a run) into `out_dir`.

    Args:
        out_dir: The run's directory.
    """

    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)
        self.best: dict | None = None
        self.parameters = {"trainable_params": 0, "total_params": 0}
        self.data: dict = {}
        self.settings: dict = {}

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        parameters = list(pl_module.parameters())  # shared (tied) parameters are listed once
        self.parameters = {
            "trainable_params": sum(p.numel() for p in parameters if p.requires_grad),
            "total_params": sum(p.numel() for p in parameters),
        }
        hparams = pl_module.hparams  # what the run really was, for the report to match it to the paper's rows
        self.settings = {
            "model": hparams.get("model_name_or_path"),
            "learning_rate": hparams.get("learning_rate"),
            "method_init_args": (hparams.get("method") or {}).get("init_args"),  # every argument, defaults too
        }
        datamodule = trainer.datamodule  # type: ignore[attr-defined]  # what the run trained on, for the sweep to check
        self.data = {
            "task": getattr(getattr(datamodule, "task", None), "name", None),
            "train_size": getattr(datamodule, "train_size", None),
            "seed": getattr(datamodule, "seed", None),
        }

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        metrics = _metrics(trainer, "val")
        if "score" in metrics and (self.best is None or metrics["score"] > self.best["val"]["score"]):
            self.best = {"val": metrics, "step": trainer.global_step, "epoch": trainer.current_epoch}

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        callback = trainer.checkpoint_callback
        best = self.best or {"val": {}, "step": None, "epoch": None}
        _write_json(
            self.out_dir / FIT_SUMMARY,
            {
                "best_val": best["val"],
                "best_step": best["step"],
                "best_epoch": best["epoch"],
                "best_checkpoint": callback.best_model_path if callback else "",  # type: ignore[attr-defined]
                "steps": trainer.global_step,
                "data": self.data,
                **self.settings,
                **self.parameters,
            },
        )

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            _write_json(self.out_dir / TEST_SUMMARY, {"test": _metrics(trainer, "test")})
