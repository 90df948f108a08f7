"""The state of Intrinsic-SAID: z, the lambdas and the Fastfood projections P_i, and the parametrization that
adds lambda_i P_i z to tensor i. Which tensors it reparameterises is `compacter_pl.methods.said`.

P_i is a Fastfood transform `S H G Pi H B` (O(D log D) time, O(D) memory, never a dense D x d' matrix),
built lazily on the first forward (so `apply` is instant, also on the meta device for counting) and never
saved: its factors follow from the seed (by default the run's seed, which the method's config then records, so a
checkpoint or export rebuilds the same P_i), in the recorded `projection_version` of the random stream (2, fast to
draw, since issue 16; 1, the original, for checkpoints saved before). Its memory is 8 bytes per padded entry (D
rounded up to a power of two) and 4 per entry. With a transform per tensor (`share_random_factors: false`) that is
about 3 GB of buffers for T5-base. By default, tensors of the same size share S, G and Pi, and each tensor keeps its
own random signs on z, so `P_i z = P_D (b_i * z)`: P_i is still a Fastfood transform (its B is B_D b_i) and
different tensors move along independent directions, for about 0.4 GB on T5-base (most of it for the 32128 x 768
embedding).

Speed: the tensors that share a transform are projected together, in chunks of up to 2^25 padded entries, as one
batched autograd function whose backward computes P^T directly (`FastfoodFunction`), and lambda_i b_i z is formed
first (it is d' numbers), so lambda costs nothing per entry. Within one forward every delta is computed once (the
tied embedding is read three times); without gradients (validation, `generate`) the weights are cached until z or
lambda change, so generating a token does not recompute 250 Fastfood transforms (the cache holds one model's worth
of deltas).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from compacter_pl.layers.fastfood import CURRENT_PROJECTION_VERSION, FastfoodProjection, FastfoodWorkspace

_SEED_STRIDE = 1_000_003  # tensor i's generator seed: seed * stride + i (< 2^63 for any seed below 2^32)
_CHUNK_ENTRIES = 2**25  # padded entries projected by one call (the workspace holds two chunks' worth)


class IntrinsicSAIDState(nn.Module):
    """z and the lambdas (the only trainable numbers), and the lazily built Fastfood projections.

    `delta(i)` is lambda_i P_i z shaped like tensor i. The projections are plain attributes, not buffers:
    they are rebuilt from the seed on whichever device z lives, and never appear in a state dict.
    """

    def __init__(
        self,
        names: list[str],
        shapes: list[torch.Size],
        intrinsic_dim: int,
        seed: int,
        share_random_factors: bool,
        device: torch.device,
        dtype: torch.dtype,
        projection_version: int = CURRENT_PROJECTION_VERSION,
    ):
        super().__init__()
        self.names = list(names)  # of the reparameterised tensors, in the order of the lambdas
        self.shapes = [torch.Size(s) for s in shapes]
        self.seed = seed
        self.share_random_factors = share_random_factors
        self.projection_version = projection_version
        self.z = nn.Parameter(torch.zeros(intrinsic_dim - len(shapes), device=device, dtype=dtype))
        self.lambdas = nn.Parameter(torch.ones(len(shapes), device=device, dtype=dtype))
        self._projections: list | None = None
        self._chunks: list[tuple[FastfoodProjection, list[int], torch.Tensor | None]] = []
        self._chunk_of: list[int] = []
        self._workspace = FastfoodWorkspace()  # scratch reused by every projection (not state: never saved)
        self._cache: dict[int, torch.Tensor] = {}
        self._cache_key = None
        self._forward_id = 0
        self._in_forward = False

    # --- the projections ------------------------------------------------------------------------------
    def _signs(self, index: int, d: int) -> torch.Tensor:
        """Tensor i's own random signs on z (int8, d), from its own seed, in the projection version's stream."""
        seed = self.seed * _SEED_STRIDE + index
        if self.projection_version == 1:
            generator = torch.Generator().manual_seed(seed)
            return torch.randint(0, 2, (d,), generator=generator, dtype=torch.int8) * 2 - 1
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed)))
        return torch.from_numpy(rng.integers(0, 2, size=d, dtype=np.int8) * np.int8(2) - np.int8(1))

    def _build_projections(self, device: torch.device) -> list:
        """Per tensor: (projection, signs or None). Deterministic in (shapes, d', seed, projection version).
        Also groups the tensors that share a projection into chunks of up to `_CHUNK_ENTRIES` padded entries,
        projected by one call each."""
        d = self.z.numel()
        numels = [math.prod(s) for s in self.shapes]
        version = self.projection_version
        projections: list[tuple[FastfoodProjection, torch.Tensor | None]]
        if not self.share_random_factors:
            projections = [
                (FastfoodProjection(numel, d, self.seed * _SEED_STRIDE + i, version).to(device), None)
                for i, numel in enumerate(numels)
            ]
        else:
            by_size = {
                numel: FastfoodProjection(numel, d, self.seed * _SEED_STRIDE + _SEED_STRIDE // 2 + k, version).to(
                    device
                )
                for k, numel in enumerate(sorted(set(numels)))
            }
            projections = [(by_size[numel], self._signs(i, d).to(device)) for i, numel in enumerate(numels)]
        groups: dict[int, list[int]] = {}
        for i, (projection, _) in enumerate(projections):
            groups.setdefault(id(projection), []).append(i)
        self._chunks, self._chunk_of = [], [0] * len(projections)
        for indices in groups.values():
            projection = projections[indices[0]][0]
            per_chunk = max(1, _CHUNK_ENTRIES // projection.padded_dim)
            for start in range(0, len(indices), per_chunk):
                members = indices[start : start + per_chunk]
                member_signs = [projections[i][1] for i in members]  # all tensors, or all None
                signs = None if member_signs[0] is None else torch.stack([s for s in member_signs if s is not None])
                for i in members:
                    self._chunk_of[i] = len(self._chunks)
                self._chunks.append((projection, members, signs))
        return projections

    def projections(self) -> list:
        device = self.z.device
        if self._projections is None or self._projections[0][0].gaussian_diagonal.device != device:
            self._projections = None  # free the old device's buffers before building the new ones
            self._workspace.clear()
            self._projections = self._build_projections(device)
        return self._projections

    def buffer_bytes(self) -> int:
        """Memory held by the projections once built (each shared transform counted once)."""
        seen, total = set(), 0
        for projection, signs in self.projections():
            if id(projection) not in seen:
                seen.add(id(projection))
                total += sum(b.numel() * b.element_size() for b in projection.buffers())
            total += 0 if signs is None else signs.numel() * signs.element_size()
        return total

    def project(self, index: int) -> torch.Tensor:
        """P_i z, flat (numel of tensor i)."""
        projection, signs = self.projections()[index]
        z = self.z if signs is None else self.z * signs.to(self.z.dtype)
        return projection(z, self._workspace)

    def _project_chunk(self, chunk: int) -> list[torch.Tensor]:
        """lambda_i P_i z, flat, for every tensor i of the chunk: one batched projection of the rows
        lambda_i b_i z (so lambda and the signs cost d' numbers each, not a pass over the tensor)."""
        projection, members, signs = self._chunks[chunk]
        scale = self.lambdas[members].unsqueeze(1)
        rows = self.z.unsqueeze(0) * (scale if signs is None else scale * signs.to(self.z.dtype))
        return list(projection(rows, self._workspace).unbind(0))

    # --- deltas, cached ---------------------------------------------------------------------------------
    def _current_cache_key(self):
        if torch.is_grad_enabled():
            # Within one forward of the model (graph kept for its backward); never across forwards.
            return ("forward", self._forward_id) if self._in_forward else None
        # Without gradients: valid until z or lambda change (in place, by loading, or by moving).
        return (
            "frozen",
            self.z._version,
            self.lambdas._version,
            self.z.data_ptr(),
            self.lambdas.data_ptr(),
            self.z.device,
            torch.is_inference_mode_enabled(),
        )

    def delta(self, index: int, like: torch.Tensor) -> torch.Tensor:
        """lambda_i P_i z, shaped and typed like tensor i."""
        key = self._current_cache_key()
        if key is None:
            return self._delta(index, like)
        if key != self._cache_key:
            self._cache, self._cache_key = {}, key
        if index not in self._cache:  # the whole chunk at once: the other tensors of it are read soon
            self.projections()
            chunk = self._chunk_of[index]
            for member, flat in zip(self._chunks[chunk][1], self._project_chunk(chunk), strict=True):
                self._cache[member] = flat.view(self.shapes[member]).to(like.dtype)
        return self._cache[index]

    def _delta(self, index: int, like: torch.Tensor) -> torch.Tensor:
        projection, signs = self.projections()[index]
        scale = self.lambdas[index] if signs is None else self.lambdas[index] * signs.to(self.z.dtype)
        flat = projection((self.z * scale).unsqueeze(0), self._workspace)[0]
        return flat.view(self.shapes[index]).to(like.dtype)

    def begin_forward(self) -> None:
        if torch.is_grad_enabled():
            self._forward_id += 1
            self._in_forward = True

    def end_forward(self) -> None:
        if self._in_forward:
            self._in_forward = False
            self._cache, self._cache_key = {}, None  # the backward keeps what it needs; free the rest

    def extra_repr(self) -> str:
        return (
            f"intrinsic_dim={self.z.numel() + self.lambdas.numel()}, tensors={len(self.shapes)}, "
            f"seed={self.seed}, share_random_factors={self.share_random_factors}, "
            f"projection_version={self.projection_version}"
        )


class SAIDWeight(nn.Module):
    """The parametrization of one tensor: original + lambda_i P_i z."""

    _state: IntrinsicSAIDState

    def __init__(self, state: IntrinsicSAIDState, index: int):
        super().__init__()
        object.__setattr__(self, "_state", state)  # a link, not a child: z and lambda are listed once
        self.index = index

    def forward(self, original: torch.Tensor) -> torch.Tensor:
        return original + self._state.delta(self.index, original)
