"""The `params` command: the trainable parameters of every method on a T5 architecture, offline.

Flow: CLI -> this command -> architectures (a model built on the meta device: no weights, no download) ->
each method's `apply` -> count what requires grad (what the optimizer and the checkpoint would hold).

Examples (after the program: `python cli.py`, `compacter-pl`):

    params                                  # T5-base, every method, beside the paper's Table 1
    params --model t5-small                 # beside Table 9, and what reproduces each share
    params --model google/flan-t5-large --methods compacter compacter++ lora
    params --model demo/tiny-t5 --json
"""

from __future__ import annotations

from json import dumps
from typing import TYPE_CHECKING, Literal, get_args

import torch

from compacter_pl.architectures import build_t5, count_parameters, t5_config
from compacter_pl.config import run_command_line
from compacter_pl.errors import UserError
from compacter_pl.methods.registry import complete_init_args, method_entry
from compacter_pl.text_table import text_table
from compacter_pl.tools.methods import ALL_METHODS, MethodRow, report_methods
from compacter_pl.tools.paper import ScoreRow, ScoreTable, matching_rows, paper, same_model

DType = Literal["float32", "bfloat16", "float16"]
DTYPES: dict[str, torch.dtype] = {name: getattr(torch, name) for name in get_args(DType)}
# A Literal built at run time: a plain string to a type checker (as bench's MethodKey). Only a list parameter may
# take it: command_parser reads a list's element type with typing.get_type_hints, while jsonargparse, which
# resolves the other parameters' annotations, runs TYPE_CHECKING blocks.
if TYPE_CHECKING:
    MethodKey = str
else:
    MethodKey = Literal[tuple(row.key for row in ALL_METHODS)]
SETTING_NAMES = {"intrinsic_dim": "d'"}  # as the paper writes it


def method_report(row: MethodRow, model_name_or_config, **overrides) -> dict:
    """The trainable parameters of one method (its key's arguments, then `overrides`) on a meta-device model;
    `error` says why a method cannot apply."""
    model = build_t5(model_name_or_config, device="meta")
    try:
        method = row.build(**overrides)
        method.check(model.config)
        method.apply(model)
    except UserError as error:
        return {"key": row.key, "name": row.name, "trainable": None, "error": str(error)}
    return {"key": row.key, "name": row.name, "trainable": count_parameters(model, trainable_only=True), "error": None}


def counted_tables(model: str) -> tuple[ScoreTable, ...]:
    """The paper's score tables of `model` whose rows say what reproduces their trained shares (`counted_with`):
    Table 1 for T5-base, Table 9 for T5-small, none for a model the paper did not train."""
    return tuple(
        table
        for table in paper().scores
        if same_model(model, table.model) and any(row.counted_with is not None for row in table.rows)
    )


def _paper_row(row: MethodRow, model: str, tables: tuple[ScoreTable, ...]) -> ScoreRow | None:
    """The row of `tables` that the method at its defaults is (Compacter: n 4; PHM-Adapter's n 12 has none in
    Table 9), by the rule the report matches runs with."""
    arguments = complete_init_args(row.cls, row.init_args)
    for table in tables:
        found = matching_rows(row.key, arguments, model, table.benchmark)
        match = next((paper_row for t, paper_row in found if t is table), None)
        if match is not None:
            return match
    return None


def printed_decimals(printed: str) -> int:
    """The precision the paper prints a share to (`0.090%` -> 3, `100%` -> 0)."""
    return len(printed.rstrip("%").partition(".")[2])


def paper_row_report(table: ScoreTable, row: ScoreRow, config, total: int) -> dict:
    """One printed share of `table` beside our count with the row's arguments and its `counted_with` settings,
    and whether that count, as a share of the model, rounds to the printed one."""
    assert row.counted_with is not None, f"{row.label()}: parameter_report passes only rows with counted_with"
    entry = method_entry(row.method)
    takes = complete_init_args(entry.cls, entry.init_args)
    # The table's arguments (train_output_layer) hold for each method that takes them.
    overrides = {k: v for k, v in table.args.items() if k in takes} | dict(row.args) | dict(row.counted_with)
    counted = method_report(entry, config, **overrides)
    trainable = counted["trainable"]
    percent = None if trainable is None else 100.0 * trainable / total
    return {
        "key": row.method,
        "name": row.label(),
        "args": dict(row.args),
        "trained": row.trained,
        "paper_percent": row.trained_percent,
        "counted_with": dict(row.counted_with),
        "trainable": trainable,
        "percent": percent,
        "reproduced": percent is not None and round(percent, printed_decimals(row.trained)) == row.trained_percent,
        "error": counted["error"],
    }


