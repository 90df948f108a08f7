"""Parameterized hypercomplex (PHM) linear layers: the bottom of the stack.

Flow: CLI -> data module -> LightningModule -> method (adapters, Compacter) -> layers (this file).

Convention used throughout: a layer maps ``x (..., in_features)`` to ``y = x @ W + b`` with
``W`` of shape ``(in_features, out_features)`` built as a sum of Kronecker products
``W = sum_i kron(A_i, B_i)``, ``A_i`` of shape ``(n, n)`` and ``B_i`` of shape
``(in_features / n, out_features / n)``. In index form, with ``p = in/n`` and ``q = out/n``::

    W[a*p + b, c*q + e] = sum_i A[i, a, c] * B[i, b, e]

- :class:`PHMLinear` learns ``B`` directly (PHM-Adapter).
- :class:`LowRankPHMLinear` factors ``B_i = s_i t_i`` (Compacter's LPHM layer).
- :class:`SharedPHMRules` holds one ``A`` that many layers use (Compacter shares it model-wide).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from compacter_pl.layers.inits import glorot_

LPHM_MODES = ("auto", "factored", "materialized")


def kronecker_sum(A: Tensor, B: Tensor) -> Tensor:
    """Return ``sum_i kron(A[i], B[i])`` for ``A`` of shape (n, n, n) and ``B`` of shape (n, p, q).

    The result has shape ``(n*p, n*q)``. Computed in one einsum, no loop over ``i``.
    """
    if A.dim() != 3 or B.dim() != 3 or A.shape[0] != B.shape[0]:
        raise ValueError(
            f"kronecker_sum expects A (n, n, n) and B (n, p, q) with the same n; "
            f"got A {tuple(A.shape)} and B {tuple(B.shape)}"
        )
    n, rows_a, cols_a = A.shape
    _, p, q = B.shape
    # (a, b, c, e) laid out row-major is exactly the Kronecker block layout.
    return torch.einsum("iac,ibe->abce", A, B).reshape(rows_a * p, cols_a * q)


def _common_divisors(x: int, y: int) -> list[int]:
    g = math.gcd(x, y)
    return [k for k in range(1, g + 1) if g % k == 0]


def check_phm_shapes(in_features: int, out_features: int, n: int) -> None:
    """Raise a one-line ``ValueError`` unless ``n`` fits a PHM layer of this shape."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n={n!r} must be a positive integer")
    if in_features < 1 or out_features < 1:
        raise ValueError(f"in_features={in_features} and out_features={out_features} must be positive")
    bottleneck = min(in_features, out_features)
    if bottleneck < n:
        raise ValueError(
            f"bottleneck size {bottleneck} (min of in_features={in_features}, "
            f"out_features={out_features}) is smaller than n={n}; the bottleneck must be >= n"
        )
    for name, size in (("in_features", in_features), ("out_features", out_features)):
        if size % n != 0:
            raise ValueError(
                f"n={n} does not divide {name}={size}; choose n among the divisors of both "
                f"in_features={in_features} and out_features={out_features}: "
                f"{_common_divisors(in_features, out_features)}"
            )


class SharedPHMRules(nn.Module):
    """The ``A`` of PHM layers (the rules of the hypercomplex product), shared by many layers.

    Owns one parameter ``A`` of shape (n, n, n), initialised from N(0, std^2). Attach this module
    once to the model (e.g. ``model.shared_phm_rules = rules``) and pass it as ``shared_A`` to every
    layer that should use it. Layers keep a plain reference, not a submodule, so ``A`` appears once
    in ``named_parameters()`` / ``state_dict()`` and is moved/cast/loaded with the model.
    """

    def __init__(self, n: int, std: float = 1e-4):
        super().__init__()
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n={n!r} must be a positive integer")
        self.n = n
        self.std = std
        self.A = nn.Parameter(torch.empty(n, n, n))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.A, mean=0.0, std=self.std)

    def extra_repr(self) -> str:
        return f"n={self.n}, std={self.std}"


class _PHMRulesMixin:
    """Gives a layer its own ``A`` parameter or a non-owning link to a :class:`SharedPHMRules`."""

    A: nn.Parameter
    _shared_rules: SharedPHMRules | None

    def _init_rules(self, n: int, shared_A: SharedPHMRules | None, a_init_std: float) -> None:
        if shared_A is None:
            self.A = nn.Parameter(torch.empty(n, n, n))
            with torch.no_grad():
                self.A.normal_(0.0, a_init_std)
            object.__setattr__(self, "_shared_rules", None)
            return
        if not isinstance(shared_A, SharedPHMRules):
            raise ValueError(f"shared_A must be a SharedPHMRules or None, got {type(shared_A).__name__}")
        if shared_A.n != n:
            raise ValueError(f"shared_A has n={shared_A.n} but this layer has n={n}")
        # object.__setattr__ bypasses nn.Module registration: the rules module is NOT a child, so
        # its parameter is neither listed nor saved twice. We keep the module (not its Parameter)
        # and read `.A` at forward time, so whatever .to()/.double()/load_state_dict did to the
        # module that owns it (in place or by swapping the Parameter object) is what we see.
        object.__setattr__(self, "_shared_rules", shared_A)

    @property
    def shares_rules(self) -> bool:
        return self._shared_rules is not None

    def rules(self) -> Tensor:
        """The live ``A`` tensor (n, n, n): shared or this layer's own."""
        if self._shared_rules is not None:
            return self._shared_rules.A
        return self.A


