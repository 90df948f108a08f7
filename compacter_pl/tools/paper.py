"""The paper's published numbers (Compacter, arXiv 2106.04647v2), as typed tables: what `report`, `bench` and
`params` put beside ours.

The numbers live in `compacter_pl/tools/paper_results.yaml` (its header gives the conventions). This module is the
one reader of that file: it checks the file's shape when it loads it, so a mistake in it fails every tool at once,
and it answers the one question every tool asks, "which of the paper's rows is this run?" (`matching_rows`): a row
matches when its method (a registry key), model, benchmark and the arguments the row stands for (n, d', the prompt's
init and length, whether the output layer trains) agree with the run's; a run the paper has no row for matches
nothing, never a neighbour's row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.resources import files
from types import MappingProxyType

import yaml

PACKAGE, FILE = "compacter_pl.tools", "paper_results.yaml"
REFERENCE = "full"  # Table 3's deltas are relative to T5 fine-tuning


def _frozen(mapping) -> Mapping:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class ScoreRow:
    """One row of a score table: a method with the arguments it stands for, and its test scores (x 100).

    scores: task -> metric -> score, metrics named as `compacter_pl.tasks` names them.
    average: the printed average (the mean of every metric cell).
    total_params, trained: the paper's strings (`1.004`, `0.073%`).
    marks: task -> the paper's dagger or asterisk, explained in `notes`.
    counted_with: the settings beyond `args` (a bottleneck, d') with which our count reproduces `trained`, or the
        nearest the paper searched where none does (the notes say so); None where the file does not say.
    """

    table: int
    method: str
    args: Mapping
    source: str
    total_params: str
    trained: str
    scores: Mapping
    average: float
    marks: Mapping = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    counted_with: Mapping | None = None

    @property
    def trained_percent(self) -> float:
        """The printed trained share per task, in % (`0.073%` -> 0.073)."""
        return _percent(self.trained)

    def label(self) -> str:
        """How a report names the row: the method's name and its arguments (`Compacter (n = 4)`)."""
        from compacter_pl.methods.registry import method_entry

        shown = {k: v for k, v in self.args.items() if k in varying_args(self.method)}
        return method_entry(self.method).name + (f" ({arguments_text(shown)})" if shown else "")

    def cells(self) -> list[float]:
        """Every metric cell, in table order (what `average` is the mean of)."""
        return [value for metrics in self.scores.values() for value in metrics.values()]


_SYMBOLS = {"intrinsic_dim": "d'"}


def _percent(share: str) -> float:
    return float(share.rstrip("%"))


def varying_args(method: str) -> set[str]:
    """The arguments whose value tells the paper's rows of `method` apart (Compacter's n, Intrinsic-SAID's d'), not
    those every row of it shares (the prompts' 100 tokens, an init its registered key already names)."""
    values: dict[str, set[str]] = {}
    for table in paper().scores:
        for row in table.rows:
            if row.method == method:
                for name, value in row.args.items():
                    values.setdefault(name, set()).add(repr(value))
    return {name for name, seen in values.items() if len(seen) > 1}


def _value(value) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) and value >= 10_000 else str(value)


def arguments_text(arguments: Mapping) -> str:
    """Arguments as a row's label shows them, the paper's symbols for its names: `n = 4`, `d' = 20,000`."""
    return ", ".join(f"{_SYMBOLS.get(k, k)} = {_value(v)}" for k, v in arguments.items())


@dataclass(frozen=True)
class ScoreTable:
    """A table of test scores: its rows, for one model and benchmark; `args` hold for every row whose method
    takes them; `learning_rates` is the number of the table that gives these runs' selected rates (or None)."""

    number: int
    title: str
    caption: str
    model: str
    benchmark: str
    tasks: tuple[str, ...]
    args: Mapping
    learning_rates: int | None
    rows: tuple[ScoreRow, ...]
    notes: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f"Table {self.number}"


@dataclass(frozen=True)
class LearningRates:
    """The learning rate the paper selected for each method (registry key) in the runs of `for_table`."""

    number: int
    caption: str
    for_table: int
    model: str
    benchmark: str
    source: str
    rates: Mapping
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class EfficiencyRow:
    """A method's row of Table 3: peak memory (MB), minutes per epoch of MNLI, and the deltas as printed."""

    method: str
    args: Mapping
    trained: str
    memory_mb: float
    time_min: float
    memory_delta_printed: float | None = None
    time_delta_printed: float | None = None
    notes: tuple[str, ...] = ()

    @property
    def trained_percent(self) -> float:
        """The printed trained share, in % (`0.179%` -> 0.179)."""
        return _percent(self.trained)


