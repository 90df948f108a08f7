"""`python cli.py params`: the trainable parameters of every method on a T5 architecture, offline.

Flow: CLI -> this command -> architectures (a model built on the meta device: no weights, no download) ->
each method's `apply` -> count what requires grad (what the optimizer and the checkpoint would hold).

    python cli.py params                                  # T5-base, every method, with the paper's percentages
    python cli.py params --model google/flan-t5-large --methods compacter compacter++ lora
    python cli.py params --model demo/tiny-t5 --json
"""

from __future__ import annotations

from json import dumps
from typing import Literal

import torch

from compacter_pl.architectures import build_t5, canonical_name, count_parameters, t5_config
from compacter_pl.cli import run_command_line
from compacter_pl.errors import UserError
from compacter_pl.methods.paper import ALL_METHODS, MethodRow, report_methods

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
MethodKey = Literal[tuple(row.key for row in ALL_METHODS)]
DType = Literal[tuple(DTYPES)]
PAPER_MODEL = "google-t5/t5-base"  # the model of the paper's Table 1 percentages


def method_report(row: MethodRow, model_name_or_config) -> dict:
    """The trainable parameters of one method on a meta-device model; `error` says why a method cannot apply."""
    model = build_t5(model_name_or_config, device="meta")
    try:
        method = row.build()
        method.check(model.config)
        method.apply(model)
    except UserError as error:
        return {"key": row.key, "name": row.name, "trainable": None, "error": str(error)}
    return {"key": row.key, "name": row.name, "trainable": count_parameters(model, trainable_only=True), "error": None}


def parameter_report(model: str = "t5-base", methods: list[str] | None = None, dtype: str = "float32") -> dict:
    """Every method's trainable parameters, share of the model (%), the bytes of its export (the trainable
    parameters) and of its Lightning checkpoint (those plus AdamW's two moments; a few KiB of metadata aside)."""
    config = t5_config(model)
    total = count_parameters(build_t5(config, device="meta"))
    element_size = torch.empty((), dtype=DTYPES[dtype]).element_size()
    is_paper_model = canonical_name(str(model)) == PAPER_MODEL
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
        entry["paper_percent"] = row.paper_percent if is_paper_model else None
        report.append(entry)
    return {"model": str(model), "total_parameters": total, "dtype": dtype, "methods": report}


def _size(num_bytes: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if num_bytes < 1024 or unit == "GiB":
            return f"{num_bytes:.0f} {unit}" if unit == "B" else f"{num_bytes:.1f} {unit}"
        num_bytes /= 1024


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
    widths = [
        max(len(str(row[i])) for row in [header, *lines] if i < len(row) and len(row) == len(header))
        for i in range(len(header))
    ]
    text = [f"{report['model']}: {report['total_parameters']:,} parameters"]
    for row in [header, *lines]:
        if len(row) != len(header):  # a method that cannot apply: its reason instead of numbers
            text.append(f"{row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]}")
            continue
        cells = [f"{row[0]:<{widths[0]}}"] + [f"{cell:>{width}}" for cell, width in zip(row[1:], widths[1:])]
        text.append("  ".join(cells).rstrip())
    return "\n".join(text)


def params(
    model: str = "t5-base", methods: list[MethodKey] | None = None, dtype: DType = "float32", json: bool = False
) -> None:
    """Trainable parameters of every method on a T5 architecture, offline (no weights are downloaded: the model is
    built on the meta device), with their share of the model and the size of their export and Lightning checkpoint.

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
