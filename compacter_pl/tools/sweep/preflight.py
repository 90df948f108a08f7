"""Checks before a sweep runs anything: every run parses with cli.py's own parser, every size fits its task's
training split, and a finished run counts only if it is this grid's run (its fingerprint and the method arguments
the sweep file leaves to their defaults)."""

import json
from pathlib import Path

from compacter_pl.errors import UserError
from compacter_pl.tools.sweep.grid import FULL, Run, Sweep
from compacter_pl.tools.sweep.results import RESULTS_FILE, with_run_settings


def resolved_configs(sweep: Sweep) -> dict[str, dict]:
    """Parse runs that together use every task, method, size and searched value with cli.py's own parser (in
    this process, no model is built): an unknown or ill-typed override fails here, naming where the sweep file
    sets it. Returns each task's resolved config."""
    from compacter_pl.config import run_parser

    parse_run = run_parser()
    configs: dict[str, dict] = {}
    seen: set[tuple[str, object]] = set()
    for run in sweep.runs():
        coordinates = {
            ("task", run.task),
            ("method", run.method.name),
            ("size", run.size),
            *((key, json.dumps(value, sort_keys=True)) for key, value in run.config.values.items()),
        }
        if coordinates <= seen:
            continue
        seen |= coordinates
        try:
            config = parse_run(["fit", "--config", str(sweep.base_config), *run.args()])
        except UserError as error:
            raise UserError(
                f"{sweep.path}: run {run.name} does not parse{_set_where(sweep, run, str(error))}: {error}"
            ) from None
        configs.setdefault(run.task, config)
    return configs


def _set_where(sweep: Sweep, run: Run, message: str) -> str:
    levels = [
        ("overrides", sweep.overrides),
        (f"tasks.{run.task}", sweep.tasks[run.task]),
        (f"methods.{run.method.key}.overrides", run.method.overrides),
        (f"sizes.{run.size or FULL}", sweep.sizes[run.size]),
        (f"methods.{run.method.key}.search", run.config.overrides()),
    ]
    for context, overrides in reversed(levels):
        if any(f"--{key}=" in message or f"'{key}'" in message for key in overrides):
            return f" (check {context})"
    if "model.method" in message or "init_args" in message:
        return f" (check methods.{run.method.key})"
    return ""


def check_sizes(sweep: Sweep, configs: dict[str, dict]) -> None:
    """Every size fits its task's training split (after the paper's split), before hours are spent."""
    from compacter_pl.data.sources import load_split
    from compacter_pl.tasks import get_task

    runs = sweep.runs()
    for name, config in configs.items():
        sizes = sorted({run.size for run in runs if run.task == name and run.size is not None})
        if not sizes:
            continue
        data = config.get("data") or {}
        task = get_task(name)
        available = len(load_split(task, "train", data.get("data_dir"), data.get("revision")))
        if not task.small:  # large tasks hold out validation examples from the training split
            available -= int(data.get("validation_size") or 0)
        if sizes[-1] > available:
            raise UserError(
                f"{sweep.path}: size {sizes[-1]} is larger than the training split of {name} "
                f"({available} examples); drop it from sizes or add {{task: {name}, size: {sizes[-1]}}} "
                f"to exclude"
            )


def check_fingerprints(sweep: Sweep, finished: dict[str, dict], base_content, root: Path | None = None) -> None:
    """A finished run counts only if it is this grid's run: the same fingerprint (the base config and the run's
    arguments), and the same value for every method argument the sweep file leaves to its default (a default that
    changed since, like the adapters' activation, would otherwise mix two grids in one table)."""
    for run in sweep.runs():
        record = finished.get(run.name)
        if not record:
            continue
        if record.get("fingerprint") not in (None, run.fingerprint(base_content)):
            raise UserError(
                f"{sweep.path}: {RESULTS_FILE} in {sweep.out_dir} holds run {run.name} made with other "
                f"settings (the sweep file or its base config changed since); write this sweep to a "
                f"new directory with --out DIR, or delete that run's line to redo it"
            )
        changed = _changed_arguments(run, record, root)
        if changed:
            name, then, now = changed[0]
            raise UserError(
                f"{sweep.path}: {RESULTS_FILE} in {sweep.out_dir} holds run {run.name} made with {name}={then!r}, "
                f"where the method's default is now {now!r}; set {name}: {json.dumps(then)} in "
                f"methods.{run.method.key}.init_args to go on with those runs, or write this sweep to a new "
                f"directory with --out DIR"
            )


def _changed_arguments(run: Run, record: dict, root: Path | None) -> list[tuple[str, object, object]]:
    """(argument, the finished run's value, this run's value) for each method argument that differs; arguments
    the run resolves itself (a None default: the run's seed) are not compared."""
    from compacter_pl.methods.registry import complete_init_args, method_class

    then = (with_run_settings(record, root) if root is not None else record).get("method_init_args")
    cls = method_class(run.method.class_path)
    if not isinstance(then, dict) or cls is None:
        return []
    now = complete_init_args(cls, run.method.config(run.config)["init_args"])
    as_json = lambda value: json.loads(json.dumps(value, default=str))  # noqa: E731 (tuples as lists)
    return [
        (name, then[name], value)
        for name, value in now.items()
        if value is not None and name in then and as_json(then[name]) != as_json(value)
    ]
