"""`cli.py sweep`: the grid read from YAML, shards, bad input as one-line errors, the demo sweep end to end, and a
sweep killed with SIGKILL mid-run that resumes with every run in results.jsonl exactly once."""

import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time

import matplotlib.image
import pytest
import yaml
from conftest import DURATION, ROOT, in_process, one_line_error
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from compacter_pl.sweep.grid import load_sweep, shard_of
from compacter_pl.sweep.report import write_report
from compacter_pl.sweep.results import read_results
from compacter_pl.sweep.runner import duration, resolved_configs

DEMO_SWEEP = ROOT / "configs" / "sweeps" / "demo.yaml"
SWEEPS = sorted((ROOT / "configs" / "sweeps").glob("*.yaml"))


def write_sweep(tmp_path, name="sweep.yaml", **changes):
    """The demo sweep with `changes`, its outputs and data cache under tmp_path."""
    spec = yaml.safe_load(DEMO_SWEEP.read_text())
    spec.update(changes)
    spec["out_dir"] = str(tmp_path / "out")
    spec["overrides"] = {**(spec.get("overrides") or {}), "data.cache_dir": str(tmp_path / "cache")}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def sweep_in_process(capsys, *args):
    """`cli.py sweep ARGS` in this process: (exit code, stdout, stderr)."""
    return in_process(capsys, "sweep", *args)


# --- the grid --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", SWEEPS, ids=[p.name for p in SWEEPS])
def test_every_shipped_sweep_validates_and_parses(path):
    sweep = load_sweep(path)
    assert sweep.runs()
    configs = resolved_configs(sweep)  # each task, method and size through cli.py's own parser
    assert set(configs) == set(sweep.tasks)
    assert "python cli.py sweep --config" in path.read_text().split("\n\n")[0]


def test_the_low_resource_sweep_is_the_papers_figure_4_grid():
    sweep = load_sweep(ROOT / "configs" / "sweeps" / "low_resource.yaml")
    assert list(sweep.tasks) == ["cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte"]
    assert {n: o["trainer.max_epochs"] for n, o in sweep.sizes.items()} == {
        100: 1000,
        500: 200,
        1000: 100,
        2000: 50,
        4000: 25,
    }
    assert sweep.seeds == (0, 1, 2, 3, 4)
    assert sweep.overrides == {
        "data.batch_size": 40,
        "trainer.val_check_interval": 250,
        "trainer.check_val_every_n_epoch": None,
    }
    rates = {name: m.overrides["model.learning_rate"] for name, m in sweep.methods.items()}
    assert rates == {"t5-finetune": 3e-4, "compacter++": 3e-3}
    assert sweep.methods["compacter++"].class_path.endswith("CompacterPlusPlus")
    assert len(sweep.runs()) == 8 * 5 * 2 * 5 - 2 * 2 * 5  # RTE and MRPC have fewer than 4000 examples


def test_runs_carry_their_coordinates_and_overrides(tmp_path):
    sweep = load_sweep(DEMO_SWEEP, out_dir=tmp_path)
    runs = sweep.runs()
    assert [r.name for r in runs[:4]] == [
        "rte-t5-finetune-n100-s0",
        "rte-compacter++-n100-s0",
        "rte-t5-finetune-n600-s0",
        "rte-compacter++-n600-s0",
    ]
    args = runs[1].args()
    for expected in (
        "--data.task=rte",
        "--data.train_size=100",
        "--seed_everything=0",
        "--model.learning_rate=0.03",
        "--trainer.max_epochs=10",
        "--model.method=null",
    ):
        assert expected in args, args
    assert json.loads(args[args.index("--model.method=null") + 1].split("=", 1)[1])["init_args"]["bottleneck"] == 8


def test_shards_are_disjoint_and_cover_the_grid():
    runs = load_sweep(ROOT / "configs" / "sweeps" / "low_resource.yaml").runs()
    for count in range(1, 8):
        shards = [shard_of(runs, (index, count)) for index in range(count)]
        names = [run.name for shard in shards for run in shard]
        assert sorted(names) == sorted(run.name for run in runs)  # cover, and no run twice
        cells = [{(run.seed, run.task, run.size) for run in shard} for shard in shards]
        assert sum(map(len, cells)) == len(set.union(*cells))  # a cell's methods all run in one shard


def test_dry_run_lists_the_runs_of_a_shard(tmp_path, capsys):
    code, out, _ = sweep_in_process(
        capsys, "--config", str(DEMO_SWEEP), "--out", str(tmp_path), "--dry_run", "--shard", "1/3"
    )
    assert code == 0
    expected = [run.describe() for run in shard_of(load_sweep(DEMO_SWEEP).runs(), (1, 3))]
    listed = re.findall(r"^\[\d/(\d)\] (rte \S+ n=\d+ seed=\d) \(to run\)", out, re.M)
    assert listed == [(str(len(expected)), what) for what in expected] and len(expected) == 2
    assert not (tmp_path / "runs").exists()  # a dry run writes nothing


