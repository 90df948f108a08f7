"""Files and folders written whole or not at all: a reader (another process, a resumed run, a report) never sees half
of one."""

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO

from compacter_pl.errors import UserError

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


def write_folder(out: Path, fill: Callable[[Path], None]) -> Path:
    """Write folder `out` whole or not at all: `fill(staging)` writes its files into a hidden folder beside it, which
    one rename moves into place (a folder already at `out`, empty or replaced, is moved aside first and then
    removed), so a killed write leaves the previous folder (or none), never half of one."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging, previous = out.with_name(f".{out.name}.partial"), out.with_name(f".{out.name}.previous")
    with staged_directory(staging):  # one a killed write left is removed first
        staging.mkdir()
        fill(staging)
    if out.exists():
        shutil.rmtree(previous, ignore_errors=True)
        os.replace(out, previous)
    os.replace(staging, out)
    shutil.rmtree(previous, ignore_errors=True)
    return out


# --- where a command may write ---------------------------------------------------------------------------------
# Every command that writes a file or a folder the user names asks here first, before any work: a write never
# replaces a file the same command reads, never lands in a folder that holds what the command reads, and never
# replaces a folder that is not recognisably one the command writes.

Reads = Mapping[str, "str | Path | None"]  # the command's options that name what it reads -> their paths


def _same(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _inside(path: Path, folder: Path) -> bool:
    """Whether `path` is `folder` or lies below it (links resolved)."""
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


def check_output_file(path: str | Path, option: str, reads: Reads) -> Path:
    """`path` as a file the command may replace: not a folder, and not a file the command reads (whatever the
    spelling: links and relative paths are resolved). A one-line UserError names both options otherwise."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{option} {path} is a directory; pass a file name")
    for read_option, read in reads.items():
        if read is not None and (_same(path, Path(read)) or path.resolve() == Path(read).resolve()):
            raise UserError(f"{option} {path} is the file {read_option} reads; pass another {option}")
    return path


def check_output_folder(
    path: str | Path,
    option: str,
    reads: Reads,
    *,
    overwrite: bool = False,
    is_own: Callable[[Path], bool] | None = None,
    kind: str = "an output",
    overwrite_option: str = "--overwrite",
) -> Path:
    """`path` as a folder the command may write into: not a file, holding nothing the command reads, and either
    absent, empty, or (with `overwrite`, when the command replaces it) recognisably its own kind (`is_own`)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{option} {path} is a file; pass a directory for {kind}")
    for read_option, read in reads.items():
        if read is not None and Path(read).exists() and _inside(Path(read), path):
            raise UserError(
                f"{option} {path} holds {read_option} {read}, which this command reads; pass another {option}"
            )
    if path.is_dir() and any(path.iterdir()):
        if is_own is not None and not is_own(path):
            raise UserError(
                f"{option} {path} already holds files that are not {kind}, which this command never replaces; "
                f"pass an empty or new directory as {option}"
            )
        if not overwrite:
            raise UserError(
                f"{option} {path} already holds files ({kind}); pass {overwrite_option} to replace them, "
                f"or another {option}"
            )
    return path
