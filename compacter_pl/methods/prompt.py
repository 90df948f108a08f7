"""Prompt tuning (Lester et al. 2021): trainable vectors prepended to the encoder's input; nothing else trains.

Flow: CLI -> LightningModule -> method (this file) -> T5's encoder and decoder stacks, hooked, not forked.

Two forward pre-hooks, so training, `generate` and any direct call agree:
- on the encoder stack: the token ids become embeddings with the prompt in front, and the attention mask gets
  as many ones in front. `generate` calls the encoder on its own (`get_encoder()`), so the prompt must be
  added here, not on the top-level model.
- on the decoder stack: the cross-attention mask (`encoder_attention_mask`) is the caller's, one prompt
  shorter than the encoder's output (the top-level forward and `generate` pass the original mask on); when its
  length is exactly that, it gets the same ones in front.
The prompt is `model.encoder.prompt.weight` (num_tokens x d_model): in the state dict, moved with the model.
"""

from __future__ import annotations

from typing import Literal, cast

import torch
from jsonargparse.typing import PositiveInt
from torch import nn
from transformers import T5Config, T5ForConditionalGeneration

from compacter_pl.errors import UserError
from compacter_pl.layers.prompt import SoftPrompt, stack_kwargs
from compacter_pl.layers.rows import SlotParts
from compacter_pl.methods.base import Method, freeze, option, resolve_seed
from compacter_pl.methods.registry import register_method

INITS = ("random", "vocab")
PromptInit = Literal["random", "vocab"]
RANDOM_INIT_RANGE = 0.5  # Lester et al.: uniform in [-0.5, 0.5]


def _prepend_prompt(encoder: nn.Module, args: tuple, kwargs: dict):
    """Encoder pre-hook: [prompt; embed(input_ids)] as inputs_embeds, the mask extended to match."""
    kwargs = stack_kwargs(args, kwargs)
    prompt = cast(SoftPrompt, encoder.prompt)
    embeds = kwargs.get("inputs_embeds")
    if embeds is None:
        embeds = encoder.embed_tokens(kwargs["input_ids"])  # type: ignore[operator]  # a submodule, not a Tensor
    batch = embeds.shape[0]
    vectors = prompt.weight.to(embeds.dtype).unsqueeze(0).expand(batch, -1, -1)
    kwargs["input_ids"] = None
    kwargs["inputs_embeds"] = torch.cat([vectors, embeds], dim=1)
    mask = kwargs.get("attention_mask")
    if mask is not None:
        kwargs["attention_mask"] = prompt.extend_mask(mask)
    return (), kwargs


class _ExtendCrossAttentionMask:
    """Decoder pre-hook: the encoder output is `num_tokens` longer than the caller's mask; extend the mask."""

    def __init__(self, num_tokens: int):
        self.num_tokens = num_tokens

    def __call__(self, decoder: nn.Module, args: tuple, kwargs: dict):
        kwargs = stack_kwargs(args, kwargs)
        mask, states = kwargs.get("encoder_attention_mask"), kwargs.get("encoder_hidden_states")
        if mask is not None and states is not None and mask.shape[1] + self.num_tokens == states.shape[1]:
            ones = torch.ones(mask.shape[0], self.num_tokens, dtype=mask.dtype, device=mask.device)
            kwargs["encoder_attention_mask"] = torch.cat([ones, mask], dim=1)
        return (), kwargs


class PromptTuning(Method):
    """Prompt tuning: `num_tokens` vectors prepended to the encoder input train; the model stays frozen.

    T5-base, 100 tokens: 76,800 trainable. "random" (Prompt tuning-R) draws them uniformly from [-0.5, 0.5];
    "vocab" (Prompt tuning-T) copies the embeddings of `num_tokens` token ids sampled from the first
    `init_vocab_size` ids of the vocabulary (the most frequent pieces of T5's sentencepiece model), after the
    pretrained weights are loaded.

    Args:
        num_tokens: The number of prompt vectors (it must not exceed the source length).
        init: "random" (Prompt tuning-R) or "vocab" (Prompt tuning-T).
        init_vocab_size: "vocab" init samples token ids among the first this many ids of the vocabulary.
        seed: The seed of the initialisation (the sampled ids or the random vectors), in [0, 2^32); null (the
            default) takes the run's seed (seed_everything; a sweep sets one per run). Checkpoints and exports
            record the seed used.
    """

    def __init__(
        self,
        num_tokens: PositiveInt = 100,
        init: PromptInit = "random",
        init_vocab_size: PositiveInt = 5000,
        seed: int | None = None,
    ) -> None:
        for name, value in (("num_tokens", num_tokens), ("init_vocab_size", init_vocab_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserError(f"{name}={value!r} must be a positive integer")
        if init not in INITS:
            raise UserError(f"unknown prompt init {init!r}; choose one of {', '.join(INITS)}")
        self.num_tokens = int(num_tokens)
        self.init = init
        self.init_vocab_size = int(init_vocab_size)
        self.seed = resolve_seed(seed)

    def check(self, config: T5Config, max_source_length: int | None = None) -> None:
        if max_source_length is not None and self.num_tokens > max_source_length:
            raise UserError(
                f"the prompt of {self.num_tokens} tokens is longer than the source length "
                f"{max_source_length}: lower {option('num_tokens')} or raise --data.max_source_length"
            )

    def vocab_ids(self, vocab_size: int) -> torch.Tensor:
        """The token ids whose embeddings start the "vocab" prompt: sampled with `seed`, distinct if possible."""
        generator = torch.Generator().manual_seed(self.seed)
        candidates = min(self.init_vocab_size, vocab_size)
        if self.num_tokens <= candidates:
            return torch.randperm(candidates, generator=generator)[: self.num_tokens]
        return torch.randint(0, candidates, (self.num_tokens,), generator=generator)  # some ids repeat

    def initial_prompt(self, embedding: torch.Tensor) -> torch.Tensor:
        """The prompt's starting values (num_tokens, d_model), drawn on the CPU so every device agrees."""
        if self.init == "vocab":
            return embedding.detach()[self.vocab_ids(embedding.shape[0]).to(embedding.device)]
        generator = torch.Generator().manual_seed(self.seed)
        values = torch.rand(self.num_tokens, embedding.shape[1], generator=generator) * 2 - 1
        return values * RANDOM_INIT_RANGE

    def apply(self, model: T5ForConditionalGeneration) -> None:
        freeze(model)
        embedding = model.get_input_embeddings().weight
        prompt = SoftPrompt(self.num_tokens, model.config.d_model).to(device=embedding.device, dtype=embedding.dtype)
        if embedding.device.type != "meta":
            with torch.no_grad():
                prompt.weight.copy_(self.initial_prompt(embedding))
        model.encoder.add_module("prompt", prompt)
        model.encoder.register_forward_pre_hook(_prepend_prompt, with_kwargs=True)
        model.decoder.register_forward_pre_hook(_ExtendCrossAttentionMask(self.num_tokens), with_kwargs=True)

    def mix(self, model: T5ForConditionalGeneration, parts: SlotParts) -> None:
        parts.prompt_vectors(cast(SoftPrompt, model.encoder.prompt).weight)


register_method(
    "prompt_random",
    PromptTuning,
    name="Prompt tuning-R",
    init_args={"init": "random"},
    t5_base_params=76_800,
)
register_method(
    "prompt_vocab",
    PromptTuning,
    name="Prompt tuning-T",
    init_args={"init": "vocab"},
    t5_base_params=76_800,
)
