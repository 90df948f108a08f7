"""T5 fine-tuning: every parameter trains (the paper's 100% baseline)."""

from transformers import T5ForConditionalGeneration

from compacter_pl.methods.base import Method
from compacter_pl.methods.registry import register_method


class FullFineTuning(Method):
    """All parameters of T5 train."""

    unmixable_reason = "every weight of the model is the task's own"

    def apply(self, model: T5ForConditionalGeneration) -> None:
        for parameter in model.parameters():
            parameter.requires_grad_(True)


register_method(
    "full",
    FullFineTuning,
    name="T5 fine-tuning",
    t5_base_params=222_903_552,
)
