"""Many task adapters on one frozen base model, selected per request.

The base model is loaded once. Each added export gets a light copy of the model that shares every base
tensor with it (nothing is duplicated) and owns only its method's modules and the parameters it trained. An export
of any registered method loads (`compacter_pl.methods.registry`), a user's own too once the module that registers
it is imported; any other class path is refused, like every export loader refuses it (`export.method_from_config`).

    bank = AdapterBank(load_t5("google-t5/t5-base"), load_tokenizer("google-t5/t5-base"))
    bank.add("rte", "exports/rte_compacter")
    bank.add("cola", "exports/cola_compacter++")
    bank.generate("rte", ["sentence1: ... sentence2: ..."])   # -> ["0"]
"""

import torch
from torch import nn

from compacter_pl.export import AdapterExport, apply_export, load_export, shared_base_copy


def _own_trained_parameters(model: nn.Module, base_ids: set[int]) -> None:
    """Give the copy private tensors for the base parameters its export overwrites (e.g. layer norms), so that
    loading them never writes into the shared base."""
    for module in model.modules():
        for name, parameter in list(module._parameters.items()):
            if parameter is not None and parameter.requires_grad and id(parameter) in base_ids:
                setattr(module, name, nn.Parameter(parameter.detach().clone()))


class AdapterBank:
    """One base model, any number of exported adapters, one `generate` per request."""

    def __init__(self, base_model: nn.Module, tokenizer, max_new_tokens: int = 16) -> None:
        self.base = base_model.eval()
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.models: dict[str, nn.Module] = {}
        self.exports: dict[str, AdapterExport] = {}

    def add(self, name: str, export_dir: str) -> None:
        export = load_export(export_dir)
        model = shared_base_copy(self.base)
        base_ids = {id(p) for p in self.base.parameters()}
        requires_grad = {id(p): p.requires_grad for p in self.base.parameters()}
        try:
            apply_export(model, export, before_load=lambda m: _own_trained_parameters(m, base_ids))
        finally:
            for p in self.base.parameters():  # the method may have flipped flags on shared tensors
                p.requires_grad_(requires_grad[id(p)])
        self.models[name] = model.eval()
        self.exports[name] = export

    @torch.inference_mode()
    def generate(self, name: str, sources: list[str]) -> list[str]:
        model = self.models[name]
        inputs = self.tokenizer(sources, return_tensors="pt", padding=True, truncation=True)
        generated = model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False, num_beams=1)
        return self.tokenizer.batch_decode(generated, skip_special_tokens=True)
