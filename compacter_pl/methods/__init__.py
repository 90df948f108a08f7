"""Every fine-tuning method of the paper, one file each; a YAML picks one with `class_path`.

Adding a method: a file here with a `Method` subclass, one import line below, and (for the parameter report)
a row in `paper.py` if it is a row of the paper's Table 1.
"""

from compacter_pl.methods.base import Method, trainable_names, trainable_parameters
from compacter_pl.methods.full import FullFineTuning
from compacter_pl.methods.adapters import Adapter, AdapterDrop, AdapterLowRank, PfeifferAdapter
from compacter_pl.methods.prompt import PromptTuning
from compacter_pl.methods.said import IntrinsicSAID
from compacter_pl.methods.bitfit import BitFit
from compacter_pl.methods.compacter import Compacter, CompacterPlusPlus, PHMAdapter
from compacter_pl.methods.hf_peft import Peft
from compacter_pl.methods.layer_norm import LayerNormOnly

__all__ = [
    "Adapter",
    "AdapterDrop",
    "AdapterLowRank",
    "BitFit",
    "Compacter",
    "CompacterPlusPlus",
    "FullFineTuning",
    "IntrinsicSAID",
    "LayerNormOnly",
    "Method",
    "PHMAdapter",
    "Peft",
    "PfeifferAdapter",
    "PromptTuning",
    "trainable_names",
    "trainable_parameters",
]
