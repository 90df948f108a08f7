"""Beside the paper: each full-data run matched to the rows of the paper's tables it is
(`compacter_pl.tools.paper`), our numbers beside the paper's with the difference, and the learning rates the
paper selected."""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import overload

from compacter_pl.tools.paper import FILE as PAPER_FILE
from compacter_pl.tools.paper import ScoreRow, ScoreTable, matching_rows, paper
from compacter_pl.tools.sweep.report.aggregate import FullData
from compacter_pl.tools.sweep.report.methods import MODEL
from compacter_pl.tools.sweep.report.records import benchmark_of, display
from compacter_pl.tools.sweep.report.render import average_cell

MARKS = {"dagger": "†", "asterisk": "*"}


def paper_matches(record: dict) -> list[tuple[ScoreTable, ScoreRow]]:
    """The paper's rows a run is (`compacter_pl.tools.paper.matching_rows`): by the registered method its class and
    arguments are, every argument it ran with, its model and its task's benchmark. Nothing for a class that is no
    registered method, a run whose model is unknown, or arguments the paper has no row for."""
    import compacter_pl.methods  # noqa: F401  (registers the methods the records name)
    from compacter_pl.methods.registry import complete_init_args, entry_of_config, method_class

    cls = method_class(record.get("class_path") or "")
    if cls is None:
        return []
    arguments = record.get("method_init_args") or record.get("init_args")
    entry = entry_of_config(cls, arguments)
    if entry is None:
        return []
    model = record.get("model")
    return matching_rows(entry.key, complete_init_args(cls, arguments), model, benchmark_of(record["task"]))


@dataclass
class PaperSection:
    """Our runs beside one table of the paper: per (method, row) the tasks whose chosen runs are that row."""

    table: ScoreTable
    tasks: dict[tuple[str, int], list[str]]  # (our method, row index) -> tasks
    records: dict[tuple[str, int], list[dict]]


def paper_sections(records: list[dict]) -> list[PaperSection]:
    """The paper's tables our full-data runs match, in the paper's order."""
    sections: dict[int, PaperSection] = {}
    for record in records:
        if record.get("size") is not None:
            continue
        for table, row in paper_matches(record):
            section = sections.setdefault(table.number, PaperSection(table, {}, {}))
            key = (record["method"], table.rows.index(row))
            if record["task"] not in section.tasks.setdefault(key, []):
                section.tasks[key].append(record["task"])
            section.records.setdefault(key, []).append(record)
    return [sections[t.number] for t in paper().scores if t.number in sections]


def paper_learning_rates(records: list[dict]) -> dict[str, str]:
    """Per method, the learning rate the paper selected for the rows its runs match (`3e-4 (Table 4)`), for the
    tables whose rates the paper gives."""
    chosen: dict[str, dict[str, None]] = defaultdict(dict)
    for record in records:
        for table, row in paper_matches(record):
            rates = paper().rates_for(table)
            if rates is not None and row.method in rates.rates:
                chosen[record["method"]][f"{_rate(rates.rates[row.method])} (Table {rates.number})"] = None
    return {method: ", ".join(values) for method, values in chosen.items()}


def _rate(value: float) -> str:
    return f"{value:.0e}".replace("e-0", "e-")


def _one_configuration_note(section: PaperSection) -> str:
    """What a section's runs without a search are: the paper's selected configuration re-run, not its search."""
    rates = paper().rates_for(section.table)
    single, at_paper, elsewhere = [], [], []
    for (method, index), records in section.records.items():
        if any(r.get("config") for r in records):
            continue
        single.append(method)
        used = {r.get("learning_rate") for r in records}
        theirs = rates.rates.get(section.table.rows[index].method) if rates else None
        if theirs is not None and used == {theirs}:
            at_paper.append(method)
        elif theirs is not None:
            shown = ", ".join("an unknown learning rate" if u is None else _rate(u) for u in sorted(used, key=str))
            elsewhere.append(f"{method} at {shown} (the paper's: {_rate(theirs)})")
    if not single:
        return ""
    search = (
        "Appendix A's search (every learning rate of 3e-5 ... 3e-1, and every bottleneck of 96, 48, 24 for the "
        "adapters, chosen per task on validation)"
    )
    # at_paper holds a method only where the paper gives rates (rates is not None)
    if rates is not None and len(single) == len(section.records) and len(at_paper) == len(single):
        return (
            f"These runs re-run the paper's selected configuration (one run per method and task at the learning "
            f"rate of the paper's Table {rates.number}), not the paper's search: {search}. The differences say how "
            f"close the paper's configuration comes here, not what the search would give."
        )
    parts = [f"{', '.join(single)} ran one configuration each (no search), not {search}"]
    if at_paper and rates is not None:
        parts.append(f"{', '.join(at_paper)} at the learning rate the paper selected (Table {rates.number})")
    if elsewhere:
        parts.append("; ".join(elsewhere))
    return "; ".join(parts) + "."


