"""A sweep's grid as data: its methods (each a registry key, a variant of one its own method), the configurations
of their searches, the runs (every task, method, size, seed and configuration) and their shards. `sweep_file.py`
reads a sweep file into a `Sweep`; the runner runs its runs."""

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from compacter_pl.config import load_yaml
from compacter_pl.errors import UserError

FULL: Final = "full"  # a size meaning "the whole training split" (the Table 1 runs)
INIT_ARGS = "init_args."  # an axis over an argument of the method (a search's or the variants')


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
    """One method of the grid: its registry key, its name in run names (the key, a variant's values appended:
    `compacter-n8`), its class and arguments (the key's registered ones, then the sweep file's), its own overrides
    (e.g. the paper's learning rate of the method), and the configurations of its search."""

    key: str
    name: str
    class_path: str
    init_args: dict = field(default_factory=dict)
    overrides: dict = field(default_factory=dict)
    configs: tuple[Config, ...] = (Config(),)
    variant: dict = field(default_factory=dict)  # argument -> value: what sets this variant apart (`variants`)

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
    """A sweep file's grid: `methods` by name (a variant is a method of its own), the levels of overrides."""

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
                        if self._excluded(task, method.key, size, seed):
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
        """Whether an exclude rule matches: a rule's method is a key, so it leaves out each of its variants."""
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
