"""Reading YAML as every `--config` is read, with one line that names the file when it cannot be."""

from pathlib import Path

import yaml
from jsonargparse import get_loader

from compacter_pl.errors import UserError

load_yaml = get_loader("yaml")  # jsonargparse's, as it reads every --config (YAML 1.2 numbers: `3e-4` is a float)


def read_yaml_file(path: str | Path, what: str = "config file"):
    """The data of a YAML file, or a UserError naming the file: empty (or only comments), or not YAML, with the
    line and, when a tab is on it, that YAML indents with spaces (yaml's own message names a "<unicode string>")."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise UserError(f"{what} {path} is not UTF-8 (byte {error.start}); save it as UTF-8") from None
    try:
        data = load_yaml(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = text.splitlines()[mark.line] if mark and mark.line < len(text.splitlines()) else ""
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        tab = "; it holds a tab: indent YAML with spaces only" if "\t" in line else ""
        raise UserError(f"cannot parse {what} {path}{where}: {getattr(error, 'problem', None) or error}{tab}") from None
    if data is None:
        raise UserError(f"{what} {path} is empty: it should hold options as YAML `key: value` lines")
    return data