def beside_paper(full: FullData, records: list[dict]) -> tuple[str, list[dict]]:
    """Per table of the paper our full-data test runs match: our numbers, the paper's row and the difference
    (markdown), and the paper's numbers shown (CSV rows). A run the paper has no row for is in no table."""
    if full.stage != "test":
        return "", []
    parts, rows = [], []
    sections = paper_sections(records)
    for section in sections:
        table = section.table
        tasks = [t for t in full.tasks if benchmark_of(t) == table.benchmark]
        header = [
            "method",
            "",
            *(f"{display(t)} ({'/'.join(full.metrics[t])})" for t in tasks),
            f"{table.benchmark} avg",
        ]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        order = {m: k for k, m in enumerate(full.methods)}
        marks: dict[str, None] = {}  # the rows' notes, each once, in order
        for method, index in sorted(section.tasks, key=lambda key: (order.get(key[0], len(order)), key[1])):
            row = table.rows[index]
            matched = section.tasks[(method, index)]
            ours = [full.cells.get((method, t, n)) if t in matched else None for t in tasks for n in full.metrics[t]]
            paper_values = [row.scores.get(t, {}).get(n) for t in tasks for n in full.metrics[t]]
            delta = [None if o is None or v is None else o.mean - v for o, v in zip(ours, paper_values, strict=True)]
            average = full.averages.get((method, table.benchmark))
            # the paper's average is over all of its tasks: a difference only when ours is over exactly those
            complete = average is not None and average[1] == len(table.tasks) and set(table.tasks) <= set(matched)
            mean_delta = average[0].mean - row.average if complete and average is not None else None
            shown = [
                None if v is None else _number(v) + (f" {MARKS[row.marks[t]]}" if t in row.marks else "")
                for (t, _), v in zip(((t, n) for t in tasks for n in full.metrics[t]), paper_values, strict=True)
            ]
            for note in row.notes:
                marks[note] = None
            for name, values, last in (
                ("ours", [None if o is None else o.cell() for o in ours], average_cell(average, len(table.tasks))),
                (f"paper: {row.label()}", shown, _number(row.average)),
                ("difference", [_number(d, "+") for d in delta], _number(mean_delta, "+")),
            ):
                cells = [method if name == "ours" else "", name, *_cells(values, full, tasks), last or ""]
                lines.append("| " + " | ".join(cells) + " |")
            rows += [
                {
                    "table": f"paper {table.name}",
                    "method": method,
                    "size": "full",
                    "task": t,
                    "metric": f"test/{n}",
                    "mean": f"{row.scores[t][n]:.6f}",
                    "runs": 0,
                    "config": row.label(),
                }
                for t in tasks
                for n in full.metrics[t]
                if n in row.scores.get(t, {})
            ]
        note = _one_configuration_note(section)
        parts += [
            f"## Beside the paper's {table.name} ({table.title}): test x 100",
            "",
            *lines,
            "",
            f"The paper's numbers: {table.name} of arXiv 2106.04647v2 (compacter_pl/tools/{PAPER_FILE}); a run "
            "goes beside the row of its method, model and the arguments the row stands for (n, d', the prompt's "
            "init, whether the output layer trains). Difference: ours − the paper's; for the average only when "
            "ours is over all of the table's tasks." + "".join(f" {n}" for n in marks),
            *(["", note] if note else []),
            "",
        ]
    unmatched = _unmatched(full, records, sections)
    if unmatched:
        parts += [
            "The paper has no row for: "
            + "; ".join(unmatched)
            + ". Its tables are for "
            + " and ".join(sorted({t.model for t in paper().scores}))
            + "; a run goes beside a row only when its method, model and arguments are the row's.",
            "",
        ]
    return "\n".join(parts), rows


def _unmatched(full: FullData, records: list[dict], sections: list[PaperSection]) -> list[str]:
    """Our methods with full-data test numbers that no table of the paper has a row for, with their model (unless
    the method's name says it)."""
    matched = {method for section in sections for method, _ in section.tasks}
    models: defaultdict[str, dict[str, None]] = defaultdict(dict)
    for record in records:
        if record.get("size") is None and record["method"] not in matched:
            models[record["method"]][str(record.get("model") or "model unknown")] = None
    return [
        m if all(f"{MODEL} = {model}" in m for model in models[m]) else f"{m} ({', '.join(models[m])})"
        for m in full.methods
        if m in models
    ]


@overload
def _number(value: float, sign: str = "") -> str: ...
@overload
def _number(value: float | None, sign: str = "") -> str | None: ...
def _number(value: float | None, sign: str = "") -> str | None:
    return None if value is None else f"{value:{sign}.2f}"


def _cells(values: Sequence[str | None], full: FullData, tasks: list[str]) -> list[str]:
    """A table cell per task from its metrics' values: empty if it has none, — for each missing one."""
    cells: list[str] = []
    remaining = iter(values)
    for task in tasks:
        own = [next(remaining) for _ in full.metrics[task]]
        cells.append("" if all(v is None for v in own) else " / ".join(v or "—" for v in own))
    return cells
