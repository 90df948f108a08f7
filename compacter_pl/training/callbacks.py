"""The run's small callbacks: the progress bar, the writer of `predict`'s results, and what the process does with
the host memory a step frees."""

import json
import sys
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import BasePredictionWriter, RichProgressBar, TQDMProgressBar
from lightning.pytorch.utilities.imports import _RICH_AVAILABLE

from compacter_pl.host_memory import apply_host_memory


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
        with open(path, "w", encoding="utf-8") as f:
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


class HostMemory(L.Callback):
    """What the process does with the host memory a step frees, on CPU runs (set from the start of fit, validate,
    test or predict, for the whole process; `compacter_pl.host_memory`). Runs on a GPU keep the process's malloc
    defaults.

    Args:
        keep_freed: true keeps it for the next step (glibc's malloc: no heap trimming, 32 MiB mmap threshold),
            so steps do not page-fault it back in (the adapters' steps gain the most). The resident memory stays
            at its peak between steps. false returns it to the system after every step (thresholds fixed at
            32 MiB mmap, 64 MiB trim), for allocation patterns that fragment the heap, such as Intrinsic-SAID's
            Fastfood projections on a CPU (docs/host-memory.md).
    """

    def __init__(self, keep_freed: bool = True) -> None:
        self.keep_freed = keep_freed

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if trainer.strategy.root_device.type == "cpu":  # GPU activations never reach glibc: keep its defaults
            apply_host_memory(self.keep_freed)
