"""Batch samplers that make training reproducible, resumable mid-epoch, distributed without duplicates in
evaluation, and (optionally) low on padding.

The data module builds them itself (Lightning's `use_distributed_sampler` is turned off by the CLI), so every
rank draws its batches from one permutation that depends only on (seed, epoch), and evaluation splits the
examples across ranks without padding them with repeats: every example is counted exactly once.
"""

from collections.abc import Callable, Iterator, Sequence

import torch
from torch.utils.data import Sampler

MEGA_BATCH = 50  # batches whose examples are sorted by length together when grouping by length


class TrainBatchSampler(Sampler[list[int]]):
    """Shuffled batches for one rank: a permutation seeded by (seed, epoch), optionally grouped by length.

    `group_by_length`: the permutation is cut into windows of `MEGA_BATCH` batches, each window is sorted by
    length and cut into batches, and the batches are shuffled, so batches hold examples of similar length
    (little padding) while the order stays random. Ranks take interleaved batches of the same list; the list is
    padded with its first batches so every rank runs the same number of steps (DDP needs that in training).
    `batches_done`: asked at the start of each pass for how many batches of this epoch were already trained
    (a run resumed from a mid-epoch checkpoint); the pass starts after them.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        seed: int = 0,
        group_by_length: bool = False,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
        batches_done: Callable[[], int] | None = None,
    ) -> None:
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.group_by_length = group_by_length
        self.rank = rank
        self.world_size = world_size
        self.drop_last = drop_last
        self.epoch = 0
        self.batches_done = batches_done
        self.sampler = self  # Lightning calls set_epoch on `batch_sampler.sampler` at every epoch start

    def set_epoch(self, epoch: int) -> None:
        """Lightning calls this at the start of every epoch."""
        self.epoch = epoch

    def _all_batches(self) -> list[list[int]]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(len(self.lengths), generator=generator).tolist()
        if self.group_by_length:
            window = self.batch_size * MEGA_BATCH
            order = [
                i
                for start in range(0, len(order), window)
                for i in sorted(order[start : start + window], key=lambda j: -self.lengths[j])
            ]
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        if self.group_by_length:
            shuffle = torch.randperm(len(batches), generator=generator).tolist()
            batches = [batches[i] for i in shuffle]
        per_rank = -(-len(batches) // self.world_size)
        batches += batches[: per_rank * self.world_size - len(batches)]
        return batches[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._all_batches()
        yield from batches[self.batches_done() if self.batches_done else 0 :]

    def __len__(self) -> int:
        batches = len(self.lengths) // self.batch_size if self.drop_last else -(-len(self.lengths) // self.batch_size)
        return -(-batches // self.world_size)


class EvalBatchSampler(Sampler[list[int]]):
    """Evaluation batches for one rank: a contiguous share of the examples, no repeats, no shuffling."""

    def __init__(self, num_examples: int, batch_size: int, rank: int = 0, world_size: int = 1) -> None:
        per_rank = -(-num_examples // world_size)
        self.indices = list(range(rank * per_rank, min(num_examples, (rank + 1) * per_rank)))
        self.batch_size = batch_size

    def __iter__(self) -> Iterator[list[int]]:
        for start in range(0, len(self.indices), self.batch_size):
            yield self.indices[start : start + self.batch_size]

    def __len__(self) -> int:
        return -(-len(self.indices) // self.batch_size)
