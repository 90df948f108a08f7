"""How much of a training batch is real tokens rather than padding, with the real sampler on real lengths.

Dynamic padding pads each batch to its own longest example, so the waste is sum(longest - length) over the
batch; `TrainBatchSampler(group_by_length=True)` makes batches of similar lengths. `padding_report` tokenizes a
task's training split through the data module (cached like any run) and counts both ways.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from compacter_pl.data.samplers import TrainBatchSampler


def real_token_fraction(
    lengths: Sequence[int], batch_size: int, group_by_length: bool, seed: int = 0, epochs: int = 1
) -> float:
    """Real tokens / (real + padding) over `epochs` epochs of `TrainBatchSampler` batches padded to their longest."""
    sampler = TrainBatchSampler(lengths, batch_size, seed=seed, group_by_length=group_by_length)
    real = padded = 0
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for batch in sampler:
            batch_lengths = [lengths[i] for i in batch]
            real += sum(batch_lengths)
            padded += max(batch_lengths) * len(batch_lengths)
    return real / padded if padded else 1.0


def padding_report(
    data_dir: str | Path,
    tokenizer: str,
    task: str = "rte",
    batch_size: int = 100,
    seed: int = 0,
    epochs: int = 3,
    cache_dir: str = ".cache/compacter_pl",
) -> dict:
    """The real-token fraction of training batches of `task` from `data_dir`, grouped by length and not: at the
    task's source length (what training sees) and without truncation (the raw length distribution)."""
    lengths, source_length = _train_lengths(data_dir, tokenizer, task, seed, cache_dir, None)
    raw, _ = _train_lengths(data_dir, tokenizer, task, seed, cache_dir, 1_000_000)
    return {
        "task": task,
        "data_dir": str(data_dir),
        "tokenizer": tokenizer,
        "max_source_length": source_length,
        "batch_size": batch_size,
        "epochs": epochs,
        "examples": len(lengths),
        "mean_length": sum(lengths) / len(lengths),
        "max_length": max(lengths),
        "truncated": sum(1 for n in raw if n > source_length),
        "grouped": real_token_fraction(lengths, batch_size, True, seed, epochs),
        "ungrouped": real_token_fraction(lengths, batch_size, False, seed, epochs),
        "untruncated": {
            "mean_length": sum(raw) / len(raw),
            "max_length": max(raw),
            "grouped": real_token_fraction(raw, batch_size, True, seed, epochs),
            "ungrouped": real_token_fraction(raw, batch_size, False, seed, epochs),
        },
    }


def _train_lengths(
    data_dir, tokenizer: str, task: str, seed: int, cache_dir: str, max_source_length: int | None
) -> tuple[list[int], int]:
    """Source lengths of the training split, tokenized (and cached) by the data module as a run would."""
    from compacter_pl.data import TextToTextDataModule

    data = TextToTextDataModule(
        task, tokenizer, data_dir=str(data_dir), seed=seed, cache_dir=cache_dir, max_source_length=max_source_length
    )
    data.prepare_data()
    data.setup("fit")
    return list(data.splits["train"]["length"]), data.max_source_length
