"""The LightningDataModule: a task's records -> the paper's splits -> text-to-text -> token ids, cached.

Tokenization happens once, in `prepare_data`, and is written under `cache_dir` with a key that covers the
tokenizer, the lengths, the truncation mode, the raw data and the split; later runs and epochs read it back once it
matches its checksums (compacter_pl.data.cache_entry: a damaged entry is rebuilt). A record the task cannot use is
reported with its file (or Hub split) and its line (JSON Lines) or row there. How a source too long is cut is
`truncation` (compacter_pl.data.truncation).
"""

import hashlib
import json
import sys
from functools import cached_property
from pathlib import Path

import datasets
import lightning as L
from jsonargparse.typing import PositiveInt
from torch.utils.data import DataLoader

from compacter_pl.data import cache_entry
from compacter_pl.data.collate import TextToTextCollator
from compacter_pl.data.predict_inputs import read_predict_file, record_id
from compacter_pl.data.samplers import EvalBatchSampler, TrainBatchSampler
from compacter_pl.data.sources import load_split, require_utf8, source_fingerprint, split_origin
from compacter_pl.data.splits import HELD_OUT_VALIDATION, hold_out_validation, split_validation_in_half, subsample
from compacter_pl.data.truncation import Truncation, check_truncation, require_offsets, source_ids
from compacter_pl.data.validation import Origin
from compacter_pl.errors import UserError
from compacter_pl.files import staged_directory
from compacter_pl.hub import load_tokenizer
from compacter_pl.tasks import Task, TaskName, get_task

SPLITS = ("train", "validation", "test")
CACHE_FORMAT = 5  # bump when the rendering, the split rules or the entry's files change
ROW = "__row__"  # the position of a record in its original split, carried through the splits for messages


def original_splits(task: Task) -> dict[str, str]:
    """The original split each of train / validation / test is drawn from (the paper's Section 5)."""
    return {"train": "train", "validation": task.test_split if task.small else "train", "test": task.test_split}


def paper_splits(
    task: Task,
    data_dir: str | None,
    revision: str | None,
    data_seed: int,
    train_size: int | None,
    seed: int,
    validation_size: int = HELD_OUT_VALIDATION,
) -> dict[str, datasets.Dataset]:
    """Raw records of train / validation / test as the paper splits them (its Section 5).

    Small tasks: the original validation set, shuffled with `data_seed`, is halved into validation and test
    (by group: MultiRC by question). Large tasks: `validation_size` training records drawn with `data_seed`
    become validation, the original validation set is the test set. `train_size` then subsamples train with
    `seed`. Every record keeps its row in the original split in the column `__row__`."""
    train = _numbered(load_split(task, "train", data_dir, revision))
    original_validation = _numbered(load_split(task, task.test_split, data_dir, revision))
    if task.small:
        groups = _groups(task, original_validation, split_origin(task, task.test_split, data_dir))
        validation, test = split_validation_in_half(original_validation, data_seed, groups)
    else:
        train, validation = hold_out_validation(train, data_seed, validation_size)
        test = original_validation
    if train_size is not None:
        train = subsample(train, train_size, seed)
    splits = {"train": train, "validation": validation, "test": test}
    for split, records in splits.items():
        if len(records) == 0:
            origin = split_origin(task, original_splits(task)[split], data_dir)
            raise UserError(
                f"the {split} split of {task.name} is empty: the paper's split of {origin} leaves it "
                f"no records; that file needs more records (halving needs at least 2"
                f"{' questions' if task.group_of else ''})"
            )
    return splits


def _groups(task: Task, records: datasets.Dataset, where: Origin) -> list[int] | None:
    """The group of every record (MultiRC: its question), or None for tasks without groups."""
    if task.group_of is None:
        return None
    groups = []
    for record in rows_of(records):
        try:
            groups.append(int(task.group_of(record)))
        except (KeyError, TypeError, ValueError) as error:
            raise UserError(
                f"{where.at(record[ROW])}: no group ({type(error).__name__}: {error}); "
                f"the Hub's schema gives each record idx.question"
            ) from None
    return groups


def rows_of(records: datasets.Dataset, chunk: int = 1000):
    """The records as dicts, read a chunk at a time (much faster than indexing a Dataset row by row)."""
    for batch in records.iter(batch_size=chunk):
        columns = list(batch)
        yield from (dict(zip(columns, values, strict=True)) for values in zip(*batch.values(), strict=True))


