"""The sweep file: a grid of runs as data, read into dataclasses and validated before anything runs.

    base_config: configs/demo.yaml      # the `cli.py` config every run starts from
    out_dir: sweeps/demo                # results.jsonl and runs/ go here (default: sweeps/<file stem>)
    tasks: [rte]                        # or a mapping task -> overrides, e.g. {rte: {data.data_dir: DIR}}
    methods:                            # name (what reports show) -> the method and its own overrides
      t5:
        class_path: compacter_pl.methods.FullFineTuning
        init_args: {}
        overrides: {model.learning_rate: 3.0e-4}
    sizes: {100: {trainer.max_epochs: 1000}, full: {}}   # training examples -> overrides; full = the whole split
    seeds: [0, 1]                       # each seeds both the subsample (data.seed) and training (seed_everything)
    overrides: {data.batch_size: 40}    # every run
    exclude: [{task: rte, size: 4000}]  # runs left out of the grid (any of task, method, size, seed)
    keep_checkpoints: best              # once a run is finished keep all | best | none of its checkpoints

Overrides are `cli.py` keys, dotted as on its command line; a later level wins: overrides < task < method < size.
A run is `cli.py fit --config BASE` plus its overrides; the keys the grid itself sets cannot be overridden.
"""

import difflib
import hashlib
import importlib
import json
import pkgutil
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from compacter_pl.errors import UserError

FULL = "full"  # a size meaning "the whole training split" (the Table 1 runs)
KEEP_CHECKPOINTS = ("all", "best", "none")
TOP_LEVEL_KEYS = ("base_config", "out_dir", "tasks", "methods", "sizes", "seeds", "overrides", "exclude",
                  "keep_checkpoints")
