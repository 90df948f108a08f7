"""`make_trainer` builds the Trainer `cli.py fit` builds, and every test's Trainer comes from it."""

import ast

from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, ProgressBar
from lightning.pytorch.cli import SaveConfigCallback

from compacter_pl.cli import build_cli
from compacter_pl.training import RunSummary, make_trainer, run_summary
from compacter_pl.training.checkpoints import LastCheckpoint
from tests.helpers import ROOT


def shape(trainer) -> dict:
    """What the project's defaults set on a Trainer."""
    checkpoint = next(c for c in trainer.callbacks if type(c) is ModelCheckpoint)
    lr_monitor = next(c for c in trainer.callbacks if isinstance(c, LearningRateMonitor))
    return {  # LightningCLI's own callback, which writes config.yaml, aside
        "callbacks": sorted(type(c).__qualname__ for c in trainer.callbacks if not isinstance(c, SaveConfigCallback)),
        "checkpoint": {
            name: getattr(checkpoint, name) for name in ("monitor", "mode", "save_last", "auto_insert_metric_name")
        },
        "filename": checkpoint.filename,
        "lr_interval": lr_monitor.logging_interval,
        "checkpoint_io": type(trainer.strategy.checkpoint_io),
        "use_distributed_sampler": trainer._accelerator_connector.use_distributed_sampler,
        "logger": type(trainer.logger),
    }


def test_make_trainer_builds_the_trainer_of_cli_fit(tmp_path):
    root = ["--trainer.default_root_dir", str(tmp_path), "--data.cache_dir", str(tmp_path / "cache")]
    cli = build_cli(["--config", str(ROOT / "configs/demo.yaml"), *root], run=False)
    ours = make_trainer(default_root_dir=tmp_path, enable_model_summary=False)  # as configs/demo.yaml sets it
    assert shape(ours) == shape(cli.trainer)
    assert shape(ours)["checkpoint"] == {"monitor": "val/score", "mode": "max", "save_last": False,
                                         "auto_insert_metric_name": False}  # fmt: skip


def test_callbacks_a_flag_turns_off_are_left_out_and_the_summary_stays():
    quiet = make_trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, accelerator="cpu")
    kinds = {type(c) for c in quiet.callbacks}
    assert not kinds & {ModelCheckpoint, LastCheckpoint, LearningRateMonitor}
    assert not any(issubclass(kind, ProgressBar) for kind in kinds)
    assert isinstance(run_summary(quiet), RunSummary)
    raw = make_trainer(barebones=True, accelerator="cpu")  # Lightning's raw-speed mode, as bench runs it
    assert raw.barebones and isinstance(run_summary(raw), RunSummary) and not raw.checkpoint_callbacks


def trainers_built(source: str) -> list[int]:
    """The lines where `source` calls a Trainer's constructor (`Trainer(...)`, `L.Trainer(...)`, ...)."""
    return [
        node.lineno
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and (getattr(node.func, "id", None) == "Trainer" or getattr(node.func, "attr", None) == "Trainer")
    ]


def test_every_trainer_of_the_tests_comes_from_make_trainer():
    built = {
        str(path.relative_to(ROOT)): lines
        for path in (ROOT / "tests").rglob("*.py")
        if (lines := trainers_built(path.read_text(encoding="utf-8")))
    }
    assert built == {}, "build it with tests.helpers.quiet_trainer or compacter_pl.training.make_trainer"
    assert trainers_built("import lightning as L\nL.Trainer(max_steps=1)\n") == [2]
