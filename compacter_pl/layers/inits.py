"""The authors' initialisations of the adapters' factors (rabeehk/compacter, `seq2seq/hypercomplex/inits.py`).

Their `glorot-uniform` is torch's ``xavier_uniform_`` with gain sqrt(2) (their `glorot-normal`: ``xavier_normal_``,
gain sqrt(2)), applied to each 2-D slice ``W[i]`` of a PHM factor and to the whole of a 2-D low-rank factor. For a
2-D (p, q) tensor torch takes fan_in = q and fan_out = p, so:

- glorot-uniform: U(-b, b) with ``b = sqrt(2) * sqrt(6 / (p + q))``;
- glorot-normal: N(0, s^2) with ``s = sqrt(2) * sqrt(2 / (p + q))``.

The fans come from the last two dimensions, which is the authors' layout for every factor we store (B_i, s_i, t_i
of shape (in/n, out/n), (in/n, r), (r, out/n); u (in, r), v (r, out)). E.g. Compacter (k 768, d 24, n 4, r 1):
the down-projection's s_i (192, 1) gets b = 0.2494 and its t_i (1, 6) b = 1.3093.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

GLOROT_INITS = ("glorot-uniform", "glorot-normal")
GLOROT_GAIN = math.sqrt(2.0)


def glorot_bound(rows: int, cols: int, gain: float = GLOROT_GAIN) -> float:
    """The bound of glorot-uniform on a (rows, cols) matrix (fan_in cols, fan_out rows)."""
    return gain * math.sqrt(6.0 / (rows + cols))


def glorot_(tensor: Tensor, init: str = "glorot-uniform", gain: float = GLOROT_GAIN) -> Tensor:
    """Initialise ``tensor`` in place, each 2-D slice over its last two dimensions as its own matrix."""
    if tensor.dim() < 2:
        raise ValueError(f"glorot init needs a tensor of at least 2 dimensions, got shape {tuple(tensor.shape)}")
    rows, cols = tensor.shape[-2], tensor.shape[-1]
    with torch.no_grad():
        if init == "glorot-uniform":
            bound = glorot_bound(rows, cols, gain)
            return tensor.uniform_(-bound, bound)
        if init == "glorot-normal":
            return tensor.normal_(0.0, gain * math.sqrt(2.0 / (rows + cols)))
    raise ValueError(f"unknown init {init!r}; choose one of {', '.join(GLOROT_INITS)}")
