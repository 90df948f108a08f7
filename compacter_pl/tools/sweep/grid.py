"""The sweep file: a grid of runs as data, parsed by jsonargparse into `SweepFile` (as cli.py parses its configs:
an unknown key gets the closest one, a wrong type names the key), then checked before anything runs.

    base_config: configs/demo.yaml      # the `cli.py` config every run starts from
    out_dir: sweeps/demo                # results.jsonl and runs/ go here (default: sweeps/<file stem>)
    tasks: [rte]                        # or a mapping task -> overrides, e.g. {rte: {data.data_dir: DIR}}
    methods:                            # name (what reports show) -> the method and its own overrides
      t5:
        class_path: compacter_pl.methods.FullFineTuning
        init_args: {}
        overrides: {model.learning_rate: 3.0e-4}
      compacter:
        class_path: compacter_pl.methods.Compacter
        init_args: {sublayers: [feed_forward]}          # a list here is the argument's value, never searched
        search: {model.learning_rate: [3.0e-4, 3.0e-3], init_args.n: [4, 8]}   # 4 configurations
    sizes: {100: {trainer.max_epochs: 1000}, full: {}}   # training examples -> overrides; full = the whole split
    seeds: [0, 1]                       # each seeds both the subsample (data.seed) and training (seed_everything)
    overrides: {data.batch_size: 40}    # every run
    exclude: [{task: rte, size: 4000}]  # runs left out of the grid (any of task, method, size, seed)
    keep_checkpoints: best              # once a run is finished keep all | best | none of its checkpoints

Overrides are `cli.py` keys, dotted as on its command line; a later level wins: overrides < task < method < size.
A run is `cli.py fit --config BASE` plus its overrides; the keys the grid itself sets cannot be overridden.

Search axes: only a method's `search` holds them, each a key (`init_args.<argument>` or a `cli.py` key) and the list
of its values; the method's configurations are their product, each named by its values (`lr3e-4_n8`), and each is
a run of every task, size and seed. A key is set in one place only: in `search` or at a level of overrides.
"""

import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, Optional, TypedDict

from jsonargparse.typing import NonNegativeInt, PositiveInt

from compacter_pl.config import OneLineErrorParser, load_yaml, read_yaml_file
from compacter_pl.errors import UserError, did_you_mean
from compacter_pl.methods.base import class_path_of

FULL: Final = "full"  # a size meaning "the whole training split" (the Table 1 runs)
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
METHOD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9+._-]*$")  # it names run directories
INIT_ARGS = "init_args."  # a search axis over an argument of the method
SHORT_AXIS = {"learning_rate": "lr", "bottleneck": "d", "reduction_factor": "rf"}  # in configuration names
Overrides = Optional[dict[str, Any]]  # noqa: UP045  dotted cli.py keys -> values
if TYPE_CHECKING:  # jsonargparse's PositiveInt is a class made at run time
    Size = int | Literal["full"]
else:
    Size = PositiveInt | Literal["full"]


class _MethodClass(TypedDict):
    class_path: str  # dotted, or a class name of compacter_pl.methods


class MethodEntry(_MethodClass, total=False):
    """A method of the sweep file: its class, the class's arguments, and the method's own overrides (e.g. the
    paper's learning rate of the method)."""

    init_args: dict[str, Any]
    overrides: Overrides
    search: dict[str, Any] | None  # axis -> the list of its values; the configurations are their product


class ExcludeRule(TypedDict, total=False):
    """Runs left out of the grid: those that match every key given."""

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


def cli_value(value: Any) -> str:
    """A value as the command line takes it: strings as they are (a str argument is not parsed), anything
    else as JSON, which the command line reads as YAML."""
    return value if isinstance(value, str) else json.dumps(value)


@dataclass(frozen=True)
class Config:
    """One configuration of a method's search: its name (empty without a search) and the value of each axis."""

    name: str = ""
    values: dict = field(default_factory=dict)  # axis -> value, e.g. {"model.learning_rate": 3e-4, "init_args.n": 8}

    def init_args(self) -> dict:
        return {k[len(INIT_ARGS) :]: v for k, v in self.values.items() if k.startswith(INIT_ARGS)}

    def overrides(self) -> dict:
        return {k: v for k, v in self.values.items() if not k.startswith(INIT_ARGS)}


