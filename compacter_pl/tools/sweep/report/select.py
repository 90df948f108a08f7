"""Choosing a configuration on validation, as the paper does: per task, method and size, the one with the best mean
validation score over seeds."""

import json
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass

from compacter_pl.errors import UserError
from compacter_pl.tools.sweep.report.aggregate import Stat
from compacter_pl.tools.sweep.report.records import metric_value

SELECT_ON = "val/score"  # what chooses a configuration: the mean of the task's metrics on validation


@dataclass(frozen=True)
class Selection:
    """The configuration chosen for a task, method and size, its validation Stat, how many were compared, and
    those left out for having fewer seeds than the most any configuration of the cell has: (name, seeds)."""

    task: str
    method: str
    size: int | None
    config: str
    val: Stat
    compared: int
    left_out: tuple[tuple[str, int], ...]


def check_selection(select_on: str) -> None:
    """Validation selects, never test: a configuration chosen on test scores would report an optimistic score."""
    stage, _, name = select_on.partition("/")
    if stage != "val" or not name:
        raise UserError(
            f"--select_on must be val/<name> (e.g. val/score), got {select_on!r}: configurations are "
            f"chosen on validation, as in the paper; one chosen on its test score would report an "
            f"optimistic test score"
        )


def select(records: list[dict], select_on: str = SELECT_ON) -> tuple[list[dict], list[Selection]]:
    """Per task, method and size: the records of the configuration with the best mean `select_on` over its seeds,
    and a Selection where there was a search. Only configurations with the most seeds of the cell compete (one
    missing a seed, unfinished or failed, is left out rather than compared on other seeds); a tie goes to the
    smaller values, axis by axis in the order of the sweep file's search."""
    check_selection(select_on)
    # (task, method, size) -> config -> {seed: record}
    cells: defaultdict[tuple, defaultdict[str, dict[int, dict]]] = defaultdict(lambda: defaultdict(dict))
    for record in records:
        cells[(record["task"], record["method"], record.get("size"))][record.get("config") or ""][record["seed"]] = (
            record
        )
    kept: list[dict] = []
    selections: list[Selection] = []
    for (task, method, size), configs in cells.items():
        if list(configs) == [""]:  # no search: nothing to choose
            kept += configs[""].values()
            continue
        scores = {
            c: [v for v in (metric_value(r, select_on) for r in seeds.values()) if v is not None]
            for c, seeds in configs.items()
        }
        most = max(map(len, scores.values()))
        if not most:
            raise UserError(f"no result of {task} {method} has {select_on} to choose a configuration on")
        candidates = [c for c, values in scores.items() if len(values) == most]
        best = min(candidates, key=lambda c: (-_finite(statistics.fmean(scores[c])), _order(configs[c])))
        kept += configs[best].values()
        selections.append(
            Selection(
                task,
                method,
                size,
                best,
                Stat.of(scores[best]),
                len(candidates),
                tuple((c, len(v)) for c, v in scores.items() if len(v) < most),
            )
        )
    return kept, selections


def _finite(value: float) -> float:
    return -math.inf if math.isnan(value) else value  # a diverged configuration loses


def _order(by_seed: dict[int, dict]) -> tuple:
    """A configuration's values as a sort key: numbers by value, anything else by its JSON text."""
    values = next(iter(by_seed.values())).get("search") or {}
    return tuple(
        (0, float(v), "")
        if isinstance(v, (int, float)) and not isinstance(v, bool)
        else (1, 0.0, json.dumps(v, sort_keys=True))
        for v in values.values()
    )
