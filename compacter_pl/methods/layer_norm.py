"""Layer-norm tuning: only T5's layer norms train (62 in T5-base, 47,616 numbers).

Flow: CLI -> LightningModule -> method (this file) -> T5's own layer norms, nothing added.

Every adapter-style method of the paper also trains the layer norms, and its gradient must travel back through
the whole frozen network to reach them. So this method is the floor of their cost: its training step does the
back-propagation they all do and nothing else, and `cli.py bench` reports every method against it. It is also a
(weak) method of its own, with the smallest checkpoint of all.
"""

from transformers import T5ForConditionalGeneration

from compacter_pl.layers.rows import SlotParts
from compacter_pl.methods import t5_parts
from compacter_pl.methods.base import Method, freeze
from compacter_pl.methods.registry import register_method


class LayerNormOnly(Method):
    """Only the layer norms train (T5-base: 62 of them, 47,616 numbers); nothing is added to the model."""

    def apply(self, model: T5ForConditionalGeneration) -> None:
        freeze(model)
        t5_parts.train_layer_norms(model)

    def mix(self, model: T5ForConditionalGeneration, parts: SlotParts) -> None:
        for norm in t5_parts.layer_norms(model):
            parts.scale(norm)


register_method("ln_only", LayerNormOnly, name="LN-only floor", t5_base_params=47_616, bench_floor=True)
