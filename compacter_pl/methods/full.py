"""T5 fine-tuning: every parameter trains (the paper's 100% baseline)."""

from transformers import T5ForConditionalGeneration

from compacter_pl.methods.base import Method


class FullFineTuning(Method):
    """All parameters of T5 train."""

    def apply(self, model: T5ForConditionalGeneration) -> None:
        for parameter in model.parameters():
            parameter.requires_grad_(True)
