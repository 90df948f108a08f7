"""Many task adapters on one frozen base model, selected per request.

The base model is loaded once. Each added export gets a light copy of the model that shares every base
tensor with it (nothing is duplicated) and owns only its method's modules and the parameters it trained. An export
of any registered method loads (`compacter_pl.methods.registry`), a user's own too once the module that registers
it is imported; any other class path is refused, like every export loader refuses it (`export.method_from_config`).

An input is a record in the task's fields (`{"sentence1": ..., "sentence2": ...}` for RTE), rendered with the
task's own template as training renders it, or a source text already rendered. `predict` answers in the task's
terms, as `cli.py predict` does; `generate` returns the generated text.

    bank = AdapterBank(load_t5("google-t5/t5-base"), load_tokenizer("google-t5/t5-base"))
    bank.add("rte", "exports/rte_compacter")
    bank.add("cola", "exports/cola_compacter++")
    bank.predict("rte", [{"sentence1": "...", "sentence2": "..."}])   # -> ["entailment"]
    bank.generate("rte", ["sentence1: ... sentence2: ..."])           # -> ["0"]
"""

from collections.abc import Sequence

import torch
from torch import nn
from transformers import T5ForConditionalGeneration

from compacter_pl.errors import UserError
from compacter_pl.export import AdapterExport, apply_export, load_export, shared_base_copy
from compacter_pl.tasks import Task, get_task


def _own_trained_parameters(model: nn.Module, base_ids: set[int]) -> None:
    """Give the copy private tensors for the base parameters its export overwrites (e.g. layer norms), so that
    loading them never writes into the shared base."""
    for module in model.modules():
        for name, parameter in list(module._parameters.items()):
            if parameter is not None and parameter.requires_grad and id(parameter) in base_ids:
                setattr(module, name, nn.Parameter(parameter.detach().clone()))


class AdapterBank:
    """One base model, any number of exported adapters, one `predict` or `generate` per request."""

    def __init__(self, base_model: T5ForConditionalGeneration, tokenizer, max_new_tokens: int = 16) -> None:
        self.base = base_model.eval()
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.models: dict[str, T5ForConditionalGeneration] = {}
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

    def task(self, name: str) -> Task:
        """The task adapter `name` was trained on (its export's)."""
        self._require(name)
        return get_task(self.exports[name].task)

    def predict(self, name: str, inputs: Sequence[dict | str]) -> list[str | float | None]:
        """Adapter `name`'s answer to each input in its task's terms: the class name (`entailment`), STS-B's score,
        ReCoRD's answer text; None when the generation is not one of the task's labels."""
        task = self.task(name)
        return [task.prediction(text) for text in self.generate(name, inputs)]

    @torch.inference_mode()
    def generate(self, name: str, inputs: Sequence[dict | str]) -> list[str]:
        """The text adapter `name` generates for each input: a record in its task's fields, or a source text."""
        self._require(name)
        model = self.models[name]
        sources = [text if isinstance(text, str) else self._render(name, i, text) for i, text in enumerate(inputs)]
        tokens = self.tokenizer(sources, return_tensors="pt", padding=True, truncation=True)
        generated = model.generate(**tokens, max_new_tokens=self.max_new_tokens, do_sample=False, num_beams=1)
        return self.tokenizer.batch_decode(generated, skip_special_tokens=True)

    def _require(self, name: str) -> None:
        if name not in self.models:
            raise UserError(
                f"no adapter named {name!r} in this AdapterBank; it has: {', '.join(self.models) or 'none'} "
                f"(add one with bank.add)"
            )

    def _render(self, name: str, position: int, record: dict) -> str:
        task = self.task(name)
        missing = [field for field in task.input_fields if field not in record]
        if missing:
            raise UserError(
                f"adapter {name!r}: input {position} lacks field {missing[0]!r}; {task.name} reads "
                f"{', '.join(task.input_fields)}"
            )
        try:
            return task.source(record)
        except ValueError as error:
            raise UserError(f"adapter {name!r}: input {position}: {error}") from None
