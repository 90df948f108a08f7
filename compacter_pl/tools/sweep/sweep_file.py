"""The sweep file: a grid of runs as data, parsed by jsonargparse into `SweepFile` (as cli.py parses its configs:
an unknown key gets the closest one, a wrong type names the key), then checked into a `grid.Sweep` before anything
runs.

    base_config: configs/demo.yaml      # the `cli.py` config every run starts from
    out_dir: sweeps/demo                # results.jsonl and runs/ go here (default: sweeps/<file stem>)
    tasks: [rte]                        # or a mapping task -> overrides, e.g. {rte: {data.data_dir: DIR}}
    methods:                            # registry key -> the method's arguments and its own overrides
      full:
        overrides: {model.learning_rate: 3.0e-4}
      compacter:
        init_args: {sublayers: [feed_forward]}          # a list here is the argument's value, never searched
        variants: {init_args.n: [4, 8]}                  # each n its own method: compacter-n4, compacter-n8
        search: {model.learning_rate: [3.0e-4, 3.0e-3], init_args.bottleneck: [24, 48]}  # 4 configurations
    sizes: {100: {trainer.max_epochs: 1000}, full: {}}   # training examples -> overrides; full = the whole split
    seeds: [0, 1]                       # each seeds both the subsample (data.seed) and training (seed_everything)
    overrides: {data.batch_size: 40}    # every run
    exclude: [{task: rte, size: 4000}]  # runs left out of the grid (any of task, method key, size, seed)
    keep_checkpoints: best              # once a run is finished keep all | best | none of its checkpoints

A method is named by its registry key (`python cli.py params` lists them), as results.jsonl, the report and
TensorBoard name it. Its class is the key's and its arguments start from the key's (prompt_vocab: init vocab);
`init_args` add to them. `class_path` may be left out; given, it must be the key's class (naming a class of the
user's own package imports it, which registers its methods).

Overrides are `cli.py` keys, dotted as on its command line; a later level wins: overrides < task < method < size.
A run is `cli.py fit --config BASE` plus its overrides; the keys the grid itself sets cannot be overridden.

Axes: each a key and the list of its values, their product taken in the order of the file. A method's `search`
holds the axes the report selects over on validation (`init_args.<argument>` or a `cli.py` key): its
configurations, each named by its values (`lr3e-4_n8`), each a run of every task, size and seed. Its `variants`
hold method arguments whose every value is a method of its own (the paper's rows per n or d', Tables 6 to 9): a
row of the report and runs of its own, named by the key and its values (`compacter-n8`). A key is set in one place
only: in `search`, in `variants` or at a level of overrides.
"""

import itertools
import json
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Optional, TypedDict

from jsonargparse.typing import NonNegativeInt, PositiveInt

from compacter_pl.config import OneLineErrorParser, read_yaml_file
from compacter_pl.errors import UserError, did_you_mean
from compacter_pl.methods.base import class_path_of
from compacter_pl.tools.sweep.grid import FULL, INIT_ARGS, Config, MethodSpec, Sweep, cli_value

# Keys the grid sets for every run (from tasks, methods, sizes, seeds and the run's directory).
RESERVED_KEYS = {
    "data.task": "tasks",
    "model.task": "tasks",
    "data.train_size": "sizes",
    "data.seed": "seeds",
    "seed_everything": "seeds",
    "model.method": "methods",
    "trainer.logger": "the run's directory",
    "checkpoint.dirpath": "the run's directory",
    "last_checkpoint.at_epoch_end": "the sweep (an unfinished run restarts from scratch)",
    "ckpt_path": "the run's best checkpoint",
}
RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9+._-]*$")  # what may name run directories
# An axis is named in run names by its last part (`init_args.n` -> n8, `data.batch_size` -> batch_size16): a method's
# argument by its own name. The one abbreviation is of the learning rate, the cli.py key the paper searches.
AXIS_NAMES = {"model.learning_rate": "lr"}
Overrides = Optional[dict[str, Any]]  # noqa: UP045  dotted cli.py keys -> values
if TYPE_CHECKING:  # jsonargparse's PositiveInt is a class made at run time
    Size = int | Literal["full"]