@dataclass(frozen=True)
class MethodSpec:
    """One method of the grid: the reports' name for it, its class and arguments, its own overrides
    (e.g. the paper's learning rate of the method), and the configurations of its search."""

    name: str
    class_path: str
    init_args: dict = field(default_factory=dict)
    overrides: dict = field(default_factory=dict)
    configs: tuple[Config, ...] = (Config(),)

    def config(self, config: Config = Config()) -> dict:
        return {"class_path": self.class_path, "init_args": {**self.init_args, **config.init_args()}}


@dataclass(frozen=True)
class Run:
    """One cell of the grid: `cli.py fit --config BASE ARGS`, then a test of its best checkpoint."""

    index: int  # position in the grid
    cell: int  # position of its (seed, task, size, configuration name) in the grid: one cell runs in one shard
    task: str
    method: MethodSpec
    size: int | None  # None: the whole training split
    seed: int
    overrides: dict  # the merged user overrides (overrides < task < method < size < the configuration's)
    config: Config = Config()

    @property
    def name(self) -> str:
        config = f"-{self.config.name}" if self.config.name else ""
        return f"{self.task}-{self.method.name}{config}-n{self.size or FULL}-s{self.seed}"

    def describe(self) -> str:
        config = f" {self.config.name}" if self.config.name else ""
        return f"{self.task} {self.method.name}{config} n={self.size or FULL} seed={self.seed}"

    def args(self) -> list[str]:
        """The `cli.py fit` arguments that make this run, after `--config BASE`. The method is reset first, so
        no argument of the base config's method leaks into the run's method."""
        # seed_everything also seeds the subsample: cli.py links it to data.seed
        run: dict[str, Any] = {
            "data.task": self.task,
            "data.train_size": self.size,
            "seed_everything": self.seed,
            "model.method": None,
        }
        values = [*run.items(), ("model.method", self.method.config(self.config)), *self.overrides.items()]
        return [f"--{key}={cli_value(value)}" for key, value in values]

    def fingerprint(self, base_content: Any) -> str:
        """What makes the run what it is; a finished run with another fingerprint came from another grid."""
        payload = json.dumps({"base": base_content, "args": self.args()}, sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Sweep:
    path: Path
    base_config: Path
    out_dir: Path
    tasks: dict[str, dict]
    methods: dict[str, MethodSpec]
    sizes: dict[int | None, dict]
    seeds: tuple[int, ...]
    overrides: dict = field(default_factory=dict)
    exclude: tuple[dict, ...] = ()
    keep_checkpoints: str = "best"

    def base_content(self) -> Any:
        """The base config as data (its comments and layout do not change what a run does)."""
        return load_yaml(self.base_config.read_text())

    def runs(self) -> list[Run]:
        """Every run of the grid, seeds outermost: the first pass over the seeds already gives every curve. A cell
        is the runs of one seed, task, size and configuration name (every method that has it; without a search,
        every method)."""
        runs: list[Run] = []
        cells = 0
        for seed in self.seeds:
            for task, task_overrides in self.tasks.items():
                for size, size_overrides in self.sizes.items():
                    by_config: dict[str, list[tuple[MethodSpec, dict, Config]]] = {}
                    for method in self.methods.values():
                        if self._excluded(task, method.name, size, seed):
                            continue
                        for config in method.configs:
                            merged = {
                                **self.overrides,
                                **task_overrides,
                                **method.overrides,
                                **size_overrides,
                                **config.overrides(),
                            }
                            by_config.setdefault(config.name, []).append((method, merged, config))
                    for cell in by_config.values():
                        for method, merged, config in cell:
                            runs.append(Run(len(runs), cells, task, method, size, seed, merged, config))
                        cells += 1
        return runs

    def _excluded(self, task: str, method: str, size: int | None, seed: int) -> bool:
        values = {"task": task, "method": method, "size": size, "seed": seed}
        return any(all(values[k] == v for k, v in rule.items()) for rule in self.exclude)


def parse_shard(text: str) -> tuple[int, int]:
    """`I/N` -> (I, N), with 0 <= I < N."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not match or not 0 <= int(match.group(1)) < int(match.group(2)):
        raise UserError(
            f"--shard expects I/N with 0 <= I < N (e.g. 0/4; in a SLURM job array "
            f"--shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT with --array=0-3), got {text!r}"
        )
    return int(match.group(1)), int(match.group(2))


def shard_of(runs: list[Run], shard: tuple[int, int] | None) -> list[Run]:
    """Shard I of N: the runs whose cell (seed, task, size) has index I modulo N in the grid. The shards are
    disjoint and cover the grid. The methods of one cell run in one shard, one after the other: they train on the
    same subsample, whose tokenized cache is then built by one process rather than by several at once."""
    if shard is None:
        return list(runs)
    index, count = shard
    return [run for run in runs if run.cell % count == index]


# --- reading and validating the file ---------------------------------------------------------------------------


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
    methods = {}
    for name, entry in spec.methods.items():
        if not METHOD_NAME.match(name):
            raise UserError(f"method name {name!r} must be letters, digits and + . _ - (it names the run directories)")
        cls = resolve_method(entry["class_path"], f"methods.{name}.class_path")
        methods[name] = MethodSpec(
            name,
            class_path_of(cls),
            entry.get("init_args") or {},
            _overrides(entry.get("overrides"), f"methods.{name}.overrides"),
            _configs(entry, f"methods.{name}.search", spec),
        )
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
        "method": list(methods),
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


def _configs(entry: MethodEntry, context: str, spec: SweepFile) -> tuple[Config, ...]:
    """The product of a method's search axes, in the order of the file (the last axis varies fastest)."""
    search = entry.get("search") or {}
    if not search:
        return (Config(),)
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
    for key, values in search.items():
        if not key.startswith(INIT_ARGS):
            _overrides({key: None}, context)
        if key in elsewhere:
            raise UserError(f"{context}.{key} is also set in init_args or overrides: set it in one place")
        if not isinstance(values, list):
            raise UserError(
                f"{context}.{key} must be a list of values, got {values!r} (a single value belongs in "
                f"the method's {'init_args' if key.startswith(INIT_ARGS) else 'overrides'})"
            )
        if not values or len({json.dumps(v, sort_keys=True) for v in values}) < len(values):
            raise UserError(f"{context}.{key} must list distinct values, got {values}")
    configs = [
        Config(
            "_".join(_short(key, value) for key, value in zip(search, combination, strict=True)),
            dict(zip(search, combination, strict=True)),
        )
        for combination in itertools.product(*search.values())
    ]
    names = [c.name for c in configs]
    for name in names:
        if names.count(name) > 1:
            raise UserError(
                f"{context}: two configurations are named {name!r}; make their values differ in their first digits"
            )
    return tuple(configs)


def _short(key: str, value: Any) -> str:
    """`model.learning_rate`, 3e-4 -> `lr3e-4`; `init_args.n`, 8 -> `n8`: a configuration's part of its name."""
    axis = key.rpartition(".")[2]
    if isinstance(value, float) and value and not value.is_integer() and abs(value) < 1:
        mantissa, _, exponent = f"{value:.6e}".partition("e")
        text = f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
    else:
        text = cli_value(value)
    return SHORT_AXIS.get(axis, axis) + re.sub(r"[^A-Za-z0-9+._-]+", "-", text).strip("-")


def _overrides(value: dict | None, context: str) -> dict:
    for key in value or {}:
        if key in RESERVED_KEYS or key.startswith("model.method.") or key.startswith("trainer.logger."):
            owner = RESERVED_KEYS.get(key, "methods" if key.startswith("model.method") else "the run's directory")
            raise UserError(f"{context} cannot set {key}: the sweep sets it from {owner}")
    return dict(value or {})


# --- methods ---------------------------------------------------------------------------------------------------


def resolve_method(class_path, context: str) -> type:
    """The registered method class named by a dotted class path or by its name in compacter_pl.methods."""
    from compacter_pl.methods import registry

    try:
        return registry.resolve_method_class(class_path)
    except UserError as error:
        raise UserError(f"{error} in {context}") from None