REQUIRED_KEYS = ("base_config", "tasks", "methods", "seeds")
METHOD_KEYS = ("class_path", "init_args", "overrides")
EXCLUDE_KEYS = ("task", "method", "size", "seed")
# Keys the grid sets for every run (from tasks, methods, sizes, seeds and the run's directory).
RESERVED_KEYS = {
    "data.task": "tasks", "model.task": "tasks", "data.train_size": "sizes", "data.seed": "seeds",
    "seed_everything": "seeds", "model.method": "methods", "trainer.logger": "the run's directory",
    "checkpoint.dirpath": "the run's directory", "ckpt_path": "the run's best checkpoint",
}
METHOD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9+._-]*$")  # it names run directories
OVERRIDE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class _Loader(yaml.SafeLoader):
    """YAML 1.2 numbers: `3e-4` is a float (PyYAML's YAML 1.1 reads it as a string)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[0-9][0-9_]*[eE][-+]?[0-9]+"
               r"|\.[0-9_]+(?:[eE][-+]?[0-9]+)?|\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."))


def cli_value(value: Any) -> str:
    """A value as the command line takes it: strings as they are (a str argument is not parsed), anything
    else as JSON, which the command line reads as YAML."""
    return value if isinstance(value, str) else json.dumps(value)


def did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


@dataclass(frozen=True)
class MethodSpec:
    """One method of the grid: the reports' name for it, its class and arguments, its own overrides
    (e.g. the paper's learning rate of the method)."""

    name: str
    class_path: str
    init_args: dict = field(default_factory=dict)
    overrides: dict = field(default_factory=dict)

    def config(self) -> dict:
        return {"class_path": self.class_path, "init_args": dict(self.init_args)}


@dataclass(frozen=True)
class Run:
    """One cell of the grid: `cli.py fit --config BASE ARGS`, then a test of its best checkpoint."""

    index: int  # position in the grid
    cell: int  # position of its (seed, task, size) in the grid: the runs of one cell share a shard
    task: str
    method: MethodSpec
    size: int | None  # None: the whole training split
    seed: int
    overrides: dict  # the merged user overrides (overrides < task < method < size)

    @property
    def name(self) -> str:
        return f"{self.task}-{self.method.name}-n{self.size or FULL}-s{self.seed}"

    def describe(self) -> str:
        return f"{self.task} {self.method.name} n={self.size or FULL} seed={self.seed}"

    def args(self) -> list[str]:
        """The `cli.py fit` arguments that make this run, after `--config BASE`. The method is reset first, so
        no argument of the base config's method leaks into the run's method."""
        # seed_everything also seeds the subsample: cli.py links it to data.seed
        values = {"data.task": self.task, "data.train_size": self.size, "seed_everything": self.seed,
                  "model.method": None}
        values = [*values.items(), ("model.method", self.method.config()), *self.overrides.items()]
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
        return yaml.load(self.base_config.read_text(), Loader=_Loader)

    def runs(self) -> list[Run]:
        """Every run of the grid, seeds outermost: the first pass over the seeds already gives every curve."""
        runs, cells = [], 0
        for seed in self.seeds:
            for task, task_overrides in self.tasks.items():
                for size, size_overrides in self.sizes.items():
                    in_cell = 0
                    for method in self.methods.values():
                        if self._excluded(task, method.name, size, seed):
                            continue
                        merged = {**self.overrides, **task_overrides, **method.overrides, **size_overrides}
                        runs.append(Run(len(runs), cells, task, method, size, seed, merged))
                        in_cell += 1
                    cells += in_cell > 0
        return runs

    def _excluded(self, task: str, method: str, size: int | None, seed: int) -> bool:
        values = {"task": task, "method": method, "size": size, "seed": seed}
        return any(all(values[k] == v for k, v in rule.items()) for rule in self.exclude)


def parse_shard(text: str) -> tuple[int, int]:
    """`I/N` -> (I, N), with 0 <= I < N."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not match or not 0 <= int(match.group(1)) < int(match.group(2)):
        raise UserError(f"--shard expects I/N with 0 <= I < N (e.g. 0/4; in a SLURM job array "
                        f"--shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT with --array=0-3), got {text!r}")
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
    try:
        data = yaml.load(path.read_text(), Loader=_Loader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise UserError(f"cannot parse sweep file {path}{where}: {getattr(error, 'problem', None) or error}") from None
    where = str(path)
    if not isinstance(data, dict):
        raise UserError(f"{where}: a sweep file is a mapping with keys {', '.join(TOP_LEVEL_KEYS)}")
    _check_keys(data, TOP_LEVEL_KEYS, where, "at the top level")
    for key in REQUIRED_KEYS:
        if key not in data:
            raise UserError(f"{where}: missing key {key!r} (a sweep needs {', '.join(REQUIRED_KEYS)})")

    base_config = Path(_string(data["base_config"], where, "base_config"))
    if not base_config.is_file():
        raise UserError(f"{where}: base_config {base_config} not found (a path relative to the directory "
                        f"you run cli.py from, like --config)")
    out = Path(out_dir) if out_dir else Path(_string(data.get("out_dir") or f"sweeps/{path.stem}", where, "out_dir"))
    tasks = _tasks(data["tasks"], where)
    methods = _methods(data["methods"], where)
    sizes = _sizes(data.get("sizes"), where)
    seeds = _seeds(data["seeds"], where)
    overrides = _overrides(data.get("overrides"), where, "overrides")
    keep = data.get("keep_checkpoints", "best")
    if keep not in KEEP_CHECKPOINTS:
        raise UserError(f"{where}: keep_checkpoints must be one of {', '.join(KEEP_CHECKPOINTS)}, got {keep!r}")
    sweep = Sweep(path, base_config, out, tasks, methods, sizes, seeds, overrides, (), keep)
    exclude = _exclude(data.get("exclude"), where, sweep)
    sweep = Sweep(path, base_config, out, tasks, methods, sizes, seeds, overrides, exclude, keep)
    if not sweep.runs():
        raise UserError(f"{where}: the grid is empty (exclude leaves no run)")
    return sweep


def _check_keys(mapping: dict, known, where: str, context: str) -> None:
    for key in mapping:
        if key not in known:
            raise UserError(f"{where}: unknown key {key!r} {context}{did_you_mean(key, known)} "
                            f"(known keys: {', '.join(known)})")


def _string(value, where: str, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise UserError(f"{where}: {key} must be a path (a string), got {value!r}")
    return value


def _tasks(value, where: str) -> dict[str, dict]:
    from compacter_pl.tasks import TASKS

    if isinstance(value, str):
        value = [value]
    if isinstance(value, list):
        value = {name: None for name in value}
    if not isinstance(value, dict) or not value:
        raise UserError(f"{where}: tasks must be a list of task names or a mapping task -> overrides")
    tasks = {}
    for name, overrides in value.items():
        if name not in TASKS:
            raise UserError(f"{where}: unknown task {name!r} in tasks{did_you_mean(name, TASKS)} "
                            f"(known tasks: {', '.join(TASKS)})")
        tasks[name] = _overrides(overrides, where, f"tasks.{name}")
    return tasks


def _methods(value, where: str) -> dict[str, MethodSpec]:
    if not isinstance(value, dict) or not value:
        raise UserError(f"{where}: methods must map a name to {{class_path, init_args, overrides}}, e.g. "
                        f"t5: {{class_path: compacter_pl.methods.FullFineTuning}}")
    methods = {}
    for name, spec in value.items():
        context = f"methods.{name}"
        if not isinstance(name, str) or not METHOD_NAME.match(name):
            raise UserError(f"{where}: method name {name!r} must be letters, digits and + . _ - (it names the "
                            f"run directories)")
        if isinstance(spec, str):
            spec = {"class_path": spec}
        if not isinstance(spec, dict) or "class_path" not in spec:
            raise UserError(f"{where}: {context} needs a class_path, e.g. compacter_pl.methods.FullFineTuning")
        _check_keys(spec, METHOD_KEYS, where, f"in {context}")
        cls = resolve_method(spec["class_path"], where, f"{context}.class_path")
        init_args = spec.get("init_args") or {}
        if not isinstance(init_args, dict):
            raise UserError(f"{where}: {context}.init_args must be a mapping of {cls.__name__}'s arguments")
        _check_init_args(cls, init_args, where, f"{context}.init_args")
        methods[name] = MethodSpec(name, f"{cls.__module__}.{cls.__qualname__}", init_args,
                                   _overrides(spec.get("overrides"), where, f"{context}.overrides"))
    return methods


def _sizes(value, where: str) -> dict[int | None, dict]:
    if value is None:
        return {None: {}}
    if isinstance(value, list):
        value = {size: None for size in value}
    if not isinstance(value, dict) or not value:
        raise UserError(f"{where}: sizes must be a list of training sizes or a mapping size -> overrides")
    sizes = {}
    for size, overrides in value.items():
        if size is None or size == FULL:
            size = None
        elif isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise UserError(f"{where}: size {size!r} in sizes must be a positive number of training examples "
                            f"or {FULL!r}")
        if size in sizes:
            raise UserError(f"{where}: size {size or FULL} appears twice in sizes")
        sizes[size] = _overrides(overrides, where, f"sizes.{size or FULL}")
    return sizes


def _seeds(value, where: str) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if (not isinstance(value, list) or not value
            or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in value)):
        raise UserError(f"{where}: seeds must be a list of non-negative integers, got {value!r}")
    if len(set(value)) != len(value):
        raise UserError(f"{where}: seeds {value} repeat a seed")
    return tuple(value)


def _overrides(value, where: str, context: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UserError(f"{where}: {context} must map dotted cli.py keys to values, e.g. trainer.max_epochs: 3")
    for key in value:
        if not isinstance(key, str) or not OVERRIDE_KEY.match(key):
            raise UserError(f"{where}: {context} has key {key!r}; keys are dotted cli.py keys like "
                            f"trainer.max_epochs")
        if key in RESERVED_KEYS or key.startswith("model.method.") or key.startswith("trainer.logger."):
            owner = RESERVED_KEYS.get(key, "methods" if key.startswith("model.method") else "the run's directory")
            raise UserError(f"{where}: {context} cannot set {key}: the sweep sets it from {owner}")
    return dict(value)


def _exclude(value, where: str, sweep: Sweep) -> tuple[dict, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise UserError(f"{where}: exclude must be a list of mappings like {{task: rte, size: 4000}}")
    grid = {"task": list(sweep.tasks), "method": list(sweep.methods), "size": list(sweep.sizes),
            "seed": list(sweep.seeds)}
    rules = []
    for i, rule in enumerate(value):
        if not isinstance(rule, dict) or not rule:
            raise UserError(f"{where}: exclude[{i}] must be a mapping like {{task: rte, size: 4000}}")
        _check_keys(rule, EXCLUDE_KEYS, where, f"in exclude[{i}]")
        rule = {k: (None if k == "size" and v == FULL else v) for k, v in rule.items()}
        for key, item in rule.items():
            if item not in grid[key]:
                shown = [FULL if v is None else v for v in grid[key]]
                raise UserError(f"{where}: exclude[{i}].{key} {item!r} is not in the sweep's {key}s "
                                f"({', '.join(map(str, shown))}){did_you_mean(item, shown)}")
        rules.append(rule)
    return tuple(rules)


# --- methods ---------------------------------------------------------------------------------------------------


def known_methods() -> dict[str, str]:
    """Every method class of `compacter_pl.methods` (and its modules): short name -> dotted class path."""
    from compacter_pl import methods
    from compacter_pl.methods.base import Method

    found = {}
    modules = [methods]
    for info in pkgutil.iter_modules(methods.__path__):
        try:
            modules.append(importlib.import_module(f"{methods.__name__}.{info.name}"))
        except Exception:  # a method module with a missing optional dependency still leaves the others
            continue
    for module in modules:
        for name, obj in vars(module).items():
            # base classes are named ...Method by convention (AdapterMethod): they are not methods one picks
            if (isinstance(obj, type) and issubclass(obj, Method) and not name.endswith("Method")
                    and not name.startswith("_")):
                found.setdefault(name, f"{obj.__module__}.{obj.__qualname__}")
    return found


def resolve_method(class_path, where: str, context: str) -> type:
    """The Method subclass named by a dotted class path or by its name in compacter_pl.methods."""
    from compacter_pl.methods.base import Method

    cls = None
    if isinstance(class_path, str) and class_path:
        if "." not in class_path:
            class_path = known_methods().get(class_path, f"compacter_pl.methods.{class_path}")
        module_name, _, attribute = class_path.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module_name), attribute, None)
        except ImportError:
            cls = None
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        known = known_methods()
        short = str(class_path).rpartition(".")[2]
        raise UserError(f"{where}: unknown method {class_path!r} in {context}{did_you_mean(short, known)} "
                        f"(known methods: {', '.join(sorted(known))})")
    return cls


def _check_init_args(cls: type, init_args: dict, where: str, context: str) -> None:
    import inspect

    parameters = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    for key in init_args:
        if key not in parameters:
            raise UserError(f"{where}: {context}: {cls.__name__} has no argument {key!r}"
                            f"{did_you_mean(key, parameters)} (its arguments: {', '.join(parameters)})")
