"""Files and folders written whole or not at all: a reader (another process, a resumed run, a report) never sees half
of one."""

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO

STAGING_SUFFIX = ".tmp"  # `<name>.tmp` beside the file it will replace


def staging_path(path: Path, unique: bool = False) -> Path:
    """Where `path`'s new content is written before it replaces `path`: `<name>.tmp` beside it, or, where several
    processes may write `path` at once (`unique`), `.<name>.<pid>.tmp`."""
    if unique:
        return path.with_name(f".{path.name}.{os.getpid()}{STAGING_SUFFIX}")
    return path.with_name(path.name + STAGING_SUFFIX)


@contextlib.contextmanager
def replaced_atomically(path: str | Path, mode: str = "w", unique: bool = False, sync: bool = False) -> Iterator[IO]:
    """A staging file beside `path`, opened with `mode`, renamed over `path` once the block ends (atomic on POSIX).
    An error in the block removes the staging file and leaves `path` as it was. `sync`: flush the staging file to
    disk before the rename (checkpoints: the rename must not reach the disk before the data)."""
    path = Path(path)
    staging = staging_path(path, unique)
    try:
        with open(staging, mode) as file:
            yield file
            if sync:
                file.flush()
                os.fsync(file.fileno())
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    os.replace(staging, path)


def write_atomically(path: str | Path, text: str, unique: bool = False) -> None:
    """`path.write_text(text)`, but whole or not at all (`replaced_atomically`)."""
    with replaced_atomically(path, unique=unique) as file:
        file.write(text)


@contextlib.contextmanager
def staged_directory(staging: Path) -> Iterator[Path]:
    """`staging`, the folder a directory is written into before one rename moves it into place (the caller's): what
    a killed writer left there is removed first, and an error in the block removes it too."""
    shutil.rmtree(staging, ignore_errors=True)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
