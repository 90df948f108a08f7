"""A record's method as the report names it: its registry key, identified from the class and arguments the run had
(`registry.entry_of_config`), not from the name its sweep file gave it; so results of sweep files that named
methods otherwise (`pfeiffer-adapter`) report under the key (`pfeiffer`).

The runs of one key are one row, unless they differ in a method argument that is not an axis of their search (the
report selects over those): then each value is a row of its own, the key and the arguments that set it apart, as
the paper labels its rows (`compacter (n = 8)`, `intrinsic_said (d' = 1400)`), as a sweep's `variants` make them.
Runs of one key on different models are rows of their own too (`compacter (model = google-t5/t5-small)`), never
averaged together. A record whose class is no registered method keeps the name it was recorded under.
"""

import inspect
import json
from collections import defaultdict
from pathlib import Path

import yaml

from compacter_pl.tools.paper import arguments_text
from compacter_pl.tools.sweep.grid import INIT_ARGS

MODEL = "model"  # the run's model, as a label names it when the key's runs differ in it


def identify_methods(records: list[dict], sweep_files: list[Path]) -> tuple[list[dict], list[str]]:
    """`records` with each `method` as the report names it (the recorded name kept as `recorded_method`), and the
    methods in the order the sweep files declare their keys (else the order they first appear), a key's rows by
    their values."""
    import compacter_pl.methods  # noqa: F401  (registers the methods the records name)

    keys = [_key_and_arguments(record) for record in records]
    varying = _varying(records, keys)
    named, key_of = [], {}
    for record, found in zip(records, keys, strict=True):
        method = record["method"]
        if found is not None:
            key, arguments = found
            searched = _searched(record)
            shown = {name: arguments.get(name) for name in varying[key] if name not in searched}
            if MODEL in varying[key]:
                shown[MODEL] = model_name(record.get("model"))
            method = key + (f" ({arguments_text(shown)})" if shown else "")
            key_of[method] = (key, tuple(_order(v) for v in shown.values()))
        named.append({**record, "method": method, "recorded_method": record["method"]})
    declared = [key for path in sweep_files for key in _declared_keys(path)]
    appearance = list(dict.fromkeys(r["method"] for r in named))

    def rank(method: str) -> tuple:
        key, values = key_of.get(method, (method, ()))
        first = min((k for k, m in enumerate(appearance) if key_of.get(m, (m,))[0] == key), default=0)
        return (declared.index(key) if key in declared else len(declared), first, values, appearance.index(method))

    return named, sorted(appearance, key=rank)


def _key_and_arguments(record: dict) -> tuple[str, dict] | None:
    """The registered key of the record's class and arguments, and every argument (defaults filled in; an argument
    the run resolves itself, a None default such as a method's seed, only as the record declares it)."""
    from compacter_pl.methods.registry import complete_init_args, entry_of_config, method_class

    cls = method_class(record.get("class_path") or "")
    if cls is None:
        return None
    ran = record.get("method_init_args") or record.get("init_args")
    entry = entry_of_config(cls, ran)
    if entry is None:
        return None
    declared = record.get("init_args") or {}
    resolved = {name for name, p in inspect.signature(cls).parameters.items() if p.default is None}
    arguments = complete_init_args(cls, ran)
    return entry.key, {k: declared.get(k) if k in resolved else v for k, v in arguments.items()}


def _searched(record: dict) -> set[str]:
    """The method arguments that are axes of the record's search (what the report selects over)."""
    return {axis[len(INIT_ARGS) :] for axis in record.get("search") or {} if axis.startswith(INIT_ARGS)}


def _varying(records: list[dict], keys: list) -> dict[str, list[str]]:
    """Per key, the arguments (in their signature's order) whose values differ among its records where they are no
    axis of the search, and `model` if its runs differ in model."""
    seen: defaultdict[str, dict[str, set[str]]] = defaultdict(dict)
    for record, found in zip(records, keys, strict=True):
        if found is None:
            continue
        key, arguments = found
        searched = _searched(record)
        values = seen[key]
        for name, value in arguments.items():
            if name not in searched:
                values.setdefault(name, set()).add(json.dumps(value, sort_keys=True, default=str))
        values.setdefault(MODEL, set()).add(model_name(record.get("model")))
    return defaultdict(list, {key: [n for n, v in values.items() if len(v) > 1] for key, values in seen.items()})


def model_name(model) -> str:
    """A run's model as labels compare and show it: a known architecture by its Hub name (t5-base is
    google-t5/t5-base), anything else as recorded."""
    from compacter_pl.architectures import canonical_name

    return canonical_name(str(model)) or str(model)


def _order(value) -> tuple:
    """A value as a sort key: numbers by value, anything else by its JSON text."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, json.dumps(value, sort_keys=True, default=str))


def _declared_keys(sweep_file: Path) -> list[str]:
    """The keys of a sweep file's methods, in its order: its names (registry keys), or for a file that named its
    methods otherwise, the keys of their classes and arguments."""
    from compacter_pl.methods.registry import entry_of_config, method_class

    try:
        methods = (yaml.safe_load(sweep_file.read_text()) or {}).get("methods") or {}
    except (OSError, yaml.YAMLError, AttributeError):
        return []
    keys = []
    for name, entry in methods.items() if isinstance(methods, dict) else ():
        cls = method_class((entry or {}).get("class_path") or "") if isinstance(entry, dict) else None
        found = entry_of_config(cls, entry.get("init_args")) if cls is not None else None
        keys.append(found.key if found is not None else name)
    return list(dict.fromkeys(keys))
