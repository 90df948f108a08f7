"""The methods as the parameter report lists them (the `params` command), a view of the registry
(`compacter_pl.methods.registry`), where each method registers its Table 1 row next to its class.

`PAPER_METHODS` are the rows of the paper's Table 1, in its order; `ALL_METHODS` adds the registered methods the
paper has no row for (LoRA, a user's own), not bench's floor. Both are read when imported from here, so they hold
what is registered by then.
"""

from __future__ import annotations

from compacter_pl.methods import registry
from compacter_pl.methods.registry import RegisteredMethod

MethodRow = RegisteredMethod  # the name the parameter report and the tests know a row by


def paper_methods() -> tuple[RegisteredMethod, ...]:
    return tuple(e for e in registry.registered_methods() if e.paper is not None)


def report_methods() -> tuple[RegisteredMethod, ...]:
    return tuple(e for e in registry.registered_methods() if not e.bench_floor)


def method_row(key: str) -> RegisteredMethod:
    return registry.method_entry(key)


def __getattr__(name: str):
    # Computed when read, not when this module is imported: importing compacter_pl.methods imports this module
    # before it has imported (and so registered) every method.
    views = {
        "PAPER_METHODS": paper_methods,
        "ALL_METHODS": report_methods,
    }
    if name in views:
        return views[name]()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
