"""The adapter layers: the bottleneck `y + up(act(down(y)))`, its dense projection as the authors start it,
and Adapter-LowRank's rank-r projection. Which method puts them where is `compacter_pl.methods.adapters`.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.activations import ACT2FN

from compacter_pl.layers.fused_adapter import fused_adapter, two_factors
from compacter_pl.layers.inits import glorot_

# The authors' code initialises every adapter nn.Linear N(0, 0.01^2), untruncated, with zero biases (their
# T5PreTrainedModel._init_weights); Houlsby et al. (2019) truncated theirs at 2 std, the authors' code does not.
HOULSBY_INIT_STD = 1e-2


class BottleneckAdapter(nn.Module):
    """`adapter(y) = y + up(act(down(y)))`: down projects width -> bottleneck, up projects back."""

    def __init__(self, down: nn.Module, up: nn.Module, non_linearity: str):
        super().__init__()
        self.down = down
        self.activation = ACT2FN[non_linearity]
        self.up = up

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        tokens = y.numel() // y.shape[-1]
        down = two_factors(self.down, tokens)
        up = two_factors(self.up, tokens) if down is not None else None
        if (
            down is not None and up is not None
        ):  # one autograd function: fewer passes over the wide tensors (layers/fused_adapter.py)
            return fused_adapter(y, down, up, self.activation)
        return y + self.up(self.activation(self.down(y)))


class LowRankLinear(nn.Module):
    """`y = x @ (u v) + b` with u (in, rank) and v (rank, out): Adapter-LowRank's rank-one projections.

    u and v are initialised by `init`, each as one matrix (the authors' default glorot-uniform: Xavier uniform
    with gain sqrt(2), bound sqrt(2) sqrt(6 / (in + rank)) for u and sqrt(2) sqrt(6 / (rank + out)) for v), the
    bias zero. Parameters: rank * (in + out) + out.
    """

    def __init__(self, in_features: int, out_features: int, rank: int = 1, init: str = "glorot-uniform"):
        super().__init__()
        self.in_features, self.out_features, self.rank = in_features, out_features, rank
        self.u = nn.Parameter(torch.empty(in_features, rank))
        self.v = nn.Parameter(torch.empty(rank, out_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        glorot_(self.u, init)
        glorot_(self.v, init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x @ self.u) @ self.v + self.bias  # never builds the (in, out) matrix

    def two_factors(self, num_tokens: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`(u, v, b)`: `self(x) == (x @ u) @ v + b` (see `compacter_pl.layers.fused_adapter`)."""
        return self.u, self.v, self.bias

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, rank={self.rank}"


def houlsby_linear(in_features: int, out_features: int) -> nn.Linear:
    """A dense adapter projection as the authors' code starts it: weight N(0, 0.01^2), untruncated; bias zero."""
    layer = nn.Linear(in_features, out_features)
    with torch.no_grad():
        layer.weight.normal_(0.0, HOULSBY_INIT_STD)
        layer.bias.zero_()
    return layer
