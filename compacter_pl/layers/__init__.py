"""The layers the methods add: bottleneck adapters and their projections (dense, low-rank, PHM / low-rank PHM),
the soft prompt, and Intrinsic-SAID's state over Fastfood projections. Methods (`compacter_pl.methods`) decide
where they go and what trains."""

from compacter_pl.layers.adapter import BottleneckAdapter, LowRankLinear, houlsby_linear
from compacter_pl.layers.fastfood import FastfoodProjection, fast_walsh_hadamard
from compacter_pl.layers.intrinsic_said import IntrinsicSAIDState, SAIDWeight
from compacter_pl.layers.phm import (
    LowRankPHMLinear,
    PHMLinear,
    SharedPHMRules,
    check_phm_shapes,
    choose_lphm_form,
    kronecker_sum,
    lphm_multiply_adds,
)
from compacter_pl.layers.prompt import SoftPrompt

__all__ = [
    "BottleneckAdapter",
    "FastfoodProjection",
    "IntrinsicSAIDState",
    "LowRankLinear",
    "LowRankPHMLinear",
    "PHMLinear",
    "SAIDWeight",
    "SharedPHMRules",
    "SoftPrompt",
    "check_phm_shapes",
    "choose_lphm_form",
    "fast_walsh_hadamard",
    "houlsby_linear",
    "kronecker_sum",
    "lphm_multiply_adds",
]
