"""The rows of the paper's Table 1 as data: each method with its defaults, its T5-base parameter count
(SPEC section 2), the paper's percentage and learning rate. The parameter report, the shipped configs and the
tests read this table; nothing branches on a method's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from compacter_pl.methods import (
    Adapter,
    AdapterDrop,
    AdapterLowRank,
    BitFit,
    Compacter,
    CompacterPlusPlus,
    FullFineTuning,
    IntrinsicSAID,
    Method,
    Peft,
    PfeifferAdapter,
    PHMAdapter,
    PromptTuning,
)


@dataclass(frozen=True)
class MethodRow:
    """One method of the report.

    key: short name, also the config suffix (configs/rte_<key>.yaml) and the `params --methods` choice.
    name: as in the paper's Table 1.
    build: makes the method with the paper's defaults.
    t5_base_params: trainable parameters on T5-base (SPEC section 2); None when the paper has no row.
    tolerance: how far the count may be from t5_base_params (SPEC gives BitFit as "about 280,900").
    paper_percent: the paper's trainable share of T5-base in %.
    learning_rate: the paper's learning rate (Table 1 column), None when the paper has none.
    """

    key: str
    name: str
    build: Callable[[], Method]
    t5_base_params: int | None
    paper_percent: float | None
    learning_rate: float | None
    tolerance: int = 0


PAPER_METHODS: tuple[MethodRow, ...] = (
    MethodRow("full", "T5 fine-tuning", FullFineTuning, 222_903_552, 100.0, 3e-4),
    MethodRow("adapter", "Adapter", Adapter, 1_855_104, 0.832, 3e-4),
    MethodRow("pfeiffer", "Pfeiffer-Adapter", PfeifferAdapter, 951_360, 0.427, 3e-4),
    MethodRow("adapterdrop", "AdapterDrop", AdapterDrop, 1_101_984, 0.494, 3e-4),
    MethodRow("adapter_lowrank", "Adapter-LowRank", AdapterLowRank, 161_664, 0.073, 3e-3),
    MethodRow("prompt_random", "Prompt tuning-R", partial(PromptTuning, init="random"), 76_800, 0.034, 3e-2),
    MethodRow("prompt_vocab", "Prompt tuning-T", partial(PromptTuning, init="vocab"), 76_800, 0.034, 3e-1),
    MethodRow("intrinsic_said", "Intrinsic-SAID", IntrinsicSAID, 20_000, 0.009, 3e-2),
    MethodRow("bitfit", "BitFit", BitFit, 280_900, 0.126, 3e-4, tolerance=100),
    MethodRow("phm_adapter", "PHM-Adapter", PHMAdapter, 398_976, 0.179, 3e-3),
    MethodRow("compacter", "Compacter", Compacter, 161_728, 0.073, 3e-3),
    MethodRow("compacter++", "Compacter++", CompacterPlusPlus, 104_704, 0.047, 3e-3),
)

LORA_CONFIG = {"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q", "v"]}

# Not in the paper: today's methods through PEFT, for comparison in the same harness.
EXTRA_METHODS: tuple[MethodRow, ...] = (
    MethodRow("lora", "LoRA (PEFT, r 8, q v)", partial(Peft, LORA_CONFIG), None, None, None),
)

ALL_METHODS: tuple[MethodRow, ...] = PAPER_METHODS + EXTRA_METHODS


def method_row(key: str) -> MethodRow:
    for row in ALL_METHODS:
        if row.key == key:
            return row
    raise KeyError(key)