@pytest.mark.parametrize(
    "seconds, text",
    [
        (0.04, "0.0s"),
        (55.54, "55.5s"),
        (63.2, "1m03s"),
        (3599.4, "59m59s"),
        (3600, "1h00m"),
        (7530, "2h05m"),
        (90061, "25h01m"),
    ],
)
def test_durations_read_as_seconds_minutes_or_hours(seconds, text):
    assert duration(seconds) == text
    assert re.fullmatch(DURATION, text)  # the pattern the output checks use


# --- bad input -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, fragments",
    [
        ({"seed": [0]}, ["unknown key 'seed'", "did you mean 'seeds'?"]),
        ({"tasks": ["rte", "rtee"]}, ["unknown task 'rtee'", "did you mean 'rte'?"]),
        (
            {"methods": {"cpp": {"class_path": "compacter_pl.methods.CompacterPlusPlu"}}},
            ["unknown method 'compacter_pl.methods.CompacterPlusPlu'", "did you mean 'CompacterPlusPlus'?"],
        ),
        (
            {"methods": {"cpp": {"class_path": "compacter_pl.methods.FullFineTuning", "init_arg": {}}}},
            ["methods: unknown key 'init_arg' in {'class_path'", "did you mean 'init_args'?"],
        ),
        (
            {"methods": {"cpp": {"class_path": "CompacterPlusPlus", "init_args": {"bottlenek": 8}}}},
            ["does not parse (check methods.cpp)", "unknown key 'bottlenek'", "did you mean 'bottleneck'?"],
        ),
        ({"sizes": {100: {"trainer.max_epoch": 3}}}, ["does not parse (check sizes.100)", "trainer.max_epoch"]),
        ({"exclude": [{"task": "rte", "sise": 100}]}, ["exclude: unknown key 'sise'", "did you mean 'size'?"]),
        ({"seeds": [0, "one"]}, ["seeds:", "NonNegativeInt", "'one'"]),
        ({"tasks": 5}, ["tasks: expected one of list[str]", "got 5"]),
        ({"keep_checkpoints": "bst"}, ["keep_checkpoints: expected one of all, best, none", "did you mean 'best'?"]),
        ({"overrides": {"data.train_size": 5}}, ["cannot set data.train_size: the sweep sets it from sizes"]),
        ({"exclude": [{"task": "rte", "size": 200}]}, ["exclude[0].size 200 is not in the sweep's sizes"]),
        (
            {"sizes": {100: None, 1000: None}},
            ["size 1000 is larger than the training split of rte (600 examples)", "exclude"],
        ),
    ],
)
def test_bad_sweep_files_are_one_line_errors(tmp_path, capsys, change, fragments):
    path = write_sweep(tmp_path, **change)
    code, _, err = sweep_in_process(capsys, "--config", str(path))
    one_line_error(code, err, str(path), *fragments)
    assert not (tmp_path / "out" / "runs").exists()  # nothing ran


def test_bad_shard_is_a_one_line_error(capsys):
    code, _, err = sweep_in_process(capsys, "--config", str(DEMO_SWEEP), "--shard", "3/3", "--dry_run")
    one_line_error(code, err, "--shard expects I/N with 0 <= I < N", "SLURM_ARRAY_TASK_ID")


def test_a_corrupt_results_line_is_reported_and_left_in_place(tmp_path, capsys):
    path = write_sweep(tmp_path)
    results = tmp_path / "out" / "results.jsonl"
    results.parent.mkdir()
    results.write_text('{"run": "rte-t5-finetune-n100-s0", "task": "r\n')  # torn
    code, out, err = sweep_in_process(capsys, "--config", str(path), "--dry_run")
    assert code == 0 and "Traceback" not in err
    assert f"warning: {results} line 1: not valid JSON" in err
    assert "0 finished, 8 to run" in out  # the corrupt line does not count as a finished run
    assert results.read_text() == '{"run": "rte-t5-finetune-n100-s0", "task": "r\n'


def test_a_finished_run_with_other_settings_is_an_error(tmp_path, capsys):
    path = write_sweep(tmp_path)
    results = tmp_path / "out" / "results.jsonl"
    results.parent.mkdir()
    line = {
        "run": "rte-t5-finetune-n100-s0",
        "task": "rte",
        "method": "t5-finetune",
        "size": 100,
        "seed": 0,
        "val": {"score": 1.0},
        "test": {"score": 1.0},
        "fingerprint": "made-with-another-learning-rate",
    }
    results.write_text(json.dumps(line) + "\n")
    code, _, err = sweep_in_process(capsys, "--config", str(path), "--dry_run")
    one_line_error(code, err, "holds run rte-t5-finetune-n100-s0 made with other settings", "--out")


