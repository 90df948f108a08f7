"""The random factors of a Fastfood projection, drawn from a seed in one of two versions (`PROJECTION_VERSIONS`; the
package's docstring says how they differ), on the CPU so that a seed gives the same projection on any device."""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import Tensor

PROJECTION_VERSIONS = (1, 2)
CURRENT_PROJECTION_VERSION = 2


def next_power_of_two(size: int) -> int:
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
    for (start, stop), seed_sequence in zip(zip(bounds[:-1], bounds[1:], strict=True), seed_sequences, strict=True):
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
    length = next_power_of_two(max(output_dim, input_dim))
    if version == 1:
        return _factors_v1(length, seed)
    if version == 2:
        return _factors_v2(length, input_dim, output_dim, seed)
    raise ValueError(f"unknown projection version {version!r}; known: {PROJECTION_VERSIONS}")
