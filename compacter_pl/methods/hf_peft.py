"""Any Hugging Face PEFT method (LoRA, IA3, ...) in the same harness, to compare Compacter with today's methods.

Flow: CLI -> LightningModule -> method (this file) -> `peft.inject_adapter_in_model`, which adds the adapter
layers to the T5 in place (no PeftModel wrapper, so the LightningModule, checkpoints and `generate` see the
same model as with every other method). What trains is what PEFT marks trainable.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from peft import PeftConfig, PromptLearningConfig, get_peft_config, get_peft_model_state_dict, inject_adapter_in_model
from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING, PEFT_TYPE_TO_TUNER_MAPPING
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn
from transformers import T5Config, T5ForConditionalGeneration

from compacter_pl.architectures import build_t5
from compacter_pl.errors import UserError, first_line
from compacter_pl.layers.rows import NotMixable, SlotParts
from compacter_pl.methods.base import Method, freeze
from compacter_pl.methods.registry import register_method

ADAPTER_NAME = "default"
PEFT_WEIGHTS_FILE = "adapter_model.safetensors"  # what PeftModel.from_pretrained reads beside adapter_config.json
# A PeftModel names the T5's parameters under these (its `base_model`, a tuner, holds the T5 as `model`)
PEFT_MODEL_PREFIX = "base_model.model."
_NOT_INJECTABLE = {"ADAPTION_PROMPT", "SHADOW"}  # inject_adapter_in_model refuses them


def injectable_types() -> list[str]:
    """PEFT types that `inject_adapter_in_model` supports (prompt learning and shared-state tuners cannot)."""
    types = []
    for peft_type, tuner in PEFT_TYPE_TO_TUNER_MAPPING.items():
        config_cls = PEFT_TYPE_TO_CONFIG_MAPPING.get(peft_type)
        if (
            config_cls is None
            or issubclass(config_cls, PromptLearningConfig)
            or getattr(tuner, "uses_shared_state", False)
            or peft_type in _NOT_INJECTABLE
        ):
            continue
        types.append(getattr(peft_type, "value", str(peft_type)))
    return sorted(types)


def build_peft_config(peft_config: dict) -> PeftConfig:
    """A PeftConfig from a plain mapping, e.g. {"peft_type": "LORA", "r": 8, "target_modules": ["q", "v"]}."""
    if not isinstance(peft_config, dict) or "peft_type" not in peft_config:
        raise UserError(
            f"peft_config must be a mapping with a peft_type (e.g. {{peft_type: LORA, r: 8}}), got {peft_config!r}"
        )
    peft_type = str(peft_config["peft_type"]).upper()
    config_cls = PEFT_TYPE_TO_CONFIG_MAPPING.get(peft_type)  # type: ignore[call-overload]  # PeftType is a str Enum
    if config_cls is not None and issubclass(config_cls, PromptLearningConfig):
        raise UserError(
            f"PEFT type {peft_type} is prompt learning, which cannot be injected into a model: use "
            f"compacter_pl.methods.PromptTuning"
        )
    known = injectable_types()
    if peft_type not in known:
        raise UserError(
            f"PEFT type {peft_config['peft_type']!r} cannot be injected into a model; choose one of {', '.join(known)}"
        )
    try:
        config = get_peft_config({**peft_config, "peft_type": peft_type})
    except (TypeError, ValueError) as error:
        reason = first_line(error)
        raise UserError(f"bad {peft_type} config {peft_config!r}: {reason}") from None
    return config


class Peft(Method):
    """A Hugging Face PEFT method injected into T5 with `peft.inject_adapter_in_model`; PEFT decides what trains.

    Args:
        peft_config: The PEFT config as a mapping with its peft_type, e.g. {peft_type: LORA, r: 8, lora_alpha: 16,
            target_modules: [q, v]} or {peft_type: IA3}; every other key is a field of that PEFT config class.
    """

    def __init__(self, peft_config: dict) -> None:
        self.peft_config = dict(peft_config)

    def build_config(self) -> PeftConfig:
        return build_peft_config(self.peft_config)

    def check(self, config: T5Config, max_source_length: int | None = None) -> None:
        self.build_config()  # an unknown peft_type or field fails here, before the weights load

    def apply(self, model: T5ForConditionalGeneration) -> None:
        freeze(model)
        try:
            inject_adapter_in_model(self.build_config(), model, adapter_name=ADAPTER_NAME)
        except ValueError as error:  # e.g. none of the target modules is in the model
            reason = first_line(error)
            raise UserError(f"cannot inject {self.peft_config.get('peft_type')} into this model: {reason}") from None

    library_folder = "peft"

    def write_library_files(
        self, folder: Path, state_dict: dict[str, torch.Tensor], base_model: str, base_architecture: dict
    ) -> str:
        """PEFT's own layout (its adapter_config.json and adapter_model.safetensors), which
        `PeftModel.from_pretrained(t5, folder)` loads: PEFT's `get_peft_model_state_dict` names the parameters as
        PEFT saves them (no adapter name), read off the method applied to a weightless copy of the base model."""
        from safetensors.torch import save_file

        model = build_t5(T5Config(**base_architecture), device="meta")
        self.apply(model)
        with warnings.catch_warnings():  # its checks of the embeddings are PEFT's, for PEFT's own saves
            warnings.simplefilter("ignore")
            weights = get_peft_model_state_dict(
                model, state_dict=state_dict, adapter_name=ADAPTER_NAME, save_embedding_layers=False
            )
        save_file(
            {PEFT_MODEL_PREFIX + name: tensor.contiguous() for name, tensor in weights.items()},
            str(folder / PEFT_WEIGHTS_FILE),
            metadata={"format": "pt"},
        )
        config = self.build_config()
        config.base_model_name_or_path = base_model
        config.inference_mode = True
        config.save_pretrained(str(folder))
        return (
            "from peft import PeftModel\n"
            "from transformers import T5ForConditionalGeneration\n\n"
            f"t5 = T5ForConditionalGeneration.from_pretrained({base_model!r})\n"
            'model = PeftModel.from_pretrained(t5, "{source}", subfolder="{subfolder}")'
        )

    def mix(self, model: T5ForConditionalGeneration, parts: SlotParts) -> None:
        """PEFT's own mixed batches (LoRA's `adapter_names`): the adapter is injected into the mixed model under a
        name of its own, and every PEFT layer gets each row's adapter name ("__base__" for rows of others)."""
        layers = [module for module in model.modules() if isinstance(module, BaseTunerLayer)]
        unmixed = sorted({type(m).__name__ for m in layers if not hasattr(m, "_mixed_batch_forward")})
        if unmixed:
            raise NotMixable(f"PEFT's {unmixed[0]} layers take no adapter_names (LoRA's do)")
        segment, own_segment = f".{ADAPTER_NAME}.", f".{parts.key}."
        own = {name: p for name, p in model.named_parameters() if segment in name}

        def inject(mixed: nn.Module) -> None:
            with warnings.catch_warnings():  # "multiple adapters in the model": one per slot is the point
                warnings.filterwarnings("ignore", message="Already found a `peft_config`", category=UserWarning)
                inject_adapter_in_model(self.build_config(), mixed, adapter_name=parts.key)
            values = {name.replace(segment, own_segment): p.detach() for name, p in own.items()}
            unexpected = mixed.load_state_dict(values, strict=False).unexpected_keys
            if unexpected:
                raise NotMixable(f"the injected adapter has no parameter {unexpected[0]}")

        parts.inject(inject, *own.values())
        for layer in layers:
            parts.keyword(layer, "adapter_names", parts.key, "__base__")


# Not in the paper: today's most used method through PEFT, for comparison in the same harness.
LORA_CONFIG = {"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q", "v"]}
register_method("lora", Peft, name="LoRA (PEFT, r 8, q v)", init_args={"peft_config": LORA_CONFIG})
