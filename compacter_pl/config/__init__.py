"""Configuration and parsing, below the command line (`compacter_pl.cli`, which nothing in the package imports):
the program name as the user ran it (`program`), YAML files (`yaml_file`), jsonargparse's errors as one line
(`one_line`), the parsers of the commands beyond LightningCLI's (`commands`), and a run's configuration and its
in-process parser (`run`).

A run's parser loads when first read (`run_parser`, `parse_run`), so that a light reader (`program`, `load_yaml`:
the report, the sweep's messages) does not import LightningCLI."""

from importlib import import_module

from compacter_pl.config.commands import command_parser, run_command_line
from compacter_pl.config.one_line import OneLineErrorParser
from compacter_pl.config.program import program
from compacter_pl.config.yaml_file import load_yaml, read_yaml_file

_HOMES = {"parse_run": "run", "run_parser": "run"}
__all__ = [
    "OneLineErrorParser",
    "command_parser",
    "load_yaml",
    "parse_run",
    "program",
    "read_yaml_file",
    "run_command_line",
    "run_parser",
]


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(import_module(f"{__name__}.{_HOMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
