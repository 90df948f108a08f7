"""The run's small callbacks: the progress bar and the writer of `predict`'s results. (What the process does with the
host memory a step frees is `compacter_pl.host_memory.HostMemory`, beside the malloc settings it applies.)"""

import json
import math
import sys
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import BasePredictionWriter, RichProgressBar, TQDMProgressBar
from lightning.pytorch.utilities.imports import _RICH_AVAILABLE

from compacter_pl.errors import UserError
from compacter_pl.files import replaced_atomically


class PredictionWriter(BasePredictionWriter):
    """Writes the predictions of `cli.py predict` to a JSONL file: one prediction per input, in input order.

    Args:
        output: The file to write; None writes predictions.jsonl in the run's log directory. Under DDP each rank
            writes its own share to `<output>.rank<N>`.
    """

    def __init__(self, output: str | None = None) -> None:
        super().__init__(write_interval="epoch")
        self.output = output

    def write_on_epoch_end(self, trainer, pl_module, predictions, batch_indices) -> None:
        path = Path(self.output) if self.output else Path(trainer.log_dir or ".") / "predictions.jsonl"
        if trainer.world_size > 1:
            path = path.with_name(f"{path.name}.rank{trainer.global_rank}")
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = [row for batch in predictions for row in batch]
        with replaced_atomically(path) as f:  # whole or not at all; `check_run_options` made sure it is no input
            for row in rows:
                f.write(json.dumps(row) + "\n")
        print(f"wrote {len(rows)} predictions to {path}", file=sys.stderr if trainer.world_size > 1 else sys.stdout)


class RichBar(RichProgressBar):
    """Lightning's rich bar, with the run's version (`v_num`, the N of lightning_logs/version_N) as the integer it
    is (the rich bar formats every value as a float: `v_num: 0.000`)."""

    def get_metrics(self, trainer, pl_module) -> dict:
        items = super().get_metrics(trainer, pl_module)
        if isinstance(items.get("v_num"), int):
            items["v_num"] = str(items["v_num"])  # strings are shown as they are
        return items


def default_progress_bar() -> RichProgressBar | TQDMProgressBar:
    """The bar `fit` ... `predict` show: the one Lightning would pick (rich if installed, else tqdm, whose v_num is
    already an integer)."""
    return RichBar() if _RICH_AVAILABLE else TQDMProgressBar()


def check_batches(trainer: L.Trainer, batches: int) -> None:
    """Lightning's checks of `val_check_interval` and `limit_train_batches` against the training batches of an
    epoch, made before the first step rather than when the epoch begins."""
    limit = trainer.limit_train_batches
    if isinstance(limit, int) and limit > 0:
        batches = min(batches, limit)
    elif isinstance(limit, float):
        batches = int(batches * limit)
    interval = trainer.val_check_interval
    if isinstance(interval, int) and trainer.check_val_every_n_epoch is not None and interval > batches:
        raise UserError(
            f"--trainer.val_check_interval {interval} is more than the {batches} training batches of an epoch: pass "
            f"at most {batches}, a fraction of the epoch (e.g. 0.5), or --trainer.check_val_every_n_epoch null to "
            f"validate every {interval} batches across epochs"
        )


class OptionChecks(L.Callback):
    """Checks the options that need the training data (`check_batches`) once it is set up, before the first step."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit" or trainer.datamodule is None:  # type: ignore[attr-defined]
            return
        loader = trainer.datamodule.train_dataloader()  # type: ignore[attr-defined]
        batches = len(loader) if hasattr(loader, "__len__") else math.inf
        if batches != math.inf:
            check_batches(trainer, int(batches))
