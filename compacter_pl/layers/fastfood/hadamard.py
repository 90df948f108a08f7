"""The unnormalised Walsh-Hadamard transform as small matrix passes (the package's docstring says how), and the
scratch buffers the passes reuse (`FastfoodWorkspace`)."""

from __future__ import annotations

import contextlib
import threading

import torch
from torch import Tensor

from compacter_pl.layers.fastfood.cuda import cuda_rows, use_cuda_kernel

_LEAD_LOG = 4  # the first matrix pass (the one that truncates the output / prunes the input): H_16
_FACTOR_LOG = 5  # the other passes: H_f with f <= 32 (balanced: 2^20 = 16 x 32 x 32 x 32 x 32 ... )


_hadamard_cache: dict[tuple, Tensor] = {}
_hadamard_lock = threading.Lock()


def hadamard_matrix(size: int, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> Tensor:
    """The Sylvester Hadamard matrix H_size (entries +-1, symmetric), cached: for the small factors only."""
    key = (size, dtype, torch.device(device))
    matrix = _hadamard_cache.get(key)
    if matrix is None:
        matrix = torch.ones(1, 1, dtype=torch.float64)
        while matrix.shape[0] < size:
            matrix = torch.cat([torch.cat([matrix, matrix], 1), torch.cat([matrix, -matrix], 1)], 0)
        matrix = matrix.to(dtype=dtype, device=key[2])
        with _hadamard_lock:
            _hadamard_cache[key] = matrix
    return matrix


def _check_power_of_two(length: int) -> None:
    if length < 1 or length & (length - 1) != 0:
        raise ValueError(f"the Walsh-Hadamard transform needs a power-of-two length, got {length}")


def _factor_logs(log_length: int) -> list[int]:
    """log2 of balanced factors <= 2^_FACTOR_LOG whose product is 2^log_length."""
    if log_length == 0:
        return []
    count = -(-log_length // _FACTOR_LOG)
    base, extra = divmod(log_length, count)
    return [base + 1] * extra + [base] * (count - extra)


class HadamardPlan:
    """The matrix passes of ``H_L`` when only the first ``keep`` outputs (or inputs) matter.

    ``H_L = H_lead (x) H_rest``: the first pass applies ``H_lead`` (16, or L if smaller) keeping only ``rows`` of
    its outputs (``rows = ceil(keep / rest)``), the others apply the factors of ``H_rest``. Every output of
    `truncated_rows` has ``kept = rows * rest >= keep`` entries, of which the first ``keep`` are wanted.
    """

    def __init__(self, length: int, keep: int):
        _check_power_of_two(length)
        if not 1 <= keep <= length:
            raise ValueError(f"keep={keep} must be in [1, {length}]")
        log_length = length.bit_length() - 1
        lead_log = min(_LEAD_LOG, log_length)
        self.length, self.keep = length, keep
        self.lead = 1 << lead_log
        self.rest = length >> lead_log
        self.rows = -(-keep // self.rest)
        self.kept = self.rows * self.rest
        self.factors = [1 << f for f in _factor_logs(log_length - lead_log)]

    def __repr__(self) -> str:
        return (
            f"HadamardPlan(length={self.length}, keep={self.keep}, lead={self.lead}, rows={self.rows}, "
            f"factors={self.factors})"
        )


def _other(buffers: tuple[Tensor, Tensor], tensor: Tensor) -> Tensor:
    """The buffer of the pair that does not hold `tensor`."""
    first, second = buffers
    return second if tensor.data_ptr() == first.data_ptr() else first


def _rotation_passes(
    x: Tensor, factors: list[int], buffers: tuple[Tensor, Tensor], out: Tensor | None = None
) -> Tensor:
    """``H_R`` of every row of ``x`` (m, R): per factor f of R, ``row (R/f, f) = row (f, R/f)^T @ H_f``, which
    transforms the leading axis of the row and moves it to the end; after every factor the axes are back in
    order. One batched product per factor; the last one writes into ``out`` if given."""
    m, width = x.shape
    src = x
    for number, f in enumerate(factors):
        matrix = hadamard_matrix(f, x.dtype, x.device).expand(m, f, f)
        if number == len(factors) - 1 and out is not None:
            dst = out.view(m, width // f, f)
        else:
            dst = _other(buffers, src)[: m * width].view(m, width // f, f)
        torch.bmm(src.view(m, f, width // f).transpose(1, 2), matrix, out=dst)
        src = dst.view(m, width)
    return src


def _rotation_passes_transposed(x: Tensor, factors: list[int], buffers: tuple[Tensor, Tensor]) -> Tensor:
    """The transpose of `_rotation_passes` (also ``H_R`` of every row, the passes transposed in reverse order:
    ``row (f, R/f) = H_f @ row (R/f, f)^T``)."""
    m, width = x.shape
    src = x
    for f in reversed(factors):
        matrix = hadamard_matrix(f, x.dtype, x.device).expand(m, f, f)
        dst = _other(buffers, src)[: m * width].view(m, f, width // f)
        torch.bmm(matrix, src.view(m, width // f, f).transpose(1, 2), out=dst)
        src = dst.view(m, width)
    return src


def truncated_rows(x: Tensor, plan: HadamardPlan, buffers: tuple[Tensor, Tensor], out: Tensor | None = None) -> Tensor:
    """``H_L`` of every row of ``x`` (n, L), its first ``plan.kept`` entries: (n, kept).

    ``H_L = H_lead (x) H_rest``: first ``(rows, rest) = H_lead[:rows] @ row (lead, rest)`` (only the output
    sixteenths that hold the first ``keep`` entries), then ``H_rest`` of each of the ``n * rows`` pieces by
    `_rotation_passes`. ``x`` may be overwritten; the passes alternate between the two flat ``buffers`` (each
    of at least n * L elements, one of them may hold ``x``); the last pass writes into ``out`` ((n, kept),
    contiguous) if given.
    """
    n = x.shape[0]
    lead = hadamard_matrix(plan.lead, x.dtype, x.device)[: plan.rows].expand(n, plan.rows, plan.lead)
    pieces = n * plan.rows
    if plan.factors:
        first = _other(buffers, x)[: n * plan.kept].view(n, plan.rows, plan.rest)
    else:
        first = (out if out is not None else _other(buffers, x)[: n * plan.kept]).view(n, plan.rows, plan.rest)
    torch.bmm(lead, x.reshape(n, plan.lead, plan.rest), out=first)
    result = _rotation_passes(first.view(pieces, plan.rest), plan.factors, buffers, out=out)
    return result.view(n, plan.kept)


def pruned_rows(u: Tensor, plan: HadamardPlan, buffers: tuple[Tensor, Tensor]) -> Tensor:
    """The transpose of `truncated_rows`: ``u`` (n, kept), zero beyond the first ``plan.keep`` entries of each
    row, to ``H_L`` of each zero-padded row: (n, L). ``H_rest`` of every piece first, then
    ``row (lead, rest) = H_lead[:, :rows] @ row (rows, rest)``. ``u`` may be overwritten; the result is in one
    of the two flat ``buffers`` (each of at least n * L elements, one of them may hold ``u``)."""
    n = u.shape[0]
    pieces = n * plan.rows
    src = _rotation_passes_transposed(u.reshape(pieces, plan.rest), plan.factors, buffers)
    lead = hadamard_matrix(plan.lead, u.dtype, u.device)[:, : plan.rows].expand(n, plan.lead, plan.rows)
    dst = _other(buffers, src)[: n * plan.length].view(n, plan.lead, plan.rest)
    torch.bmm(lead, src.view(n, plan.rows, plan.rest), out=dst)
    return dst.view(n, plan.length)


def fresh_buffers(numel: int, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
    # normal tensors even under inference mode (`trainer.test`): a workspace keeps them for later calls, which
    # may write into them outside it
    with torch.inference_mode(False):
        return torch.empty(numel, dtype=dtype, device=device), torch.empty(numel, dtype=dtype, device=device)


class FastfoodWorkspace:
    """Two scratch buffers reused by every call that is given this workspace (they grow to the largest request).

    On a CPU, a fresh buffer above glibc's mmap threshold (at most 32 MiB) is a fresh mapping, page-faulted in
    and zero-filled on every call: for T5-base's 2^25-entry embedding transform that alone cost about as much
    as the transform. A nested call (while the buffers are lent out) gets fresh buffers instead.
    """

    def __init__(self) -> None:
        self._buffers: dict[tuple, tuple[Tensor, Tensor]] = {}
        self._lock = threading.Lock()
        self._lent = False

    @contextlib.contextmanager
    def borrow(self, numel: int, dtype: torch.dtype, device: torch.device):
        with self._lock:
            lend = not self._lent
            if lend:
                self._lent = True
        if not lend:
            yield fresh_buffers(numel, dtype, device)
            return
        try:
            key = (dtype, device)
            buffers = self._buffers.get(key)
            if buffers is None or buffers[0].numel() < numel:
                self._buffers.pop(key, None)  # free the smaller pair before allocating the larger one
                buffers = self._buffers[key] = fresh_buffers(numel, dtype, device)
            yield buffers
        finally:
            self._lent = False

    def nbytes(self) -> int:
        return sum(b.numel() * b.element_size() for pair in self._buffers.values() for b in pair)

    def __getstate__(self) -> dict:  # a copy or a pickled model (deepcopy, ddp_spawn) starts with no scratch
        return {}

    def __setstate__(self, state: dict) -> None:
        FastfoodWorkspace.__init__(self)

    def clear(self) -> None:
        self._buffers.clear()


@contextlib.contextmanager
def buffers_for(workspace: FastfoodWorkspace | None, numel: int, dtype: torch.dtype, device: torch.device):
    if workspace is None:
        yield fresh_buffers(numel, dtype, device)
    else:
        with workspace.borrow(numel, dtype, device) as buffers:
            yield buffers


def _hadamard_last_dim(x: Tensor) -> Tensor:
    length = x.shape[-1]
    _check_power_of_two(length)
    lead = x.shape[:-1]
    rows = x.reshape(-1, length)
    if use_cuda_kernel(rows):
        return cuda_rows(rows.contiguous()).view(*lead, length)
    m = rows.shape[0]
    plan = HadamardPlan(length, length)
    buffers = fresh_buffers(length * m, x.dtype, x.device)
    out = torch.empty(m, length, dtype=x.dtype, device=x.device)
    return truncated_rows(rows, plan, buffers, out=out).view(*lead, length)


class _WalshHadamard(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        with autocast_off(x):
            return _hadamard_last_dim(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        return _WalshHadamard.apply(grad)  # H is symmetric: the transform is its own transpose


def fast_walsh_hadamard(x: Tensor) -> Tensor:
    """Unnormalised Walsh-Hadamard transform of ``x`` along its last dimension.

    Equals ``x @ H_L`` with ``H_L`` the Sylvester Hadamard matrix (entries +-1, ``H_L H_L = L I``).
    ``L`` must be a power of two. O(L log L), by small matrix passes; differentiable (its gradient is the
    transform of the gradient), no dense L x L matrix.
    """
    _check_power_of_two(x.shape[-1])
    return _WalshHadamard.apply(x)


def autocast_off(x: Tensor):
    """The transforms run in the input's precision: autocast would round the +-1 sums of the matrix passes
    to bfloat16."""
    return torch.autocast(device_type=x.device.type, enabled=False)
