"""Commands beyond LightningCLI's fit / validate / test / predict: a table, one module each, imported lazily."""

import importlib
from typing import NamedTuple


class Command(NamedTuple):
    module: str
    summary: str  # its line in the overview `--help` prints


COMMANDS = {
    "params": Command(
        "compacter_pl.commands.params", "Trainable parameters of every method on a T5 architecture (offline)."
    ),
    "export": Command("compacter_pl.commands.export", "A checkpoint's trained parameters as a small export."),
    "sweep": Command("compacter_pl.commands.sweep", "Run a grid of fits and tests: tasks x methods x sizes x seeds."),
    "report": Command("compacter_pl.commands.report", "The paper's tables and figure from sweeps' results."),
    "bench": Command("compacter_pl.commands.bench", "The paper's Table 3 on this machine: step time and memory."),
    "truncation": Command(
        "compacter_pl.commands.truncation", "How many sources each data.truncation mode cuts, per split of a task."
    ),
}


def run_command(name: str, argv: list[str]) -> None:
    importlib.import_module(COMMANDS[name].module).main(argv)
