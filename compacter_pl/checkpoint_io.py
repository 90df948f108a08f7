"""Checkpoints written atomically: a killed process leaves the previous file or the new one, never half of one."""

import os
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes `<file>.tmp`, flushes it to disk, then renames it over `<file>` (atomic on POSIX)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if "://" in str(path):  # remote storage: Lightning's own transactional writer
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_name(path.name + ".tmp")
        with open(staging, "wb") as f:
            torch.save(checkpoint, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(staging, path)


class LastCheckpoint(ModelCheckpoint):
    """`last.ckpt`: where the run stopped, whatever the score, for `--ckpt_path last`. Written at each epoch's end
    (after validation; when validation runs more often than once an epoch, after each validation) and, with
    `every_n_train_steps`, every that many steps as well. (Lightning's own triggers are exclusive, and its
    `save_last` writes only when a best checkpoint is written too.)"""

    def __init__(
        self, every_n_train_steps: int | None = None, at_epoch_end: bool = True, dirpath: str | None = None
    ) -> None:
        """Args:
        every_n_train_steps: Also write last.ckpt every this many training steps (mid-epoch resumes).
        at_epoch_end: Write it at each epoch's end; false with no every_n_train_steps never writes it (a sweep,
            which restarts an unfinished run from scratch, needs none).
        dirpath: Where; None is the run's `checkpoints/` folder, beside the best checkpoint.
        """
        super().__init__(
            dirpath=dirpath,
            filename="last",
            monitor=None,
            save_top_k=1,
            every_n_train_steps=every_n_train_steps,
            every_n_epochs=None if every_n_train_steps else int(at_epoch_end),
            enable_version_counter=False,
        )
        self.at_epoch_end = at_epoch_end

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if (
            self._every_n_train_steps > 0
            and self.at_epoch_end
            and not self._should_skip_saving_checkpoint(trainer)
            and self._last_global_step_saved != trainer.global_step
        ):
            self._save_topk_checkpoint(trainer, self._monitor_candidates(trainer))
