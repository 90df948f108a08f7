"""`cli.py sweep` end to end on the demo: a sweep and its report, and a search that chooses on validation. (A file of
its own, as is the SIGKILL test in test_sweep_faults.py, so that `pytest -n 2 --dist loadfile` runs these long tests
beside each other and the rest of test_sweep.py.)"""

import json
import re

import matplotlib.image
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import metadata
from tensorboard.plugins.hparams.metadata import SESSION_START_INFO_TAG as SESSION_START

from compacter_pl.tools.sweep.report import write_report
from compacter_pl.tools.sweep.results import read_results
from tests.helpers import DURATION, small_sweep, write_sweep


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
    assert lines == [("1", "full"), ("2", "compacter++")], result.stdout

    records = read_results(out / "results.jsonl").records
    names = {"rte-full-n40-s0", "rte-compacter++-n40-s0"}
    assert sorted(r["run"] for r in records) == sorted(names)
    by_name = {r["run"]: r for r in records}
    full, cpp = by_name["rte-full-n40-s0"], by_name["rte-compacter++-n40-s0"]
    assert 0 < cpp["trainable_params"] < full["trainable_params"] == full["total_params"]
    for r in records:
        assert {"score", "accuracy"} <= set(r["val"]) and {"score", "accuracy"} <= set(r["test"])
        assert r["size"] == 40 and r["wall_time_s"] > 0 and r["log_dir"] == f"runs/{r['run']}"
        run_dir = out / r["log_dir"]
        assert (run_dir / "config.yaml").is_file() and (run_dir / "fit.log").is_file()
        assert [p.name for p in (run_dir / "checkpoints").iterdir()] == [r["best_checkpoint"].split("/")[-1]]
        assert "it/s]" not in (run_dir / "fit.log").read_text()  # no progress bars when output is not a terminal
        fit = json.loads((run_dir / "fit.json").read_text())  # the run's summary (compacter_pl.training.summary)
        assert fit["best_val"] == r["val"] and fit["examples_seen"] >= fit["steps"] > 0
        assert {"val/score", "val/accuracy"} <= set(EventAccumulator(str(run_dir)).Reload().Tags()["scalars"])
        row = EventAccumulator(str(run_dir / "hparams")).Reload()  # the run's row of the HParams tab
        start = metadata.parse_session_start_info_plugin_data(row.PluginTagToContent("hparams")[SESSION_START])
        assert start.hparams["method"].string_value == r["method"] and start.hparams["task"].string_value == "rte"
        assert "sweep.method" not in start.hparams  # the method's one name is its key
        assert set(row.Tags()["scalars"]) == {"hp/best_val_score", "test/score", "test/accuracy"}  # its metric columns
        assert row.Scalars("test/score")[-1].value == pytest.approx(r["test"]["score"])

    again = cli("sweep", "--config", str(path))
    assert again.returncode == 0 and "2 finished, 0 to run" in again.stdout, again.stdout + again.stderr
    assert len(read_results(out / "results.jsonl").records) == 2

    written = write_report([out])
    assert written["figure"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.image.imread(written["figure"]).ndim == 3
    assert "| full | 40 | 1 |" in written["text"] and "| compacter++ | 40 | 1 |" in written["text"]


@pytest.mark.slow
def test_a_search_chooses_on_validation_end_to_end(tmp_path, cli):
    """Two learning rates on the demo data, one that learns (the demo's) and one that cannot: the report chooses the
    first from validation alone and puts its test score beside the paper's (T5 fine-tuning, RTE)."""
    method = {"class_path": "compacter_pl.methods.FullFineTuning", "search": {"model.learning_rate": [1.0e-9, 3.0e-3]}}
    path = write_sweep(
        tmp_path,
        methods={"full": method},
        sizes=["full"],
        seeds=[0],
        overrides={"data.batch_size": 16, "model.warmup_steps": 5, "trainer.max_epochs": 1},
    )
    out = tmp_path / "out"
    result = cli("sweep", "--config", str(path))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert re.findall(r"^\[(\d)/2\] rte full (lr\S+) n=full seed=0: done", result.stdout, re.M) == [
        ("1", "lr1e-9"),
        ("2", "lr3e-3"),
    ], result.stdout
    records = {r["config"]: r for r in read_results(out / "results.jsonl").records}
    assert {c: r["search"] for c, r in records.items()} == {
        "lr1e-9": {"model.learning_rate": 1e-9},
        "lr3e-3": {"model.learning_rate": 3e-3},
    }
    assert records["lr3e-3"]["val"]["score"] > records["lr1e-9"]["val"]["score"]
    assert records["lr3e-3"]["log_dir"] == "runs/rte-full-lr3e-3-nfull-s0"

    again = cli("sweep", "--config", str(path))  # resumes: nothing left to run
    assert again.returncode == 0 and "2 runs in the grid, 2 finished, 0 to run" in again.stdout, again.stdout

    report = cli("report", str(out))
    assert report.returncode == 0, report.stderr[-3000:]
    val, test = (f"{100 * records['lr3e-3'][stage]['accuracy']:.2f}" for stage in ("val", "test"))
    assert f"| full | full | lr3e-3: {val} (best of 2) |" in report.stdout, report.stdout
    assert f"| {test} | {test} |" in report.stdout  # the full-data table: the chosen run's test
    # what each run was, as its module saw it: the report matches runs to the paper's rows by these
    assert {(r["model"], r["learning_rate"]) for r in records.values()} == {
        ("demo/tiny-t5", 1e-9),
        ("demo/tiny-t5", 3e-3),
    }
    assert records["lr3e-3"]["method_init_args"] == {}  # FullFineTuning takes no argument
    # the tiny demo model is not the paper's T5-base: no paper row goes beside it
    assert "Beside the paper's" not in report.stdout
    assert "The paper has no row for: full (demo/tiny-t5)." in report.stdout