else:
    Size = PositiveInt | Literal["full"]


class MethodEntry(TypedDict, total=False):
    """A method of the sweep file, under its registry key: the class's arguments over the key's, the method's own
    overrides (e.g. the paper's learning rate of the method), its search, its variants; `class_path` only to import
    a user's package (it must be the key's class)."""

    class_path: str  # dotted, or a class name of compacter_pl.methods
    init_args: dict[str, Any]
    overrides: Overrides
    search: dict[str, Any] | None  # axis -> the list of its values; the configurations are their product
    variants: dict[str, Any] | None  # init_args.<argument> -> its values; each combination a method of its own


class ExcludeRule(TypedDict, total=False):
    """Runs left out of the grid: those that match every key given (a method by its key: all its variants)."""

    task: str
    method: str
    size: Size
    seed: NonNegativeInt


@dataclass(frozen=True)
class SweepFile:
    """What a sweep file holds, key by key (read by jsonargparse: an unknown key or a wrong type is one line)."""

    base_config: str
    tasks: list[str] | dict[str, Overrides]
    methods: dict[str, MethodEntry]
    seeds: list[NonNegativeInt]
    out_dir: str | None = None
    sizes: list[Size] | dict[Size, Overrides] | None = None
    overrides: Overrides = None
    exclude: list[ExcludeRule] | None = None
    keep_checkpoints: Literal["all", "best", "none"] = "best"


def load_sweep(path: str | Path, out_dir: str | Path | None = None) -> Sweep:
    """The sweep declared in `path`; every mistake is a UserError that names the key (and the closest one)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"sweep file {path} not found")
    data = read_yaml_file(path, "sweep file")
    parser = OneLineErrorParser(prog=str(path), see=None)
    parser.add_class_arguments(SweepFile, as_group=False)
    try:
        if not isinstance(data, dict):
            raise UserError(f"a sweep file is a mapping with keys {', '.join(f.name for f in fields(SweepFile))}")
        spec = SweepFile(**parser.parse_object(data).as_dict())
        return _grid(path, spec, out_dir)
    except UserError as error:
        raise UserError(f"{path}: {error}") from None


def _grid(path: Path, spec: SweepFile, out_dir: str | Path | None) -> Sweep:
    """The sweep file's grid, checked against the tasks and methods there are."""
    from compacter_pl.tasks import TASKS

    base_config = Path(spec.base_config)
    if not base_config.is_file():
        raise UserError(
            f"base_config {base_config} not found (a path relative to the directory you run cli.py from, like --config)"
        )
    tasks = spec.tasks if isinstance(spec.tasks, dict) else dict.fromkeys(spec.tasks)
    for name in tasks:
        if name not in TASKS:
            raise UserError(
                f"unknown task {name!r} in tasks{did_you_mean(name, TASKS)} (known tasks: {', '.join(TASKS)})"
            )
    methods: dict[str, MethodSpec] = {}
    for key, entry in spec.methods.items():
        for method in _methods(key, entry, spec):
            methods[method.name] = method
    sizes: dict[int | None, dict] = {}
    given: dict = spec.sizes if isinstance(spec.sizes, dict) else dict.fromkeys(spec.sizes or [FULL])
    for size, overrides in given.items():
        if size != FULL and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
            raise UserError(f"size {size!r} in sizes must be a positive number of training examples or {FULL!r}")
        sizes[None if size == FULL else size] = _overrides(overrides, f"sizes.{size}")
    if len(set(spec.seeds)) != len(spec.seeds):
        raise UserError(f"seeds {spec.seeds} repeat a seed")
    grid: dict[str, list] = {
        "task": list(tasks),
        "method": list(spec.methods),
        "size": [FULL if s is None else s for s in sizes],
        "seed": spec.seeds,
    }
    for i, rule in enumerate(spec.exclude or []):
        for key, value in rule.items():
            if value not in grid[key]:
                raise UserError(
                    f"exclude[{i}].{key} {value!r} is not in the sweep's {key}s "
                    f"({', '.join(map(str, grid[key]))}){did_you_mean(value, grid[key])}"
                )
    exclude = tuple(
        {k: None if k == "size" and v == FULL else v for k, v in rule.items()} for rule in spec.exclude or []
    )
    sweep = Sweep(
        path,
        base_config,
        Path(out_dir or spec.out_dir or f"sweeps/{path.stem}"),
        {name: _overrides(o, f"tasks.{name}") for name, o in tasks.items()},
        methods,
        sizes,
        tuple(spec.seeds),
        _overrides(spec.overrides, "overrides"),
        exclude,
        spec.keep_checkpoints,
    )
    if not sweep.runs():
        raise UserError("the grid is empty (exclude leaves no run)")
    return sweep


