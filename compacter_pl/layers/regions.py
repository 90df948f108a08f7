"""Named regions of a layer's own work, which `cli.py bench` times in one profiled step (`--split_step`): how
much of a step a method's layers take, beside everything else (T5's own forward and backward, the optimizer).

A region is torch.profiler's `record_function`, which costs a few microseconds a call when no profiler runs.
Regions never nest, so their times add up.
"""

from __future__ import annotations

import torch

PREFIX = "compacter_pl:"


def region(name: str) -> torch.profiler.record_function:
    """`with region("fastfood projection"): ...` marks the block as that region."""
    return torch.profiler.record_function(PREFIX + name)
