"""Commands beyond LightningCLI's fit / validate / test / predict: a table, one module each, imported lazily."""

import importlib

COMMANDS = {
    "params": "compacter_pl.commands.params",
    "export": "compacter_pl.commands.export",
    "sweep": "compacter_pl.commands.sweep",
    "report": "compacter_pl.commands.report",
    "bench": "compacter_pl.commands.bench",
    "truncation": "compacter_pl.commands.truncation",
}


def run_command(name: str, argv: list[str]) -> None:
    importlib.import_module(COMMANDS[name]).main(argv)