# --- a method: its key, its variants, its search ----------------------------------------------------------------


def _methods(key: str, entry: MethodEntry, spec: SweepFile) -> list[MethodSpec]:
    """The methods of one entry: the key's, or one per combination of its variants, each with its search."""
    context = f"methods.{key}"
    registered = method_of(key, entry.get("class_path"), entry.get("init_args") or {})
    given = entry.get("init_args") or {}
    variants = _axes(entry.get("variants") or {}, f"{context}.variants", entry, spec, ("search", entry.get("search")))
    for axis in variants:
        if not axis.startswith(INIT_ARGS):
            raise UserError(
                f"{context}.variants.{axis}: a variant is a value of a method argument (init_args.<argument>); "
                f"a cli.py key is searched (search) or set (overrides)"
            )
    configs = _configs(entry, f"{context}.search", spec)
    methods = []
    for values in itertools.product(*variants.values()) if variants else [()]:
        variant = Config("_".join(map(axis_name, variants, values)), dict(zip(variants, values, strict=True)))
        init_args = {**registered.init_args, **given, **variant.init_args()}
        for config in configs:
            _same_key(key, registered.cls, {**init_args, **config.init_args()}, context)
        name = f"{key}-{variant.name}" if variant.name else key
        methods.append(
            MethodSpec(
                key,
                name,
                class_path_of(registered.cls),
                init_args,
                _overrides(entry.get("overrides"), f"{context}.overrides"),
                configs,
                variant.init_args(),
            )
        )
    return methods


def method_of(key: str, class_path: str | None, init_args: dict):
    """The registered method of a sweep file's key (a one-line UserError naming the keys for any other); a
    `class_path`, imported first (a user's package registers its methods), must be the key's class."""
    from compacter_pl.methods import registry
    from compacter_pl.tools.methods import listed_methods  # imports the package's methods: they register

    cls = resolve_method(class_path, f"methods.{key}.class_path") if class_path else None
    keys = [e.key for e in listed_methods()]
    if key not in keys:
        close = did_you_mean(key, keys)
        known = registry.entry_of_config(cls, init_args) if cls is not None else None
        hint = f"; {class_path} is registered as {known.key!r}" if known else ""
        raise UserError(
            f"methods: {key!r} is no registered method key{close}{hint} (a method is named by its key: "
            f"{', '.join(keys)}; a method of your own package: give its class_path, whose import registers it)"
        )
    entry = registry.method_entry(key)
    if not RUN_NAME.match(key):
        raise UserError(f"method key {key!r} cannot name run directories (letters, digits and + . _ -)")
    if cls is not None and cls is not entry.cls:
        theirs = ", ".join(e.key for e in registry.entries_of(cls)) or "none"
        raise UserError(
            f"methods.{key}.class_path {class_path} is not {key}'s class ({entry.class_path}); leave class_path out "
            f"(the key names its class) or use the key of {cls.__name__} ({theirs})"
        )
    return entry