def parameter_report(model: str = "t5-base", methods: list[str] | None = None, dtype: str = "float32") -> dict:
    """Every method's trainable parameters, share of the model (%), the bytes of its export (the trainable
    parameters) and of its Lightning checkpoint (those plus AdamW's two moments; a few KiB of metadata aside).

    Where the paper has a table for the model (`counted_tables`), each method's `paper_percent` is the share that
    table prints for the method at its defaults, and `paper` lists every printed share of the table beside our
    count with the settings that reproduce it."""
    config = t5_config(model)
    total = count_parameters(build_t5(config, device="meta"))
    element_size = torch.empty((), dtype=DTYPES[dtype]).element_size()
    tables = counted_tables(str(model))
    rows = [row for row in report_methods() if methods is None or row.key in methods]
    report = []
    for row in rows:
        entry = method_report(row, config)
        trainable = entry["trainable"]
        entry["percent"] = None if trainable is None else 100.0 * trainable / total
        entry["checkpoint_bytes"] = None if trainable is None else trainable * element_size
        # A Lightning checkpoint holds the trainable parameters and AdamW's two float32 moments of each.
        entry["lightning_checkpoint_bytes"] = (
            None if trainable is None else trainable * element_size + 2 * trainable * 4
        )
        paper_row = _paper_row(row, str(model), tables)
        entry["paper_percent"] = None if paper_row is None else paper_row.trained_percent
        report.append(entry)
    keys = {row.key for row in rows}
    shares = [
        {
            "table": table.number,
            "title": table.title,
            "rows": [
                paper_row_report(table, paper_row, config, total)
                for paper_row in table.rows
                if paper_row.method in keys and paper_row.counted_with is not None
            ],
        }
        for table in tables
    ]
    return {"model": str(model), "total_parameters": total, "dtype": dtype, "methods": report, "paper": shares}


def _size(num_bytes: int) -> str:
    if num_bytes < 1024:
        return f"{num_bytes:.0f} B"
    size = num_bytes / 1024
    for unit in ("KiB", "MiB"):
        if size < 1024:
            return f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def format_table(report: dict) -> str:
    """The report as an aligned text table."""
    with_paper = any(entry["paper_percent"] is not None for entry in report["methods"])
    header = (
        ["method", "trainable", "% of model"]
        + (["paper %"] if with_paper else [])
        + [f"export bytes ({report['dtype']})", "export", "Lightning ckpt"]
    )
    lines = []
    for entry in report["methods"]:
        if entry["trainable"] is None:
            lines.append([entry["name"], "n/a", entry["error"]])
            continue
        paper = [] if not with_paper else ["" if entry["paper_percent"] is None else f"{entry['paper_percent']:.3f}"]
        lines.append(
            [
                entry["name"],
                f"{entry['trainable']:,}",
                f"{entry['percent']:.3f}",
                *paper,
                f"{entry['checkpoint_bytes']:,}",
                _size(entry["checkpoint_bytes"]),
                _size(entry["lightning_checkpoint_bytes"]),
            ]
        )
    # a method that cannot apply: its reason, spanning the columns, instead of numbers
    text = [f"{report['model']}: {report['total_parameters']:,} parameters", *text_table([header, *lines])]
    for table in report["paper"]:
        text += ["", *_paper_table(table)]
    return "\n".join(text)


def _settings(counted_with: dict) -> str:
    return ", ".join(f"{SETTING_NAMES.get(k, k)} {v:,}" for k, v in counted_with.items())


def _paper_table(table: dict) -> list[str]:
    """A table's printed shares beside our counts, one line per row of the paper (Compacter: one per n)."""
    header = ["row", "printed", "counted with", "trainable", "% of model", "reproduced"]
    lines = []
    for row in table["rows"]:
        if row["trainable"] is None:
            lines.append([row["name"], row["trained"], _settings(row["counted_with"]), "n/a", "", row["error"]])
            continue
        decimals = max(3, printed_decimals(row["trained"]))
        reproduced = "yes" if row["reproduced"] else "no"
        counted = [f"{row['trainable']:,}", f"{row['percent']:.{decimals}f}", reproduced]
        lines.append([row["name"], row["trained"], _settings(row["counted_with"]), *counted])
    title = f"Table {table['table']} of the paper ({table['title']})"
    text = [
        f"{title}: our count with the settings that reproduce each share",
        *text_table([header, *lines], "<><>><"),  # names and settings read from the left, numbers from the right
    ]
    if any(row["trainable"] is not None and not row["reproduced"] for row in table["rows"]):
        text.append(
            "no: no setting the paper searched reproduces the share; counted with the nearest (paper_results.yaml)"
        )
    return text


def params(
    model: str = "t5-base", methods: list[MethodKey] | None = None, dtype: DType = "float32", json: bool = False
) -> None:
    """Trainable parameters of every method on a T5 architecture, offline (no weights are downloaded: the model is
    built on the meta device), with their share of the model and the size of their export and Lightning checkpoint.
    For t5-base and t5-small, the paper's table of the model (Table 1, Table 9) beside: each printed share, with
    the settings that reproduce it and our count with them.

    Args:
        model: An architecture name (t5-small, t5-base, t5-large, t5-v1_1-*, flan-t5-*, mt5-*; with or without the
            google-t5/ or google/ prefix), a config.json, or a model directory.
        methods: Only these methods (default: all).
        dtype: The element type of the saved trainable parameters (checkpoint bytes).
        json: Print the report as JSON instead of a table.
    """
    report = parameter_report(model, methods, dtype)
    print(dumps(report, indent=2) if json else format_table(report))


def main(argv: list[str]) -> None:
    run_command_line(params, argv, "params")