class PHMLinear(_PHMRulesMixin, nn.Module):
    """PHM layer: ``y = x @ W + b`` with ``W = sum_i kron(A_i, B_i)`` (PHM-Adapter).

    ``B`` has shape (n, in/n, out/n), each ``B_i`` initialised by ``w_init`` (the authors' default
    glorot-uniform: Xavier uniform with gain sqrt(2), see `compacter_pl.layers.inits`); the bias starts at
    zero. Without ``shared_A`` the layer owns ``A`` ~ N(0, a_init_std^2), giving ``n^3 + in*out/n + out``
    parameters. With ``shared_A`` it uses that module's ``A`` (and ``a_init_std`` is ignored).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        n: int,
        shared_A: SharedPHMRules | None = None,
        a_init_std: float = 0.01,
        bias: bool = True,
        w_init: str = "glorot-uniform",
    ):
        super().__init__()
        check_phm_shapes(in_features, out_features, n)
        self.in_features = in_features
        self.out_features = out_features
        self.n = n
        self._init_rules(n, shared_A, a_init_std)
        self.B = nn.Parameter(torch.empty(n, in_features // n, out_features // n))
        glorot_(self.B, w_init)
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def weight(self) -> Tensor:
        """The materialised ``W`` of shape (in_features, out_features)."""
        return kronecker_sum(self.rules(), self.B)

    def forward(self, x: Tensor) -> Tensor:
        y = x @ self.weight()
        return y if self.bias is None else y + self.bias

    def two_factors(self, num_tokens: int) -> tuple[Tensor, None, Tensor | None]:
        """``(W, None, b)``: this layer as one matrix (see `compacter_pl.layers.fused_adapter`)."""
        return self.weight(), None, self.bias

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, n={self.n}, "
            f"shared_A={self.shares_rules}, bias={self.bias is not None}"
        )


def lphm_multiply_adds(num_tokens: int, in_features: int, out_features: int, n: int, rank: int) -> tuple[int, int]:
    """Forward multiply-adds of an LPHM layer as ``(materialized, factored)``, bias excluded.

    materialized: ``s_i t_i`` for every i (in*out*rank/n), the Kronecker sum (n*in*out),
    then ``x @ W`` (tokens*in*out).
    factored, per token: ``X s_i`` for every i (n*in*rank), ``A_i^T (.)`` (n^3*rank),
    ``(.) t_i`` summed over i (n*out*rank).
    """
    build = in_features * out_features * rank // n + n * in_features * out_features
    materialized = build + num_tokens * in_features * out_features
    factored = num_tokens * rank * (n * in_features + n**3 + n * out_features)
    return materialized, factored


def choose_lphm_form(num_tokens: int, in_features: int, out_features: int, n: int, rank: int) -> str:
    """``"factored"`` or ``"materialized"``: whichever needs fewer multiply-adds (ties: factored).

    Materialising costs a fixed build plus ``in*out`` per token; the factored chain has no fixed
    cost and ``rank*n*(in + out + n^2)`` per token. So the factored form wins for few tokens, and
    keeps winning for any number of tokens whenever its per-token cost is below ``in*out`` (true
    for Compacter's shapes, e.g. 768x24, n=4, r=1); materialising only pays off for many tokens
    through small layers with a large ``n`` or ``rank``.
    """
    materialized, factored = lphm_multiply_adds(num_tokens, in_features, out_features, n, rank)
    return "factored" if factored <= materialized else "materialized"


class LowRankPHMLinear(_PHMRulesMixin, nn.Module):
    """Compacter's LPHM layer: ``y = x @ W + b``, ``W = sum_i kron(A_i, s_i t_i)``.

    ``s`` (n, in/n, rank) and ``t`` (n, rank, out/n) are initialised slice by slice by ``w_init`` (the
    authors' default glorot-uniform: Xavier uniform with gain sqrt(2), see `compacter_pl.layers.inits`),
    the bias zero, ``A`` shared through ``shared_A`` (Compacter) or owned, ~ N(0, a_init_std^2).

    Two equal forward forms (values and gradients agree to float tolerance):

    - ``"materialized"``: build ``W`` (see :meth:`weight`), then ``x @ W``.
    - ``"factored"``: never builds ``W``. With ``X`` = x reshaped to (..., n, in/n),
      ``Y = sum_i A_i^T (X s_i) t_i`` of shape (..., n, out/n), flattened row-major to (..., out).
      For rank 1 each term is the Kronecker (outer) product ``(A_i^T X s_i) kron t_i``.
      Derivation: ``y[c*q+e] = sum_{i,a,b} X[a,b] A[i,a,c] (s_i t_i)[b,e]``.
    - ``"auto"`` (default): counts multiply-adds for the actual number of tokens in ``x``
      (``x.numel() / in_features``) with :func:`lphm_multiply_adds` and runs the cheaper form
      (:func:`choose_lphm_form`).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        n: int,
        rank: int = 1,
        shared_A: SharedPHMRules | None = None,
        a_init_std: float = 1e-4,
        bias: bool = True,
        mode: str = "auto",
        w_init: str = "glorot-uniform",
    ):
        super().__init__()
        check_phm_shapes(in_features, out_features, n)
        if not isinstance(rank, int) or rank < 1:
            raise ValueError(f"rank={rank!r} must be an integer >= 1")
        if mode not in LPHM_MODES:
            raise ValueError(f"mode={mode!r} is not one of {LPHM_MODES}")
        self.in_features = in_features
        self.out_features = out_features
        self.n = n
        self.rank = rank
        self.mode = mode
        self._init_rules(n, shared_A, a_init_std)
        self.s = nn.Parameter(torch.empty(n, in_features // n, rank))
        self.t = nn.Parameter(torch.empty(n, rank, out_features // n))
        glorot_(self.s, w_init)
        glorot_(self.t, w_init)
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def weight(self) -> Tensor:
        """The materialised ``W`` of shape (in_features, out_features)."""
        return kronecker_sum(self.rules(), torch.bmm(self.s, self.t))

    def form_for(self, x: Tensor) -> str:
        """The form ``forward(x)`` runs: the fixed mode, or the ``"auto"`` choice for ``x``."""
        return self.form_for_tokens(x.numel() // self.in_features)

    def form_for_tokens(self, num_tokens: int) -> str:
        if self.mode != "auto":
            return self.mode
        return choose_lphm_form(num_tokens, self.in_features, self.out_features, self.n, self.rank)

    def two_factors(self, num_tokens: int) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """``(P, Q, b)`` with ``self(x) == (x @ P) @ Q + b`` for inputs of ``num_tokens`` rows, in the form
        ``forward`` would run (see `compacter_pl.layers.fused_adapter`).

        Materialized: ``P = W``, no ``Q``. Factored: ``P[(a,b), (c,i,r)] = A[i,a,c] s[i,b,r]`` of shape
        (in, n*n*r), and ``Q`` block-diagonal, n copies of ``t`` as an (n*r, out/n) block: ``x @ P`` contracts A
        and s on the weights (in*n*n*r numbers) instead of on every token, so both wide matmuls are plain
        contiguous GEMMs, and ``(x @ P) @ Q`` is the factored chain's ``sum_i A_i^T (X s_i) t_i``.
        """
        if self.form_for_tokens(num_tokens) == "materialized":
            return self.weight(), None, self.bias
        n, r = self.n, self.rank
        p = torch.einsum("iac,ibr->abcir", self.rules(), self.s).reshape(self.in_features, n * n * r)
        q = torch.block_diag(*[self.t.reshape(n * r, self.out_features // n)] * n)
        return p, q, self.bias

    def _forward_factored(self, x: Tensor) -> Tensor:
        # The same three contractions (and multiply-adds) as the einsum chain in the class docstring, written as
        # two plain matmuls around a small einsum: on CPU this halves the per-call overhead of the chain, and the
        # two passes over the wide side (x in, y out) are single GEMMs.
        n, r = self.n, self.rank
        p, q = self.in_features // n, self.out_features // n
        tokens = x.numel() // self.in_features
        s = self.s.permute(1, 0, 2).reshape(p, n * r)
        Xs = torch.mm(x.reshape(tokens * n, p), s).view(tokens, n, n, r)  # X s_i for every i: [token, a, i, r]
        AtXs = torch.einsum("iac,tair->tcir", self.rules(), Xs)  # A_i^T X s_i: [token, c, i, r]
        Y = torch.mm(AtXs.reshape(tokens * n, n * r), self.t.reshape(-1, q))  # sum_i (.) t_i: [token * c, q]
        return Y.view(*x.shape[:-1], self.out_features)

    def forward(self, x: Tensor) -> Tensor:
        if self.form_for(x) == "factored":
            y = self._forward_factored(x)
        else:
            y = x @ self.weight()
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, n={self.n}, "
            f"rank={self.rank}, shared_A={self.shares_rules}, bias={self.bias is not None}, "
            f"mode={self.mode!r}"
        )
