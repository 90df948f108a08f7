"""Where things are in a Hugging Face T5: the few structural facts every method needs, in one place.

Methods never fork T5's code: they find the library's modules here and hook or extend them. Both feed-forward
kinds are covered: `T5DenseActDense` (wi, wo; original T5) and `T5DenseGatedActDense` (wi_0, wi_1, wo; T5 v1.1,
Flan-T5, mT5).
"""

# The `type: ignore`s below: torch types every submodule reached by attribute (nn.Module.__getattr__) as
# `Tensor | Module`, though a T5 block's `layer` is always a ModuleList of sublayers.

from collections.abc import Iterator

from torch import nn
from transformers import T5ForConditionalGeneration
from transformers.models.t5.modeling_t5 import T5Stack

from compacter_pl.architectures import untie_output_layer

FEED_FORWARD_LINEARS = ("wi", "wi_0", "wi_1", "wo")
ATTENTION_LINEARS = ("q", "k", "v", "o")


def stacks(model: T5ForConditionalGeneration) -> dict[str, T5Stack]:
    return {"encoder": model.encoder, "decoder": model.decoder}


def self_attention(block: nn.Module) -> nn.Module:
    """The `T5Attention` of a block's self-attention sublayer; it returns a tuple whose first element is y."""
    return block.layer[0].SelfAttention  # type: ignore[index,union-attr]


def cross_attention(block: nn.Module) -> nn.Module | None:
    return block.layer[1].EncDecAttention if len(block.layer) == 3 else None  # type: ignore[index,union-attr,arg-type]


def feed_forward(block: nn.Module) -> nn.Module:
    """`DenseReluDense` of a block's feed-forward sublayer (ungated or gated); it returns y."""
    return block.layer[-1].DenseReluDense  # type: ignore[index,union-attr]


def attentions(block: nn.Module) -> list[nn.Module]:
    return [m for m in (self_attention(block), cross_attention(block)) if m is not None]


def block_linears(block: nn.Module) -> Iterator[nn.Linear]:
    """q, k, v, o of every attention of the block, then wi (or wi_0, wi_1) and wo of its feed-forward."""
    for attention in attentions(block):
        for name in ATTENTION_LINEARS:
            yield getattr(attention, name)
    ff = feed_forward(block)
    for name in FEED_FORWARD_LINEARS:
        if hasattr(ff, name):
            yield getattr(ff, name)


def block_layer_norms(model: T5ForConditionalGeneration) -> Iterator[nn.Module]:
    """The layer norm in front of every sublayer (2 per encoder block, 3 per decoder block)."""
    for stack in stacks(model).values():
        for block in stack.block:
            for sublayer in block.layer:  # type: ignore[union-attr]
                yield sublayer.layer_norm


def layer_norms(model: T5ForConditionalGeneration) -> list[nn.Module]:
    """All of T5's layer norms: those of the blocks and the final one of each stack (62 in T5-base)."""
    return [*block_layer_norms(model), model.encoder.final_layer_norm, model.decoder.final_layer_norm]


def train_layer_norms(model: T5ForConditionalGeneration) -> None:
    for norm in layer_norms(model):
        norm.weight.requires_grad_(True)


def train_output_layer(model: T5ForConditionalGeneration) -> None:
    """Make the output layer train (the paper's Appendix C) while the input embedding stays frozen.

    Original T5 ties the output layer to the embedding; training the tied tensor would also move every input
    embedding. So the head gets its own copy of the embedding (same values, so the model's outputs do not
    change) and only that copy trains: the checkpoint then holds vocab_size x d_model more numbers.
    """
    untie_output_layer(model).requires_grad_(True)
