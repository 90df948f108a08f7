"""Writes `predict` results as JSON lines: one prediction per input, in input order."""

import json
import sys
from pathlib import Path

from lightning.pytorch.callbacks import BasePredictionWriter


class PredictionWriter(BasePredictionWriter):
    """Writes the predictions of `cli.py predict` to a JSONL file.

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
