"""Fastfood random projections for Intrinsic-SAID (Aghajanyan et al. 2021; Li et al. 2018).

Flow: CLI -> data module -> LightningModule -> method (Intrinsic-SAID) -> layers (this file).

Intrinsic-SAID moves every weight matrix as ``theta = theta_0 + lambda * P z`` with a fixed random
``P`` of shape (D, d). A dense ``P`` would not fit in memory, so ``P`` is a Fastfood transform
(Le, Sarlos, Smola 2013): ``P = S H G Pi H B / L``, applied in O(L log L) time with O(L) state.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def fast_walsh_hadamard(x: Tensor) -> Tensor:
    """Unnormalised Walsh-Hadamard transform of ``x`` along its last dimension.

    Equals ``x @ H_L`` with ``H_L`` the Sylvester Hadamard matrix (entries +-1, ``H_L H_L = L I``).
    ``L`` must be a power of two. O(L log L) butterflies, differentiable, no dense matrix.
    """
    length = x.shape[-1]
    if length < 1 or length & (length - 1) != 0:
        raise ValueError(f"fast_walsh_hadamard needs a power-of-two last dimension, got {length}")
    lead = x.shape[:-1]
    half = 1
    while half < length:
        # Pair entries that differ only in bit log2(half) of their index: (a, b) -> (a + b, a - b).
        pairs = x.reshape(*lead, length // (2 * half), 2, half)
        first, second = pairs[..., 0, :], pairs[..., 1, :]
        x = torch.stack((first + second, first - second), dim=-2).reshape(*lead, length)
        half *= 2
    return x


def _next_power_of_two(size: int) -> int:
    return 1 << max(size - 1, 0).bit_length()


def _sample_chi(num: int, degrees_of_freedom: int, generator: torch.Generator) -> Tensor:
    """``num`` draws from the chi distribution with the given degrees of freedom, in float64.

    chi_k = sqrt(2 * Gamma(k/2, 1)). Gamma is drawn by Marsaglia-Tsang rejection with the seeded
    generator (torch's own gamma sampler takes no generator); k = 1 is |N(0, 1)|.
    """
    if degrees_of_freedom == 1:
        return torch.randn(num, generator=generator, dtype=torch.float64).abs()
    shape = degrees_of_freedom / 2.0  # >= 1 here, as Marsaglia-Tsang requires
    d = shape - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    gamma = torch.empty(num, dtype=torch.float64)
    pending = torch.arange(num)
    while pending.numel() > 0:
        normal = torch.randn(pending.numel(), generator=generator, dtype=torch.float64)
        uniform = torch.rand(pending.numel(), generator=generator, dtype=torch.float64)
        v = (1.0 + c * normal) ** 3
        safe_v = v.clamp_min(1e-300)
        accept = (v > 0) & (uniform.log() < 0.5 * normal**2 + d - d * safe_v + d * safe_v.log())
        gamma[pending[accept]] = d * v[accept]
        pending = pending[~accept]
    return (2.0 * gamma).sqrt()


class FastfoodProjection(nn.Module):
    """Fixed random map from ``z`` (..., d) to ``P z`` (..., D) with ``P = S H G Pi H B / L``.

    Everything works at ``L`` = the next power of two >= max(D, d): ``z`` is zero-padded to ``L``
    and the first ``D`` outputs are kept (so ``d > D`` is allowed). The factors, all diagonal or a
    permutation, are drawn from ``torch.Generator().manual_seed(seed)`` in a fixed order, so
    ``(D, d, seed)`` determine ``P`` exactly and nothing needs to be saved: they are non-persistent
    buffers (moved by ``.to()``, absent from ``state_dict``).

    - ``B`` (``binary_diagonal``, int8): random signs +-1.
    - ``H``: the unnormalised Walsh-Hadamard transform, :func:`fast_walsh_hadamard`.
    - ``Pi`` (``permutation``, int32): ``(Pi v)[k] = v[permutation[k]]``.
    - ``G`` (``gaussian_diagonal``, float32): i.i.d. N(0, 1).
    - ``S`` (``scaling_diagonal``, float32): the standard Fastfood choice ``s_j / ||G||`` with
      ``s_j ~ chi(L)``, stored already divided by the normalisation ``L``.

    Scale: every row of ``H G Pi H B`` has norm ``sqrt(L) ||G||``, so row ``j`` of the full
    ``L x L`` matrix ``P`` has norm ``s_j / sqrt(L)``, i.e. 1 on average (in expectation
    ``E[s_j^2] / L = 1``): the ``L x L`` ``P`` behaves like a matrix of i.i.d. N(0, 1/L) entries.
    Each output coordinate therefore has variance about ``||z||^2 / L``.
    """

    def __init__(self, output_dim: int, input_dim: int, seed: int):
        super().__init__()
        if output_dim < 1 or input_dim < 1:
            raise ValueError(f"output_dim={output_dim} and input_dim={input_dim} must both be positive")
        self.output_dim = output_dim
        self.input_dim = input_dim
        self.seed = seed
        self.padded_dim = length = _next_power_of_two(max(output_dim, input_dim))

        generator = torch.Generator().manual_seed(seed)
        signs = torch.randint(0, 2, (length,), generator=generator, dtype=torch.int8) * 2 - 1
        permutation = torch.randperm(length, generator=generator, dtype=torch.int32)
        gaussian = torch.randn(length, generator=generator, dtype=torch.float64)
        chi = _sample_chi(length, length, generator)
        scaling = chi / (gaussian.norm() * length)

        self.register_buffer("binary_diagonal", signs, persistent=False)
        self.register_buffer("permutation", permutation, persistent=False)
        self.register_buffer("gaussian_diagonal", gaussian.float(), persistent=False)
        self.register_buffer("scaling_diagonal", scaling.float(), persistent=False)

    def forward(self, z: Tensor) -> Tensor:
        if z.shape[-1] != self.input_dim:
            raise ValueError(f"expected z with last dimension {self.input_dim}, got shape {tuple(z.shape)}")
        v = nn.functional.pad(z, (0, self.padded_dim - self.input_dim))
        v = fast_walsh_hadamard(v * self.binary_diagonal)
        v = v.index_select(-1, self.permutation) * self.gaussian_diagonal
        v = fast_walsh_hadamard(v) * self.scaling_diagonal
        return v[..., : self.output_dim]

    @torch.no_grad()
    def dense_matrix(self, dtype: torch.dtype = torch.float64) -> Tensor:
        """The (D, d) matrix ``P``, by projecting basis vectors. For tests on small sizes only."""
        basis = torch.eye(self.input_dim, dtype=dtype, device=self.gaussian_diagonal.device)
        return self(basis).T

    def extra_repr(self) -> str:
        return (
            f"output_dim={self.output_dim}, input_dim={self.input_dim}, seed={self.seed}, padded_dim={self.padded_dim}"
        )
