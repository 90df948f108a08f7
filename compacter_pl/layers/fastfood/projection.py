"""The Fastfood projection ``P z`` as a module (`FastfoodProjection`) and its autograd function (`FastfoodFunction`,
whose backward computes ``P^T g`` directly)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from compacter_pl.layers.fastfood.cuda import cuda_rows, use_cuda_kernel
from compacter_pl.layers.fastfood.factors import (
    CURRENT_PROJECTION_VERSION,
    PROJECTION_VERSIONS,
    draw_fastfood_factors,
    next_power_of_two,
)
from compacter_pl.layers.fastfood.hadamard import (
    FastfoodWorkspace,
    HadamardPlan,
    autocast_off,
    buffers_for,
    fresh_buffers,
    pruned_rows,
    truncated_rows,
)
from compacter_pl.layers.regions import region


class FastfoodFunction(torch.autograd.Function):
    """``P z`` for a batch ``z`` (n, d) -> (n, D); backward ``P^T g``. Nothing is saved for the backward but the
    projection itself (its factors are fixed buffers)."""

    @staticmethod
    def forward(ctx, z: Tensor, projection: FastfoodProjection, workspace: FastfoodWorkspace | None) -> Tensor:
        ctx.projection, ctx.workspace = projection, workspace
        with region("fastfood projection"), autocast_off(z), torch.no_grad():
            return projection._project_rows(z, workspace)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        with region("fastfood projection"), autocast_off(grad):
            return ctx.projection._transpose_rows(grad, ctx.workspace), None, None


class FastfoodProjection(nn.Module):
    """Fixed random map from ``z`` (..., d) to ``P z`` (..., D) with ``P = S H G Pi H B / L``.

    Everything works at ``L`` = the next power of two >= max(D, d): ``z`` is zero-padded to ``L``
    and the first ``D`` outputs are kept (so ``d > D`` is allowed). The factors, all diagonal or a
    permutation, are drawn from the seed (`draw_fastfood_factors`, in the given ``version``), so
    ``(D, d, seed, version)`` determine ``P`` exactly and nothing needs to be saved: they are non-persistent
    buffers (moved by ``.to()``, absent from ``state_dict``), holding only what the projection uses:

    - ``B`` (``binary_diagonal``, int8, d): random signs +-1 (only the first d of B's L touch the padded z).
    - ``H``: the unnormalised Walsh-Hadamard transform (matrix passes, see the package's docstring).
    - ``Pi`` (``gather_index``, int32, L): ``permutation mod d2``, d2 the next power of two >= d, which is all of
      Pi that the tiled ``H B z`` needs (`factors()` re-draws the full permutation).
    - ``G`` (``gaussian_diagonal``, float32, L): i.i.d. N(0, 1).
    - ``S`` (``scaling_diagonal``, float32, D): the standard Fastfood choice ``s_j / ||G||`` with
      ``s_j ~ chi(L)``, stored already divided by the normalisation ``L``.

    Memory: 8 bytes per padded entry and 4 per output (version 1 built 13 per padded entry).

    Scale: every row of ``H G Pi H B`` has norm ``sqrt(L) ||G||``, so row ``j`` of the full
    ``L x L`` matrix ``P`` has norm ``s_j / sqrt(L)``, i.e. 1 on average (in expectation
    ``E[s_j^2] / L = 1``): the ``L x L`` ``P`` behaves like a matrix of i.i.d. N(0, 1/L) entries.
    Each output coordinate therefore has variance about ``||z||^2 / L``.
    """

    binary_diagonal: Tensor
    gather_index: Tensor
    gaussian_diagonal: Tensor
    scaling_diagonal: Tensor

    def __init__(self, output_dim: int, input_dim: int, seed: int, version: int = CURRENT_PROJECTION_VERSION):
        super().__init__()
        if output_dim < 1 or input_dim < 1:
            raise ValueError(f"output_dim={output_dim} and input_dim={input_dim} must both be positive")
        if version not in PROJECTION_VERSIONS:
            raise ValueError(f"unknown projection version {version!r}; known: {PROJECTION_VERSIONS}")
        self.output_dim = output_dim
        self.input_dim = input_dim
        self.seed = seed
        self.version = version
        self.padded_dim = length = next_power_of_two(max(output_dim, input_dim))
        self.table_dim = next_power_of_two(input_dim)  # d2
        self.plan = HadamardPlan(length, output_dim)
        self.table_plan = HadamardPlan(self.table_dim, input_dim)

        factors = draw_fastfood_factors(output_dim, input_dim, seed, version)
        gather = factors["permutation"].bitwise_and_(self.table_dim - 1)
        self.register_buffer("binary_diagonal", factors["signs"][:input_dim].clone(), persistent=False)
        self.register_buffer("gather_index", gather, persistent=False)
        self.register_buffer("gaussian_diagonal", factors["gaussian"], persistent=False)
        self.register_buffer("scaling_diagonal", factors["scaling"][:output_dim].clone(), persistent=False)

    def factors(self) -> dict[str, Tensor]:
        """The full factors, re-drawn from the seed (on the CPU): for tests and inspection."""
        return draw_fastfood_factors(self.output_dim, self.input_dim, self.seed, self.version)

    @torch.compiler.disable  # one opaque function to the compiler: its buffers and passes are not graph material
    def forward(self, z: Tensor, workspace: FastfoodWorkspace | None = None) -> Tensor:
        if z.shape[-1] != self.input_dim:
            raise ValueError(f"expected z with last dimension {self.input_dim}, got shape {tuple(z.shape)}")
        lead = z.shape[:-1]
        rows = z.reshape(-1, self.input_dim)
        return FastfoodFunction.apply(rows, self, workspace).view(*lead, self.output_dim)

    # The two directions, on rows; no autograd inside (FastfoodFunction records one node for all of it).
    def _table(self, z: Tensor) -> Tensor:
        """``H_d2 (B z)`` for each row of z (n, d): (n, d2), the table ``Pi`` gathers from."""
        n = z.shape[0]
        plan = self.table_plan
        buffers = fresh_buffers(plan.length * n, z.dtype, z.device)
        u = buffers[0][: n * plan.kept].view(n, plan.kept)
        torch.mul(z, self.binary_diagonal.to(z.dtype), out=u[:, : self.input_dim])
        u[:, self.input_dim :].zero_()
        if use_cuda_kernel(z):
            return cuda_rows(_pad_columns(u, plan.length))
        return pruned_rows(u, plan, buffers)

    def _project_rows(self, z: Tensor, workspace: FastfoodWorkspace | None) -> Tensor:
        n, length, dtype = z.shape[0], self.padded_dim, z.dtype
        table = self._table(z)
        gaussian = self.gaussian_diagonal.to(dtype)
        out = torch.empty(n, self.plan.kept, dtype=dtype, device=z.device)
        with buffers_for(workspace, length * n, dtype, z.device) as buffers:
            v = buffers[0][: length * n].view(n, length)
            for i in range(n):  # Pi of the tiled H B z: a gather from the table (1-D: far faster than 2-D)
                torch.index_select(table[i], 0, self.gather_index, out=v[i])
            v.mul_(gaussian)
            if use_cuda_kernel(v):
                out.copy_(cuda_rows(v)[:, : self.plan.kept])
            else:
                truncated_rows(v, self.plan, buffers, out=out)
        scaling = self.scaling_diagonal.to(dtype)
        if n == 1 or self.plan.kept == self.output_dim:  # the first D of each row are contiguous as (n, D)
            result = out.view(-1)[: self.output_dim].view(1, -1) if n == 1 else out
            return result.mul_(scaling)
        return torch.mul(out[:, : self.output_dim], scaling)

    def _transpose_rows(self, grad: Tensor, workspace: FastfoodWorkspace | None) -> Tensor:
        """``P^T g`` for each row of grad (n, D): (n, d)."""
        grad = grad.reshape(-1, self.output_dim)
        n, length, dtype = grad.shape[0], self.padded_dim, grad.dtype
        bins = torch.zeros(n, self.table_dim, dtype=dtype, device=grad.device)
        with buffers_for(workspace, length * n, dtype, grad.device) as buffers:
            u = buffers[0][: n * self.plan.kept].view(n, self.plan.kept)
            torch.mul(grad, self.scaling_diagonal.to(dtype), out=u[:, : self.output_dim])
            u[:, self.output_dim :].zero_()
            rows = cuda_rows(_pad_columns(u, length)) if use_cuda_kernel(u) else pruned_rows(u, self.plan, buffers)
            rows.mul_(self.gaussian_diagonal.to(dtype))
            # Pi^T, then the transpose of tiling: the sum over the L / d2 copies = a sum per gather_index value.
            for i in range(n):
                bins[i].index_add_(0, self.gather_index, rows[i])
        plan = self.table_plan
        if use_cuda_kernel(bins):
            gz = cuda_rows(bins)
        else:
            gz = truncated_rows(bins, plan, fresh_buffers(plan.length * n, dtype, grad.device))
        return gz[:, : self.input_dim] * self.binary_diagonal.to(dtype)

    @torch.no_grad()
    def dense_matrix(self, dtype: torch.dtype = torch.float64) -> Tensor:
        """The (D, d) matrix ``P``, by projecting basis vectors. For tests on small sizes only."""
        basis = torch.eye(self.input_dim, dtype=dtype, device=self.gaussian_diagonal.device)
        return self(basis).T

    def extra_repr(self) -> str:
        return (
            f"output_dim={self.output_dim}, input_dim={self.input_dim}, seed={self.seed}, "
            f"version={self.version}, padded_dim={self.padded_dim}"
        )


def _pad_columns(u: Tensor, length: int) -> Tensor:
    """(n, k) -> (n, length), zero-padded on the right (the CUDA path transforms full rows)."""
    return nn.functional.pad(u, (0, length - u.shape[1]))
