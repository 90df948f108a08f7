"""Entries of the tokenized-data cache (compacter_pl.data.datamodule): a folder built under a staging name and
renamed into place whole, sealed by a completion marker, written last, that lists the size and SHA-256 of each of
its files. An entry is used only when its files match its marker; one that does not (a build cut short, a file
truncated, corrupt or missing) is rebuilt, with one line saying which entry and why.

A staging folder is named `<entry>.<host>.<pid>.<build|old>.tmp`, its builder's host and process: one that a dead
process of this host left is removed; another host's, or a live process's, is never touched.
"""

import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
from pathlib import Path

from compacter_pl.files import write_atomically

MARKER = "complete.json"
_STAGING = re.compile(r"^[^.]+\.(?P<host>.+)\.(?P<pid>\d+)\.(?:build|old)\.tmp$")
# entries verified by this process, by the status of their files: a second look (setup after prepare_data) only
# compares them, and hashes again if any file changed
_verified: dict[Path, tuple] = {}


def staging_path(entry: Path, purpose: str = "build") -> Path:
    """Where this process builds `entry` (`build`), or moves a bad one aside to remove it (`old`)."""
    return entry.with_name(f"{entry.name}.{socket.gethostname()}.{os.getpid()}.{purpose}.tmp")


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != MARKER)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def seal(folder: Path) -> None:
    """Write the completion marker of a built folder: every file's size and SHA-256."""
    files = {
        name: {"bytes": (folder / name).stat().st_size, "sha256": _sha256(folder / name)} for name in _files(folder)
    }
    write_atomically(folder / MARKER, json.dumps({"files": files}, indent=1))


def _marker(entry: Path) -> dict[str, tuple[int, str]] | str:
    """The files the marker lists (name: (bytes, sha256)), or why it cannot be read."""
    try:
        listed = json.loads((entry / MARKER).read_text())["files"]
        return {str(name): (int(file["bytes"]), str(file["sha256"])) for name, file in listed.items()}
    except FileNotFoundError:
        return "it has no completion marker (its build did not finish)"
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return "its completion marker is unreadable"


def _status(entry: Path, names) -> tuple:
    stats = [(entry / name).stat() for name in [MARKER, *names]]
    return tuple((s.st_ino, s.st_size, s.st_mtime_ns) for s in stats)


def problem(entry: Path) -> str | None:
    """Why a cache entry that exists cannot be used, or None when each file its marker lists matches it."""
    listed = _marker(entry)
    if isinstance(listed, str):
        return listed
    try:
        for name, (size, _) in listed.items():
            if not (entry / name).is_file():
                return f"{name} is missing"
            if (entry / name).stat().st_size != size:
                return f"{name} has {(entry / name).stat().st_size} bytes, not {size}"
        status = _status(entry, listed)
        if _verified.get(entry) == status:
            return None
        for name, (_, digest) in listed.items():
            if _sha256(entry / name) != digest:
                return f"{name} does not match its checksum"
    except OSError as error:  # removed or replaced while read (another process healing it)
        return f"it cannot be read ({error.strerror}: {error.filename})"
    _verified[entry] = status
    return None


def install(staging: Path, entry: Path) -> None:
    """Move a sealed staging folder into place (one rename: the entry is complete or absent). An entry there
    already is kept if it is good (another process built it meanwhile, the same content) and the staging folder
    removed; a bad one is moved aside and removed first."""
    for _ in range(2):  # a second try: another process may have installed its build between the two renames
        try:
            staging.rename(entry)
            return
        except OSError:
            if entry.is_dir() and problem(entry) is None:
                shutil.rmtree(staging, ignore_errors=True)
                return
        aside = staging_path(entry, "old")
        with contextlib.suppress(FileNotFoundError):
            entry.rename(aside)
        shutil.rmtree(aside, ignore_errors=True)
    staging.rename(entry)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_leftovers(folder: Path) -> None:
    """Remove the staging folders that builds on this host left when their process died (killed, out of memory)."""
    if not folder.is_dir():
        return
    host = socket.gethostname()
    for child in folder.iterdir():
        match = _STAGING.match(child.name)
        if match and match["host"] == host and not _alive(int(match["pid"])):
            shutil.rmtree(child, ignore_errors=True)
