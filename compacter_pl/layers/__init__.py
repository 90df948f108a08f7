"""Layers used by the methods: PHM / low-rank PHM (Compacter) and Fastfood (Intrinsic-SAID)."""

from compacter_pl.layers.fastfood import FastfoodProjection, fast_walsh_hadamard
from compacter_pl.layers.phm import (
    LowRankPHMLinear,
    PHMLinear,
    SharedPHMRules,
    check_phm_shapes,
    choose_lphm_form,
    kronecker_sum,
    lphm_multiply_adds,
)

__all__ = [
    "FastfoodProjection",
    "LowRankPHMLinear",
    "PHMLinear",
    "SharedPHMRules",
    "check_phm_shapes",
    "choose_lphm_form",
    "fast_walsh_hadamard",
    "kronecker_sum",
    "lphm_multiply_adds",
]
