"""Checkpoints read safely: every load is `weights_only` (no pickled code runs), and a file that is no checkpoint is
refused in one line that names it and says what it is. (The run writes them atomically:
`compacter_pl.training.checkpoints`.)"""

import pickle
import re
import struct
from pathlib import Path
from typing import Any

import torch

from compacter_pl.errors import UserError, first_line

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
