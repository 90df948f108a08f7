"""BitFit (Ben Zaken et al. 2022): only biases train. T5 has none, so they are added, zero-initialised.

Flow: CLI -> LightningModule -> method (this file) -> T5's own modules.

Where: q, k, v, o of every attention (self and cross), wi (or wi_0 and wi_1 when gated) and wo of every
feed-forward, every block layer norm (not the two final ones) and the output layer. T5-base: 280,960 numbers
(the paper: 0.126%, "about 280,900"). Zero biases leave the model's outputs unchanged until training moves them.

How: an `nn.Linear` takes a bias parameter as it is (`linear.bias = Parameter(zeros)`); T5's RMS layer norm has
no bias, so it gets a `bias` parameter and a forward hook that adds it to the norm's output.

Option `train_output_layer` (the paper's Appendix C, Table 7's BitFit row): the output layer's weight trains too,
untied from the frozen input embedding as the adapter methods do it: 280,960 + 32,128 x 768 = 24,955,264 on T5-base.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import T5ForConditionalGeneration

from compacter_pl.layers.rows import SlotParts
from compacter_pl.methods import t5_parts
from compacter_pl.methods.base import Method, freeze
from compacter_pl.methods.registry import register_method


def _add_bias(module: nn.Module, args, output: torch.Tensor) -> torch.Tensor:
    """Forward hook of a layer norm given a bias: T5's layer norm only scales, BitFit also shifts."""
    return output + module.bias.to(output.dtype)  # type: ignore[operator]  # a Parameter (torch types it Tensor | Module)


def _zeros_like_row(weight: torch.Tensor, size: int) -> nn.Parameter:
    return nn.Parameter(torch.zeros(size, device=weight.device, dtype=weight.dtype))


class BitFit(Method):
    """BitFit: zero-initialised biases on q, k, v, o, the feed-forward, the block layer norms and the output
    layer; only they train (280,960 numbers on T5-base).

    Args:
        output_layer_bias: Add (and train) a bias on the output layer (one number per vocabulary entry).
        layer_norm_biases: Add (and train) a bias on every block layer norm.
        train_output_layer: Also train the output layer (the paper's Appendix C). A tied output layer is untied
            first: it gets its own copy of the embedding, which trains while the input embedding stays frozen.
    """

    def __init__(
        self, output_layer_bias: bool = True, layer_norm_biases: bool = True, train_output_layer: bool = False
    ) -> None:
        self.output_layer_bias = bool(output_layer_bias)
        self.layer_norm_biases = bool(layer_norm_biases)
        self.train_output_layer = bool(train_output_layer)

    def linears(self, model: T5ForConditionalGeneration) -> list[nn.Linear]:
        """The Linears that get a bias."""
        linears = [
            linear
            for stack in t5_parts.stacks(model).values()
            for block in stack.block
            for linear in t5_parts.block_linears(block)
        ]
        return [*linears, model.lm_head] if self.output_layer_bias else linears

    def apply(self, model: T5ForConditionalGeneration) -> None:
        freeze(model)
        for linear in self.linears(model):
            if linear.bias is None:
                linear.bias = _zeros_like_row(linear.weight, linear.out_features)
            linear.bias.requires_grad_(True)
        if self.layer_norm_biases:
            for norm in t5_parts.block_layer_norms(model):
                norm.bias = _zeros_like_row(norm.weight, norm.weight.shape[0])  # type: ignore[arg-type,index]
                norm.register_forward_hook(_add_bias)
        if self.train_output_layer:
            t5_parts.train_output_layer(model)

    def mix(self, model: T5ForConditionalGeneration, parts: SlotParts) -> None:
        """Every bias added (on Linears, layer norms and the output layer) as a bias per row on the module's
        output, and the output layer's weight if it trained."""
        for linear in self.linears(model):
            parts.bias(linear, linear.bias)
        if self.layer_norm_biases:
            for norm in t5_parts.block_layer_norms(model):
                parts.bias(norm, norm.bias)  # type: ignore[arg-type]  # the Parameter apply added
        if self.train_output_layer:
            parts.weight(model.lm_head)


# Table 1's 0.126% of T5-base is about 280,900; every bias counted is 280,960.
register_method(
    "bitfit",
    BitFit,
    name="BitFit",
    t5_base_params=280_900,
    tolerance=100,
)
