"""A run's identity: what a checkpoint was trained as, which a command that loads it must agree with.

The identity is the task, the method (its class and every argument), the model, and the data settings that change
what is scored: the source length and truncation (what the model reads), and the data seed and validation size
(which records are validation and which are test). A checkpoint holds all of them (the module's hyper-parameters
and the data module's, which Lightning saves), and so does the run folder's config.yaml.

A command that names a checkpoint is compared with it on the options the command gives (on its command line or in a
`--config` file): one that differs is refused in one line that says what differs. An option the command does not
give is the checkpoint's. `--ckpt_path last` resumes the newest run of the command's own identity, never another's.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from compacter_pl.errors import UserError

# identity field -> (config section, option)
FIELDS: dict[str, tuple[str, str]] = {
    "task": ("data", "task"),
    "method": ("model", "method"),
    "model": ("model", "model_name_or_path"),
    "max_source_length": ("data", "max_source_length"),
    "truncation": ("data", "truncation"),
    "data_seed": ("data", "data_seed"),
    "validation_size": ("data", "validation_size"),
}
DATA_FIELDS = tuple(name for name, (section, _) in FIELDS.items() if section == "data" and name != "task")
# Options of the model a checkpoint's hyper-parameters replace that change nothing but how evaluation runs or how
# fast: a command's own value is honoured.
HONOURED = ("eval_mode", "max_new_tokens", "gradient_checkpointing", "compile")
# What the optimizer and its schedule resume with from a checkpoint (their state is the checkpoint's): a resumed fit
# that gives another value is refused; evaluation does not use them.
TRAINING = ("learning_rate", "warmup_steps", "weight_decay", "adam_epsilon")


def _get(config: Any, section: str, option: str) -> Any:
    part: Any = config.get(section) if hasattr(config, "get") else None
    return part.get(option) if hasattr(part, "get") else None


def _plain(value: Any) -> Any:
    """A Namespace (jsonargparse's) as a dict, recursively, for comparison."""
    if hasattr(value, "as_dict"):
        return value.as_dict()
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def method_identity(method: Any, complete: bool = True) -> tuple[str, dict] | None:
    """A method config (class_path and init_args) as its class and every argument, defaults filled in (`complete`),
    or only the arguments it records (a checkpoint's: one saved before an argument existed lacks it, and the method's
    own load check says what it meant)."""
    from compacter_pl.methods import registry

    method = _plain(method)
    if not isinstance(method, Mapping) or not method.get("class_path"):
        return None
    cls = registry.method_class(str(method["class_path"]))
    if cls is None:
        return str(method["class_path"]), dict(method.get("init_args") or {})
    arguments = method.get("init_args") or {}
    return registry.class_path_of(cls), registry.complete_init_args(cls, arguments) if complete else dict(arguments)


def _source_length(task: str | None, length: Any) -> Any:
    """`max_source_length` None is the task's default: compare the length a run really used."""
    if length is not None or task is None:
        return length
    from compacter_pl.tasks import get_task

    try:
        return get_task(task).source_length
    except UserError:
        return length


def _small(task: str | None) -> bool:
    from compacter_pl.tasks import get_task

    try:
        return task is not None and get_task(task).small
    except UserError:
        return False


def of_config(config: Any) -> dict[str, Any]:
    """The identity a parsed command (or a run folder's config.yaml) gives; None for what it does not name."""
    identity = {name: _plain(_get(config, *where)) for name, where in FIELDS.items()}
    identity["method"] = method_identity(identity["method"]) if identity["method"] is not None else None
    return identity


def of_checkpoint(checkpoint: Mapping) -> dict[str, Any]:
    """The identity a checkpoint records (None for what an older checkpoint lacks)."""
    model = dict(checkpoint.get("hyper_parameters") or {})
    data = dict(checkpoint.get("datamodule_hyper_parameters") or {})
    task = model.get("task", data.get("task"))
    identity = {
        "task": task,
        "method": method_identity(model.get("method"), complete=False),
        "model": model.get("model_name_or_path"),
        **{name: data.get(name) for name in DATA_FIELDS},
    }
    if "max_source_length" in data:
        identity["max_source_length"] = _source_length(task, data.get("max_source_length"))
    return identity


def describe(name: str, value: Any) -> str:
    if name == "method" and value is not None:
        class_path, arguments = value
        return f"{class_path.rpartition('.')[2]}({', '.join(f'{k}={v!r}' for k, v in sorted(arguments.items()))})"
    return repr(value)


def differences(recorded: Mapping[str, Any], given: Mapping[str, Any], holder: str = "the checkpoint") -> list[str]:
    """The identity fields the command gives that differ from what the checkpoint recorded, as `option A (the
    checkpoint) vs B` (`holder`: what recorded A); a field either side lacks is no difference."""
    found = []
    task = given.get("task") or recorded.get("task")
    for name, (section, option) in FIELDS.items():
        mine, theirs = given.get(name), recorded.get(name)
        if name == "max_source_length":
            mine = _source_length(task, mine) if name in given and mine is None else mine
        if mine is None or theirs is None or mine == theirs:
            continue
        if name == "validation_size" and _small(task):
            continue  # a small task halves its validation split: the held-out count changes nothing
        if name == "method" and mine[0] == theirs[0]:
            # an argument the command leaves None is one the method resolves when it runs (its seed): the
            # checkpoint's resolved value is no difference
            changed = sorted(k for k in theirs[1] if mine[1].get(k) is not None and mine[1].get(k) != theirs[1][k])
            if not changed:
                continue
            detail = ", ".join(f"{k} {theirs[1].get(k)!r} vs {mine[1].get(k)!r}" for k in changed)
            found.append(f"--{section}.{option}.init_args: {detail}")
            continue
        found.append(f"--{section}.{option} {describe(name, theirs)} ({holder}) vs {describe(name, mine)}")
    return found


def given_keys(args: list[str], config_files: list[Any]) -> set[str]:
    """The dotted options a command gives itself: on its command line (`--data.task cb`, `--data.task=cb`) or in
    its `--config` files (every nested key), whatever their values; an option left to its default is not given."""
    from compacter_pl.config.yaml_file import read_yaml_file

    keys = {token[2:].partition("=")[0] for token in args if token.startswith("--")}
    for path in config_files:
        content = read_yaml_file(Path(str(path)), "--config")

        def walk(node: Any, prefix: str) -> None:
            if isinstance(node, Mapping):
                for key, value in node.items():
                    keys.add(f"{prefix}{key}")
                    walk(value, f"{prefix}{key}.")

        walk(content, "")
    return keys


def given_identity(config: Any, keys: set[str]) -> dict[str, Any]:
    """The identity fields among the options a command gives (`given_keys`), with the values it parsed to."""
    identity: dict[str, Any] = {}
    for name, (section, option) in FIELDS.items():
        dotted = f"{section}.{option}"
        if any(key == dotted or key.startswith(dotted + ".") for key in keys):
            value = _plain(_get(config, section, option))
            identity[name] = method_identity(value) if name == "method" and value is not None else value
    return identity


def given_options(config: Any, keys: set[str], section: str, options: tuple[str, ...]) -> dict[str, Any]:
    """The options of `section` among `options` that the command gives, with their parsed values."""
    return {o: _plain(_get(config, section, o)) for o in options if f"{section}.{o}" in keys}


def refuse_differences(
    ckpt_path: str | Path, recorded: Mapping[str, Any], given: Mapping[str, Any], hint: str, option: str = "--ckpt_path"
) -> None:
    """One line naming every identity field the command gives differently from the checkpoint (`option` names what
    the command loads it with: `--adapter` for an export)."""
    found = differences(recorded, given, "the export" if option == "--adapter" else "the checkpoint")
    if found:
        raise UserError(f"{option} {ckpt_path} is a run of another kind: {'; '.join(found)}; {hint}")