# --- end to end ------------------------------------------------------------------------------------------------


def small_sweep(tmp_path, methods=("t5-finetune", "compacter++"), seeds=(0, 1)):
    demo = yaml.safe_load(DEMO_SWEEP.read_text())
    return write_sweep(
        tmp_path,
        methods={m: demo["methods"][m] for m in methods},
        seeds=list(seeds),
        sizes={40: {"trainer.max_epochs": 1}},
    )


def sweep_command(path, *args):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return [sys.executable, str(ROOT / "cli.py"), "sweep", "--config", str(path), *args], env


@pytest.mark.slow
def test_demo_sweep_end_to_end(tmp_path, cli):
    path = small_sweep(tmp_path, seeds=(0,))  # the demo's two methods, one small size and seed: 2 runs
    out = tmp_path / "out"
    result = cli("sweep", "--config", str(path))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = re.findall(
        rf"^\[(\d)/2\] rte (\S+) n=40 seed=0: done in {DURATION}, test score [\d.]+ "
        rf"\(elapsed {DURATION}, ~{DURATION} left\)$",
        result.stdout,
        re.M,
    )
    assert lines == [("1", "t5-finetune"), ("2", "compacter++")], result.stdout

    records = read_results(out / "results.jsonl").records
    names = {"rte-t5-finetune-n40-s0", "rte-compacter++-n40-s0"}
    assert sorted(r["run"] for r in records) == sorted(names)
    by_name = {r["run"]: r for r in records}
    full, cpp = by_name["rte-t5-finetune-n40-s0"], by_name["rte-compacter++-n40-s0"]
    assert 0 < cpp["trainable_params"] < full["trainable_params"] == full["total_params"]
    for r in records:
        assert {"score", "accuracy"} <= set(r["val"]) and {"score", "accuracy"} <= set(r["test"])
        assert r["size"] == 40 and r["wall_time_s"] > 0 and r["log_dir"] == f"runs/{r['run']}"
        run_dir = out / r["log_dir"]
        assert (run_dir / "config.yaml").is_file() and (run_dir / "fit.log").is_file()
        assert [p.name for p in (run_dir / "checkpoints").iterdir()] == [r["best_checkpoint"].split("/")[-1]]
        assert "it/s]" not in (run_dir / "fit.log").read_text()  # no progress bars when output is not a terminal
        events = EventAccumulator(str(run_dir)).Reload()
        assert "_hparams_/session_start_info" in events.PluginTagToContent("hparams")  # the HParams tab
        assert {"hp/best_val_score", "hp/test_score", "test/score", "val/score"} <= set(events.Tags()["scalars"])

    again = cli("sweep", "--config", str(path))
    assert again.returncode == 0 and "2 finished, 0 to run" in again.stdout, again.stdout + again.stderr
    assert len(read_results(out / "results.jsonl").records) == 2

    written = write_report([out])
    assert written["figure"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.image.imread(written["figure"]).ndim == 3
    assert "| t5-finetune | 40 | 1 |" in written["text"] and "| compacter++ | 40 | 1 |" in written["text"]


@pytest.mark.slow
@pytest.mark.faults
def test_sigkill_mid_sweep_then_rerun_records_every_run_exactly_once(tmp_path):
    path = small_sweep(tmp_path, methods=("t5-finetune",), seeds=(0, 1))
    out = tmp_path / "out"
    command, env = sweep_command(path)
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while not (out / "results.jsonl").exists() or not (out / "results.jsonl").read_bytes().count(b"\n"):
        assert process.poll() is None, process.stdout.read().decode()[-3000:]
        assert time.monotonic() < deadline, "no run finished in time"
        time.sleep(0.2)
    second_log = out / "runs" / "rte-t5-finetune-n40-s1" / "fit.log"
    while not second_log.exists() or second_log.stat().st_size == 0:  # the second run's fit is under way
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    process.stdout.close()
    killed_with = len(read_results(out / "results.jsonl").records)
    assert killed_with == 1

    # the killed sweep's fit subprocess dies with it: every run's lock is free again within seconds
    for lock in (out / ".locks").iterdir():
        fd = os.open(lock, os.O_RDWR)
        try:
            for _ in range(50):
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    time.sleep(0.2)
            else:
                pytest.fail(f"{lock.name} is still held: the killed sweep left its subprocess running")
        finally:
            os.close(fd)

    rerun = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert "1 finished, 1 to run" in rerun.stdout, rerun.stdout
    runs = [r["run"] for r in read_results(out / "results.jsonl").records]
    assert sorted(runs) == ["rte-t5-finetune-n40-s0", "rte-t5-finetune-n40-s1"]  # each exactly once
    assert read_results(out / "results.jsonl").problems == []
