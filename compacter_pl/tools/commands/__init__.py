"""Commands beyond LightningCLI's fit / validate / test / predict: a table, one module each, imported lazily."""

import importlib
from typing import NamedTuple


class Command(NamedTuple):
    module: str
    summary: str  # its line in the overview `--help` prints


COMMANDS = {  # name -> its module below compacter_pl.tools.commands, and its summary
    "params": Command("params", "Trainable parameters of every method on a T5 architecture (offline)."),
    "export": Command(
        "export", "A checkpoint's trained parameters as a small export with its model card (--push_to_hub)."
    ),
    "sweep": Command("sweep", "Run a grid of fits and tests: tasks x methods x sizes x seeds."),
    "report": Command("report", "The paper's tables and figure from sweeps' results."),
    "bench": Command("bench", "The paper's Table 3 on this machine: step time and memory."),
    "truncation": Command("truncation", "How many sources each data.truncation mode cuts, per split of a task."),
    "serve": Command("serve", "Many task adapters of one base model over HTTP, mixed in batches (LitServe)."),
}


def run_command(name: str, argv: list[str]) -> None:
    importlib.import_module(f"{__name__}.{COMMANDS[name].module}").main(argv)
