"""Mixed batches: one more copy of the frozen base in which every row runs with its own adapter.

Each adapter's method declares what it changes (`Method.mix`, on the task's own model with its export loaded):
bottleneck adapters and the layer norms they trained, prompts, biases, an output layer, or modules PEFT injects.
The declarations are built into one copy of the base that shares its tensors (`compacter_pl.layers.rows`), and a
call routes each row to its adapter's slot: one encoder pass and one decoding loop for rows of many tasks.

An adapter is mixed only if its method declares every parameter the export holds; otherwise (full fine-tuning and
Intrinsic-SAID change every weight, a method of one's own without `mix`) its rows run as a batch of their own,
and `not_mixed` says why.
"""

import contextlib
from collections.abc import Iterator, Mapping

import torch
from transformers import T5ForConditionalGeneration

from compacter_pl.export import shared_base_copy
from compacter_pl.layers.rows import NotMixable, RowRouting, SlotParts, assemble
from compacter_pl.methods import Method

__all__ = ["MixedModel", "NotMixable"]


class MixedModel:
    """The base with every mixable adapter's parts, each in its own slot (1, 2, ...; 0 is the base alone).

    Args:
        base: The frozen base model (never written: the copy shares its tensors, flags are restored).
        models: Each adapter's own model (the base with its method applied and its export loaded).
        methods: Each adapter's method.
        trained: Each adapter's trained parameters by name (its export's), which its parts must all cover.
    """

    def __init__(
        self,
        base: T5ForConditionalGeneration,
        models: Mapping[str, T5ForConditionalGeneration],
        methods: Mapping[str, Method],
        trained: Mapping[str, set[str]],
    ) -> None:
        flags = {id(p): p.requires_grad for p in base.parameters()}
        self.model = shared_base_copy(base).eval()
        self.routing = RowRouting()
        self.not_mixed: dict[str, str] = {}
        plans: dict[str, SlotParts] = {}
        for index, (name, model) in enumerate(models.items()):
            parts = SlotParts(model, key=f"mixed_{index}")
            try:
                methods[name].mix(model, parts)
                missing = sorted(trained[name] - parts.covered)
                if missing:
                    raise NotMixable(f"its mix leaves out the trained parameter {missing[0]}")
            except NotMixable as why:
                self.not_mixed[name] = f"{type(methods[name]).__name__}: {why}"
                continue
            plans[name] = parts
        self.slots = {name: slot for slot, name in enumerate(plans, start=1)}
        try:
            assemble(self.model, self.routing, {self.slots[name]: parts for name, parts in plans.items()})
        finally:
            for p in base.parameters():  # an injection may flip flags on shared tensors
                p.requires_grad_(flags[id(p)])
        self.model.eval()

    def has(self, name: str) -> bool:
        return name in self.slots

    @contextlib.contextmanager
    def route(self, rows: list[str], device: torch.device) -> Iterator[None]:
        """Run the mixed model with row i through adapter `rows[i]`'s parts."""
        slots = torch.tensor([self.slots[name] for name in rows], dtype=torch.long, device=device)
        with self.routing.route(slots):
            yield
