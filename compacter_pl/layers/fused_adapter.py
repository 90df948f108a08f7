"""The bottleneck adapter `y + up(act(down(y)))` as one autograd function, for projections in two factors.

Every adapter projection here is `x -> (x @ P) @ Q + b` with small factors (`Q` None meaning identity):
a Linear is `P = W^T`; Adapter-LowRank `P = u, Q = v`; an LPHM layer in factored form `P[(a,b),(c,i,r)] =
A[i,a,c] s[i,b,r]` and `Q` block-diagonal with n copies of `t` (see `LowRankPHMLinear.two_factors`).

What this saves is passes over the wide (tokens x d_model) tensors, which is all an adapter costs once its
matmuls are this thin. Autograd of the plain modules writes the gradient of the down path's input and then adds
the residual's gradient to it (two extra passes), and the LPHM chain's einsums hand the wide matmuls strided
operands that have to be copied. Here the forward reads `y` twice (down, then residual + up in one `addmm`) and
writes the output once; the backward reads the output's gradient twice (up's factors and input), `y` once (down's
`P`), and writes `y`'s gradient once, with the residual's gradient added inside that `addmm`. Only `y` (alive
anyway) and the thin (tokens x bottleneck) tensors are kept for the backward.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from compacter_pl.layers.regions import region

Factors = tuple[Tensor, Tensor | None, Tensor | None]  # P, Q (None: identity), bias (None: zero)


def two_factors(projection: nn.Module, num_tokens: int) -> Factors | None:
    """`(P, Q, b)` with `projection(x) == (x @ P) @ Q + b` for inputs of `num_tokens` rows, or None when the
    projection has no such form."""
    if type(projection) is nn.Linear:
        return projection.weight.t(), None, projection.bias
    factors = getattr(projection, "two_factors", None)
    return factors(num_tokens) if factors is not None else None


def _append_ones(x: Tensor) -> Tensor:
    return torch.cat([x, x.new_ones(x.shape[0], 1)], dim=1)


def _right(x: Tensor, q: Tensor | None) -> Tensor:
    return x if q is None else x @ q


class _FusedAdapter(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx,
        y: Tensor,
        activation: Callable,
        p_down: Tensor,
        q_down: Tensor | None,
        b_down: Tensor,
        p_up: Tensor,
        q_up: Tensor | None,
        b_up: Tensor,
    ) -> Tensor:
        with region("adapter"):
            return _FusedAdapter._forward(ctx, y, activation, p_down, q_down, b_down, p_up, q_up, b_up)

    @staticmethod
    def _forward(ctx, y, activation, p_down, q_down, b_down, p_up, q_up, b_up) -> Tensor:
        dtype = y.dtype  # under autocast, the dtype the model's own layers produced (bf16); else float32
        inputs = (p_down, q_down, b_down, p_up, q_up, b_up)
        ctx.input_dtypes = [None if t is None else t.dtype for t in inputs]
        p_down, q_down, b_down, p_up, q_up, b_up = (None if t is None else t.to(dtype) for t in inputs)
        y2 = y.reshape(-1, y.shape[-1])
        down_inner = y2 @ p_down
        z = _right(down_inner, q_down) + b_down
        with torch.enable_grad():  # the activation's backward comes from autograd on the thin tensor
            z_leaf = z.detach().requires_grad_()
            h_graph = activation(z_leaf)
        ctx.activation_graph = (z_leaf, h_graph)
        h = h_graph.detach()
        # The up projection's bias rides as the last row of its right factor, met by a column of ones.
        up_inner = _append_ones(h if q_up is None else h @ p_up)
        right = torch.cat([p_up if q_up is None else q_up, b_up.unsqueeze(0)], dim=0)
        out = torch.addmm(y2, up_inner, right)  # the residual added inside the matmul
        ctx.save_for_backward(y, down_inner, h, up_inner, p_down, q_down, p_up, q_up, right)
        return out.view(y.shape)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        with region("adapter"):
            return _FusedAdapter._backward(ctx, grad_out)

    @staticmethod
    def _backward(ctx, grad_out: Tensor):
        y, down_inner, h, up_inner, p_down, q_down, p_up, q_up, right = ctx.saved_tensors
        z_leaf, h_graph = ctx.activation_graph
        needs = ctx.needs_input_grad
        g = grad_out.reshape(-1, grad_out.shape[-1]).to(y.dtype)
        grad_right = up_inner.t() @ g  # the up projection's right factor and bias, one pass over g
        grad_up_inner = (g @ right.t())[:, :-1]  # the other pass over g
        grad_q_up = grad_p_up = None
        if q_up is None:
            grad_p_up, grad_b_up = grad_right[:-1], grad_right[-1]
            grad_h = grad_up_inner
        else:
            grad_q_up, grad_b_up = grad_right[:-1], grad_right[-1]
            grad_p_up = h.t() @ grad_up_inner
            grad_h = grad_up_inner @ p_up.t()
        (grad_z,) = torch.autograd.grad(h_graph, z_leaf, grad_h)
        grad_b_down = grad_z.sum(0)
        grad_q_down = None
        if q_down is None:
            grad_down_inner = grad_z
        else:
            grad_q_down = down_inner.t() @ grad_z
            grad_down_inner = grad_z @ q_down.t()
        y2 = y.reshape(-1, y.shape[-1])
        grad_p_down = y2.t() @ grad_down_inner if needs[2] else None
        grad_y = torch.addmm(g, grad_down_inner, p_down.t()).view(y.shape) if needs[0] else None  # + residual
        grads = (grad_p_down, grad_q_down, grad_b_down, grad_p_up, grad_q_up, grad_b_up)
        in_input_dtypes = [
            None if g is None or d is None else g.to(d) for g, d in zip(grads, ctx.input_dtypes, strict=True)
        ]
        return (grad_y, None, *in_input_dtypes)


def fused_adapter(y: Tensor, down: Factors, up: Factors, activation: Callable) -> Tensor:
    """`y + up(activation(down(y)))` for two-factor projections (`two_factors`), in one autograd function."""
    p_down, q_down, b_down = down
    p_up, q_up, b_up = up
    if b_down is None:
        b_down = p_down.new_zeros((q_down if q_down is not None else p_down).shape[1])
    if b_up is None:
        b_up = p_up.new_zeros((q_up if q_up is not None else p_up).shape[1])
    return _FusedAdapter.apply(y, activation, p_down, q_down, b_down, p_up, q_up, b_up)
