"""The paper's splits (its Section 5, after Zhang et al. 2021), all drawn with a fixed data seed."""

import datasets
import numpy as np

from compacter_pl.errors import UserError

HELD_OUT_VALIDATION = 1000  # large tasks: training examples held out as validation


def split_validation_in_half(
    validation: datasets.Dataset, seed: int, groups: list[int] | None = None
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """Shuffle the original validation set and halve it: first half validation, second half test.

    With `groups`, whole groups are shuffled and halved (MultiRC: every answer option of one question lands
    in the same half)."""
    rng = np.random.default_rng(seed)
    if groups is None:
        order = rng.permutation(len(validation))
        half = len(order) // 2
        return validation.select(order[:half]), validation.select(order[half:])
    unique = sorted(set(groups))
    shuffled = [unique[i] for i in rng.permutation(len(unique))]
    first_half = set(shuffled[: len(shuffled) // 2])
    first = [i for i, g in enumerate(groups) if g in first_half]
    second = [i for i, g in enumerate(groups) if g not in first_half]
    return validation.select(first), validation.select(second)


def hold_out_validation(
    train: datasets.Dataset, seed: int, size: int = HELD_OUT_VALIDATION
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """Large tasks: `size` training examples drawn with the seed become validation; the rest is train."""
    if len(train) <= size:
        raise UserError(
            f"the training split has {len(train)} records, too few to hold out {size} for validation "
            f"and keep some for training; set data.validation_size below {len(train)} (the paper "
            f"holds out {HELD_OUT_VALIDATION})"
        )
    order = np.random.default_rng(seed).permutation(len(train))
    return train.select(np.sort(order[size:])), train.select(np.sort(order[:size]))


def subsample(train: datasets.Dataset, size: int, seed: int) -> datasets.Dataset:
    """Low-resource runs: `size` training examples drawn with the run's seed."""
    if size > len(train):
        raise UserError(
            f"train_size={size} is larger than the training split ({len(train)} examples); "
            f"choose train_size <= {len(train)}"
        )
    return train.select(np.sort(np.random.default_rng(seed).permutation(len(train))[:size]))
