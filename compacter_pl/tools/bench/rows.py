"""What `bench` measures: every registered method (`compacter_pl.methods.registry`), the layer-norm-only floor
among them, with the settings of the paper's Table 3 (Section 5.5; the paper's numbers are
`compacter_pl.tools.paper`'s, put beside ours by `beside_paper.py`).

Table 3's settings (adapter size 24, n 4, 100 prompt tokens, SAID d' 1,400) are the benchmark's, given by
`__init__` argument name; each method takes those its signature has (Compacter takes bottleneck and n, prompt
tuning num_tokens, ...), so no method is special-cased here.
"""

from __future__ import annotations

import inspect

from compacter_pl.methods import Method, registry
from compacter_pl.methods.registry import RegisteredMethod
from compacter_pl.tools.methods import listed_methods

# Every registered method; the floor is the one registered as bench_floor: only the 62 layer norms train. Every
# adapter-style method trains them too and back-propagates through the whole frozen network to reach them; what
# it costs beyond that row is the cost of its own layers.
BENCH_ROWS: tuple[RegisteredMethod, ...] = listed_methods()  # the paper's in Table 1's order, then the others
FLOOR: RegisteredMethod = next(row for row in BENCH_ROWS if row.bench_floor)
REFERENCE: str = next(row.key for row in BENCH_ROWS if row.bench_reference)  # Table 3: relative to T5 fine-tuning

# Table 3 (Section 5.5): adapter size 24, n 4, 100 prompt tokens, SAID d' 1,400; by __init__ argument name.
TABLE3_SETTINGS = {"bottleneck": 24, "n": 4, "num_tokens": 100, "intrinsic_dim": 1400}


def bench_row(key: str) -> RegisteredMethod:
    return registry.method_entry(key)


def accepted_settings(row: RegisteredMethod, settings: dict) -> dict:
    """The settings whose names are `__init__` arguments of the row's method (those its key sets excluded)."""
    parameters = inspect.signature(row.cls).parameters
    return {name: value for name, value in settings.items() if name in parameters and name not in row.init_args}


def build_method(key: str, settings: dict | None = None) -> Method:
    """The method of `key` with Table 3's settings (or `settings`) where it takes them, defaults elsewhere."""
    row = bench_row(key)
    return row.build(**accepted_settings(row, TABLE3_SETTINGS if settings is None else settings))