@dataclass(frozen=True)
class Efficiency:
    """Table 3, with the deltas recomputed the same way on both sides: against T5 fine-tuning's row."""

    number: int
    caption: str
    model: str
    setup: str
    source: str
    rows: tuple[EfficiencyRow, ...]
    notes: tuple[str, ...] = ()

    def row(self, method: str) -> EfficiencyRow | None:
        return next((r for r in self.rows if r.method == method), None)

    @property
    def reference(self) -> EfficiencyRow:
        """T5 fine-tuning's row, which every delta divides by."""
        row = self.row(REFERENCE)
        if row is None:
            raise ValueError(f"Table 3 has no {REFERENCE!r} row to compare with")
        return row

    def memory_delta(self, method: str) -> float | None:
        """(memory - memory_T5) / memory_T5 in %: against T5 fine-tuning, as the time deltas are (the printed
        memory deltas divide by the method's own memory instead)."""
        row, reference = self.row(method), self.reference
        return None if row is None else 100.0 * (row.memory_mb - reference.memory_mb) / reference.memory_mb

    def time_delta(self, method: str) -> float | None:
        """(time - time_T5) / time_T5 in %, as printed."""
        row, reference = self.row(method), self.reference
        return None if row is None else 100.0 * (row.time_min - reference.time_min) / reference.time_min


@dataclass(frozen=True)
class Paper:
    source: str
    scores: tuple[ScoreTable, ...]
    learning_rates: tuple[LearningRates, ...]
    efficiency: Efficiency

    def table(self, number: int) -> ScoreTable:
        return next(t for t in self.scores if t.number == number)

    def rates_for(self, table: ScoreTable) -> LearningRates | None:
        """The learning rates the paper selected for the runs of `table` (None: the paper does not give them)."""
        return next((r for r in self.learning_rates if r.number == table.learning_rates), None)


class PaperFileError(ValueError):
    """The shipped paper file does not have the shape this module reads (a packaging mistake, not a user's)."""


def _require(entry: Mapping, keys: dict[str, type | tuple], where: str) -> None:
    if not isinstance(entry, Mapping):
        raise PaperFileError(f"{FILE}: {where} is not a mapping")
    for key, kind in keys.items():
        if not isinstance(entry.get(key), kind) or isinstance(entry.get(key), bool) and bool not in _tuple(kind):
            raise PaperFileError(f"{FILE}: {where} needs {key!r} of type {kind}, got {entry.get(key)!r}")


def _tuple(kind) -> tuple:
    return kind if isinstance(kind, tuple) else (kind,)


NUMBER = (int, float)


def _score_table(entry: Mapping) -> ScoreTable:
    where = f"scores table {entry.get('table')!r}"
    _require(
        entry,
        {"table": int, "title": str, "caption": str, "model": str, "benchmark": str, "tasks": list, "rows": list},
        where,
    )
    rows = []
    for k, row in enumerate(entry["rows"]):
        at = f"{where} row {k + 1}"
        _require(
            row,
            {
                "method": str,
                "args": dict,
                "source": str,
                "total_params": str,
                "trained": str,
                "scores": dict,
                "average": NUMBER,
            },
            at,
        )
        for task, metrics in row["scores"].items():
            if task not in entry["tasks"] or not isinstance(metrics, dict):
                raise PaperFileError(f"{FILE}: {at} scores task {task!r}, not one of the table's tasks")
            if not all(isinstance(v, NUMBER) and not isinstance(v, bool) for v in metrics.values()):
                raise PaperFileError(f"{FILE}: {at} has a score of {task} that is not a number")
        if not isinstance(row.get("counted_with", {}), dict):
            raise PaperFileError(f"{FILE}: {at} has counted_with that is not a mapping")
        rows.append(
            ScoreRow(
                entry["table"],
                row["method"],
                _frozen(row["args"]),
                row["source"],
                row["total_params"],
                row["trained"],
                _frozen({task: _frozen(metrics) for task, metrics in row["scores"].items()}),
                float(row["average"]),
                _frozen(row.get("marks")),
                tuple(row.get("notes") or ()),
                _frozen(row["counted_with"]) if "counted_with" in row else None,
            )
        )
    return ScoreTable(
        entry["table"],
        entry["title"],
        entry["caption"],
        entry["model"],
        entry["benchmark"],
        tuple(entry["tasks"]),
        _frozen(entry.get("args")),
        entry.get("learning_rates"),
        tuple(rows),
        tuple(entry.get("notes") or ()),
    )


