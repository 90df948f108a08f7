"""The registered methods as the tools list them (`params`, `bench`), and what the paper says of each, by its key.

The registry (`compacter_pl.methods.registry`) knows our methods; the paper's facts about them are read from
`compacter_pl.tools.paper` (one file, keyed by the registry's keys): the paper's methods are the rows of its
Table 1 and are listed first, in that table's order, then the others (LoRA, bench's floor, a user's own) in
registration order; Table 1 gives each its trained share of T5-base, Table 4 its selected learning rate.

`PAPER_METHODS` and `ALL_METHODS` (every method but bench's floor) are computed when read, so they hold what is
registered by then.
"""

from __future__ import annotations

import compacter_pl.methods  # noqa: F401  (registers the package's methods)
from compacter_pl.methods import registry
from compacter_pl.methods.registry import RegisteredMethod
from compacter_pl.tools.paper import ScoreRow, paper

TABLE1 = 1  # the paper's main table: its rows are the paper's methods, in the order every listing follows
MethodRow = RegisteredMethod  # the name the parameter report and the tests know a row by


def _table1_rows() -> dict[str, ScoreRow]:
    """Table 1's row of each method, by key, in the table's order (one row per method)."""
    return {row.method: row for row in paper().table(TABLE1).rows}


def listed_methods() -> tuple[RegisteredMethod, ...]:
    """Every registered method: the paper's in Table 1's order, then the others in registration order."""
    order = {key: position for position, key in enumerate(_table1_rows())}
    return tuple(sorted(registry.registered_methods(), key=lambda e: order.get(e.key, len(order))))


def paper_methods() -> tuple[RegisteredMethod, ...]:
    """The registered methods that are rows of Table 1, in its order."""
    rows = _table1_rows()
    return tuple(e for e in listed_methods() if e.key in rows)


def report_methods() -> tuple[RegisteredMethod, ...]:
    """What the parameter report lists: every registered method but bench's floor."""
    return tuple(e for e in listed_methods() if not e.bench_floor)


def method_row(key: str) -> RegisteredMethod:
    return registry.method_entry(key)


def paper_percent(key: str) -> float | None:
    """Table 1's trained share of T5-base for the method, in % (None: not a row of Table 1)."""
    row = _table1_rows().get(key)
    return None if row is None else row.trained_percent


def paper_learning_rate(key: str) -> float | None:
    """The learning rate the paper selected for the method's Table 1 runs (its Table 4; None: not given)."""
    rates = paper().rates_for(paper().table(TABLE1))
    return None if rates is None else rates.rates.get(key)


def __getattr__(name: str):
    views = {"PAPER_METHODS": paper_methods, "ALL_METHODS": report_methods}
    if name in views:
        return views[name]()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
