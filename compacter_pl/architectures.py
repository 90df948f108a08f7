"""T5 architectures known offline, and models built from them with random (or no) weights.

Where it sits: the `params` command and the tests count parameters on models built here (on the meta device:
no memory, no download); the LightningModule reads a model's config here before its weights load, so a
method's hyper-parameters are checked first. The weights themselves come from `compacter_pl.hub`.

Two families:
- original T5 (t5-small/base/large/3b/11b): ReLU feed-forward `wi`, `wo`; output layer tied to the embedding
  (the decoder output is scaled by d_model ** -0.5 before it).
- T5 v1.1 (t5-v1_1-*, flan-t5-*, mt5-*): gated-GeLU feed-forward `wi_0`, `wi_1`, `wo`; an untied output layer.
  Transformers 5 always sets `tie_word_embeddings=True` on a T5Config; a config.json with
  `tie_word_embeddings: false` survives only as `scale_decoder_outputs=False`, and the checkpoints of this family
  carry a separate `lm_head.weight`, so :func:`build_t5` unties the head whenever `scale_decoder_outputs` is False.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn
from transformers import T5Config, T5ForConditionalGeneration

from compacter_pl.errors import UserError, first_line
from compacter_pl.hub import FROM_PRETRAINED_ERRORS

_ORIGINAL = {"feed_forward_proj": "relu", "vocab_size": 32128, "tie_word_embeddings": True}
_V1_1 = {"feed_forward_proj": "gated-gelu", "vocab_size": 32128, "tie_word_embeddings": False}
_MT5 = {**_V1_1, "vocab_size": 250112}

# d_model, d_ff, d_kv, num_heads, num_layers (= num_decoder_layers), from each model's config.json on the Hub.
_SIZES_ORIGINAL = {
    "small": (512, 2048, 64, 8, 6),
    "base": (768, 3072, 64, 12, 12),
    "large": (1024, 4096, 64, 16, 24),
    "3b": (1024, 16384, 128, 32, 24),
    "11b": (1024, 65536, 128, 128, 24),
}
_SIZES_V1_1 = {
    "small": (512, 1024, 64, 6, 8),
    "base": (768, 2048, 64, 12, 12),
    "large": (1024, 2816, 64, 16, 24),
    "xl": (2048, 5120, 64, 32, 24),
    "xxl": (4096, 10240, 64, 64, 24),
}


def _config_kwargs(family: dict, size: tuple[int, int, int, int, int]) -> dict:
    d_model, d_ff, d_kv, num_heads, num_layers = size
    return {
        **family,
        "d_model": d_model,
        "d_ff": d_ff,
        "d_kv": d_kv,
        "num_heads": num_heads,
        "num_layers": num_layers,
        "num_decoder_layers": num_layers,
        "decoder_start_token_id": 0,
    }


# Canonical Hub name -> T5Config keyword arguments.
ARCHITECTURES: dict[str, dict] = {
    **{f"google-t5/t5-{s}": _config_kwargs(_ORIGINAL, size) for s, size in _SIZES_ORIGINAL.items()},
    **{f"google/t5-v1_1-{s}": _config_kwargs(_V1_1, size) for s, size in _SIZES_V1_1.items()},
    **{f"google/flan-t5-{s}": _config_kwargs(_V1_1, size) for s, size in _SIZES_V1_1.items()},
    **{f"google/mt5-{s}": _config_kwargs(_MT5, size) for s, size in _SIZES_V1_1.items()},
}


def _aliases() -> dict[str, str]:
    """Every accepted spelling -> canonical name: with or without the organisation, and t5-v1.1 for t5-v1_1."""
    aliases = {}
    for canonical in ARCHITECTURES:
        short = canonical.split("/", 1)[1]
        for name in (canonical, short, short.replace("v1_1", "v1.1")):
            aliases[name.lower()] = canonical
    return aliases


_ALIASES = _aliases()


def known_architectures() -> list[str]:
    """The names that work offline, in their short form (each also accepted with its organisation prefix)."""
    return [name.split("/", 1)[1] for name in ARCHITECTURES]


def canonical_name(name: str) -> str | None:
    """The Hub name of a known architecture (e.g. "t5-base" -> "google-t5/t5-base"), or None."""
    return _ALIASES.get(name.strip().lower())


def local_t5_config(name_or_path: str | Path) -> T5Config | None:
    """The T5Config of a known architecture name, a config.json or a model directory; None if only the Hub
    could tell (never touches the network)."""
    path = Path(name_or_path)
    if path.is_file() or (path.is_dir() and (path / "config.json").is_file()):
        try:
            return T5Config.from_pretrained(str(path))
        except FROM_PRETRAINED_ERRORS as error:  # malformed JSON, not a T5 config, a value of the wrong type
            raise UserError(f"cannot read a T5 config from {path}: {first_line(error)}") from None
    canonical = canonical_name(str(name_or_path))
    return None if canonical is None else T5Config(**ARCHITECTURES[canonical])


def t5_config(name_or_path: str | Path | T5Config, offline: bool = True) -> T5Config:
    """The T5Config of a known architecture name, a config.json, or a model directory (no weights are read).

    Other names are looked up on the Hugging Face Hub (a small JSON file) unless `offline`; otherwise, or when
    that fails, the error lists the names that work without a network.
    """
    if isinstance(name_or_path, T5Config):
        return copy.deepcopy(name_or_path)
    config = local_t5_config(name_or_path)
    if config is not None:
        return config
    unknown = UserError(
        f"unknown model {str(name_or_path)!r}: pass a config.json, a model directory, or one of "
        f"{', '.join(known_architectures())}"
    )
    if Path(name_or_path).is_dir():
        raise UserError(f"{name_or_path} has no config.json: pass a model directory saved with save_pretrained")
    if offline:
        raise unknown
    try:
        return T5Config.from_pretrained(str(name_or_path))
    except FROM_PRETRAINED_ERRORS:
        raise unknown from None


def has_untied_output_layer(config: T5Config) -> bool:
    """True for the T5 v1.1 family (flan-t5, mt5): a separate `lm_head`, no d_model ** -0.5 output scaling."""
    return getattr(config, "scale_decoder_outputs", True) is False


def untie_output_layer(model: T5ForConditionalGeneration, copy_values: bool = True) -> nn.Parameter:
    """Give `model.lm_head` its own weight (a copy of the embedding unless told otherwise); returns it.

    Transformers would tie it again on the next `tie_weights()`; removing it from the model's tied-keys
    mapping keeps it untied, and `save_pretrained` then writes it.
    """
    head, embedding = model.lm_head, model.get_input_embeddings()
    if head.weight is embedding.weight:
        weight = embedding.weight.detach().clone() if copy_values else torch.empty_like(embedding.weight)
        head.weight = nn.Parameter(weight, requires_grad=embedding.weight.requires_grad)
    tied = getattr(model, "all_tied_weights_keys", None)
    if isinstance(tied, dict):
        tied.pop("lm_head.weight", None)
    return head.weight


def build_t5(
    name_or_config: str | Path | T5Config, device: str | torch.device = "meta", seed: int | None = 0
) -> T5ForConditionalGeneration:
    """A T5ForConditionalGeneration with the given architecture and random weights (none on "meta").

    The meta device allocates nothing: counting t5-large or the methods' trainable parameters takes
    milliseconds. The T5 v1.1 family gets its untied output layer (see the module docstring).
    """
    config = t5_config(name_or_config)
    device = torch.device(device)
    with torch.random.fork_rng(devices=[]), device:  # seeded without touching the caller's random state
        if seed is not None:
            torch.manual_seed(seed)
        model = T5ForConditionalGeneration(config)
        if has_untied_output_layer(config):
            head = untie_output_layer(model, copy_values=False)
            if device.type != "meta":
                with torch.no_grad():
                    head.normal_(0.0, config.initializer_factor)  # as transformers initialises an untied head
    return model


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Parameters of `model`, each shared tensor once (a tied embedding and output layer count once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