def _numbered(records: datasets.Dataset) -> datasets.Dataset:
    return records.add_column(ROW, list(range(len(records))))


def render(task: Task, records: datasets.Dataset, training: bool, where: Origin | str) -> datasets.Dataset:
    """Text-to-text examples of a split, each with the id of its record (`record_id`: the record's `idx`, else its
    row in the original split, counted from 1); a record the task cannot use (a label outside its classes, a
    missing answer) is named by where it is in its original split (`where`: its file's line or row)."""
    origin = where if isinstance(where, Origin) else Origin(where)
    rows: dict[str, list] = {"id": [], "source": [], "spans": [], "target": [], "label": [], "group": [], "answers": []}
    for i, record in enumerate(rows_of(records)):
        row = record.get(ROW, i) + 1
        try:
            examples = task.examples(record, training)
        except (ValueError, KeyError, TypeError) as error:
            raise UserError(f"{origin.at(row - 1)}: {error}") from None
        for example in examples:
            rows["id"].append(record_id(record, row))
            rows["source"].append(example.source)
            rows["spans"].append([list(span) for span in example.spans])
            rows["target"].append(example.target)
            rows["label"].append(example.label)
            rows["group"].append(example.group)
            rows["answers"].append(list(example.answers))
    return datasets.Dataset.from_dict(rows)


