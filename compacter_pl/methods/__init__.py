"""Every fine-tuning method of the paper, one file each; a YAML picks one with `class_path`."""

from compacter_pl.methods.base import Method, trainable_names, trainable_parameters
from compacter_pl.methods.full import FullFineTuning

__all__ = ["FullFineTuning", "Method", "trainable_names", "trainable_parameters"]
