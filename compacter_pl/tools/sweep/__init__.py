"""Sweeps: a grid of runs (tasks x methods x training sizes x seeds) declared in YAML, run, resumed and reported.

Flow: `cli.py sweep` -> `sweep_file` (the YAML read and validated, methods by registry key) -> `grid` (its runs as
dataclasses) -> `runner` (the loop: `preflight` checks before anything runs, then per run `processes` runs one
`cli.py fit` then `cli.py test` subprocess, the run's summary inside them, `compacter_pl.training.summary`, writing
what the run measured) -> `results` (one JSON line per finished run in `results.jsonl`) -> `cli.py report` ->
`report` (tables, figure; a run's method by its registry key, `report/methods.py`).
"""
