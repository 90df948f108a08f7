"""Records checked against their task's declared schema (`Task.schema`, types in compacter_pl.tasks.schema) as they
are loaded, before anything is rendered, tokenized or cached. The first record that does not fit is named by where
it is (`Origin`: a file and its line or row, or a Hub split and its row), with the field, what it holds and what the
task expects, in one line."""

from functools import cached_property
from pathlib import Path

import datasets

from compacter_pl.errors import UserError
from compacter_pl.tasks import Task

CSV_HINT = " (a CSV file flattens lists and objects to text: use JSON Lines or parquet)"


class Origin:
    """Where the records of a split come from, for messages: a local file (`path`) or a Hub split (`name`)."""

    def __init__(self, name: str, path: Path | None = None) -> None:
        self.name = name
        self.path = path

    def __str__(self) -> str:
        return self.name

    @cached_property
    def json_lines(self) -> bool:
        """A JSON Lines file (.jsonl, or .json that is not one array): its records are named by their lines."""
        if self.path is None or self.path.suffix not in (".jsonl", ".json"):
            return False
        with open(self.path, "rb") as file:
            start = file.read(1 << 12).lstrip()
        return self.path.suffix == ".jsonl" or not start.startswith(b"[")

    def at(self, index: int) -> str:
        """The record at `index` (from 0): `FILE, line N` for JSON Lines (the readers skip blank lines; N counts
        them), else `NAME, row N`."""
        if self.path is not None and self.json_lines:
            return f"{self.name}, line {_line_of(self.path, index)}"
        return f"{self.name}, row {index + 1}"


def _line_of(path: Path, index: int) -> int:
    """The line number (from 1) of the record at `index` of a JSON Lines file."""
    seen = -1
    with open(path, "rb") as file:
        for number, line in enumerate(file, start=1):
            seen += bool(line.strip())
            if seen == index:
                return number
    return index + 1


def check_records(task: Task, records: datasets.Dataset, origin: Origin) -> None:
    """A UserError for the first record of a split just loaded that lacks a column the task needs or whose value
    does not fit the task's schema; each field is checked over its whole Arrow column at once."""
    missing = [c for c in task.columns if c not in records.column_names]
    if missing:
        raise UserError(
            f"{origin} lacks column {missing[0]!r} that task {task.name} needs (it has "
            f"{', '.join(records.column_names)}); the files must follow the Hub's schema"
        )
    table = records.flatten_indices().data if records._indices is not None else records.data
    found = []
    for name, (field_type, required) in task.schema.items():
        if name in records.column_names:
            problem = field_type.first_problem(table.column(name), required)
            if problem is not None:
                found.append((problem[0], name, problem[1]))
    if found:
        index, name, what = min(found, key=lambda misfit: misfit[0])  # the first record; ties: the schema's order
        field_type = task.schema[name][0]
        csv = origin.path is not None and origin.path.suffix == ".csv"
        hint = CSV_HINT if csv and field_type.nested and what == "a string" else ""
        raise UserError(f"{origin.at(index)}: field {name} is {what}, expected {field_type.expected()}{hint}")


def input_problem(task: Task, record: dict) -> str | None:
    """What is wrong with the input fields of one raw record (a `predict` input), or None."""
    for name in task.input_fields:
        if name not in record:
            return f"lacks field {name!r} that {task.name} needs"
        field_type = task.schema[name][0]
        what = field_type.problem(record[name])
        if what is not None:
            return f"field {name} is {what}, expected {field_type.expected()}"
    return None
