"""Numbers of the tables: mean and sample standard deviation over seeds (`Stat`), per cell and per benchmark average,
for the low-resource runs (the paper's Figure 4) and the full-data runs (its Table 1)."""

import statistics
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from compacter_pl.tools.sweep.report.records import SCALE, benchmark_of, metric_order, metric_value, task_order


@dataclass(frozen=True)
class Stat:
    """Mean and sample standard deviation (ddof = 1; None for a single value) of `n` values."""

    mean: float
    std: float | None
    n: int

    @classmethod
    def of(cls, values) -> "Stat":
        values = list(values)
        return cls(statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None, len(values))

    def cell(self) -> str:
        return f"{self.mean:.2f}" if self.std is None else f"{self.mean:.2f} ± {self.std:.2f}"


def seed_values(records: list[dict], metric: str) -> dict[tuple, dict[int, float]]:
    """(method, size, task) -> {seed: value of `metric`}."""
    cells: defaultdict[tuple, dict[int, float]] = defaultdict(dict)
    for record in records:
        value = metric_value(record, metric)
        if value is not None:
            cells[(record["method"], record.get("size"), record["task"])][record["seed"]] = value
    return cells


def average(per_task: Mapping[Any, Mapping[int, float]]) -> Stat | None:
    """Per seed the mean over the tasks, then the Stat over the seeds every task has (None if there is none)."""
    seeds = set.intersection(*(set(values) for values in per_task.values())) if per_task else set()
    if not seeds:
        return None
    return Stat.of(statistics.fmean(values[seed] for values in per_task.values()) for seed in sorted(seeds))


@dataclass
class LowResource:
    """Figure 4's numbers: Stat per (method, size, task) and per (method, size, benchmark average)."""

    metric: str
    methods: list[str]
    sizes: list[int]
    tasks: list[str]
    cells: dict[tuple, Stat]
    averages: dict[tuple, tuple[Stat, int]]  # (method, size, benchmark) -> (Stat, number of tasks averaged)
    benchmarks: dict[str, list[str]]  # benchmark -> its tasks in the results


def low_resource(records: list[dict], methods: list[str], metric: str) -> LowResource | None:
    sized = [r for r in records if r.get("size") is not None]
    if not sized:
        return None
    values = seed_values(sized, metric)
    tasks = task_order(task for _, _, task in values)
    sizes = sorted({size for _, size, _ in values})
    benchmarks = defaultdict(list)
    for task in tasks:
        benchmarks[benchmark_of(task)].append(task)
    cells = {key: Stat.of(seeds.values()) for key, seeds in values.items()}
    averages = {}
    for method in methods:
        for size in sizes:
            for benchmark, members in benchmarks.items():
                per_task = {t: values[(method, size, t)] for t in members if (method, size, t) in values}
                stat = average(per_task)
                if stat is not None:
                    averages[(method, size, benchmark)] = (stat, len(per_task))
    used = [m for m in methods if any(key[0] == m for key in cells)]
    return LowResource(metric, used, sizes, tasks, cells, averages, dict(benchmarks))


@dataclass
class FullData:
    """Table 1's numbers: per (method, task) a Stat per metric, the trainable share, the benchmark averages."""

    stage: str
    methods: list[str]
    tasks: list[str]
    metrics: dict[str, list[str]]  # task -> its metrics, in order
    cells: dict[tuple, Stat]  # (method, task, metric) -> Stat
    trainable: dict[str, tuple[list[int], float]]  # method -> (its trainable parameter counts, mean percent)
    averages: dict[tuple, tuple[Stat, int]]  # (method, benchmark) -> (Stat, number of tasks averaged)
    benchmarks: dict[str, list[str]]


def full_data(records: list[dict], methods: list[str], stage: str) -> FullData | None:
    full = [r for r in records if r.get("size") is None]
    if not full:
        return None
    tasks = task_order(r["task"] for r in full)
    metrics = {t: metric_order(t, {n for r in full if r["task"] == t for n in r.get(stage, {})}) for t in tasks}
    per_seed: defaultdict[tuple, dict[int, float]] = defaultdict(dict)  # (method, task, metric) -> {seed: value}
    for record in full:
        for name in metrics[record["task"]]:
            value = metric_value(record, f"{stage}/{name}")
            if value is not None:
                per_seed[(record["method"], record["task"], name)][record["seed"]] = value
    cells = {key: Stat.of(seeds.values()) for key, seeds in per_seed.items()}
    trainable = {}
    for method in methods:
        counted = [r for r in full if r["method"] == method and r.get("total_params")]
        if counted:  # configurations chosen per task may differ in size (e.g. the adapters' bottleneck)
            trainable[method] = (
                sorted({r["trainable_params"] for r in counted}),
                statistics.fmean(SCALE * r["trainable_params"] / r["total_params"] for r in counted),
            )
    benchmarks = defaultdict(list)
    for task in tasks:
        benchmarks[benchmark_of(task)].append(task)
    averages = {}
    for method in methods:
        for benchmark, members in benchmarks.items():
            # every metric shown counts once, as in the paper's Table 1 average
            columns = {
                (t, n): per_seed[(method, t, n)] for t in members for n in metrics[t] if (method, t, n) in per_seed
            }
            stat = average(columns)
            if stat is not None:
                averages[(method, benchmark)] = (stat, len({t for t, _ in columns}))
    used = [m for m in methods if any(key[0] == m for key in cells)]
    return FullData(stage, used, tasks, metrics, cells, trainable, averages, dict(benchmarks))