class TextToTextDataModule(L.LightningDataModule):
    """GLUE and SuperGLUE tasks as text-to-text, with the paper's splits.

    Args:
        task: The task: a GLUE (cola sst2 mrpc qqp stsb mnli qnli rte) or SuperGLUE (boolq cb copa multirc record
            wic) name.
        tokenizer: Hub name or local directory of the tokenizer (linked to the model's by the CLI).
        data_dir: A local folder with train and validation files (.parquet, .jsonl or .csv) in the Hub's
            schema, named after the Hub's splits (MNLI: validation_matched); None loads the task from the Hub.
        revision: The Hub revision of the dataset; None uses the pinned one.
        max_source_length: Source tokens kept per example; None uses the task's default (128 for GLUE, 256 for
            SuperGLUE, 512 for ReCoRD).
        max_target_length: Target tokens kept per example.
        truncation: How a source longer than max_source_length is cut to fit (EOS included). `end` (the
            paper's): its tokens are cut at the end, so a long first field can leave none of the later ones
            (RTE's hypothesis, CB's). `fields`: the longest field value is shortened first, a token at a time
            from its end, until the source fits, so every field keeps some tokens; the field order and the
            `name: ` prefixes stay, a source that fits is tokenized as in `end`. When the prefixes and EOS leave
            less than one token per field, the source is cut at the end as in `end`. `fields` needs a fast
            tokenizer. Applies to every split and to predict_file. The `truncation` command counts the
            examples each mode cuts and those that lose a field.
        batch_size: Training batch size per device.
        eval_batch_size: Validation, test and predict batch size per device; None uses batch_size.
        data_seed: The seed of the paper's splits, fixed across runs so every run sees the same split.
        validation_size: Large tasks (SST-2, QQP, MNLI, QNLI, ReCoRD): training records held out as validation
            (the paper's 1000). Lower it for small local data; small tasks halve their validation set instead.
        train_size: Subsample the training split to this many records (the low-resource runs); an error if it
            exceeds the training split.
        seed: The run's seed: draws the train_size subsample and the order of training batches (linked to
            seed_everything by the CLI).
        group_by_length: Batch training examples of similar length together (shuffled windows of 50 batches
            sorted by length, the batches in random order): far less padding, the same examples per epoch.
        predict_split: The split `predict` runs on (train, validation or test), unless predict_file is given.
        predict_file: A JSONL file of raw inputs in the task's schema (labels not needed) for `predict`; a line
            that is not valid JSON or lacks a field is reported and skipped, the others are predicted.
        num_workers: DataLoader worker processes.
        cache_dir: Where tokenized splits are cached across runs.
    """

    def __init__(
        self,
        task: TaskName = "rte",
        tokenizer: str = "google-t5/t5-base",
        data_dir: str | None = None,
        revision: str | None = None,
        max_source_length: PositiveInt | None = None,
        max_target_length: PositiveInt = 128,
        truncation: Truncation = "end",
        batch_size: PositiveInt = 32,
        eval_batch_size: PositiveInt | None = None,
        data_seed: int = 42,
        validation_size: int = HELD_OUT_VALIDATION,
        train_size: int | None = None,
        seed: int = 42,
        group_by_length: bool = True,
        predict_split: str = "test",
        predict_file: str | None = None,
        num_workers: int = 0,
        cache_dir: str = ".cache/compacter_pl",
    ) -> None:
        super().__init__()
        self.task = get_task(task)
        if data_dir is not None and not Path(data_dir).is_dir():
            raise UserError(
                f"data_dir {data_dir} is not a directory; point it at a folder holding train and "
                f"validation files in the Hub's schema, or leave it unset to load from the Hub"
            )
        if train_size is not None and train_size < 1:
            raise UserError(f"train_size must be a positive number of examples, got {train_size}")
        if validation_size < 1:
            raise UserError(f"validation_size must be a positive number of examples, got {validation_size}")
        check_truncation(truncation)
        self.save_hyperparameters()
        self.tokenizer_name = tokenizer
        self.data_dir = data_dir
        self.revision = revision
        self.max_source_length = max_source_length or self.task.source_length
        self.max_target_length = max_target_length
        self.truncation = truncation
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.data_seed = data_seed
        self.validation_size = validation_size
        self.train_size = train_size
        self.seed = seed
        self.group_by_length = group_by_length
        if predict_split not in SPLITS:
            raise UserError(f"predict_split must be one of {', '.join(SPLITS)}, got {predict_split!r}")
        if predict_file is not None and not Path(predict_file).is_file():
            raise UserError(f"predict_file {predict_file} does not exist")
        if predict_file is not None:
            require_utf8(predict_file)
        self.predict_split = predict_split
        self.predict_file = predict_file
        self.num_workers = num_workers
        self.cache_root = Path(cache_dir)
        self._tokenizer = None
        self.splits: dict[str, datasets.Dataset] = {}
        self.max_target_tokens: int | None = None

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.tokenizer_name)
        return self._tokenizer

    def cache_key(self) -> str:
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        tokenizer_id = backend.to_str() if backend is not None else self.tokenizer_name
        parts = [
            CACHE_FORMAT,
            self.task.name,
            hashlib.sha256(tokenizer_id.encode()).hexdigest(),
            source_fingerprint(self.task, ["train", self.task.test_split], self.data_dir, self.revision),
            self.max_source_length,
            self.max_target_length,
            self.data_seed,
            None if self.task.small else self.validation_size,
            self.train_size,
            self.seed if self.train_size is not None else None,
            self.truncation,
        ]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]

    @cached_property
    def cache_path(self) -> Path:
        return self.cache_root / self.task.name / self.cache_key()

    def rendered_splits(self):
        """(split, its text-to-text examples) for train, validation and test: the paper's splits of the raw
        records, rendered (what `prepare_data` tokenizes and caches, and `cli.py truncation` reports on)."""
        raw = paper_splits(
            self.task, self.data_dir, self.revision, self.data_seed, self.train_size, self.seed, self.validation_size
        )
        for split in SPLITS:
            where = split_origin(self.task, original_splits(self.task)[split], self.data_dir)
            yield split, render(self.task, raw[split], split == "train", where)

    def prepare_data(self) -> None:
        """Split, render and tokenize once: a cache entry that verifies (compacter_pl.data.cache_entry) is used as
        it is, one that does not is rebuilt with one line saying why."""
        path = self.cache_path
        cache_entry.remove_leftovers(path.parent)
        reason = cache_entry.problem(path) if path.exists() else None
        if path.exists() and reason is None:
            return
        if reason is not None:
            print(
                f"warning: the tokenized-data cache entry {path} cannot be used: {reason}; rebuilding it",
                file=sys.stderr,
            )
        if self.truncation == "fields":
            require_offsets(self.tokenizer)
        # one staging directory per process: builders of the same entry at once (sweep shards sharing a cache
        # directory) never write into each other's files
        with staged_directory(cache_entry.staging_path(path)) as staging:
            longest_target = 0
            sizes = {}
            for split, examples in self.rendered_splits():
                tokenized = examples.map(self._tokenize, batched=True, remove_columns=["source", "spans", "target"])
                longest_target = max(longest_target, max(tokenized["target_tokens"][:]))
                tokenized = tokenized.remove_columns("target_tokens")
                tokenized.save_to_disk(str(staging / split))
                sizes[split] = len(tokenized)
            if self.task.targets is not None:  # a closed label set bounds generation by its longest label
                longest_target = max(len(self.tokenizer(t)["input_ids"]) for t in self.task.targets)
            meta = {"sizes": sizes, "max_target_tokens": longest_target}
            (staging / "meta.json").write_text(json.dumps(meta))
            cache_entry.seal(staging)
            cache_entry.install(staging, path)

    def _tokenize(self, batch: dict) -> dict:
        """Token ids of sources and targets, and the longest target or gold answer of each example in tokens
        (free-text tasks bound generation by it: every gold answer of ReCoRD, not only the first)."""
        sources = source_ids(self.tokenizer, batch["source"], batch["spans"], self.max_source_length, self.truncation)
        targets = self.tokenizer(batch["target"], max_length=self.max_target_length, truncation=True)
        lengths = [len(ids) for ids in targets["input_ids"]]
        flat_answers = [a for answers in batch["answers"] for a in answers]
        if flat_answers:
            answer_ids = iter(
                self.tokenizer(flat_answers, max_length=self.max_target_length, truncation=True)["input_ids"]
            )
            lengths = [
                max([n] + [len(next(answer_ids)) for _ in answers])
                for n, answers in zip(lengths, batch["answers"], strict=True)
            ]
        return {
            "input_ids": sources,
            "labels": targets["input_ids"],
            "target_tokens": lengths,
            "length": [len(ids) for ids in sources],
        }

    def setup(self, stage: str | None = None) -> None:
        path = self.cache_path
        if not path.exists() or cache_entry.problem(path) is not None:  # no prepare_data (a notebook), or damaged since
            self.prepare_data()
        meta = json.loads((path / "meta.json").read_text())
        self.max_target_tokens = meta["max_target_tokens"]
        for split in SPLITS:
            self.splits[split] = datasets.load_from_disk(str(path / split))

    def _rank_and_world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def _batches_done(self) -> int:
        """Batches of the current epoch already trained: 0 at an epoch start, k when fit resumed from a
        checkpoint written after the k-th batch of the epoch (Lightning restores its loop counters)."""
        trainer = self.trainer
        return trainer.fit_loop.epoch_loop.batch_progress.current.completed if trainer is not None else 0

    def _loader(self, dataset: datasets.Dataset, batch_sampler) -> DataLoader:
        return DataLoader(
            dataset,
            batch_sampler=batch_sampler,
            num_workers=self.num_workers,
            collate_fn=TextToTextCollator(self.tokenizer.pad_token_id),
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        rank, world_size = self._rank_and_world()
        sampler = TrainBatchSampler(
            self.splits["train"]["length"],
            self.batch_size,
            self.seed,
            self.group_by_length,
            rank,
            world_size,
            batches_done=self._batches_done,
        )
        return self._loader(self.splits["train"], sampler)

    def _eval_loader(self, dataset: datasets.Dataset) -> DataLoader:
        rank, world_size = self._rank_and_world()
        return self._loader(dataset, EvalBatchSampler(len(dataset), self.eval_batch_size, rank, world_size))

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.splits["validation"])

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(self.splits["test"])

    def predict_dataloader(self) -> DataLoader:
        if self.predict_file is None:
            return self._eval_loader(self.splits[self.predict_split])
        records, ids = read_predict_file(self.predict_file, self.task)
        rendered = [self.task.rendered(r) for r in records]
        sources = [source for source, _ in rendered]
        input_ids = source_ids(
            self.tokenizer, sources, [spans for _, spans in rendered], self.max_source_length, self.truncation
        )
        rows = {
            "input_ids": input_ids,
            "labels": [[] for _ in sources],
            "label": [-1] * len(sources),
            "group": [-1] * len(sources),
            "answers": [[] for _ in sources],
            "id": ids,
        }
        return self._eval_loader(datasets.Dataset.from_dict(rows))
