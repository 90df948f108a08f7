"""The tokenized-data cache heals: an entry carries a completion marker with the size and checksum of each of its
files, and one that is incomplete or corrupt (each kind below) is rebuilt by the next run, with one warning line
naming the entry and why, whether the run prepares the data first or only sets it up; staging folders of builds
that died are removed, never one whose builder still runs."""

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from compacter_pl.data import TextToTextDataModule
from compacter_pl.data.cache_entry import MARKER
from tests.helpers import DEMO_DATA, DEMO_MODEL

SIZES = {"train": 600, "validation": 100, "test": 100}  # RTE's demo files, split as the paper does


def module(cache: Path) -> TextToTextDataModule:
    return TextToTextDataModule(
        task="rte", tokenizer=str(DEMO_MODEL), data_dir=str(DEMO_DATA / "rte"), cache_dir=str(cache), batch_size=8
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A cache folder holding one complete entry, copied by each test."""
    cache = tmp_path_factory.mktemp("built") / "cache"
    module(cache).prepare_data()
    return cache


@pytest.fixture
def cache(built, tmp_path) -> Path:
    shutil.copytree(built, tmp_path / "cache")
    return tmp_path / "cache"


def arrow_file(entry: Path, split: str) -> Path:
    (path,) = (entry / split).glob("*.arrow")
    return path


# Each kind of damage: done to an entry, it returns what the warning should say is wrong.


def truncated_arrow_file(entry: Path) -> str:
    path = arrow_file(entry, "train")
    size = path.stat().st_size
    os.truncate(path, size // 2)
    return f"train/{path.name} has {size // 2} bytes, not {size}"


def corrupt_arrow_file(entry: Path) -> str:
    path = arrow_file(entry, "validation")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # the same size, one byte changed
    path.write_bytes(bytes(data))
    return f"validation/{path.name} does not match its checksum"


def empty_meta_json(entry: Path) -> str:
    size = (entry / "meta.json").stat().st_size
    (entry / "meta.json").write_text("")
    return f"meta.json has 0 bytes, not {size}"


def missing_split_folder(entry: Path) -> str:
    name = arrow_file(entry, "test").name
    shutil.rmtree(entry / "test")
    return f"test/{name} is missing"


def no_completion_marker(entry: Path) -> str:
    (entry / MARKER).unlink()
    return "it has no completion marker (its build did not finish)"


def empty_completion_marker(entry: Path) -> str:
    (entry / MARKER).write_text("")
    return "its completion marker is unreadable"


def garbled_completion_marker(entry: Path) -> str:
    (entry / MARKER).write_text('{"files": {"meta.json": 3')
    return "its completion marker is unreadable"


CORRUPTIONS: dict[str, Callable[[Path], str]] = {
    damage.__name__: damage
    for damage in (
        truncated_arrow_file,
        corrupt_arrow_file,
        empty_meta_json,
        missing_split_folder,
        no_completion_marker,
        empty_completion_marker,
        garbled_completion_marker,
    )
}


def warnings(err: str) -> list[str]:
    assert "Traceback" not in err, err
    return [line for line in err.splitlines() if line.startswith("warning:")]


@pytest.mark.parametrize("first", ["prepare_data", "setup"])
@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_a_bad_entry_is_rebuilt_with_one_line_saying_which_and_why(name, first, cache, capsys):
    data = module(cache)
    entry = data.cache_path
    reason = CORRUPTIONS[name](entry)
    capsys.readouterr()
    if first == "prepare_data":
        data.prepare_data()
    data.setup("fit")  # without prepare_data (a notebook): setup heals the entry itself
    assert warnings(capsys.readouterr().err) == [
        f"warning: the tokenized-data cache entry {entry} cannot be used: {reason}; rebuilding it"
    ]
    assert {split: len(records) for split, records in data.splits.items()} == SIZES
    again = module(cache)
    again.prepare_data()
    again.setup("fit")
    assert warnings(capsys.readouterr().err) == []  # healed: the next run uses it as it is
    assert sorted(p.name for p in entry.parent.iterdir()) == [entry.name]  # nothing else left beside it


def test_a_good_entry_is_used_as_it_is(cache, capsys):
    data = module(cache)
    stamp = (data.cache_path / MARKER).stat().st_mtime_ns
    data.prepare_data()
    data.setup("fit")
    assert warnings(capsys.readouterr().err) == []
    assert (data.cache_path / MARKER).stat().st_mtime_ns == stamp


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_staging_folders_of_dead_builds_are_removed_and_live_ones_kept(cache):
    data = module(cache)
    entry, host = data.cache_path, socket.gethostname()
    folder = entry.parent
    dead, live = dead_pid(), os.getppid()  # the process that ran pytest outlives this test
    leftovers = {
        f"{entry.name}.{host}.{dead}.build.tmp": False,  # a build killed on this host: removed
        f"0123456789abcdef.{host}.{dead}.build.tmp": False,  # of another entry, too
        f"{entry.name}.{host}.{dead}.old.tmp": False,  # a bad entry moved aside, not yet removed
        f"{entry.name}.{host}.{live}.build.tmp": True,  # a build still running: kept
        f"{entry.name}.another-host.{dead}.build.tmp": True,  # another host's (a shared cache): its pid says nothing
    }
    for name in leftovers:
        (folder / name / "train").mkdir(parents=True)
    data.prepare_data()
    kept = [name for name, live in leftovers.items() if live]
    assert sorted(p.name for p in folder.iterdir()) == sorted([entry.name, *kept])
