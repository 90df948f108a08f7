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
  after every factor the axes are back in order (`truncated_rows`; `pruned_rows` is its transpose). On the
  2-core AMD EPYC this was written on, these passes beat in-place radix-2 butterflies by 2-3x (see the README's
  Efficiency section for the measurements).
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
reference. (Written against that package's documented ``hadamard_transform(x, scale)``; it could not be run on
the CPU-only machine this was written on.)

The random factors come from a seed, in one of two versions (`PROJECTION_VERSIONS`): 1 is the original stream
(torch's generator; its chi draws and its serial permutation of L entries took about 47 s for T5-base), kept
bit-identical so that projections saved before version 2 existed rebuild exactly; 2 (the default) draws
from numpy's PCG64 with independent child streams per factor, a permutation shuffled in cache-sized buckets
(Rao-Sandelius, exactly uniform) and numpy's gamma sampler for the chi draws, only as many as are kept.
Both are generated on the CPU and then moved, so a seed gives the same projection on any device.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import Tensor, nn

from compacter_pl.layers.regions import region

PROJECTION_VERSIONS = (1, 2)
CURRENT_PROJECTION_VERSION = 2

_LEAD_LOG = 4  # the first matrix pass (the one that truncates the output / prunes the input): H_16
_FACTOR_LOG = 5  # the other passes: H_f with f <= 32 (balanced: 2^20 = 16 x 32 x 32 x 32 x 32 ... )

# --- the Walsh-Hadamard transform -----------------------------------------------------------------------------

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


def _fresh_buffers(numel: int, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
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
            yield _fresh_buffers(numel, dtype, device)
            return
        try:
            key = (dtype, device)
            buffers = self._buffers.get(key)
            if buffers is None or buffers[0].numel() < numel:
                self._buffers.pop(key, None)  # free the smaller pair before allocating the larger one
                buffers = self._buffers[key] = _fresh_buffers(numel, dtype, device)
            yield buffers
        finally:
            self._lent = False

    def nbytes(self) -> int:
        return sum(b.numel() * b.element_size() for pair in self._buffers.values() for b in pair)

    def __getstate__(self) -> dict:  # a copy or a pickled model (deepcopy, ddp_spawn) starts with no scratch
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__init__()

    def clear(self) -> None:
        self._buffers.clear()


@contextlib.contextmanager
def _buffers_for(workspace: FastfoodWorkspace | None, numel: int, dtype: torch.dtype, device: torch.device):
    if workspace is None:
        yield _fresh_buffers(numel, dtype, device)
    else:
        with workspace.borrow(numel, dtype, device) as buffers:
            yield buffers


# --- the optional CUDA kernel ----------------------------------------------------------------------------------


def _load_cuda_kernel():
    try:
        from fast_hadamard_transform import hadamard_transform  # Dao-AILab's CUDA kernel (optional extra)
    except Exception:  # not installed, or built for another torch / CUDA: the pure-torch path is used
        return None
    return hadamard_transform


_cuda_hadamard = _load_cuda_kernel()
_CUDA_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_CUDA_MAX_LENGTH = 2**15  # the kernel's documented limit on the transformed dimension


def cuda_kernel_available() -> bool:
    """Whether `fast-hadamard-transform` is importable (the CUDA path is then taken for CUDA tensors)."""
    return _cuda_hadamard is not None


def _use_cuda_kernel(x: Tensor) -> bool:
    return _cuda_hadamard is not None and x.is_cuda and x.dtype in _CUDA_DTYPES


def _cuda_rows(x: Tensor) -> Tensor:
    """H_L of each row of x (m, L) with the CUDA kernel: H_L = H_a (x) H_b with a, b <= 2^15, so two kernel calls
    on reshaped views (the kernel transforms the last dimension) with a transpose between them."""
    m, length = x.shape
    if length <= _CUDA_MAX_LENGTH:
        return _cuda_hadamard(x, 1.0)
    b = _CUDA_MAX_LENGTH
    a = length // b
    if a > _CUDA_MAX_LENGTH:
        raise ValueError(f"length {length} exceeds the CUDA kernel's reach ({_CUDA_MAX_LENGTH**2})")
    y = _cuda_hadamard(x.reshape(m * a, b), 1.0).view(m, a, b)
    y = _cuda_hadamard(y.transpose(1, 2).reshape(m * b, a), 1.0).view(m, b, a)
    return y.transpose(1, 2).reshape(m, length)


# --- the public transform ------------------------------------------------------------------------------------


def _hadamard_last_dim(x: Tensor) -> Tensor:
    length = x.shape[-1]
    _check_power_of_two(length)
    lead = x.shape[:-1]
    rows = x.reshape(-1, length)
    if _use_cuda_kernel(rows):
        return _cuda_rows(rows.contiguous()).view(*lead, length)
    m = rows.shape[0]
    plan = HadamardPlan(length, length)
    buffers = _fresh_buffers(length * m, x.dtype, x.device)
    out = torch.empty(m, length, dtype=x.dtype, device=x.device)
    return truncated_rows(rows, plan, buffers, out=out).view(*lead, length)


class _WalshHadamard(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        with _autocast_off(x):
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


def _autocast_off(x: Tensor):
    """The transforms run in the input's precision: autocast would round the +-1 sums of the matrix passes
    to bfloat16."""
    return torch.autocast(device_type=x.device.type, enabled=False)


# --- the random factors --------------------------------------------------------------------------------------


def _next_power_of_two(size: int) -> int:
    return 1 << max(size - 1, 0).bit_length()


def _sample_chi(num: int, degrees_of_freedom: int, generator: torch.Generator) -> Tensor:
    """``num`` draws from the chi distribution with the given degrees of freedom, in float64 (version 1).

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


def _factors_v1(length: int, seed: int) -> dict[str, Tensor]:
    """The original stream, bit-identical: every factor at the padded length L, in this order."""
    generator = torch.Generator().manual_seed(seed)
    signs = torch.randint(0, 2, (length,), generator=generator, dtype=torch.int8) * 2 - 1
    permutation = torch.randperm(length, generator=generator, dtype=torch.int32)
    gaussian = torch.randn(length, generator=generator, dtype=torch.float64)
    chi = _sample_chi(length, length, generator)
    scaling = chi / (gaussian.norm() * length)
    return {"signs": signs, "permutation": permutation, "gaussian": gaussian.float(), "scaling": scaling.float()}


_BUCKET_LOG = 16  # Rao-Sandelius buckets of about 2^16 entries: each bucket's shuffle stays in cache
_MAX_BUCKETS = 256  # bucket labels are 8-bit (numpy sorts them stably by radix)


def _generator(seed_sequence: np.random.SeedSequence) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(seed_sequence))


def _children(seed_sequence: np.random.SeedSequence, count: int) -> list[np.random.SeedSequence]:
    """The first `count` children of `seed_sequence`, as its first `spawn(count)` would make them, without
    spawning (which advances the sequence: a second call would give other children)."""
    return [
        np.random.SeedSequence(
            seed_sequence.entropy, spawn_key=(*seed_sequence.spawn_key, i), pool_size=seed_sequence.pool_size
        )
        for i in range(count)
    ]


def _shuffle_buckets(order: np.ndarray, bounds: list[int], seed_sequences: list) -> None:
    for (start, stop), seed_sequence in zip(zip(bounds[:-1], bounds[1:]), seed_sequences):
        _generator(seed_sequence).shuffle(order[start:stop])


def uniform_permutation(
    seed_sequence: np.random.SeedSequence, length: int, pool: ThreadPoolExecutor | None = None
) -> np.ndarray:
    """A uniformly random permutation of range(length) (int64), exactly, from `seed_sequence` alone (the same on
    any machine and with any number of threads): every entry draws one of up to 256 buckets, the entries are
    grouped by bucket in index order (a stable radix sort of the 8-bit labels) and each bucket is shuffled by its
    own child stream (Rao 1961, Sandelius 1962). Fisher-Yates over 2^25 entries misses the cache on nearly every
    swap; shuffles of 2^16 entries do not, and they run in parallel on `pool`'s threads (numpy releases the GIL).
    """
    buckets = min(_MAX_BUCKETS, length >> _BUCKET_LOG)
    label_sequence, *bucket_sequences = _children(seed_sequence, 1 + max(buckets, 1))
    if buckets <= 1:
        return _generator(bucket_sequences[0]).permutation(length)
    labels = _generator(label_sequence).integers(0, buckets, size=length, dtype=np.uint8)
    order = np.argsort(labels, kind="stable")
    bounds = [0, *np.cumsum(np.bincount(labels, minlength=buckets)).tolist()]
    del labels
    if pool is None:
        _shuffle_buckets(order, bounds, bucket_sequences)
        return order
    parts = pool._max_workers
    step = -(-buckets // parts)
    futures = [
        pool.submit(_shuffle_buckets, order, bounds[first : first + step + 1], bucket_sequences[first : first + step])
        for first in range(0, buckets, step)
    ]
    for future in futures:
        future.result()
    return order


def _float64_norm(values: np.ndarray, chunk: int = 2**20) -> float:
    """Euclidean norm accumulated in float64, chunk by chunk (no float64 copy of the whole array)."""
    total = 0.0
    for start in range(0, values.size, chunk):
        part = values[start : start + chunk].astype(np.float64)
        total += float(np.dot(part, part))
    return math.sqrt(total)


def _gaussian(seed_sequence: np.random.SeedSequence, length: int) -> tuple[np.ndarray, float]:
    values = _generator(seed_sequence).standard_normal(length, dtype=np.float32)
    return values, _float64_norm(values)


def _chi(seed_sequence: np.random.SeedSequence, degrees_of_freedom: int, num: int) -> np.ndarray:
    """chi_k = sqrt(2 Gamma(k / 2)), in float64; numpy's gamma sampler is Marsaglia-Tsang (exact)."""
    return np.sqrt(2.0 * _generator(seed_sequence).standard_gamma(degrees_of_freedom / 2.0, size=num))


def _build_threads() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def _factors_v2(length: int, input_dim: int, output_dim: int, seed: int) -> dict[str, Tensor]:
    """Version 2: numpy's PCG64, an independent child stream per factor (so the draws can run in parallel and
    each factor draws only the entries that matter: d signs, D scalings)."""
    sign_sequence, permutation_sequence, gaussian_sequence, chi_sequence = _children(np.random.SeedSequence(seed), 4)
    signs = _generator(sign_sequence).integers(0, 2, size=input_dim, dtype=np.int8) * np.int8(2) - np.int8(1)
    threads = _build_threads() if length >= 2**20 else 1
    if threads == 1:
        gaussian, norm = _gaussian(gaussian_sequence, length)
        chi = _chi(chi_sequence, length, output_dim)
        permutation = uniform_permutation(permutation_sequence, length)
    else:
        with ThreadPoolExecutor(threads) as pool:
            gaussian_draw = pool.submit(_gaussian, gaussian_sequence, length)
            chi_draw = pool.submit(_chi, chi_sequence, length, output_dim)
            permutation = uniform_permutation(permutation_sequence, length, pool)
            (gaussian, norm), chi = gaussian_draw.result(), chi_draw.result()
    scaling = (chi / (norm * length)).astype(np.float32)
    return {
        "signs": torch.from_numpy(signs),
        "permutation": torch.from_numpy(permutation.astype(np.int32)),
        "gaussian": torch.from_numpy(gaussian),
        "scaling": torch.from_numpy(scaling),
    }


def draw_fastfood_factors(
    output_dim: int, input_dim: int, seed: int, version: int = CURRENT_PROJECTION_VERSION
) -> dict[str, Tensor]:
    """The factors of the projection (D, d, seed, version), on the CPU: ``signs`` (int8, B's diagonal),
    ``permutation`` (int32, Pi: ``(Pi v)[k] = v[permutation[k]]``), ``gaussian`` (float32, G's diagonal) and
    ``scaling`` (float32, S's diagonal, already divided by ``||G|| L``). Version 1 draws every factor at the
    padded length L; version 2 draws only the first d signs and D scalings (nothing else is ever used)."""
    length = _next_power_of_two(max(output_dim, input_dim))
    if version == 1:
        return _factors_v1(length, seed)
    if version == 2:
        return _factors_v2(length, input_dim, output_dim, seed)
    raise ValueError(f"unknown projection version {version!r}; known: {PROJECTION_VERSIONS}")


# --- the projection ------------------------------------------------------------------------------------------


class FastfoodFunction(torch.autograd.Function):
    """``P z`` for a batch ``z`` (n, d) -> (n, D); backward ``P^T g``. Nothing is saved for the backward but the
    projection itself (its factors are fixed buffers)."""

    @staticmethod
    def forward(ctx, z: Tensor, projection: FastfoodProjection, workspace: FastfoodWorkspace | None) -> Tensor:
        ctx.projection, ctx.workspace = projection, workspace
        with region("fastfood projection"), _autocast_off(z), torch.no_grad():
            return projection._project_rows(z, workspace)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        with region("fastfood projection"), _autocast_off(grad):
            return ctx.projection._transpose_rows(grad, ctx.workspace), None, None


class FastfoodProjection(nn.Module):
    """Fixed random map from ``z`` (..., d) to ``P z`` (..., D) with ``P = S H G Pi H B / L``.

    Everything works at ``L`` = the next power of two >= max(D, d): ``z`` is zero-padded to ``L``
    and the first ``D`` outputs are kept (so ``d > D`` is allowed). The factors, all diagonal or a
    permutation, are drawn from the seed (`draw_fastfood_factors`, in the given ``version``), so
    ``(D, d, seed, version)`` determine ``P`` exactly and nothing needs to be saved: they are non-persistent
    buffers (moved by ``.to()``, absent from ``state_dict``), holding only what the projection uses:

    - ``B`` (``binary_diagonal``, int8, d): random signs +-1 (only the first d of B's L touch the padded z).
    - ``H``: the unnormalised Walsh-Hadamard transform (matrix passes, see the module's docstring).
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
        self.padded_dim = length = _next_power_of_two(max(output_dim, input_dim))
        self.table_dim = _next_power_of_two(input_dim)  # d2
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
        buffers = _fresh_buffers(plan.length * n, z.dtype, z.device)
        u = buffers[0][: n * plan.kept].view(n, plan.kept)
        torch.mul(z, self.binary_diagonal.to(z.dtype), out=u[:, : self.input_dim])
        u[:, self.input_dim :].zero_()
        if _use_cuda_kernel(z):
            return _cuda_rows(_pad_columns(u, plan.length))
        return pruned_rows(u, plan, buffers)

    def _project_rows(self, z: Tensor, workspace: FastfoodWorkspace | None) -> Tensor:
        n, length, dtype = z.shape[0], self.padded_dim, z.dtype
        table = self._table(z)
        gaussian = self.gaussian_diagonal.to(dtype)
        out = torch.empty(n, self.plan.kept, dtype=dtype, device=z.device)
        with _buffers_for(workspace, length * n, dtype, z.device) as buffers:
            v = buffers[0][: length * n].view(n, length)
            for i in range(n):  # Pi of the tiled H B z: a gather from the table (1-D: far faster than 2-D)
                torch.index_select(table[i], 0, self.gather_index, out=v[i])
            v.mul_(gaussian)
            if _use_cuda_kernel(v):
                out.copy_(_cuda_rows(v)[:, : self.plan.kept])
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
        with _buffers_for(workspace, length * n, dtype, grad.device) as buffers:
            u = buffers[0][: n * self.plan.kept].view(n, self.plan.kept)
            torch.mul(grad, self.scaling_diagonal.to(dtype), out=u[:, : self.output_dim])
            u[:, self.output_dim :].zero_()
            rows = _cuda_rows(_pad_columns(u, length)) if _use_cuda_kernel(u) else pruned_rows(u, self.plan, buffers)
            rows.mul_(self.gaussian_diagonal.to(dtype))
            # Pi^T, then the transpose of tiling: the sum over the L / d2 copies = a sum per gather_index value.
            for i in range(n):
                bins[i].index_add_(0, self.gather_index, rows[i])
        plan = self.table_plan
        if _use_cuda_kernel(bins):
            gz = _cuda_rows(bins)
        else:
            gz = truncated_rows(bins, plan, _fresh_buffers(plan.length * n, dtype, grad.device))
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
