"""The pure-autograd Fastfood projection, kept as the oracle of the fast one (compacter_pl/layers/fastfood/).

This is the implementation Intrinsic-SAID used before issue 16: every level of the Walsh-Hadamard butterfly is a
recorded autograd op on full-size tensors. Exact and obviously right, but slow and memory-hungry at the sizes of
T5 (one transform at L = 2^20 allocates about 440 MiB). Tests compare the fast projection, forward and backward,
with this one on the same factors.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def reference_walsh_hadamard(x: Tensor) -> Tensor:
    """Unnormalised Walsh-Hadamard transform of ``x`` along its last dimension (``x @ H_L``), by butterflies."""
    length = x.shape[-1]
    if length < 1 or length & (length - 1) != 0:
        raise ValueError(f"needs a power-of-two last dimension, got {length}")
    lead = x.shape[:-1]
    half = 1
    while half < length:
        # Pair entries that differ only in bit log2(half) of their index: (a, b) -> (a + b, a - b).
        pairs = x.reshape(*lead, length // (2 * half), 2, half)
        first, second = pairs[..., 0, :], pairs[..., 1, :]
        x = torch.stack((first + second, first - second), dim=-2).reshape(*lead, length)
        half *= 2
    return x


def reference_fastfood(
    z: Tensor, signs: Tensor, permutation: Tensor, gaussian: Tensor, scaling: Tensor, output_dim: int
) -> Tensor:
    """``P z`` with ``P = S H G Pi H B`` from the full factors (each of the padded length L, except that ``signs``
    and ``scaling`` may be shorter: only their first d and D entries matter): z (..., d) -> (..., D)."""
    length = permutation.numel()
    d = z.shape[-1]
    b = torch.zeros(length, dtype=z.dtype)
    b[: signs.numel()] = signs[:length].to(z.dtype)
    s = torch.zeros(length, dtype=z.dtype)
    s[: scaling.numel()] = scaling[:length].to(z.dtype)
    v = nn.functional.pad(z, (0, length - d))
    v = reference_walsh_hadamard(v * b)
    v = v.index_select(-1, permutation.long()) * gaussian.to(z.dtype)
    v = reference_walsh_hadamard(v) * s
    return v[..., :output_dim]
