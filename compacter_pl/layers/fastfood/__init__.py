"""Fastfood random projections for Intrinsic-SAID (Aghajanyan et al. 2021; Li et al. 2018).

Flow: CLI -> data module -> LightningModule -> method (Intrinsic-SAID) -> layers (this file).

Intrinsic-SAID moves every weight matrix as ``theta = theta_0 + lambda * P z`` with a fixed random
``P`` of shape (D, d). A dense ``P`` would not fit in memory, so ``P`` is a Fastfood transform
(Le, Sarlos, Smola 2013): ``P = S H G Pi H B / L``, applied in O(L log L) time with O(L) state.

How it runs fast, exactly:

- One autograd function (`FastfoodFunction`) computes ``P z`` for a batch of inputs without recording anything,
  and its backward computes ``P^T g = B H Pi^T G H S g`` directly (H is symmetric): no per-level autograd
  tensors, no zero-filled copies in the backward.
- The Walsh-Hadamard transform is a Kronecker product, ``H_L = H_16 (x) H_f2 (x) ... (x) H_fk`` with small
  factors (at most 32), so each pass is one batched matrix product of a reshaped view with a small Hadamard
  matrix, over every row at once: the first ``(rows, L/16) = H_16[:rows] @ row (16, L/16)``, then per factor
  ``piece (R/f, f) = piece (f, R/f)^T @ H_f``, which transforms the leading axis and rotates it to the end, so
  after every factor the axes are back in order (`truncated_rows`; `pruned_rows` is its transpose): fewer,
  larger matrix products than in-place radix-2 butterflies, which is faster on CPUs and GPUs alike.
- The input of the first H is ``B z``, zero beyond its first d entries. With d2 the next power of two >= d,
  ``H_L = H_(L/d2) (x) H_d2`` and the first column of ``H_(L/d2)`` is all ones, so ``H_L (B z)`` is
  ``H_d2 (B z)`` repeated L / d2 times, and ``Pi`` of it only needs ``permutation mod d2``: a gather from a
  table of d2 rows (`gather_index`).
- Only the first D outputs of the last H are kept, and in the backward only the first D inputs are non-zero:
  the first matrix pass keeps (or reads) only the ``ceil(D / (L/16))`` sixteenths that matter, and every later
  pass works on that share (about D log L work instead of L log L: 56% for T5's 768 x 768 matrices).
- Scratch memory comes from a reusable `FastfoodWorkspace`: at T5's sizes a fresh buffer per call would be a
  fresh mapping from the C library, page-faulted in and zero-filled on every step.

Where the CUDA kernel of Dao-AILab's ``fast-hadamard-transform`` package is installed (``pip install
compacter-pl[cuda-fwht]``) CUDA tensors use it for the transforms; the pure-torch path is the default and the
reference. It is called as that package documents, ``hadamard_transform(x, scale)``; the project's tests run
without a GPU, so that path is checked only where one is present.

The random factors come from a seed, in one of two versions (`PROJECTION_VERSIONS`): 1 is the original stream
(torch's generator; its chi draws and its serial permutation of L entries took about 47 s for T5-base), kept
bit-identical so that projections saved before version 2 existed rebuild exactly; 2 (the default) draws
from numpy's PCG64 with independent child streams per factor, a permutation shuffled in cache-sized buckets
(Rao-Sandelius, exactly uniform) and numpy's gamma sampler for the chi draws, only as many as are kept.
Both are generated on the CPU and then moved, so a seed gives the same projection on any device.
"""

from compacter_pl.layers.fastfood.cuda import cuda_kernel_available
from compacter_pl.layers.fastfood.factors import (
    CURRENT_PROJECTION_VERSION,
    PROJECTION_VERSIONS,
    draw_fastfood_factors,
    uniform_permutation,
)
from compacter_pl.layers.fastfood.hadamard import (
    FastfoodWorkspace,
    HadamardPlan,
    fast_walsh_hadamard,
    hadamard_matrix,
    pruned_rows,
    truncated_rows,
)
from compacter_pl.layers.fastfood.projection import FastfoodFunction, FastfoodProjection

__all__ = [
    "CURRENT_PROJECTION_VERSION",
    "PROJECTION_VERSIONS",
    "FastfoodFunction",
    "FastfoodProjection",
    "FastfoodWorkspace",
    "HadamardPlan",
    "cuda_kernel_available",
    "draw_fastfood_factors",
    "fast_walsh_hadamard",
    "hadamard_matrix",
    "pruned_rows",
    "truncated_rows",
    "uniform_permutation",
]
