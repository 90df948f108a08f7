"""`python cli.py params`: the trainable parameters of every method on a T5 architecture, offline.

Flow: CLI -> this command -> architectures (a model built on the meta device: no weights, no download) ->
each method's `apply` -> count what requires grad (what the optimizer and the checkpoint would hold).

    python cli.py params                                  # T5-base, every method, with the paper's percentages
    python cli.py params --model google/flan-t5-large --methods compacter compacter++ lora
    python cli.py params --model demo/tiny-t5 --json
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from compacter_pl.architectures import build_t5, canonical_name, count_parameters, known_architectures, t5_config
from compacter_pl.errors import UserError
from compacter_pl.methods.paper import ALL_METHODS, MethodRow

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
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
    return {"key": row.key, "name": row.name, "trainable": count_parameters(model, trainable_only=True),
            "error": None}


def parameter_report(model: str = "t5-base", methods: list[str] | None = None, dtype: str = "float32") -> dict:
    """Every method's trainable parameters, share of the model (%), the bytes of its export (the trainable
    parameters) and of its Lightning checkpoint (those plus AdamW's two moments; a few KiB of metadata aside)."""
    config = t5_config(model)
    total = count_parameters(build_t5(config, device="meta"))
    element_size = torch.empty((), dtype=DTYPES[dtype]).element_size()
    is_paper_model = canonical_name(str(model)) == PAPER_MODEL
    rows = [row for row in ALL_METHODS if methods is None or row.key in methods]
    report = []
    for row in rows:
        entry = method_report(row, config)
        trainable = entry["trainable"]
        entry["percent"] = None if trainable is None else 100.0 * trainable / total
        entry["checkpoint_bytes"] = None if trainable is None else trainable * element_size
        # A Lightning checkpoint holds the trainable parameters and AdamW's two float32 moments of each.
        entry["lightning_checkpoint_bytes"] = None if trainable is None else \
            trainable * element_size + 2 * trainable * 4
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
    header = ["method", "trainable", "% of model"] + (["paper %"] if with_paper else []) + \
        [f"export bytes ({report['dtype']})", "export", "Lightning ckpt"]
    lines = []
    for entry in report["methods"]:
        if entry["trainable"] is None:
            lines.append([entry["name"], "n/a", entry["error"]])
            continue
        paper = [] if not with_paper else \
            ["" if entry["paper_percent"] is None else f"{entry['paper_percent']:.3f}"]
        lines.append([entry["name"], f"{entry['trainable']:,}", f"{entry['percent']:.3f}", *paper,
                      f"{entry['checkpoint_bytes']:,}", _size(entry["checkpoint_bytes"]),
                      _size(entry["lightning_checkpoint_bytes"])])
    widths = [max(len(str(row[i])) for row in [header, *lines] if i < len(row) and len(row) == len(header))
              for i in range(len(header))]
    text = [f"{report['model']}: {report['total_parameters']:,} parameters"]
    for row in [header, *lines]:
        if len(row) != len(header):  # a method that cannot apply: its reason instead of numbers
            text.append(f"{row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]}")
            continue
        cells = [f"{row[0]:<{widths[0]}}"] + [f"{cell:>{width}}" for cell, width in zip(row[1:], widths[1:])]
        text.append("  ".join(cells).rstrip())
    return "\n".join(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python cli.py params",
        description="Trainable parameters of every method on a T5 architecture, offline (no weights are "
                    "downloaded: the model is built on the meta device).")
    parser.add_argument("--model", default="t5-base",
                        help="An architecture name (" + ", ".join(known_architectures()) + "; with or without "
                             "the google-t5/ or google/ prefix), a config.json, or a model directory. "
                             "Default: t5-base.")
    parser.add_argument("--methods", nargs="+", choices=[row.key for row in ALL_METHODS], metavar="METHOD",
                        help="Only these methods (default: all): " + ", ".join(row.key for row in ALL_METHODS))
    parser.add_argument("--dtype", choices=list(DTYPES), default="float32",
                        help="The element type of the saved trainable parameters (checkpoint bytes). "
                             "Default: float32.")
    parser.add_argument("--json", action="store_true", help="Print the report as JSON instead of a table.")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        report = parameter_report(args.model, args.methods, args.dtype)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps(report, indent=2) if args.json else format_table(report))
