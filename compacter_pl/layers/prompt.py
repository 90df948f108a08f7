"""The soft prompt of prompt tuning: `num_tokens` trainable vectors; `compacter_pl.methods.prompt` puts them in
front of the encoder's input."""

from __future__ import annotations

import torch
from torch import nn

# T5Stack.forward's leading arguments, in order.
_STACK_ARGS = (
    "input_ids",
    "attention_mask",
    "encoder_hidden_states",
    "encoder_attention_mask",
    "inputs_embeds",
    "past_key_values",
    "use_cache",
)


def stack_kwargs(args: tuple, kwargs: dict) -> dict:
    """T5Stack.forward's positional arguments by name (callers in transformers pass keywords; others may not)."""
    return {**dict(zip(_STACK_ARGS, args, strict=False)), **kwargs}


class SoftPrompt(nn.Module):
    """`num_tokens` trainable vectors of width d_model, prepended to every encoder input."""

    def __init__(self, num_tokens: int, d_model: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(num_tokens, d_model))

    @property
    def num_tokens(self) -> int:
        return self.weight.shape[0]

    def extend_mask(self, mask: torch.Tensor) -> torch.Tensor:
        ones = torch.ones(mask.shape[0], self.num_tokens, dtype=mask.dtype, device=mask.device)
        return torch.cat([ones, mask], dim=1)
