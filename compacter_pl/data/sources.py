"""Raw records of a task: from the Hugging Face Hub, or from local files in the Hub's schema.

A local `data_dir` holds one file per original split (two are refused), named as the Hub names the split:
`train.jsonl` and `validation.jsonl` (MNLI: `validation_matched.jsonl`), or .parquet / .json / .csv. Columns, their
types and label ids are the Hub's; every loader checks them (compacter_pl.data.validation).
"""

import contextlib
import hashlib
from pathlib import Path

import datasets
import pyarrow

from compacter_pl.data.validation import Origin, check_records
from compacter_pl.errors import UserError, first_line
from compacter_pl.hub import hub_connection_error
from compacter_pl.tasks import Task

# What datasets.load_dataset raises on a file or Hub dataset it cannot read: its own DatasetsError (wrapping
# pyarrow's and pandas' parse errors), pyarrow's errors (an unreadable parquet file), ValueError (no records, an
# unknown config or split), OSError (every Hub and cache failure) and StopIteration (a JSON Lines file with no line).
LOAD_DATASET_ERRORS = (datasets.exceptions.DatasetsError, pyarrow.ArrowException, ValueError, OSError, StopIteration)

LOCAL_FORMATS = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv"}


def local_split_file(data_dir: Path, split: str) -> Path:
    """`<data_dir>/<split>.parquet|jsonl|json|csv`, or a UserError naming the file that is missing, or both files
    where there are two (which of them holds the split is the user's to say)."""
    found = [data_dir / f"{split}{suffix}" for suffix in LOCAL_FORMATS if (data_dir / f"{split}{suffix}").is_file()]
    if len(found) > 1:
        files = ", ".join(map(str, found[:-1])) + f" and {found[-1]}"
        raise UserError(f"data_dir {data_dir} has {len(found)} files for split {split!r}, {files}; remove all but one")
    if found:
        return found[0]
    raise UserError(
        f"data_dir {data_dir} has no file for split {split!r}: expected {data_dir / split}.parquet, "
        f".jsonl or .csv in the schema of the Hub dataset"
    )


def require_utf8(path: str | Path) -> None:
    """A UserError naming the line and byte of a text file that is not UTF-8 (a Latin-1 export, say): the readers
    would otherwise fail deep inside pyarrow, or read it as garbage."""
    data = Path(path).read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise UserError(
            f"{path} is not UTF-8 (line {line}, byte {error.start}: 0x{data[error.start]:02x}); it must be UTF-8 "
            f"text: convert it, e.g. iconv -f latin1 -t utf-8"
        ) from None


def load_local_split(task: Task, data_dir: Path, split: str) -> datasets.Dataset:
    path = local_split_file(data_dir, split)
    if LOCAL_FORMATS[path.suffix] != "parquet":
        require_utf8(path)
    try:
        dataset = datasets.load_dataset(LOCAL_FORMATS[path.suffix], data_files=str(path), split="train")
    except LOAD_DATASET_ERRORS as error:  # all mean an unreadable file
        if not _has_text(path):
            raise UserError(f"{path} is empty; the {split} split of {task.name} needs at least one record") from None
        reason = first_line(error, "")
        raise UserError(f"cannot read {path}: {type(error).__name__}: {reason}") from None
    if len(dataset) == 0:
        raise UserError(f"{path} holds no records; the {split} split of {task.name} needs at least one")
    check_records(task, dataset, Origin(str(path), path))
    return dataset


def _has_text(path: Path) -> bool:
    with open(path, "rb") as f:
        return any(chunk.strip() for chunk in iter(lambda: f.read(1 << 16), b""))


def load_hub_split(task: Task, split: str, revision: str | None) -> datasets.Dataset:
    """A split of the task's pinned Hub dataset. As for models (`compacter_pl.hub`), one request first tells whether
    the Hub can be reached; if not, datasets reads its cache only (its offline mode, for this call): it has no
    `local_files_only`, and would otherwise retry the Hub for about half a minute before failing."""
    revision = revision or task.dataset.revision
    offline = datasets.config.HF_HUB_OFFLINE
    unreachable = None if offline else hub_connection_error(datasets.config.HF_ENDPOINT)
    try:
        with _datasets_offline(offline or unreachable is not None):
            dataset = datasets.load_dataset(task.hub_path, task.hub_config, split=split, revision=revision)
    except LOAD_DATASET_ERRORS as error:
        reason = first_line(error)
        if unreachable is not None:
            endpoint = datasets.config.HF_ENDPOINT
            reason = f"the Hub ({endpoint}) cannot be reached ({unreachable}) and the datasets cache lacks it"
        raise UserError(
            f"cannot load {task.hub_path} ({task.hub_config}, {split}) from the Hugging Face Hub: "
            f"{reason}. Offline, pass --data.data_dir DIR holding {split}.parquet/.jsonl/.csv "
            f"in the Hub's schema"
        ) from None
    check_records(task, dataset, hub_origin(task, split))
    return dataset


@contextlib.contextmanager
def _datasets_offline(offline: bool):
    """datasets' offline mode (its `config.HF_HUB_OFFLINE`, read at import from HF_HUB_OFFLINE/HF_DATASETS_OFFLINE)
    set for the duration of one load, and restored."""
    before = datasets.config.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = offline or before
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE = before


def hub_origin(task: Task, split: str) -> Origin:
    return Origin(f"{task.hub_path}/{task.hub_config} ({split})")


def split_origin(task: Task, split: str, data_dir: str | None) -> Origin:
    """Where the records of an original split come from, for messages: the local file or the Hub dataset."""
    if data_dir is None:
        return hub_origin(task, split)
    path = local_split_file(Path(data_dir), split)
    return Origin(str(path), path)


def load_split(task: Task, split: str, data_dir: str | None, revision: str | None) -> datasets.Dataset:
    if data_dir is None:
        return load_hub_split(task, split, revision)
    return load_local_split(task, Path(data_dir), split)


def source_fingerprint(task: Task, splits: list[str], data_dir: str | None, revision: str | None) -> str:
    """What identifies the raw data, for the tokenization cache: file contents, or Hub name and revision."""
    digest = hashlib.sha256()
    if data_dir is None:
        digest.update(f"{task.hub_path}@{revision or task.dataset.revision}".encode())
    else:
        for split in splits:
            digest.update(local_split_file(Path(data_dir), split).read_bytes())
    return digest.hexdigest()
