"""What `bench` measures: every registered method (`compacter_pl.methods.registry`), the layer-norm-only floor
among them, each with its settings of the paper's Table 3 (Section 5.5; the paper's numbers are
`compacter_pl.tools.paper`'s, put beside ours by `beside_paper.py`).

Table 3's settings (adapter size 24, n 4, 100 prompt tokens, SAID d' 1,400) are its rows' `args` in
`paper_results.yaml`, by registry key: a method is built with its own row's, and a method the paper has no row for
(LoRA, the floor, a user's own) with its defaults. No argument name is matched across methods.
"""

from __future__ import annotations

from collections.abc import Mapping

from compacter_pl.methods import Method, registry
from compacter_pl.methods.registry import RegisteredMethod
from compacter_pl.tools.methods import listed_methods
from compacter_pl.tools.paper import paper  # Table 3: relative to T5 fine-tuning

# Every registered method; the floor is the one registered as bench_floor: only the 62 layer norms train. Every
# adapter-style method trains them too and back-propagates through the whole frozen network to reach them; what
# it costs beyond that row is the cost of its own layers.
BENCH_ROWS: tuple[RegisteredMethod, ...] = listed_methods()  # the paper's in Table 1's order, then the others
FLOOR: RegisteredMethod = next(row for row in BENCH_ROWS if row.bench_floor)

# Table 3 (Section 5.5): each method's arguments, by key (adapter size 24, n 4, 100 prompt tokens, SAID d' 1,400).
TABLE3_SETTINGS: dict[str, dict] = {row.method: dict(row.args) for row in paper().efficiency.rows if row.args}


def bench_row(key: str) -> RegisteredMethod:
    return registry.method_entry(key)


def build_method(key: str, settings: Mapping[str, Mapping] | None = None) -> Method:
    """The method of `key` with its arguments in `settings` (by key; default: Table 3's), defaults elsewhere."""
    row = bench_row(key)
    return row.build(**dict((TABLE3_SETTINGS if settings is None else settings).get(key) or {}))
