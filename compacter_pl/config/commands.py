"""The parsers of the commands beyond LightningCLI's (`params`, `export`, `sweep`, `report`, `bench`): a command is
a function, or a dataclass of options, whose typed and documented parameters jsonargparse makes its options (as it
makes fit's from the classes' signatures), so every command takes its options, `--config` and `--help` alike."""

import inspect
import typing

import docstring_parser
from jsonargparse import ActionConfigFile

from compacter_pl.config.one_line import OneLineErrorParser
from compacter_pl.config.program import program


def _list_element(hint):
    """The element type of a list parameter (`list[X]`, `list[X] | None`), else None."""
    listed = [arg for arg in (hint, *typing.get_args(hint)) if typing.get_origin(arg) is list]
    return typing.get_args(listed[0])[0] if listed else None


def command_parser(component, command: str, positional: tuple[str, ...] = ()) -> OneLineErrorParser:
    """The parser of the command `command`: the typed parameters of `component` (a function, or a dataclass of
    options) as options, `--help` from its docstring, parsed as `fit` is (underscores, no abbreviations, one-line
    errors naming the closest key, `--config` YAML unless a parameter is named config). As these commands always
    took them, a list takes space-separated values (`--methods a b`), a bool may stand alone (`--compile`), and the
    parameters named in `positional` (lists) are positional."""
    doc = docstring_parser.parse_from_object(component)
    parser = OneLineErrorParser(
        prog=f"{program()} {command}",
        see=f"{command} --help",
        description=" ".join(filter(None, [doc.short_description, doc.long_description])),
    )
    parameters = inspect.signature(component).parameters
    if "config" not in parameters:
        parser.add_argument("--config", action=ActionConfigFile, help="A YAML file of these options.")
    hints = typing.get_type_hints(component)
    helps = {param.arg_name: " ".join(param.description.split()) for param in doc.params if param.description}
    add = parser.add_class_arguments if isinstance(component, type) else parser.add_function_arguments
    for name, parameter in parameters.items():  # one at a time: --help lists them in the signature's order
        element = _list_element(hints[name])
        if element is None:
            skip: set[str | int] = {other for other in parameters if other != name}  # it also takes positions
            add(component, as_group=False, skip=skip)
            continue
        # jsonargparse's list option takes one value (`--methods '[a, b]'`): a list is added by hand, as nargs.
        kwargs = {"type": element, "nargs": "+", "metavar": name.upper()}
        if parameter.default is not parameter.empty:
            kwargs["default"] = parameter.default
        elif name not in positional:
            kwargs["required"] = True
        parser.add_argument(name if name in positional else f"--{name}", **kwargs)
    for action in parser._actions:
        if getattr(action, "_typehint", None) is bool:  # jsonargparse's takes a value (`--compile true`)
            action.nargs, action.const = "?", True
        if not action.help and action.dest in helps:  # a dataclass's attribute docstrings, which it does not read
            action.help = helps[action.dest]
    return parser


def run_command_line(component, argv: list[str], command: str, positional: tuple[str, ...] = ()):
    """`component` called with the command line `ARGV` of `command` parsed by its `command_parser` (a dataclass:
    made)."""
    options = command_parser(component, command, positional).parse_args(argv).as_dict()
    return component(**{name: options[name] for name in inspect.signature(component).parameters})
