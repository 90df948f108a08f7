"""jsonargparse's parse errors as one line: the usage-plus-message exit of every command's parser becomes a
UserError that names the key, the closest known key or value for a typo, and the help to read."""

import dataclasses
import re
import typing

from lightning.pytorch.cli import LightningArgumentParser

from compacter_pl.config.program import program
from compacter_pl.config.yaml_file import read_yaml_file
from compacter_pl.errors import UserError, did_you_mean


def _known_keys(parser) -> list[str]:
    keys = [a.dest for a in parser._actions if a.dest and a.dest != "help"]
    subcommands = getattr(parser, "_subcommands_action", None)
    for subparser in getattr(subcommands, "_name_parser_map", {}).values():
        keys += _known_keys(subparser)
    return keys


class OneLineErrorParser(LightningArgumentParser):
    """Turns jsonargparse's usage-plus-message exits into a one-line UserError, with the closest key for a typo
    (among the keys of the value it is in, when the message names one) and the help to read: `see` is the command
    line after the program (`program()`) that prints it, None for no pointer. LightningCLI makes the parsers of fit /
    validate / test / predict with the default, fit's help, which documents all four."""

    def __init__(self, *args, see: str | None = "fit --help", **kwargs) -> None:
        super().__init__(*args, allow_abbrev=False, **kwargs)  # a typo must never match a longer option
        self.see = see

    def parse_path(self, path, *args, **kwargs):
        """A `--config` file, after `read_yaml_file` has said in one line why one that is empty or not YAML cannot
        be read (jsonargparse's own messages name no file)."""
        read_yaml_file(path)
        return super().parse_path(path, *args, **kwargs)

    def error(self, message: str, ex: Exception | None = None):
        text = " ".join(line.strip() for line in str(message).splitlines() if line.strip())
        text = re.sub(r" \(see `[^`]*`\)", "", text)  # a nested parser's own pointer to the help
        text = re.sub(r"(Expected a )?<class '(?:\w+\.)*(\w+)'>", lambda m: ("expected " if m[1] else "") + m[2], text)
        bad_class = re.search(r"Problem with given class_path '([^']+)'", text)
        abstract = re.search(
            r'Parser key "model\.method".*?Expected an instantiatable class, but (\S+) is abstract', text
        )
        if bad_class or abstract:
            from compacter_pl.methods import registry

            known = registry.method_class_names()
            if abstract:  # Method, AdapterMethod: bases to subclass, not methods to train
                raise UserError(
                    f"method class_path '{abstract[1]}' is abstract (a base to subclass, not a method); choose one "
                    f"of {', '.join(known)}"
                )
            assert bad_class is not None  # the only other way into this branch
            close = did_you_mean(bad_class.group(1).rpartition(".")[2], known)
            raise UserError(
                f"unknown method class_path '{bad_class.group(1)}'{close} (known methods: {', '.join(known)})"
            )
        given = re.search(r"Given value: (\S+)$", text)
        text = re.sub(  # a PositiveInt's "Not of type PositiveInt: 0 does not conform to restriction v>0"
            r"Not of type (\w+): (?:(\S+) )?does not conform to restriction v([<>=]+)(\S+)",
            lambda m: f"must be {m[3]} {m[4]} ({m[1]}), got {m[2] or (given[1] if given else '')}",
            text,
        )
        union = re.search(
            r'Parser key "([^"]+)": (?:- Expected a path but .*? - )?Does not validate against any of '
            r"the Union subtypes.*?Errors: - (.*?) - expected NoneType",
            text,
        )
        if union:  # an optional class argument (model.method): the class's own error, not the None branch's
            text = f"{union.group(1)}: {union.group(2)}"
        text = re.sub(
            r"Does not validate against any of the Union subtypes Subtypes: \[(.*)\] Errors: .*? Given "
            r"value: ",
            lambda m: f"expected one of {m[1].replace('typing.', '')}; got ",
            text,
        )
        text = re.sub(r"Option ('[^']+') is not accepted", r"unknown key \1", text)
        text = re.sub(r"Unexpected keys: \{('[^']+')[^}]*\}\. Got value: ", r"unknown key \1 in ", text)
        unknown = re.search(
            r"(?:does not accept option|unrecognized arguments:|Key|unknown key) '?-*([\w.\-]+)", text, re.I
        )
        if unknown and "did you mean" not in text:  # not already said by a class argument's own parser
            text += did_you_mean(unknown.group(1), self._keys_around(message), negation=True)
        literal = re.search(r"Expected a typing\.Literal\[(.*?)\]\. Got value: (\S+)", text)
        if literal:
            choices = re.findall(r"'([^']*)'", literal.group(1))
            text = (
                f"{text[: literal.start()]}expected one of {', '.join(choices)}, got {literal.group(2)!r}"
                f"{did_you_mean(literal.group(2), choices)}"
            )
        text = re.sub(r'Parser key "([^"]+)"(?: element \d+)?:', r"\1:", text)
        raise UserError(f"{text} (see `{program()} {self.see}`)" if self.see else text)

    def _keys_around(self, message: str) -> list[str]:
        """The keys a misspelt key was meant to be among: those of the typed mapping (a TypedDict) under the parser
        key the message names, else every key of this parser (a class's own arguments have a parser of their own)."""
        key = re.search(r'Parser key "([^"]+)"', message)
        action = next((a for a in self._actions if key and a.dest == key.group(1)), None)
        return _typed_keys(getattr(action, "_typehint", None)) or _known_keys(self)


def _typed_keys(hint) -> list[str]:
    """The keys of the TypedDicts and dataclasses in a type hint (dict[str, Entry] -> Entry's keys)."""
    if isinstance(hint, type) and (typing.is_typeddict(hint) or dataclasses.is_dataclass(hint)):
        return list(typing.get_type_hints(hint))
    return [key for arg in typing.get_args(hint) for key in _typed_keys(arg)]