def _same_key(key: str, cls: type, init_args: dict, context: str) -> None:
    """The arguments keep the method the key it is declared as (prompt_random with init vocab is prompt_vocab)."""
    from compacter_pl.methods import registry

    found = registry.entry_of_config(cls, init_args)
    if found is not None and found.key != key:
        own = {k: v for k, v in found.init_args.items() if init_args.get(k) == v}
        raise UserError(
            f"{context}: its arguments ({', '.join(f'{k}: {v}' for k, v in own.items())}) make it {found.key!r}, "
            f"not {key!r}: declare it under {found.key}"
        )


def _configs(entry: MethodEntry, context: str, spec: SweepFile) -> tuple[Config, ...]:
    """The product of a method's search axes, in the order of the file (the last axis varies fastest)."""
    search = _axes(entry.get("search") or {}, context, entry, spec, ("variants", entry.get("variants")))
    for key in search:
        if not key.startswith(INIT_ARGS):
            _overrides({key: None}, context)
    configs = [
        Config("_".join(map(axis_name, search, combination)), dict(zip(search, combination, strict=True)))
        for combination in itertools.product(*search.values())
    ]
    names = [c.name for c in configs]
    for name in names:
        if names.count(name) > 1:
            raise UserError(
                f"{context}: two configurations are named {name!r}; make their values differ in their first digits"
            )
    return tuple(configs) or (Config(),)


def _axes(axes: dict, context: str, entry: MethodEntry, spec: SweepFile, other: tuple[str, dict | None]) -> dict:
    """Axes (`search` or `variants`, the `other` kind beside them): each a list of distinct values, its key set
    nowhere else."""
    elsewhere = {
        *(f"{INIT_ARGS}{k}" for k in entry.get("init_args") or {}),
        *(entry.get("overrides") or {}),
        *(spec.overrides or {}),
        *(
            k
            for level in (spec.tasks, spec.sizes)
            if isinstance(level, dict)
            for overrides in level.values()
            for k in overrides or {}
        ),
    }
    for key, values in axes.items():
        if key in elsewhere:
            raise UserError(f"{context}.{key} is also set in init_args or overrides: set it in one place")
        if key in (other[1] or {}):
            raise UserError(f"{context}.{key} is also in {other[0]}: an axis is searched or varied, not both")
        if not isinstance(values, list):
            raise UserError(
                f"{context}.{key} must be a list of values, got {values!r} (a single value belongs in "
                f"the method's {'init_args' if key.startswith(INIT_ARGS) else 'overrides'})"
            )
        if not values or len({json.dumps(v, sort_keys=True) for v in values}) < len(values):
            raise UserError(f"{context}.{key} must list distinct values, got {values}")
    return dict(axes)


def axis_name(key: str, value: Any) -> str:
    """An axis and its value as run names show them: `model.learning_rate`, 3e-4 -> `lr3e-4`; `init_args.n`, 8 ->
    `n8`; `init_args.bottleneck`, 24 -> `bottleneck24` (the argument's own name)."""
    axis = AXIS_NAMES.get(key, key.rpartition(".")[2])
    if isinstance(value, float) and value and not value.is_integer() and abs(value) < 1:
        mantissa, _, exponent = f"{value:.6e}".partition("e")
        text = f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
    else:
        text = cli_value(value)
    return axis + re.sub(r"[^A-Za-z0-9+._-]+", "-", text).strip("-")


def _overrides(value: dict | None, context: str) -> dict:
    for key in value or {}:
        if key in RESERVED_KEYS or key.startswith("model.method.") or key.startswith("trainer.logger."):
            owner = RESERVED_KEYS.get(key, "methods" if key.startswith("model.method") else "the run's directory")
            raise UserError(f"{context} cannot set {key}: the sweep sets it from {owner}")
    return dict(value or {})


def resolve_method(class_path, context: str) -> type:
    """The registered method class named by a dotted class path or by its name in compacter_pl.methods."""
    from compacter_pl.methods import registry

    try:
        return registry.resolve_method_class(class_path)
    except UserError as error:
        raise UserError(f"{error} in {context}") from None
