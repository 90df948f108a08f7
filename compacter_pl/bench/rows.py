"""What `bench` measures: every method of `methods/paper.py` plus the layer-norm-only floor, with the settings of
the paper's Table 3, and the paper's own Table 3 numbers to compare with (SPEC section 5).

Table 3's settings (adapter size 24, n 4, 100 prompt tokens, SAID d' 1,400) are given by `__init__` argument
name; each method takes those its signature has (Compacter takes bottleneck and n, prompt tuning num_tokens, ...),
so no method is special-cased here.
"""

from __future__ import annotations

import inspect

from compacter_pl.methods import LayerNormOnly, Method
from compacter_pl.methods.paper import ALL_METHODS, MethodRow

# The floor: only the 62 layer norms train. Every adapter-style method trains them too and back-propagates through
# the whole frozen network to reach them; what it costs beyond this row is the cost of its own layers.
FLOOR = MethodRow("ln_only", "LN-only floor", LayerNormOnly, 47_616, 0.021, None)
BENCH_ROWS: tuple[MethodRow, ...] = ALL_METHODS + (FLOOR,)
REFERENCE = "full"  # Table 3 reports every method relative to T5 fine-tuning

# SPEC section 5: adapter size 24, n 4, 100 prompt tokens, SAID d' 1,400; by __init__ argument name.
TABLE3_SETTINGS = {"bottleneck": 24, "n": 4, "num_tokens": 100, "intrinsic_dim": 1400}

# The paper's Table 3 (T5-base, one epoch of MNLI, a 24 GB GPU): (memory %, time %) relative to fine-tuning.
PAPER_TABLE3: dict[str, tuple[float, float]] = {
    "adapter": (-35.45, -24.50),
    "pfeiffer": (-41.88, -33.09),
    "adapterdrop": (-40.68, -33.35),
    "adapter_lowrank": (-35.69, -22.36),
    "prompt_random": (24.42, 5.72),
    "prompt_vocab": (24.42, 5.72),
    "intrinsic_said": (41.14, 241.82),
    "bitfit": (-64.20, -35.06),
    "phm_adapter": (-35.55, -15.62),
    "compacter": (-35.57, -13.41),
    "compacter++": (-41.94, -26.51),
}


def bench_row(key: str) -> MethodRow:
    for row in BENCH_ROWS:
        if row.key == key:
            return row
    raise KeyError(key)


def accepted_settings(row: MethodRow, settings: dict) -> dict:
    """The settings whose names are `__init__` arguments of the row's method (a partial's own ones excluded)."""
    parameters = inspect.signature(row.build).parameters
    return {name: value for name, value in settings.items() if name in parameters}


def build_method(key: str, settings: dict | None = None) -> Method:
    """The method of `key` with Table 3's settings (or `settings`) where it takes them, defaults elsewhere."""
    row = bench_row(key)
    return row.build(**accepted_settings(row, TABLE3_SETTINGS if settings is None else settings))
