"""The run's checkpoint plugin and callback: `AtomicCheckpointIO` writes every checkpoint atomically (a killed process
or a full disk leaves the previous file or the new one, never half of one) and reads it with
`compacter_pl.checkpoint_io.read_checkpoint`; `LastCheckpoint` writes `last.ckpt`, where a run stopped."""

import os
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from compacter_pl.checkpoint_io import os_error_in, read_checkpoint
from compacter_pl.files import STAGING_SUFFIX, replaced_atomically


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes `<file>.tmp`, flushes it to disk, then renames it over `<file>` (atomic on POSIX). A failed write (a
    full disk) removes its `.tmp` and raises an OSError naming the checkpoint; the first write into a folder removes
    the `.tmp` files that killed runs left there. Loads are always `weights_only` (Lightning passes None, which
    TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD turns into a full unpickle)."""

    def __init__(self) -> None:
        super().__init__()
        self._swept: set[Path] = set()

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if "://" in str(path):  # remote storage: Lightning's own transactional writer
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.parent not in self._swept:
            for stale in path.parent.glob(f"*.ckpt{STAGING_SUFFIX}"):
                stale.unlink(missing_ok=True)
            self._swept.add(path.parent)
        try:
            with replaced_atomically(path, "wb", sync=True) as f:
                torch.save(checkpoint, f)
        except BaseException as error:
            cause = os_error_in(error)
            if cause is not None and cause.errno is not None:  # os_error_in returns only errors with an errno
                raise OSError(cause.errno, cause.strerror or os.strerror(cause.errno), str(path)) from error
            raise

    def load_checkpoint(self, path, map_location: Any | None = None, weights_only: bool | None = None) -> dict:
        if "://" in str(path):
            return super().load_checkpoint(path, map_location=map_location, weights_only=True)
        return read_checkpoint(path, map_location=map_location)


class LastCheckpoint(ModelCheckpoint):
    """`last.ckpt`: where the run stopped, whatever the score, for `--ckpt_path last`. Written at each epoch's end
    (after validation; when validation runs more often than once an epoch, after each validation), with
    `every_n_train_steps` every that many steps as well, and at the step a SIGTERM stopped the run (what SLURM sends
    before a kill; Lightning stops at the end of the current step). (Lightning's own triggers are exclusive, and its
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

    @property
    def writes(self) -> bool:
        return self.at_epoch_end or self._every_n_train_steps > 0

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if (
            self._every_n_train_steps > 0
            and self.at_epoch_end
            and not self._should_skip_saving_checkpoint(trainer)
            and self._last_global_step_saved != trainer.global_step
        ):
            self._save_topk_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        """Only a SIGTERM writes: any other exception (a NaN loss) leaves the last good last.ckpt as it was."""
        if isinstance(exception, SIGTERMException) and self.writes and not self._should_skip_saving_checkpoint(trainer):
            self._save_topk_checkpoint(trainer, self._monitor_candidates(trainer))


def monitored_checkpoint(trainer) -> ModelCheckpoint | None:
    """The run's ModelCheckpoint that decides which checkpoint is best: the first with a monitor (`last.ckpt`'s has
    none)."""
    return next(
        (c for c in trainer.checkpoint_callbacks if isinstance(c, ModelCheckpoint) and c.monitor is not None), None
    )
