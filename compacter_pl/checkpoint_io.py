"""Checkpoints written atomically and read safely: a killed process or a full disk leaves the previous file or the
new one, never half of one; every load is `weights_only` (no pickled code runs), and a file that is no checkpoint
is refused in one line that names it and says what it is."""

import os
import pickle
import re
import struct
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from compacter_pl.errors import UserError, first_line
from compacter_pl.files import STAGING_SUFFIX, replaced_atomically

ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format since torch 1.6 (what Lightning writes)
PICKLE_PROTOCOL = b"\x80"  # torch.save's legacy format, a bare pickle
# What torch.load (weights_only) raises on a truncated or corrupt file besides pickle.UnpicklingError, as found by
# truncating checkpoints and overwriting random bytes of them in both formats: the zip reader's RuntimeError or
# OSError, and the unpickler's EOFError, struct.error, ValueError (UnicodeDecodeError among them), KeyError or
# IndexError, and AssertionError for a storage key it cannot find.
TORCH_LOAD_CORRUPT_FILE_ERRORS = (
    RuntimeError,
    OSError,
    EOFError,
    struct.error,
    ValueError,
    LookupError,
    AssertionError,
)


def read_checkpoint(path: str | Path, map_location: Any = "cpu", mmap: bool = False) -> dict:
    """A Lightning checkpoint, loaded with `weights_only=True` whatever TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD says, or a
    UserError naming the file and what it is instead. `mmap`: map the tensors instead of reading them (to look at
    the hyper-parameters of a large checkpoint cheaply)."""
    path = Path(path)
    if path.is_dir():
        inside = sorted(p.name for p in path.glob("*.ckpt"))
        holds = f" (it holds {', '.join(inside[:3])})" if inside else ""
        raise UserError(f"checkpoint {path} is a directory{holds}; pass --ckpt_path the .ckpt file that fit printed")
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist; pass --ckpt_path the file that fit printed")
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as error:
        raise UserError(f"cannot read checkpoint {path}: {error.strerror}") from None
    if _is_safetensors(head):
        raise UserError(
            f"{path} is a safetensors file (an export's weights?), not a Lightning checkpoint; pass --ckpt_path a "
            f".ckpt that fit wrote (an export directory loads with AdapterBank or apply_export)"
        )
    if not head.startswith((ZIP_MAGIC, PICKLE_PROTOCOL)):
        raise UserError(
            f"{path} is not a checkpoint (torch.save did not write it); pass --ckpt_path a .ckpt that fit wrote"
        )
    try:
        checkpoint = torch.load(
            path, map_location=map_location, weights_only=True, mmap=mmap and head.startswith(ZIP_MAGIC)
        )
    except pickle.UnpicklingError as error:
        refused = re.search(r"GLOBAL ([\w.]+)", str(error))
        if refused is None:
            raise UserError(f"cannot read checkpoint {path}: truncated or corrupt (it does not unpickle)") from None
        raise UserError(
            f"checkpoint {path} holds objects other than tensors (a pickled {refused.group(1)}) and was NOT loaded, "
            f"as loading it could run code; use a checkpoint that cli.py fit wrote"
        ) from None
    except TORCH_LOAD_CORRUPT_FILE_ERRORS as error:
        raise UserError(f"cannot read checkpoint {path}: truncated or corrupt ({first_line(error)})") from None
    if not isinstance(checkpoint, dict):
        raise UserError(
            f"{path} holds a {type(checkpoint).__name__}, not a Lightning checkpoint (a dict with a state_dict); "
            f"pass --ckpt_path a .ckpt that fit wrote"
        )
    if "state_dict" not in checkpoint:
        keys = ", ".join(map(str, list(checkpoint)[:4])) or "none"
        raise UserError(
            f"{path} has no state_dict (its keys: {keys}): not a Lightning checkpoint; pass --ckpt_path a .ckpt "
            f"that fit wrote"
        )
    return checkpoint


def _is_safetensors(head: bytes) -> bool:
    """A safetensors file starts with its JSON header's length (8 bytes, little-endian), then the header."""
    return len(head) > 8 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") < 100_000_000


def os_error_in(error: BaseException | None) -> OSError | None:
    """The first OSError with an errno in an exception's chain (torch's writer reports a full disk as a
    RuntimeError whose context is the OSError)."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, OSError) and error.errno is not None:
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


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