def _learning_rates(entry: Mapping) -> LearningRates:
    where = f"learning_rates table {entry.get('table')!r}"
    _require(
        entry,
        {"table": int, "caption": str, "for_table": int, "model": str, "benchmark": str, "source": str, "rates": dict},
        where,
    )
    if not all(isinstance(v, float) and v > 0 for v in entry["rates"].values()):
        raise PaperFileError(f"{FILE}: {where} has a rate that is not a positive float (write 3.0e-4, not 3e-4)")
    return LearningRates(
        entry["table"],
        entry["caption"],
        entry["for_table"],
        entry["model"],
        entry["benchmark"],
        entry["source"],
        _frozen(entry["rates"]),
        tuple(entry.get("notes") or ()),
    )


def _efficiency(entry: Mapping) -> Efficiency:
    _require(
        entry, {"table": int, "caption": str, "model": str, "setup": str, "source": str, "rows": list}, "efficiency"
    )
    rows = []
    for k, row in enumerate(entry["rows"]):
        _require(
            row,
            {"method": str, "args": dict, "trained": str, "memory_mb": NUMBER, "time_min": NUMBER},
            f"efficiency row {k + 1}",
        )
        rows.append(
            EfficiencyRow(
                row["method"],
                _frozen(row["args"]),
                row["trained"],
                float(row["memory_mb"]),
                float(row["time_min"]),
                row.get("memory_delta_printed"),
                row.get("time_delta_printed"),
                tuple(row.get("notes") or ()),
            )
        )
    efficiency = Efficiency(
        entry["table"],
        entry["caption"],
        entry["model"],
        entry["setup"],
        entry["source"],
        tuple(rows),
        tuple(entry.get("notes") or ()),
    )
    if efficiency.row(REFERENCE) is None:
        raise PaperFileError(f"{FILE}: efficiency has no row of {REFERENCE!r}, the reference of its deltas")
    return efficiency


@lru_cache(maxsize=1)
def paper() -> Paper:
    """The paper's tables, read from the package and checked once per process."""
    data = yaml.safe_load(files(PACKAGE).joinpath(FILE).read_text(encoding="utf-8"))
    _require(data, {"source": str, "scores": list, "learning_rates": list, "efficiency": dict}, "the file")
    return Paper(
        data["source"],
        tuple(map(_score_table, data["scores"])),
        tuple(map(_learning_rates, data["learning_rates"])),
        _efficiency(data["efficiency"]),
    )


# --- matching a run to the paper's rows ------------------------------------------------------------------------


def same_model(ours: str | None, theirs: str) -> bool:
    """Whether a run's model is the paper's (by its Hub name or an alias of it: `t5-base`, `google-t5/t5-base`)."""
    from compacter_pl.architectures import canonical_name

    return ours is not None and canonical_name(str(ours)) == canonical_name(theirs)


def _agrees(arguments: Mapping, wanted: Mapping, strict: bool) -> bool:
    """Whether `arguments` (a run's, complete) have the `wanted` values; an argument the method does not take
    fails a row's own args (`strict`) and is ignored for a table's."""
    return all((arguments[k] == v) if k in arguments else not strict for k, v in wanted.items())


def matching_rows(
    method: str, arguments: Mapping, model: str | None, benchmark: str
) -> list[tuple[ScoreTable, ScoreRow]]:
    """The paper's rows a run matches, table by table: its method key, model, benchmark and arguments (complete:
    `registry.complete_init_args`) agree with the row's. At most one row per table."""
    found = []
    for table in paper().scores:
        if table.benchmark != benchmark or not same_model(model, table.model):
            continue
        if not _agrees(arguments, table.args, strict=False):
            continue
        row = next(
            (r for r in table.rows if r.method == method and _agrees(arguments, r.args, strict=True)),
            None,
        )
        if row is not None:
            found.append((table, row))
    return found
