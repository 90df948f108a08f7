"""Options are checked before any work: each mistake that Lightning or torch would catch only after set-up or an
epoch, or would accept and run wrong, is one line naming the option, through every command that runs the model, and
through the sweep before its first run."""

import pytest

from tests.helpers import DEMO_MODEL, in_process, one_line_error, run_demo, write_sweep

DEMO = "configs/demo.yaml"


def _demo(capsys, tmp_path, *args, command="fit"):
    """`run_demo` in this process: its runs under tmp_path/lightning_logs, its cache in tmp_path/cache."""
    return run_demo(lambda *a, env=None: in_process(capsys, *a), tmp_path, *args, command=command)


# option and value -> the words of the one line
CASES = {
    ("--seed_everything", "99999999999"): ["--seed_everything 99999999999 is out of bounds", "4294967295"],
    ("--trainer.gradient_clip_val", "-1"): ["--trainer.gradient_clip_val -1", "reverses every gradient"],
    ("--trainer.accumulate_grad_batches", "0"): ["--trainer.accumulate_grad_batches 0 must be 1 or more"],
    ("--model.weight_decay", "-1"): ["--model.weight_decay -1.0: AdamW refuses it", "weight_decay"],
    ("--model.adam_epsilon", "-1"): ["--model.adam_epsilon -1.0: AdamW refuses it", "epsilon"],
    ("--model.max_new_tokens", "0"): ["--model.max_new_tokens 0 generates nothing"],
    ("--checkpoint.monitor", "val/f1"): ["--checkpoint.monitor val/f1 is not logged by a run of rte", "val/accuracy"],
    ("--checkpoint.monitor", "train/loss"): ["--checkpoint.mode max", "train/loss", "--checkpoint.mode min"],
}


@pytest.mark.parametrize("command", ["fit", "validate", "test", "predict"])
@pytest.mark.parametrize(("option", "value"), list(CASES), ids=[f"{o}={v}" for o, v in CASES])
def test_a_bad_option_is_one_line_before_any_work(capsys, tmp_path, command, option, value):
    code, _, err = _demo(capsys, tmp_path, option, value, command=command)
    one_line_error(code, err, *CASES[option, value])
    assert not (tmp_path / "lightning_logs").exists() and not (tmp_path / "cache").exists()  # before any work


def test_val_check_interval_beyond_the_epoch_is_one_line_before_the_first_step(capsys, tmp_path):
    code, _, err = _demo(
        capsys, tmp_path, "--trainer.limit_train_batches", "2", "--trainer.val_check_interval", "100000"
    )
    one_line_error(code, err, "--trainer.val_check_interval 100000 is more than the 2 training batches", "0.5")
    assert not list(tmp_path.rglob("*.ckpt"))


def test_a_sweep_checks_every_runs_options_before_its_first_run(capsys, tmp_path):
    sweep = write_sweep(tmp_path, overrides={"trainer.gradient_clip_val": -1})
    code, _, err = in_process(capsys, "sweep", "--config", str(sweep))
    one_line_error(code, err, "--trainer.gradient_clip_val -1", "reverses every gradient")
    assert not (tmp_path / "out" / "runs").exists()


def test_the_checks_pass_a_good_run(capsys, tmp_path):
    code, _, err = _demo(
        capsys, tmp_path, "--trainer.max_steps", "1", "--trainer.limit_val_batches", "1",
        "--trainer.gradient_clip_val", "1.0", "--checkpoint.monitor", "val/accuracy",
        "--model.model_name_or_path", str(DEMO_MODEL),
    )  # fmt: skip
    assert code == 0, err


@pytest.mark.parametrize("target", ["predict_file", "checkpoint", "config", "data_file"])
def test_predict_never_writes_over_what_it_reads(capsys, trained, tmp_path, target):
    """`predict --predictions.output` once accepted the path of its own predict file and of its checkpoint, and
    replaced them with predictions."""
    predict_file = tmp_path / "inputs.jsonl"
    predict_file.write_text('{"sentence1": "A cat sat.", "sentence2": "A cat is sitting."}\n')
    ckpt = tmp_path / "run.ckpt"
    ckpt.write_bytes(trained.read_bytes())
    config = tmp_path / "demo.yaml"
    config.write_text((DEMO_MODEL.parents[1] / DEMO).read_text())
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    for split in (DEMO_MODEL.parents[1] / "demo" / "data" / "rte").iterdir():
        (data_dir / split.name).write_bytes(split.read_bytes())
    paths = {"predict_file": predict_file, "checkpoint": ckpt, "config": config, "data_file": data_dir / "train.jsonl"}
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    code, _, err = in_process(
        capsys, "predict", "--config", str(config), "--ckpt_path", str(ckpt), "--data.data_dir", str(data_dir),
        "--data.predict_file", str(predict_file), "--predictions.output", str(paths[target]),
        "--trainer.default_root_dir", str(tmp_path / "logs"),
    )  # fmt: skip
    one_line_error(code, err, f"--predictions.output {paths[target]} is the file", "reads; pass another")
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
