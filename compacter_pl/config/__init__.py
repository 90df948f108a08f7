"""Configuration and parsing, below the command line (`compacter_pl.cli`, which nothing in the package imports):
the program name as the user ran it (`program`), YAML files (`yaml_file`), jsonargparse's errors as one line
(`one_line`), the parsers of the commands beyond LightningCLI's (`commands`), and a run's configuration and its
in-process parser (`run`)."""

from compacter_pl.config.commands import command_parser, run_command_line
from compacter_pl.config.one_line import OneLineErrorParser
from compacter_pl.config.program import program
from compacter_pl.config.run import parse_run, run_parser
from compacter_pl.config.yaml_file import load_yaml, read_yaml_file

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
